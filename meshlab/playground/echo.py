"""The echo workload: a fast asyncio HTTP/1.1 server steered by fortio's query parameters; the
same port serves h2c and gRPC (see `_echo_h2`), and `tcp_port` adds a raw TCP echo.

`?delay=10ms:20,1s:0.5&status=503:20&size=1024:50&close=5` delays 20 % of responses by 10 ms and
0.5 % by 1 s, answers 503 to 20 %, sends a 1,024-byte body with 50 %, and closes 5 % of
connections after answering. A value without `:percent` applies to every request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast
from urllib.parse import parse_qsl

from meshlab.errors import PlaygroundError
from meshlab.playground._deadline import DeadlineScheduler
from meshlab.units import parse_duration_s, parse_size_bytes

MAX_DELAY_S = 10.0
MAX_SIZE_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


# --- the plan a query string describes -------------------------------------------------------

Choice = tuple[float, float]          # (value, percent)


def _choices(text: str, parse: Callable[[str], float], *, param: str) -> list[Choice]:
    out: list[Choice] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value, _, pct = part.partition(":")
        try:
            v = parse(value)
            p = float(pct) if pct else 100.0
        except ValueError as exc:
            raise ValueError(f"{param}={text!r}: {exc}") from None
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"{param}={text!r}: percent {p} must be within 0..100")
        out.append((v, p))
    return out


def _pick(choices: list[Choice], default: float, rng: random.Random) -> float:
    """fortio's rule: draw once in [0, 100) and walk the cumulative percentages."""
    if not choices:
        return default
    if len(choices) == 1 and choices[0][1] >= 100.0:
        return choices[0][0]
    r = rng.random() * 100.0
    acc = 0.0
    for value, pct in choices:
        acc += pct
        if r < acc:
            return value
    return default


@dataclass(slots=True)
class Plan:
    """What a given query string asks for, parsed once and cached."""

    delays_s: list[Choice] = field(default_factory=list)
    statuses: list[Choice] = field(default_factory=list)
    sizes: list[Choice] = field(default_factory=list)
    closes: list[Choice] = field(default_factory=list)
    fixed: bytes | None = None       # a precomputed response when nothing is random

    @classmethod
    def parse(cls, query: str, defaults: str = "") -> Plan:
        params = dict(parse_qsl(defaults, keep_blank_values=True))
        params.update(parse_qsl(query, keep_blank_values=True))
        plan = cls()
        if "delay" in params:
            plan.delays_s = [(min(v, MAX_DELAY_S), p) for v, p in
                             _choices(params["delay"], parse_duration_s, param="delay")]
        if "status" in params:
            plan.statuses = _choices(params["status"], _status, param="status")
        if "size" in params:
            plan.sizes = [(min(v, MAX_SIZE_BYTES), p) for v, p in
                          _choices(params["size"], _size, param="size")]
        if "close" in params:
            plan.closes = _choices(params["close"] or "100", _close, param="close")
        return plan

    @property
    def is_static(self) -> bool:
        return not (self.delays_s or self.closes) and all(
            len(c) <= 1 and (not c or c[0][1] >= 100.0) for c in (self.statuses, self.sizes))


def _status(text: str) -> float:
    code = int(text)
    if not 100 <= code <= 599:
        raise ValueError(f"status {code} must be within 100..599")
    return float(code)


def _size(text: str) -> float:
    return float(parse_size_bytes(text))


def _close(text: str) -> float:
    if text.lower() in ("true", "yes", "on", ""):
        return 1.0
    return 1.0 if float(text) else 0.0


_FILL = b"meshlab-echo-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n" * 64


def _filler(size: int) -> bytes:
    reps = size // len(_FILL) + 1
    return (_FILL * reps)[:size]


# --- the protocol ----------------------------------------------------------------------------

_CL = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_TE = re.compile(rb"\r\ntransfer-encoding:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CONN = re.compile(rb"\r\nconnection:[ \t]*([^\r\n]*)", re.IGNORECASE)


class _EchoProtocol(asyncio.Protocol):
    __slots__ = ("buf", "closing", "deadlines", "pending", "served", "server", "transport")

    def __init__(self, server: EchoServer, deadlines: DeadlineScheduler) -> None:
        self.server = server
        self.deadlines = deadlines
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pending: deque[list[bytes | bool | None]] = deque()   # [response, close] slots
        self.closing = False
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's is no asyncio.Transport
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.served and buf[:3] == b"PRI":
            self._to_http2()
            return
        while not self.closing:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    self._fail(431, "Request Header Fields Too Large")
                return
            head = bytes(buf[: end + 2])
            body_start = end + 4
            te = _TE.search(head)
            if te and b"chunked" in te.group(1).lower():
                parsed = _read_chunked(buf, body_start)
                if parsed is None:
                    return
                if not isinstance(parsed, tuple):
                    self._fail(400, "Bad Request")
                    return
                body, consumed = parsed
            else:
                cl = _CL.search(head)
                length = int(cl.group(1)) if cl else 0
                if length > MAX_SIZE_BYTES:
                    self._fail(413, "Payload Too Large")
                    return
                if len(buf) < body_start + length:
                    return
                body = bytes(buf[body_start: body_start + length])
                consumed = body_start + length
            del buf[:consumed]
            self._handle(head, body)

    def _to_http2(self) -> None:
        """The HTTP/2 connection preface (h2c with prior knowledge, gRPC): hand the connection
        to the HTTP/2 protocol with what has arrived so far."""
        from meshlab.playground._echo_h2 import H2EchoProtocol

        transport = self.transport
        assert transport is not None
        h2 = H2EchoProtocol(self.server, self.deadlines)
        self.server._connections.discard(self)
        self.server._connections.add(h2)  # type: ignore[arg-type]
        self.transport = None
        transport.set_protocol(h2)
        h2.connection_made(transport)
        h2.data_received(bytes(self.buf))
        self.buf.clear()

    def _handle(self, head: bytes, body: bytes) -> None:
        line_end = head.find(b"\r\n")
        parts = head[:line_end].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._fail(400, "Bad Request")
            return
        target = parts[1]
        http10 = parts[2] == b"HTTP/1.0"
        conn = _CONN.search(head)
        conn_value = conn.group(1).lower() if conn else b""
        keep = (b"keep-alive" in conn_value) if http10 else (b"close" not in conn_value)
        q = target.find(b"?")
        query = target[q + 1:].decode("latin-1") if q >= 0 else ""
        srv = self.server
        self.served += 1
        self.server.requests += 1
        try:
            plan = srv.plan(query)
        except ValueError as exc:
            self._respond(srv.render(400, str(exc).encode() + b"\n", keep, http10), 0.0, not keep)
            return
        if plan.fixed is not None and body == b"" and keep and not http10:
            self._respond(plan.fixed, 0.0, False)
            return
        rng = srv.rng
        status = int(_pick(plan.statuses, 200.0, rng))
        size = int(_pick(plan.sizes, -1.0, rng))
        delay_s = _pick(plan.delays_s, 0.0, rng)
        close = bool(_pick(plan.closes, 0.0, rng)) or not keep
        payload = _filler(size) if size >= 0 else body
        self._respond(srv.render(status, payload, not close, http10), delay_s, close)

    def _respond(self, response: bytes, delay_s: float, close: bool) -> None:
        slot: list[bytes | bool | None] = [None, close]
        self.pending.append(slot)
        if close:
            self.closing = True
        if delay_s > 0:
            # measured from here, just after parsing; a zero delay skips the timer (hot path)
            due_ns = time.perf_counter_ns() + int(delay_s * 1e9)
            self.deadlines.call_at_ns(due_ns, self._ready, slot, response)
        else:
            self._ready(slot, response)

    def _ready(self, slot: list[bytes | bool | None], response: bytes) -> None:
        slot[0] = response
        t = self.transport
        if t is None:
            return
        while self.pending and self.pending[0][0] is not None:
            resp, close = self.pending.popleft()
            assert isinstance(resp, bytes)
            t.write(resp)
            if close:
                self.pending.clear()
                t.close()
                return

    def _fail(self, status: int, reason: str) -> None:
        if self.transport is not None:
            msg = reason.encode() + b"\n"
            self.transport.write(self.server.render(status, msg, False, False))
            self.transport.close()
        self.closing = True


def _read_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | bool | None:
    """Decode a chunked body starting at `pos`: (body, end) when complete, None when more data is
    needed, False when malformed (trailers are skipped)."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return False
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            if end == eol:
                return bytes(out), eol + 4
            if end < 0:
                return None
            return bytes(out), end + 4
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        out += buf[start: start + size]
        pos = start + size + 2


class EchoServer:
    """The echo workload on an asyncio loop; `port=0` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, name: str = "echo",
                 defaults: str = "", seed: int | None = None, tcp_port: int | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.requested_tcp_port = tcp_port
        self._tcp_server: asyncio.Server | None = None
        self._h2_heads: dict[tuple[int, int], bytes] = {}
        self._grpc_trailers: dict[tuple[int, str, bool], bytes] = {}
        self.name = name
        self.defaults = defaults
        self.rng = random.Random(seed)
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._deadlines: DeadlineScheduler | None = None
        self._connections: set[_EchoProtocol] = set()
        self._plans: dict[str, Plan] = {}
        self._extra = f"x-meshlab-echo: {name}\r\n".encode()
        Plan.parse("", defaults)                      # reject bad defaults at construction

    def plan(self, query: str) -> Plan:
        plan = self._plans.get(query)
        if plan is None:
            plan = Plan.parse(query, self.defaults)
            if plan.is_static:
                status = int(plan.statuses[0][0]) if plan.statuses else 200
                size = int(plan.sizes[0][0]) if plan.sizes else 0
                plan.fixed = self.render(status, _filler(size), True, False)
            if len(self._plans) < 4096:
                self._plans[query] = plan
        return plan

    def render(self, status: int, body: bytes, keep_alive: bool, http10: bool) -> bytes:
        reason = _REASONS.get(status, "Status")
        version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
        conn = b""
        if http10 and keep_alive:
            conn = b"Connection: keep-alive\r\n"
        elif not keep_alive:
            conn = b"Connection: close\r\n"
        return b"".join((
            version, b" ", str(status).encode(), b" ", reason.encode(), b"\r\n",
            b"Content-Type: text/plain\r\nContent-Length: ", str(len(body)).encode(), b"\r\n",
            self._extra, conn, b"\r\n", body,
        ))

    @property
    def tcp_port(self) -> int | None:
        """The TCP echo port, when the server was asked for one (`tcp_port=0`: any free)."""
        if self._tcp_server is None or not self._tcp_server.sockets:
            return None
        return int(self._tcp_server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise PlaygroundError(f"echo server {self.name!r} is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> EchoServer:
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines = DeadlineScheduler(loop)
        try:
            self._server = await loop.create_server(
                lambda: _EchoProtocol(self, deadlines), self.host, self.requested_port,
                backlog=4096, reuse_address=True)
        except OSError as exc:
            deadlines.close()
            self._deadlines = None
            raise PlaygroundError(f"echo server {self.name!r} cannot listen on "
                                  f"{self.host}:{self.requested_port}: {exc.strerror}") from exc
        if self.requested_tcp_port is not None:
            from meshlab.playground._echo_h2 import TcpEchoProtocol

            try:
                self._tcp_server = await loop.create_server(
                    TcpEchoProtocol, self.host, self.requested_tcp_port, backlog=4096,
                    reuse_address=True)
            except OSError as exc:
                await self.close()
                raise PlaygroundError(f"echo server {self.name!r} cannot listen for TCP on "
                                      f"{self.host}:{self.requested_tcp_port}: "
                                      f"{exc.strerror}") from exc
        return self

    async def close(self) -> None:
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp_server = None
        if self._server is not None:
            self._server.close()
            for proto in list(self._connections):
                if proto.transport is not None:
                    proto.transport.abort()
            await self._server.wait_closed()
            self._server = None
        if self._deadlines is not None:
            self._deadlines.close()
            self._deadlines = None

    async def __aenter__(self) -> EchoServer:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


# --- running it ------------------------------------------------------------------------------

def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(host: str = "127.0.0.1", port: int = 0, *, name: str = "echo", defaults: str = "",
          announce: Callable[[str], None] | None = None, tcp_port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM; calls `announce("listening on URL")` once ready (with
    ` tcp://HOST:PORT` appended when a TCP echo port was asked for)."""
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    server = EchoServer(host, port, name=name, defaults=defaults, tcp_port=tcp_port)
    stop = asyncio.Event()

    async def main() -> None:
        await server.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        line = f"listening on {server.url}"
        if server.tcp_port is not None:
            line += f" tcp://{server.url.split('//')[1].rsplit(':', 1)[0]}:{server.tcp_port}"
        (announce or _print)(line)
        await stop.wait()
        await server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def _print(line: str) -> None:
    print(line, flush=True)


class EchoProcess:
    """An echo server in its own process group (a playground replica, a test target)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, host: str, name: str,
                 tcp_port: int | None = None) -> None:
        self.proc = proc
        self.port = port
        self.tcp_port = tcp_port
        self.host = host
        self.name = name

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 3.0) -> None:
        """Terminate the process group, then kill it if it has not gone within `timeout_s`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> EchoProcess:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_echo_process(*, host: str = "127.0.0.1", port: int = 0, name: str = "echo",
                       defaults: str = "", timeout_s: float = 10.0,
                       tcp_port: int | None = None) -> EchoProcess:
    """Start `python -m meshlab.playground.echo` and wait until it listens."""
    argv = [sys.executable, "-m", "meshlab.playground.echo", "--host", host, "--port", str(port),
            "--name", name]
    if tcp_port is not None:
        argv += ["--tcp-port", str(tcp_port)]
    if defaults:
        argv += ["--defaults", defaults]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    line = ""
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        chunk = proc.stdout.readline()
        if chunk:
            line += chunk
            if line.endswith("\n"):
                break
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.01)
    m = re.search(r"listening on http://\[?([^\]/]+?)\]?:(\d+)/", line)
    if not m:
        err = ""
        if proc.poll() is not None and proc.stderr is not None:
            err = proc.stderr.read()[-500:]
        EchoProcess(proc, 0, host, name).stop()
        raise PlaygroundError(f"echo server {name!r} did not start on {host}:{port} within "
                              f"{timeout_s:.0f} s: {err.strip() or line.strip() or 'no output'}")
    os.set_blocking(proc.stdout.fileno(), True)
    if proc.stderr is not None:
        proc.stderr.close()            # nothing reads it: a full pipe would block the server
    tcp = re.search(r" tcp://\[?[^\]/]+?\]?:(\d+)", line)
    return EchoProcess(proc, int(m.group(2)), host, name, int(tcp.group(1)) if tcp else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshlab-echo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", default="echo")
    parser.add_argument("--defaults", default="",
                        help="query applied when a request does not set it, e.g. status=503:50")
    parser.add_argument("--tcp-port", type=int, default=None,
                        help="also echo raw TCP on this port (0: any free port)")
    parser.add_argument("--tcp-only", action="store_true",
                        help="echo raw TCP on --port instead of HTTP (a tcp playground's app)")
    args = parser.parse_args(argv)
    if args.tcp_only:
        from meshlab.playground._echo_h2 import serve_tcp

        serve_tcp(args.host, args.port)
        return 0
    try:
        serve(args.host, args.port, name=args.name, defaults=args.defaults,
              tcp_port=args.tcp_port)
    except (PlaygroundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # the server has closed: skip the interpreter's teardown (~0.2 s of a playground's stop)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
