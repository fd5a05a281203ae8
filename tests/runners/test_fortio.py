"""fortio: argv, and its JSON parsed over the reference documents in tests/fixtures/fortio (no
fortio binary is packaged for Debian or PyPI, so there is no real run here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import OutputParseError, ProfileError, ToolNotFound
from meshlab.profile import RunSpec
from meshlab.runners.fortio import FortioRunner


def spec(**kw: object) -> RunSpec:
    base: dict[str, object] = {"target": "http://127.0.0.1:8080/", "connections": 4,
                               "duration_s": 2.0}
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


FORTIO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fortio"


def reference(name: str) -> str:
    return (FORTIO_FIXTURES / name).read_text(encoding="utf-8")


def test_argv_rate_duration_count_method_and_body() -> None:
    argv = FortioRunner().build_argv(spec(rate_rps=100.0, timeout_s=1.5))
    assert argv[:6] == ["fortio", "load", "-json", "-", "-qps", "100"]
    assert argv[argv.index("-t") + 1] == "2s" and argv[argv.index("-timeout") + 1] == "1.5s"
    assert FortioRunner().build_argv(spec())[5] == "0"          # 0 = closed loop, max rate
    n = FortioRunner().build_argv(spec(max_requests=500))
    assert "-t" not in n and n[n.index("-n") + 1] == "500"
    put = FortioRunner().build_argv(spec(method="PUT", body=b"x"))
    assert put[put.index("-payload-file") + 1] == "body.bin" and put[put.index("-X") + 1] == "PUT"
    assert "-X" not in FortioRunner().build_argv(spec(method="POST", body=b"x"))


def test_check_rejects_unspread_connections_at_a_rate() -> None:
    with pytest.raises(ProfileError) as info:
        FortioRunner().check(spec(rate_rps=100.0, spread_connections=False))
    assert info.value.problems[0].startswith("loads.spread_connections:")
    assert 'runner="native"' in str(info.value)
    FortioRunner().check(spec(spread_connections=False))           # closed loop: no meaning
    FortioRunner().check(spec(rate_rps=100.0, timeout_s=0.25))     # Go durations: fractions ok


@pytest.mark.parametrize(("name", "requests", "timed", "codes"), [
    ("fortio-README-rest-run-http-result.json", 4, 4, {200: 4}),
    ("fortio-README-grpc-ping-result.json", 40, 40, {200: 40}),    # SERVING: a good call
    # Nighthawk: 56 responses in RetCodes, 53 in the latency histogram
    ("nighthawk-output_formatter.medium.fortio.gold.json", 56, 53, {200: 56}),
    ("nighthawk-output_formatter.medium.fortio-noquirks.gold.json", 56, 53, {200: 56}),
])
def test_reference_documents(name: str, requests: int, timed: int,
                             codes: dict[int, int]) -> None:
    text = reference(name)
    s = spec(rate_rps=40.0)
    r = FortioRunner().parse_output(text, spec=s)
    assert r.requests == requests and r.errors == 0 and r.status_codes == codes
    assert r.spec == s.to_dict() and r.runner == "fortio" and r.run_id == ""
    assert r.achieved_rate_rps > 0 and r.latency.total == timed
    ps = [r.latency.percentile_us(p) for p in (50, 90, 99, 99.9)]
    assert ps == sorted(ps) and r.latency.min_us <= ps[0] <= ps[-1] <= r.latency.max_us
    assert "coordinated omission" in r.warnings[0]


def test_json_found_among_log_lines() -> None:
    text = reference("fortio-README-rest-run-http-result.json")
    noisy = "Fortio 1.60 running at 40 queries per second {not json}\n" + text + "\nAll done\n"
    assert FortioRunner().parse_output(noisy, spec=spec()).requests == 4


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: t[: len(t) // 2],                                        # truncated JSON
    lambda t: t.replace('"DurationHistogram"', '"Histogram"'),
    lambda t: "[" + t + "]",
    lambda t: "panic: runtime error: invalid memory address\n",
])
def test_broken_output_raises_output_parse_error(mangle: object) -> None:
    text = reference("fortio-README-rest-run-http-result.json")
    with pytest.raises(OutputParseError):
        FortioRunner().parse_output(mangle(text), spec=spec())  # type: ignore[operator]


def test_wrapped_iter8_document_is_not_fortio_stdout() -> None:
    text = reference("iter8-metrics-server_test-fortioResultJSON.json")
    with pytest.raises(OutputParseError):
        FortioRunner().parse_output(text, spec=spec())


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(
                         ["DurationHistogram", "StartTime", "RetCodes", "ActualQPS", "Count",
                          "Data", "Start", "End", "Percentiles", "ActualDuration", "RunType"]),
                         kids, max_size=6), max_leaves=25)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), _json.map(json.dumps)))
def test_parse_never_raises_anything_but_output_parse_error(text: str) -> None:
    with contextlib.suppress(OutputParseError):
        FortioRunner().parse_output(text, spec=spec())


def test_missing_binary_says_it_is_not_packaged(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    runner = FortioRunner()
    assert not runner.is_available()
    with pytest.raises(ToolNotFound, match=r"not packaged for Debian or PyPI.*runner=\"native\""):
        asyncio.run(runner.run(spec()))


# --- protocols: -grpc -ping -s, -h2, tcp:// ----------------------------------------------------

def test_grpc_argv_pings_with_streams_and_metadata() -> None:
    s = spec(protocol="grpc", streams_per_connection=4, connections=2, rate_rps=100.0,
             headers=(("x-echo-query", "grpc_status=unavailable:5"),), body=b"hello")
    FortioRunner().check(s)
    argv = FortioRunner().build_argv(s)
    i = argv.index("-grpc")
    assert argv[i:i + 4] == ["-grpc", "-ping", "-s", "4"]
    assert argv[argv.index("-c") + 1] == "2" and argv[-1] == "http://127.0.0.1:8080/"
    assert "x-echo-query: grpc_status=unavailable:5" in argv       # -H: the calls' metadata
    assert argv[argv.index("-payload-file") + 1] == "body.bin"
    assert "-X" not in argv and "-h2" not in argv


@pytest.mark.parametrize(("protocol", "target"), [("h2c", "http://127.0.0.1:8080/"),
                                                  ("h2", "https://127.0.0.1:8443/")])
def test_http2_argv_uses_h2(protocol: str, target: str) -> None:
    argv = FortioRunner().build_argv(spec(protocol=protocol, target=target))
    assert "-h2" in argv and "-grpc" not in argv and argv[-1] == target
    assert "-h2" not in FortioRunner().build_argv(spec())


def test_tcp_argv_sends_the_payload_to_a_tcp_target() -> None:
    s = spec(protocol="tcp", target="tcp://127.0.0.1:9000", body=b"ping\n",
             headers=(("X-A", "1"),), method="POST")
    argv = FortioRunner().build_argv(s)
    assert argv[-1] == "tcp://127.0.0.1:9000" and "-payload-file" in argv
    assert "X-A: 1" not in argv and "-X" not in argv and "-h2" not in argv


def test_protocol_problems_are_named() -> None:
    with pytest.raises(ProfileError, match="request.streams_per_connection: fortio's -s"):
        FortioRunner().check(spec(protocol="h2c", streams_per_connection=8))
    with pytest.raises(ProfileError, match="request.body: fortio sends a gRPC ping payload"):
        FortioRunner().check(spec(protocol="grpc", body=b"\xff\xfe"))
    FortioRunner().check(spec(protocol="grpc", streams_per_connection=8))


def test_grpc_result_of_real_fortio_is_parsed_as_grpc() -> None:
    s = spec(protocol="grpc", rate_rps=8.0, connections=2, streams_per_connection=4)
    r = FortioRunner().parse_output(reference("fortio-README-grpc-ping-result.json"), spec=s)
    assert r.dimensions.protocol == "grpc" and r.spec == s.to_dict()
    assert r.requests == 40 and r.status_codes == {200: 40} and r.errors == 0
    assert r.context["run_type"].startswith("GRPC Ping")
