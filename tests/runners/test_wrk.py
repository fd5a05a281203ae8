"""wrk: argv building, option checks, the Lua reporter's JSON over golden outputs, and real runs
of the binary against the echo server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path

import pytest
from _runner_tests import assert_sane, golden, spec
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import OutputParseError, ProfileError
from meshlab.profile import RunSpec
from meshlab.results import RunResult, RunStatus
from meshlab.runners.wrk import MARKER, WrkRunner, script_path


def test_argv_is_pure_and_complete() -> None:
    s = spec(method="POST", body=b"x", headers=(("X-A", "1"),), duration_s=2.0, timeout_s=2.0)
    argv = WrkRunner(threads=2).build_argv(s)
    assert argv == WrkRunner(threads=2).build_argv(s)
    assert argv[:9] == ["wrk", "-t", "2", "-c", "4", "-d", "2s", "--timeout", "2s"]
    assert argv[argv.index("-s") + 1] == script_path() and Path(script_path()).is_file()
    assert argv[argv.index("-H") + 1] == "X-A: 1"
    assert argv[-5:] == ["http://127.0.0.1:8080/", "--", "POST", "body.bin", "1"]
    assert WrkRunner(threads=8).build_argv(spec(connections=2))[2] == "2"   # threads <= conns


@pytest.mark.parametrize(("kw", "path", "hint"), [
    ({"rate_rps": 1000.0}, "loads.rate_rps", 'runner="native"'),
    ({"max_requests": 100}, "loads.max_requests", 'runner="hey"'),
    ({"duration_s": 1.5}, "loads.duration_s", "whole seconds"),
    ({"method": "HEAD"}, "request.method", 'runner="ab"'),
    ({"timeout_s": 1.5}, "request.timeout_s", "use 2 or"),
    ({"timeout_s": 0.2}, "request.timeout_s", 'whole number of seconds, got 0.2; use 1 or '
                                              'runner="native"'),
])
def test_check_rejects_what_wrk_cannot_honour(kw: dict[str, object], path: str,
                                              hint: str) -> None:
    with pytest.raises(ProfileError) as info:
        WrkRunner().check(spec(**kw))
    assert info.value.problems[0].startswith(path + ":")
    assert hint in str(info.value)


def test_golden_status_mix() -> None:
    r = WrkRunner().parse_output(golden("wrk_mix.txt"), spec=spec(target="http://x/?status=503:20"))
    assert set(r.status_codes) == {200, 503}
    assert sum(r.status_codes.values()) == r.requests
    assert r.errors == r.status_codes[503]
    assert 0.1 < r.errors / r.requests < 0.3
    assert r.latency.total > 0 and r.latency == r.service_time
    assert r.achieved_rate_rps == pytest.approx(r.requests / r.duration_s)
    assert r.bytes_received > 0 and r.raw and r.raw["latency_source"] == "ffi"
    assert_sane(r)


def test_golden_post_and_exact_spectrum() -> None:
    text = golden("wrk_post.txt")
    r = WrkRunner().parse_output(text, spec=spec(method="POST", body=b"hello"))
    assert r.status_codes == {200: r.requests}
    doc = json.loads(text.split(MARKER, 1)[1].splitlines()[0])
    buckets = doc["latency"]["buckets"]
    assert r.latency.total == sum(c for _, c in buckets)
    assert r.latency.min_us == buckets[0][0] and r.latency.max_us == buckets[-1][0]
    assert_sane(r)


def test_percentile_fallback_when_buckets_are_missing() -> None:
    text = golden("wrk_mix.txt")
    head, _, line = text.partition(MARKER)
    doc = json.loads(line.splitlines()[0])
    doc["latency"]["buckets"] = None
    r = WrkRunner().parse_output(head + MARKER + json.dumps(doc) + "\n", spec=spec())
    assert any("percentiles" in w for w in r.warnings)
    assert_sane(r)


def test_statuses_not_counted_leaves_status_codes_empty() -> None:
    text = re.sub(r'"statuses":\{[^}]*\}', '"statuses":null', golden("wrk_mix.txt"))
    r = WrkRunner(count_statuses=False).parse_output(text, spec=spec())
    assert r.status_codes == {} and r.errors > 0
    assert any("statuses not counted" in w for w in r.warnings)
    assert WrkRunner(count_statuses=False).build_argv(spec())[-1] == "0"


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: t.split(MARKER)[0],                                # no report line
    lambda t: t[: t.index(MARKER) + len(MARKER) + 200],          # JSON cut mid-line
    lambda t: t.replace('"requests":', '"requestz":'),
    lambda t: t.replace('"statuses":{', '"statuses":{"abc":1,'),
    lambda t: "Running 1s test @ http://x/\nSegmentation fault\n",
])
def test_broken_output_raises_output_parse_error(mangle: object) -> None:
    text = mangle(golden("wrk_mix.txt"))  # type: ignore[operator]
    with pytest.raises(OutputParseError):
        WrkRunner().parse_output(text, spec=spec())


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(["requests", "duration_us", "errors",
                                                       "statuses", "latency", "buckets", "bytes",
                                                       "percentiles", "min", "max", "connect"]),
                                       kids, max_size=6), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), _json.map(lambda d: MARKER + json.dumps(d))))
def test_parse_never_raises_anything_but_output_parse_error(text: str) -> None:
    with contextlib.suppress(OutputParseError):
        WrkRunner().parse_output(text, spec=spec())


def run(s: RunSpec) -> RunResult:
    return asyncio.run(WrkRunner().run(s))


def test_real_run_counts_the_503_share(echo_url: str) -> None:
    r = run(spec(target=echo_url + "?status=503:25", connections=4, duration_s=1.0,
                 warmup_s=0.2))
    assert r.status == RunStatus.COMPLETED and r.runner == "wrk" and r.runner_version
    assert r.requests > 100 and sum(r.status_codes.values()) == r.requests
    assert 0.15 < r.status_codes.get(503, 0) / r.requests < 0.35
    assert 0.9 < r.duration_s < 2.0
    assert_sane(r)


def test_real_post_with_body_and_headers(echo_url: str) -> None:
    r = run(spec(target=echo_url, connections=2, method="POST", body=b"x" * 1000,
                 headers=(("X-Meshlab", "1"), ("Content-Type", "text/plain"))))
    assert r.status_codes == {200: r.requests} and r.requests > 50
    assert r.bytes_received > 1000 * r.requests           # the echo server echoes the body


def test_real_cancellation_returns_partial_aborted_result(echo_url: str) -> None:
    async def main() -> RunResult:
        task = asyncio.ensure_future(WrkRunner().run(spec(target=echo_url, duration_s=10.0)))
        await asyncio.sleep(1.0)
        task.cancel()
        return await task

    r = asyncio.run(main())
    assert r.status == RunStatus.ABORTED
    assert r.requests > 0 and r.duration_s < 5


def test_real_p50_of_native_and_wrk_are_of_the_same_magnitude(echo_url: str) -> None:
    """A unit slip (ms for us, a 10x in binning) shows as a gross ratio; the 10 % target is
    checked by bench/runners.py on a quiet machine, not here (2 busy cores)."""
    from meshlab.runners.native import NativeRunner

    s = spec(target=echo_url, connections=2, duration_s=1.0)
    ratios: list[float] = []
    # a unit bug is wrong in every round; a neighbour's test burst spoils one: a second round
    # is run only when the first is off
    while len(ratios) < 2 and not any(0.5 <= r <= 1.5 for r in ratios):
        wrk_p50 = run(s).latency.percentile_us(50)
        native_p50 = asyncio.run(NativeRunner().run(s)).latency.percentile_us(50)
        ratios.append(native_p50 / wrk_p50)
    assert any(0.5 <= r <= 1.5 for r in ratios), ratios


def test_stalled_target_is_a_failed_run_that_says_so(scripted_server: object) -> None:
    """wrk against a target that accepts and never answers: counted nothing, so the verdict
    fails the run and the warning says the target stalled."""
    from meshlab.experiment import run_profile
    from meshlab.profile import Profile

    url = scripted_server.url + "hang"  # type: ignore[attr-defined]
    prof = Profile.from_dict({"name": "stall", "target": url, "runner": "wrk",
                              "loads": {"connections": 2, "duration_s": 2, "warmup_s": 0},
                              "request": {"timeout_s": 1}})
    (r,) = run_profile(prof, store=None).results
    assert r.status is RunStatus.FAILED and r.error and "no successful response" in r.error
    assert any(w.startswith("target stalled") for w in r.warnings), r.warnings
