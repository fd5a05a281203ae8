"""The echo workload: fortio query semantics, HTTP/1.1 framing, and its process wrapper."""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psutil
import pytest
import uvloop

from meshlab.errors import PlaygroundError
from meshlab.playground.echo import EchoServer, Plan, start_echo_process
from meshlab.profile import RunSpec
from meshlab.runners.native import NativeRunner

# The echo process serves on uvloop, whose millisecond timers once sent delayed responses early.
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


async def _exchange(port: int, raw: bytes, *, read_until_close: bool = False) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(raw)
    await w.drain()
    data = b""
    try:
        if read_until_close:
            data = await asyncio.wait_for(r.read(), 5)
        else:
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            length = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                          if ln.lower().startswith(b"content-length")][0])
            data = head + await asyncio.wait_for(r.readexactly(length), 5)
    finally:
        w.close()
    return data


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _run_on(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(coro)


def test_status_mix_is_drawn_per_request() -> None:
    async def go() -> collections.Counter[int]:
        async with EchoServer(seed=7) as srv:
            counts: collections.Counter[int] = collections.Counter()
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            for _ in range(2000):
                w.write(b"GET /?status=503:20,429:10 HTTP/1.1\r\nHost: t\r\n\r\n")
                head = await r.readuntil(b"\r\n\r\n")
                counts[int(head.split(b" ")[1])] += 1
            w.close()
            return counts
    counts = _run(go())
    assert sum(counts.values()) == 2000
    assert 0.16 < counts[503] / 2000 < 0.24
    assert 0.07 < counts[429] / 2000 < 0.13
    assert 0.62 < counts[200] / 2000 < 0.77


def test_size_body_echo_and_chunked_request() -> None:
    async def go() -> tuple[bytes, bytes, bytes]:
        async with EchoServer() as srv:
            sized = await _exchange(srv.port, b"GET /?size=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
            echoed = await _exchange(
                srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            chunked = await _exchange(
                srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            return sized, echoed, chunked
    sized, echoed, chunked = _run(go())
    assert sized.split(b"\r\n\r\n", 1)[1].__len__() == 1000
    assert echoed.endswith(b"\r\n\r\nhello")
    assert chunked.endswith(b"\r\n\r\nabcde")


def test_pipelined_responses_keep_order_despite_delays() -> None:
    async def go() -> bytes:
        async with EchoServer() as srv:
            raw = (b"GET /?delay=50ms&size=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /?size=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return await _exchange(srv.port, raw, read_until_close=True)
    data = _run(go())
    first = data.find(b"Content-Length: 1\r\n")
    second = data.find(b"Content-Length: 2\r\n")
    assert 0 <= first < second
    assert data.count(b"HTTP/1.1 200") == 2


def test_delay_holds_the_response() -> None:
    async def go() -> float:
        async with EchoServer() as srv:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await _exchange(srv.port, b"GET /?delay=150ms HTTP/1.1\r\nHost: t\r\n\r\n")
            return loop.time() - t0
    assert _run(go()) >= 0.15


@pytest.mark.parametrize("loop_mode", ["closed", "open"])
def test_delayed_responses_never_arrive_early(echo_url: str, loop_mode: str) -> None:
    # service time runs from the client's send, so it can only exceed the server-side delay
    rate_rps, connections = (0.0, 1) if loop_mode == "closed" else (300.0, 8)
    spec = RunSpec(target=echo_url + "?delay=2ms", connections=connections, rate_rps=rate_rps,
                   duration_s=10.0, max_requests=300)
    res = asyncio.run(NativeRunner().run(spec))
    assert res.requests == 300 and res.status_codes == {200: 300}
    assert res.service_time.percentile_us(0) >= 2000.0
    assert res.service_time.percentile_us(0.1) <= res.service_time.percentile_us(50)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_delay_mix_delays_about_its_share(loop: str) -> None:
    async def go() -> list[float]:
        async with EchoServer(seed=11) as srv:
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            took_s: list[float] = []
            for _ in range(400):
                t0 = time.perf_counter()
                w.write(b"GET /?delay=3ms:50 HTTP/1.1\r\nHost: t\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                took_s.append(time.perf_counter() - t0)
                assert head.startswith(b"HTTP/1.1 200")
            w.close()
            return took_s
    took_s = _run_on(loop, go())
    delayed = sum(t >= 0.003 for t in took_s)
    assert 0.40 < delayed / len(took_s) < 0.60


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_pipelined_delays_answer_in_request_order(loop: str) -> None:
    delays_ms = (30, 5, 0, 12, 1, 0, 20)     # size=i tells the i-th response apart

    async def go() -> tuple[bytes, float]:
        async with EchoServer() as srv:
            raw = b"".join(f"GET /?delay={d}ms&size={i + 1} HTTP/1.1\r\nHost: t\r\n\r\n"
                           .encode() for i, d in enumerate(delays_ms))
            raw += b"GET /?size=99 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            t0 = time.perf_counter()
            data = await _exchange(srv.port, raw, read_until_close=True)
            return data, time.perf_counter() - t0
    data, took_s = _run_on(loop, go())
    sizes = [int(line.split(b":")[1]) for line in data.split(b"\r\n")
             if line.startswith(b"Content-Length:")]
    assert sizes == [*range(1, len(delays_ms) + 1), 99]
    assert took_s >= max(delays_ms) / 1000


def test_http10_and_close_semantics() -> None:
    async def go() -> tuple[bytes, bytes]:
        async with EchoServer() as srv:
            h10 = await _exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n", read_until_close=True)
            closed = await _exchange(srv.port, b"GET /?close=true HTTP/1.1\r\nHost: t\r\n\r\n",
                                     read_until_close=True)
            return h10, closed
    h10, closed = _run(go())
    assert h10.startswith(b"HTTP/1.0 200")
    assert b"Connection: close" in closed


def test_bad_parameters_answer_400_naming_the_parameter() -> None:
    async def go() -> bytes:
        async with EchoServer() as srv:
            return await _exchange(srv.port, b"GET /?delay=soon HTTP/1.1\r\nHost: t\r\n\r\n")
    data = _run(go())
    assert data.startswith(b"HTTP/1.1 400")
    assert b"delay=" in data


def test_garbage_request_line_is_refused() -> None:
    async def go() -> bytes:
        async with EchoServer() as srv:
            return await _exchange(srv.port, b"NONSENSE\r\n\r\n", read_until_close=True)
    assert _run(go()).startswith(b"HTTP/1.1 400")


def test_defaults_apply_unless_the_request_overrides() -> None:
    plan = Plan.parse("", "status=503")
    assert plan.statuses == [(503.0, 100.0)]
    assert Plan.parse("status=200", "status=503").statuses == [(200.0, 100.0)]
    with pytest.raises(ValueError, match="status"):
        Plan.parse("status=999")
    with pytest.raises(ValueError, match="percent"):
        Plan.parse("delay=1ms:150")


def test_echo_process_starts_answers_and_leaves_nothing_behind() -> None:
    proc = start_echo_process(name="replica-1", defaults="status=418")
    try:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 418")
        assert b"x-meshlab-echo: replica-1" in data
    finally:
        proc.stop()
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PlaygroundError, match=f"127.0.0.1:{port}"):
            start_echo_process(port=port, timeout_s=5)
