"""The native runner against real servers on loopback (nginx, the echo server, a scripted raw
server): counts, ratios and status mixes within tolerances, never absolute latency."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from meshlab.profile import RunSpec
from meshlab.progress import Progress
from meshlab.results import ErrorKind, RunResult, RunStatus
from meshlab.runners._engine import Engine
from meshlab.runners._http import build_request
from meshlab.runners.base import get_runner
from meshlab.runners.native import NativeRunner, worker_specs

ScriptedServer = Any          # tests/runners/conftest.py: the `scripted_server` fixture


def run(spec: RunSpec, runner: NativeRunner | None = None) -> RunResult:
    return asyncio.run((runner or NativeRunner()).run(spec))


# --- the parser, fed directly: every split offset --------------------------------------------

class _FakeTransport:
    def __init__(self) -> None:
        self.writes = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def abort(self) -> None:
        self.aborted = True


_CL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
_204 = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
_404 = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nnop"


@pytest.mark.parametrize("stream", [_CL + _CL, _CHUNKED + _CL, _204 + _CHUNKED, _100 + _404 + _CL],
                         ids=["length", "chunked", "no-body", "interim+404"])
def test_parser_handles_every_split(stream: bytes) -> None:
    spec = RunSpec(target="http://127.0.0.1:9/", connections=1)
    for cut in range(1, len(stream)):
        eng = Engine(spec)
        eng.running = True
        conn = eng.conns[0]
        tr = _FakeTransport()
        conn.connection_made(tr)  # type: ignore[arg-type]
        conn.send(0)
        conn.data_received(stream[:cut])
        conn.data_received(stream[cut:])
        assert len(eng.lat) == 2, cut
        assert sum(eng.codes) == 2 and eng.bytes_rx == len(stream)
        assert tr.writes == 3 and not tr.aborted      # first send + one per response
    assert eng.codes[404] == (1 if stream.startswith(_100) else 0)


def test_repeated_responses_take_the_fast_path_correctly() -> None:
    eng = Engine(RunSpec(target="http://127.0.0.1:9/", connections=1))
    eng.running = True
    conn = eng.conns[0]
    conn.connection_made(_FakeTransport())  # type: ignore[arg-type]
    conn.send(0)
    chunks = [_CL, _CL, _CL[:10], _CL[10:], _404, _CL, _100 + _CL, _100 + _CL, _404, _404,
              _CL[:-1], _CL[-1:] + _CL[:5], _CL[5:], _CL, _CHUNKED, _CHUNKED]
    for chunk in chunks:
        conn.data_received(chunk)
    assert conn.cache == _CHUNKED                   # the last lone response is remembered
    assert eng.codes[404] == 3 and eng.codes[200] == 11 and len(eng.lat) == 14
    # a body that happens to equal the cached chunk is a body, not a response
    body = _CL[:-5].replace(b"Length: 5", b"Length: %d" % len(_CHUNKED))
    conn.data_received(body)
    conn.data_received(_CHUNKED)
    assert eng.codes[200] == 12 and conn.clean


def test_parser_garbage_is_a_protocol_error() -> None:
    eng = Engine(RunSpec(target="http://127.0.0.1:9/", connections=1))
    eng.running = True
    conn = eng.conns[0]
    tr = _FakeTransport()
    conn.connection_made(tr)  # type: ignore[arg-type]
    conn.send(0)
    conn.data_received(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert tr.aborted and eng.kinds == {ErrorKind.PROTOCOL: 1}


# --- real servers -----------------------------------------------------------------------------

def test_closed_loop_against_nginx(nginx_url: str) -> None:
    seen: list[Progress] = []
    spec = RunSpec(target=nginx_url, connections=8, duration_s=2.0, warmup_s=0.3)
    res = asyncio.run(NativeRunner().run(spec, progress=seen.append))
    assert res.status is RunStatus.COMPLETED and res.runner == "native"
    assert res.requests > 1000 and res.errors == 0
    assert res.status_codes == {200: res.requests}
    assert res.latency.total == res.requests == res.service_time.total
    assert res.bytes_received > res.requests * len(b"hello\n")
    assert res.achieved_rate_rps == pytest.approx(res.requests / res.duration_s)
    assert len(res.timeseries) == 2 and sum(p.requests for p in res.timeseries) == res.requests
    assert res.latency.percentile_us(50) <= res.latency.percentile_us(99)
    assert res.spec["target"] == nginx_url and res.host is not None
    phases = {p.phase for p in seen}
    assert {"warmup", "measure", "done"} <= phases
    assert res.unsent_requests == 0 and res.warnings == []     # no stall reported


def test_open_loop_holds_the_rate(nginx_url: str) -> None:
    spec = RunSpec(target=nginx_url, rate_rps=2000, connections=8, duration_s=2.0, warmup_s=0.3)
    res = run(spec)
    assert res.errors == 0
    assert res.achieved_rate_rps == pytest.approx(2000, rel=0.05)
    assert res.requested_rate_rps == 2000
    # corrected latency (from the intended time) is never below the service time
    assert res.latency.percentile_us(50) >= res.service_time.percentile_us(50) * 0.99


def test_open_loop_any_idle_connection_and_max_requests(nginx_url: str) -> None:
    spec = RunSpec(target=nginx_url, rate_rps=1000, connections=4, duration_s=5.0,
                   spread_connections=False, max_requests=500)
    res = run(spec)
    assert res.status is RunStatus.COMPLETED
    assert 500 <= res.requests <= 505 and res.duration_s < 1.5


def test_head_requests(nginx_url: str) -> None:
    spec = RunSpec(target=nginx_url, method="HEAD", connections=2, duration_s=0.5)
    res = run(spec, NativeRunner(in_thread=False))
    assert res.requests > 100 and res.status_codes == {200: res.requests}


def test_status_mix_from_echo(echo_url: str) -> None:
    spec = RunSpec(target=echo_url + "?status=503:20", connections=4, duration_s=10.0,
                   max_requests=3000)
    res = run(spec)
    assert res.requests == 3000
    assert set(res.status_codes) == {200, 503}
    share = res.status_codes[503] / res.requests
    assert share == pytest.approx(0.20, abs=0.04)
    assert res.errors == res.status_codes[503] and not res.error_kinds


def test_post_with_body_and_headers(echo_url: str) -> None:
    spec = RunSpec(target=echo_url + "echo?size=100", method="POST", body=b"x" * 3000,
                   headers=(("X-Api-Key", "secret"), ("Content-Type", "text/plain")),
                   connections=2, duration_s=10.0, max_requests=300)
    head = build_request(spec).split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /echo?size=100 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "\r\nContent-Length: 3000" in head and "\r\nX-Api-Key: secret" in head
    res = run(spec)
    assert res.requests == 300 and res.status_codes == {200: 300}
    assert res.spec["headers"]["X-Api-Key"] == "<redacted>"


def test_target_down_is_a_completed_run_of_connect_errors(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    closed = run(RunSpec(target=url, connections=4, duration_s=1.0, timeout_s=1.0))
    opened = run(RunSpec(target=url, rate_rps=200, connections=4, duration_s=1.0))
    for res in (closed, opened):
        assert res.status is RunStatus.COMPLETED
        assert res.requests > 0 and res.errors == res.requests
        assert res.error_kinds == {"connect_refused": res.requests}
        assert res.latency.total == 0
    assert closed.requests < 4 * 1.0 / 0.002          # backoff: it does not spin
    assert opened.requests == pytest.approx(200, rel=0.1)


@pytest.mark.parametrize("protocol", ["http1", "h2c"])
def test_a_retry_that_fails_before_the_start_keeps_retrying(closed_port: int,
                                                            protocol: str) -> None:
    """A connection whose retry failed while the run was held at its start (another connection
    still handshaking, or the workers' start gate) used to give up for good: the run counted 0
    attempts. It keeps retrying, and the closed loop counts every attempt in the window."""
    from meshlab.runners._engines import make_engine

    async def gate() -> int:
        await asyncio.sleep(0.1)            # several 2-10 ms retries fail before the start
        return time.perf_counter_ns()

    spec = RunSpec(target=f"http://127.0.0.1:{closed_port}/", connections=2, duration_s=0.3,
                   protocol=protocol)
    part = asyncio.run(make_engine(spec, start_gate=gate).run())
    assert part.requests > 0 and part.error_kinds == {"connect_refused": part.requests}


def test_stall_shows_in_corrected_tail_only(scripted_server: ScriptedServer) -> None:
    scripted_server.reset(stall_at=300)
    spec = RunSpec(target=scripted_server.url + "stall", rate_rps=1000, connections=1,
                   duration_s=2.0)
    res = run(spec)
    assert res.errors == 0 and res.requests > 1500
    corrected, uncorrected = res.latency.percentile_us(99), res.service_time.percentile_us(99)
    assert corrected >= 50_000                 # ~200 queued requests waited behind the stall
    assert uncorrected * 4 < corrected
    assert res.service_time.max_us >= 150_000  # the stalled request itself


@pytest.mark.parametrize("path", ["chunked", "eof", "close"])
def test_body_framings_and_connection_close(scripted_server: ScriptedServer, path: str) -> None:
    scripted_server.reset()
    res = run(RunSpec(target=scripted_server.url + path, connections=2, duration_s=0.6))
    assert res.errors == 0 and res.requests > 20
    assert res.status_codes == {200: res.requests}
    if path in ("eof", "close"):                  # one connection per response
        assert scripted_server.connections >= res.requests
    else:
        assert scripted_server.connections == 2


def test_https(tls_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    res = run(RunSpec(target=tls_server.url + "chunked", connections=2, duration_s=0.5))
    assert res.errors == 0 and res.requests > 20 and tls_server.connections == 2
    monkeypatch.delenv("SSL_CERT_FILE")          # untrusted certificate: counted, not raised
    res = run(RunSpec(target=tls_server.url, connections=2, duration_s=0.5))
    assert res.status is RunStatus.COMPLETED and res.latency.total == 0
    assert res.requests > 0 and res.error_kinds == {"protocol": res.requests}


def test_reset_and_timeout_are_counted_by_kind(scripted_server: ScriptedServer) -> None:
    reset = run(RunSpec(target=scripted_server.url + "reset", connections=2, duration_s=0.5))
    assert reset.requests > 5 and reset.error_kinds.keys() <= {"reset", "closed"}
    assert reset.errors == reset.requests
    hang = run(RunSpec(target=scripted_server.url + "hang", connections=2, duration_s=1.0,
                       timeout_s=0.2))
    assert hang.error_kinds.get("timeout", 0) >= 4
    assert hang.errors == hang.requests == hang.error_kinds["timeout"]
    stalls = [w for w in hang.warnings if w.startswith("target stalled")]
    assert len(stalls) == 1 and "0.2 s timeout" in stalls[0], hang.warnings


@pytest.mark.parametrize("runner", [NativeRunner(), NativeRunner(in_thread=False),
                                    NativeRunner(workers=2)], ids=["thread", "inline", "workers"])
def test_cancel_returns_an_aborted_partial_result(nginx_url: str, runner: NativeRunner) -> None:
    spec = RunSpec(target=nginx_url, rate_rps=500, connections=2, duration_s=30.0, warmup_s=0.2)

    async def main() -> RunResult:
        started = asyncio.Event()                  # the first progress report: load is on
        task = asyncio.ensure_future(runner.run(spec, progress=lambda p: started.set()))
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.sleep(1.0)
        task.cancel()
        return await task

    res = asyncio.run(main())
    assert res.status is RunStatus.ABORTED
    assert 0 < res.duration_s < 5 and res.requests > 0
    # a request queued behind a busy connection when the window closed is an unsent one
    assert res.latency.total == res.requests + res.unsent_requests


def test_workers_merge_counts(nginx_url: str) -> None:
    spec = RunSpec(target=nginx_url, connections=4, duration_s=10.0, max_requests=4000)
    assert [s.connections for s in worker_specs(spec, 2)] == [2, 2]
    assert [s.max_requests for s in worker_specs(spec, 2)] == [2000, 2000]
    seen: list[Progress] = []
    res = asyncio.run(NativeRunner(workers=2).run(spec, progress=seen.append))
    assert res.status is RunStatus.COMPLETED and res.context["workers"] == 2
    assert seen and seen[-1].phase == "done"
    assert 4000 <= res.requests <= 4010 and res.latency.total == res.requests
    assert res.status_codes == {200: res.requests}
    assert sum(p.requests for p in res.timeseries) == res.requests


def test_registry_and_spec_checks() -> None:
    assert isinstance(get_runner("native"), NativeRunner)
    spec = RunSpec(target="http://127.0.0.1:9/", connections=1)
    with pytest.raises(Exception, match="workers"):
        NativeRunner(workers=2).check(spec)
    assert dataclasses.replace(spec, rate_rps=10).open_loop


# --- saturation: requests that came due and were never sent -----------------------------------

@pytest.mark.parametrize("spread", [True, False], ids=["spread", "any-idle"])
def test_saturation_counts_every_request_due(echo_url: str, spread: bool) -> None:
    """3x the capacity (2 connections x ?delay=10ms ~ 200 req/s, asked for 600 req/s): what was
    not sent is counted, and sits in the corrected latency at its age at the window's end."""
    spec = RunSpec(target=echo_url + "?delay=10ms", rate_rps=600, connections=2,
                   duration_s=2.5, spread_connections=spread)
    res = run(spec)
    due = spec.rate_rps * res.duration_s
    assert res.errors == 0 and res.requests < due / 2
    assert res.requests + res.unsent_requests == pytest.approx(due, rel=0.01)
    assert res.latency.total == res.requests + res.unsent_requests
    assert res.service_time.total == res.requests
    # half the offered load waited at least a quarter of the window
    assert res.latency.percentile_us(50) >= res.duration_s * 1e6 / 4
    assert res.latency.max_us <= res.duration_s * 1e6 * 1.01


def test_no_unsent_requests_when_the_rate_is_held(nginx_url: str) -> None:
    res = run(RunSpec(target=nginx_url, rate_rps=1000, connections=4, duration_s=1.0))
    assert res.unsent_requests <= 4 and res.latency.total == res.requests + res.unsent_requests


@pytest.mark.parametrize(("first_ns", "step_ns", "count"), [
    (0, 1000, 5000), (123_456.0, 3333.0, 1000), (5e8, 1.7e6, 100), (1e11, 1e9, 200)])
def test_unsent_ages_are_binned_like_recorded_values(first_ns: float, step_ns: float,
                                                     count: int) -> None:
    import numpy as np

    from meshlab.results import Histogram
    from meshlab.runners._unsent import progression_histogram, unsent_ages

    got = progression_histogram(first_ns, step_ns, count)
    want = Histogram()
    want.record_ns(np.rint(first_ns + np.arange(count) * step_ns).astype(np.int64))
    assert got == want and got.overflow == want.overflow
    assert got.sum_ns == pytest.approx(want.sum_ns, rel=1e-6)
    assert got.sumsq_ns == pytest.approx(want.sumsq_ns, rel=1e-6)
    # sequence numbers 10, 13, ... < 40 due every 1 ms from t0 = 0, aged at 50 ms
    ages = unsent_ages(end_ns=50_000_000, t0_ns=0, period_ns=1e6, first_seq=10, stop_seq=40,
                       stride=3)
    assert ages.total == 10 and ages.min_ns == 13_000_000 and ages.max_ns == 40_000_000
