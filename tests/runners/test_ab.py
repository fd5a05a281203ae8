"""ab: argv (HTTP/1.0 keep-alive, -t before -n, POST bodies), golden outputs with the -e and -g
tables, and real runs of the binary against the echo server on loopback."""

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
from meshlab.runners._tool import FILE_MARKER, join_output
from meshlab.runners.ab import GNUPLOT_FILE, PERCENT_FILE, AbRunner


def test_argv_keepalive_time_before_count_and_post_body() -> None:
    argv = AbRunner().build_argv(spec(method="POST", body=b"x", duration_s=2.0,
                                      headers=(("Content-Type", "application/json"),
                                               ("X-A", "1"))))
    assert argv[:5] == ["ab", "-q", "-k", "-r", "-l"]
    assert argv.index("-t") < argv.index("-n")       # ab's -t resets -n to 50,000
    assert argv[argv.index("-t") + 1] == "2"
    assert argv[argv.index("-p") + 1] == "body.bin"
    assert argv[argv.index("-T") + 1] == "application/json"
    assert "Content-Type: application/json" not in argv and "X-A: 1" in argv
    assert {"-e", "-g"} <= set(argv) and argv[-1] == "http://127.0.0.1:8080/"
    assert AbRunner().build_argv(spec(max_requests=50))[argv.index("-n") + 1] == "50"
    assert "-i" in AbRunner().build_argv(spec(method="HEAD"))
    assert AbRunner().build_argv(spec(method="DELETE"))[-3:-1] == ["-m", "DELETE"]


@pytest.mark.parametrize(("kw", "path"), [
    ({"rate_rps": 100.0}, "loads.rate_rps"),
    ({"duration_s": 0.5}, "loads.duration_s"),
    ({"method": "PATCH", "body": b"x"}, "request.body"),
    ({"max_requests": 2}, "loads.max_requests"),
    ({"timeout_s": 0.5}, "request.timeout_s"),
    ({"timeout_s": 3.2}, "request.timeout_s"),
])
def test_check_rejects_what_ab_cannot_honour(kw: dict[str, object], path: str) -> None:
    with pytest.raises(ProfileError) as info:
        AbRunner().check(spec(**kw))
    assert info.value.problems[0].startswith(path + ":")


def test_golden_status_mix() -> None:
    r = AbRunner().parse_output(golden("ab_mix.txt"), spec=spec(max_requests=400))
    assert r.requests == 400 and r.status_codes == {}
    assert 0.1 < r.errors / r.requests < 0.3                 # the non-2xx count
    assert r.raw is not None and r.raw["non_2xx"] == r.errors
    assert r.latency.total == 400 and r.latency == r.service_time
    assert any("HTTP/1.0" in w for w in r.warnings)
    assert_sane(r)


def test_golden_post_tail_is_bounded_by_the_g_table() -> None:
    text = golden("ab_post.txt")
    r = AbRunner().parse_output(text, spec=spec(method="POST", body=b"hello", max_requests=200))
    assert r.requests == 200 and r.errors == 0
    slowest_ms = int(text.split(FILE_MARKER + GNUPLOT_FILE, 1)[1].strip().splitlines()[-1]
                     .split("\t")[4])
    assert r.latency.percentile_us(99.9) <= (slowest_ms + 0.5) * 1000 * 1.01
    assert_sane(r)


def _cut_percentiles(t: str) -> str:
    head, pct = t.split(FILE_MARKER + PERCENT_FILE + "\n", 1)
    table, rest = pct.split("\n" + FILE_MARKER, 1)
    return head + FILE_MARKER + PERCENT_FILE + "\n" + "\n".join(table.splitlines()[:50]) \
        + "\n" + FILE_MARKER + rest


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: t[: t.index("Complete requests")],                    # report truncated
    lambda t: t.split("\n" + FILE_MARKER)[0],                       # -e table missing
    _cut_percentiles,                                               # -e table truncated
    lambda t: t.rstrip("\n") + "\nSun Nov 22\t17953\t0\n",          # -g row truncated
    lambda t: "ab: invalid URL\nUsage: ab [options] [http[s]://]hostname[:port]/path\n",
])
def test_broken_output_raises_output_parse_error(mangle: object) -> None:
    with pytest.raises(OutputParseError):
        AbRunner().parse_output(mangle(golden("ab_mix.txt")), spec=spec())  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.booleans())
def test_parse_never_raises_anything_but_output_parse_error(report: str, table: str,
                                                            real_report: bool) -> None:
    head = golden("ab_mix.txt").split("\n" + FILE_MARKER)[0] if real_report else report
    text = join_output(head, {PERCENT_FILE: "Percentage served,Time in ms\n" + table,
                              GNUPLOT_FILE: table})
    with contextlib.suppress(OutputParseError):
        AbRunner().parse_output(text, spec=spec())


def run(s: RunSpec) -> RunResult:
    return asyncio.run(AbRunner().run(s))


def test_real_run_counts_non_2xx(echo_url: str) -> None:
    r = run(spec(target=echo_url + "?status=503:25", connections=4, duration_s=1.0))
    assert r.status == RunStatus.COMPLETED and r.requests > 100
    assert 0.15 < r.errors / r.requests < 0.35
    assert 0.9 < r.duration_s < 1.5
    assert_sane(r)


def test_real_post_stops_at_max_requests(echo_url: str) -> None:
    r = run(spec(target=echo_url, connections=2, max_requests=200, method="POST",
                 body=b"hello", headers=(("Content-Type", "text/plain"),)))
    assert r.requests == 200 and r.errors == 0
