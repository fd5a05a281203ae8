"""hey: argv, the rate-limit caveat, CSV golden outputs (exact per-request data), and real runs of
the binary against the echo server on loopback."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from _runner_tests import assert_sane, golden, spec
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import OutputParseError, ProfileError
from meshlab.profile import RunSpec
from meshlab.results import RunResult, RunStatus
from meshlab.runners.hey import CSV_HEADER, HeyRunner


def test_argv_duration_rate_and_body() -> None:
    limited = HeyRunner(limit_rate=True)
    s = spec(rate_rps=200.0, method="PUT", body=b"x", headers=(("X-A", "1"),), timeout_s=2.0)
    limited.check(s)
    argv = limited.build_argv(s)
    assert argv[:5] == ["hey", "-c", "4", "-z", "1s"]
    assert argv[argv.index("-q") + 1] == "50"            # per worker: 200 / 4
    assert argv[argv.index("-t") + 1] == "2" and argv[argv.index("-m") + 1] == "PUT"
    assert argv[argv.index("-D") + 1] == "body.bin" and "X-A: 1" in argv
    assert argv[-3:] == ["-o", "csv", "http://127.0.0.1:8080/"]
    n_argv = HeyRunner().build_argv(spec(max_requests=100))
    assert "-z" not in n_argv and n_argv[n_argv.index("-n") + 1] == "100"
    assert HeyRunner().stop_after_s(spec(max_requests=100)) == 1.0
    assert HeyRunner().stop_after_s(spec()) is None


@pytest.mark.parametrize(("runner", "kw", "path", "hint"), [
    (HeyRunner(), {"rate_rps": 100.0}, "loads.rate_rps", 'runner="native"'),
    (HeyRunner(), {"timeout_s": 0.5}, "request.timeout_s", "use 1 or"),
    (HeyRunner(), {"timeout_s": 2.5}, "request.timeout_s", "whole number of seconds"),
    (HeyRunner(limit_rate=True), {"rate_rps": 100.0, "spread_connections": False},
     "loads.spread_connections", "spread_connections: true"),
    (HeyRunner(), {"max_requests": 2, "connections": 4}, "loads.max_requests", "hey needs"),
    (HeyRunner(), {"method": "TRACE"}, "request.method", "TRACE"),
])
def test_check_rejects_what_hey_cannot_honour(runner: HeyRunner, kw: dict[str, object],
                                              path: str, hint: str) -> None:
    with pytest.raises(ProfileError) as info:
        runner.check(spec(**kw))
    assert info.value.problems[0].startswith(path + ":")
    assert hint in str(info.value)


def test_rate_is_accepted_only_when_the_caller_opts_into_the_limiter() -> None:
    HeyRunner(limit_rate=True).check(spec(rate_rps=100.0))
    HeyRunner().check(spec(spread_connections=False))     # closed loop: nothing to spread


def test_golden_status_mix_is_exact() -> None:
    text = golden("hey_mix.csv")
    r = HeyRunner().parse_output(text, spec=spec(max_requests=400))
    rows = text.strip().splitlines()[1:]
    assert r.requests == len(rows) == 400
    n503 = sum(1 for ln in rows if ln.split(",")[6] == "503")
    assert r.status_codes == {200: 400 - n503, 503: n503} and r.errors == n503
    assert 0.1 < n503 / 400 < 0.3
    assert sum(p.requests for p in r.timeseries) == 400
    assert r.latency.total == 400 and r.latency == r.service_time
    assert any("CSV lists completed responses only" in w for w in r.warnings)
    assert_sane(r)


def test_golden_refused_target_has_no_rows_and_says_so() -> None:
    r = HeyRunner().parse_output(golden("hey_refused.csv"), spec=spec(max_requests=10))
    assert r.requests == 0 and r.latency.total == 0
    assert any("no completed response" in w for w in r.warnings)


def test_rate_is_flagged_as_rate_limited_closed_loop() -> None:
    r = HeyRunner().parse_output(golden("hey_mix.csv"), spec=spec(rate_rps=100.0))
    assert r.requested_rate_rps == 100.0
    assert "rate-limited closed loop" in r.warnings[0]
    assert "coordinated omission" in r.warnings[0]


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: t.split("\n", 1)[1],                     # header missing
    lambda t: t[: len(t) // 2].rsplit(",", 1)[0],      # truncated mid-row
    lambda t: t.replace(",503,", ",5x3,", 1),
    lambda t: t.replace(",200,", ",42,", 1),           # not an HTTP status
    lambda t: "Summary:\n  Total: 1.0 secs\n",          # summary mode, not -o csv
])
def test_broken_output_raises_output_parse_error(mangle: object) -> None:
    with pytest.raises(OutputParseError):
        HeyRunner().parse_output(mangle(golden("hey_mix.csv")), spec=spec())  # type: ignore[operator]


_row = st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-5, 1000), st.text(max_size=4)),
                min_size=0, max_size=9).map(lambda xs: ",".join(str(x) for x in xs))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.lists(_row, max_size=5).map(
    lambda rows: "\n".join([CSV_HEADER, *rows]))))
def test_parse_never_raises_anything_but_output_parse_error(text: str) -> None:
    with contextlib.suppress(OutputParseError):
        HeyRunner().parse_output(text, spec=spec())


def run(s: RunSpec) -> RunResult:
    return asyncio.run(HeyRunner().run(s))


def test_real_run_counts_the_503_share(echo_url: str) -> None:
    r = run(spec(target=echo_url + "?status=503:25", connections=4, duration_s=1.0))
    assert r.status == RunStatus.COMPLETED and r.requests > 100
    assert 0.15 < r.status_codes.get(503, 0) / r.requests < 0.35
    assert r.timeseries and r.timeseries[0].second == 0
    assert_sane(r)


def test_real_max_requests_and_post(echo_url: str) -> None:
    r = run(spec(target=echo_url, connections=2, max_requests=300, duration_s=5.0,
                 method="POST", body=b"hello"))
    assert r.requests == 300 and r.status_codes == {200: 300}


def test_real_rate_limit_holds_roughly_and_is_flagged(echo_url: str) -> None:
    s = spec(target=echo_url, connections=2, rate_rps=200.0, duration_s=1.0)
    r = asyncio.run(HeyRunner(limit_rate=True).run(s))
    assert r.requested_rate_rps == 200.0
    assert 0.5 * 200 < r.achieved_rate_rps < 1.3 * 200
    assert "rate-limited closed loop" in r.warnings[0]


def test_real_soft_stop_when_duration_ends_before_max_requests(echo_url: str) -> None:
    r = run(spec(target=echo_url + "?delay=5ms", connections=2, max_requests=100_000,
                 duration_s=1.0))
    assert r.status == RunStatus.COMPLETED and 0 < r.requests < 100_000
    assert any("SIGINT" in w for w in r.warnings)
