"""The echo workload's HTTP/2 side (h2c with prior knowledge, gRPC unary) and its TCP echo.

HTTP/2 requests take the same `?delay=&status=&size=&close=` query as HTTP/1.1. gRPC serves
fortio's `fgrpc.PingServer/Ping` (the message comes back with `ts` set; `delayNanos` delays it) and
`grpc.health.v1.Health/Check` (SERVING, NOT_SERVING for a service named `*_down`); the request
metadata `x-echo-query` carries the same query, where `grpc_status=14:20` answers UNAVAILABLE to
20 % of calls and an HTTP `status` >= 400 becomes its gRPC code (503 -> unavailable).
A purpose-built frame loop on `hpack`, not the `h2` library: see `EchoServer` for the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import struct
import time
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qsl

import hpack

from meshlab import wire
from meshlab.playground._deadline import DeadlineScheduler
from meshlab.playground.echo import _choices, _filler, _new_loop, _pick, _print

if TYPE_CHECKING:
    from meshlab.playground.echo import EchoServer

_RECV_WINDOW = 1 << 24                 # what each stream may send us before a WINDOW_UPDATE
_CONN_CREDIT = 1 << 30
_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">IBI")


class _Request:
    """What a header block asks for, decoded once per distinct block."""

    __slots__ = ("grpc", "path", "query")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.path = b"/"
        self.query = ""
        self.grpc = False
        echo_query = ""
        for name, value in headers:
            if name == b":path":
                self.path = value
            elif name == b"content-type":
                self.grpc = value.startswith(b"application/grpc")
            elif name == b"x-echo-query":
                echo_query = value.decode("latin-1")
        if self.grpc:
            self.query = echo_query
        else:
            self.query = self.path.partition(b"?")[2].decode("latin-1")


class H2EchoProtocol(asyncio.Protocol):
    """One HTTP/2 connection (server side), handed over by the HTTP/1.1 protocol on `PRI`."""

    def __init__(self, server: EchoServer, deadlines: DeadlineScheduler) -> None:
        self.server = server
        self.deadlines = deadlines
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface = False
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.blocks: dict[bytes, _Request] = {}
        self.streams: dict[int, list[object]] = {}   # sid -> [request, body, headers done]
        self.windows: dict[int, int] = {}            # sid -> our send window, open streams
        self.blocked: dict[int, list[object]] = {}   # sid -> [data left, trailers or None]
        self.conn_window = wire.DEFAULT_WINDOW
        self.init_window = wire.DEFAULT_WINDOW
        self.max_frame = wire.DEFAULT_MAX_FRAME
        self.received = 0
        self.last_sid = 0
        self.closing = False
        self.out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(wire.settings(s3=4096, s4=_RECV_WINDOW)
                             + wire.window_update(0, _CONN_CREDIT))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        if not self.preface:
            if len(buf) < len(wire.PREFACE):
                return
            if bytes(buf[:len(wire.PREFACE)]) != wire.PREFACE:
                self._abort(1)
                return
            self.preface = True
            pos = len(wire.PREFACE)
        n = len(buf)
        unpack = _HEAD.unpack_from
        while n - pos >= 9 and self.transport is not None:
            lt, flags, sid = unpack(buf, pos)
            end = pos + 9 + (lt >> 8)
            if end > n:
                break
            self._frame(lt & 0xFF, flags, sid & 0x7FFFFFFF, bytes(buf[pos + 9:end]))
            pos = end
        del buf[:pos]
        self._flush()

    def _flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        if self.closing and self.transport is not None and not self.windows:
            self.transport.close()            # after every stream the GOAWAY kept was answered

    def _abort(self, code: int) -> None:
        if self.transport is not None:
            self.transport.write(wire.goaway(self.last_sid, code))
            self.transport.close()
        self.transport = None

    # frames ---------------------------------------------------------------------------------
    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == wire.HEADERS:
            block = wire.strip_padding(flags, payload, priority=True)
            if self.closing and sid > self.last_sid:   # after our GOAWAY: REFUSED_STREAM
                self.out.append(wire.frame(wire.RST_STREAM, 0, sid, _U32.pack(7)))
                return
            self.last_sid = max(self.last_sid, sid)
            self.windows[sid] = self.init_window
            if flags & wire.END_HEADERS:
                self._headers(sid, block, flags & wire.END_STREAM)
            else:
                self.streams[sid] = [None, bytearray(block), flags & wire.END_STREAM]
        elif ftype == wire.DATA:
            self.received += len(payload)
            if self.received > _CONN_CREDIT // 2:
                self.out.append(wire.window_update(0, self.received))
                self.received = 0
            st = self.streams.get(sid)
            if st is not None:
                cast(bytearray, st[1]).extend(wire.strip_padding(flags, payload))
                if flags & wire.END_STREAM:
                    del self.streams[sid]
                    self._request(sid, cast(_Request, st[0]), bytes(cast(bytearray, st[1])))
        elif ftype == wire.CONTINUATION:
            st = self.streams.get(sid)
            if st is None or st[0] is not None:
                self._abort(1)
                return
            cast(bytearray, st[1]).extend(payload)
            if flags & wire.END_HEADERS:
                del self.streams[sid]
                self._headers(sid, bytes(cast(bytearray, st[1])), cast(int, st[2]))
        elif ftype == wire.SETTINGS:
            if not flags & wire.ACK:
                values = wire.parse_settings(payload)
                if wire.SETTINGS_INITIAL_WINDOW_SIZE in values:
                    delta = values[wire.SETTINGS_INITIAL_WINDOW_SIZE] - self.init_window
                    self.init_window += delta
                    for k in self.windows:
                        self.windows[k] += delta
                self.max_frame = values.get(wire.SETTINGS_MAX_FRAME_SIZE, self.max_frame)
                self.out.append(wire.frame(wire.SETTINGS, wire.ACK, 0))
                self._drain()
        elif ftype == wire.WINDOW_UPDATE:
            inc = _U32.unpack(payload[:4])[0] & 0x7FFFFFFF
            if sid == 0:
                self.conn_window += inc
            elif sid in self.windows:
                self.windows[sid] += inc
            self._drain()
        elif ftype == wire.PING:
            if not flags & wire.ACK:
                self.out.append(wire.frame(wire.PING, wire.ACK, 0, payload))
        elif ftype == wire.RST_STREAM:
            self.streams.pop(sid, None)
            self.windows.pop(sid, None)
            self.blocked.pop(sid, None)
        elif ftype == wire.GOAWAY:
            self.closing = True

    def _headers(self, sid: int, block: bytes, end_stream: int) -> None:
        req = self.blocks.get(block)
        if req is None:
            try:
                req = _Request(cast(list[tuple[bytes, bytes]],
                                    list(self.decoder.decode(block, raw=True))))
            except hpack.HPACKError:
                self._abort(9)                    # COMPRESSION_ERROR
                return
            if wire.hpack_is_stateless(block):
                if len(self.blocks) < 256:
                    self.blocks[block] = req
            else:
                self.blocks.clear()               # cached decodings may name old entries
        if end_stream:
            self._request(sid, req, b"")
        else:
            self.streams[sid] = [req, bytearray(), 0]

    # requests --------------------------------------------------------------------------------
    def _request(self, sid: int, req: _Request, body: bytes) -> None:
        srv = self.server
        srv.requests += 1
        try:
            plan = srv.plan(req.query)
        except ValueError as exc:
            if req.grpc:
                self._grpc_reply(sid, None, 3, str(exc))
            else:
                self._reply(sid, 400, str(exc).encode() + b"\n", False)
            return
        rng = srv.rng
        status = int(_pick(plan.statuses, 200.0, rng))
        size = int(_pick(plan.sizes, -1.0, rng))
        delay_s = _pick(plan.delays_s, 0.0, rng)
        close = bool(_pick(plan.closes, 0.0, rng))
        if req.grpc:
            code, reply, extra_ns = self._grpc_call(req, body, status, size)
            delay_s += extra_ns / 1e9
            args: tuple[object, ...] = (self._grpc_reply, sid, reply, code, "", close)
        else:
            payload = _filler(size) if size >= 0 else body
            args = (self._reply, sid, status, payload, close)
        if delay_s > 0:
            due = time.perf_counter_ns() + int(min(delay_s, 10.0) * 1e9)
            self.deadlines.call_at_ns(due, self._later, args)
        else:
            args[0](*args[1:])  # type: ignore[operator]

    def _grpc_call(self, req: _Request, body: bytes, http_status: int,
                   size: int) -> tuple[int, bytes | None, int]:
        """(grpc code, response message or None, extra delay in ns) for one unary call."""
        if len(body) < 5 or body[0] != 0:
            return (12 if body[:1] == b"\x01" else 13), None, 0     # compressed: unimplemented
        codes = _grpc_choices(req.query) if req.query else None
        code = int(_pick(codes, 0.0, self.server.rng)) if codes else (
            wire.grpc_code_from_http(http_status) if http_status >= 400 else 0)
        try:
            fields = wire.proto_fields(body[5:5 + int.from_bytes(body[1:5], "big")])
        except ValueError:
            return 13, None, 0
        if req.path == wire.PING_PATH:
            delay = fields.get(4, 0)
            delay_ns = delay if isinstance(delay, int) and 0 < delay < 1 << 62 else 0
            if code:
                return code, None, delay_ns
            payload = _filler(size) if size >= 0 else fields.get(3, b"")
            seq = fields.get(1, 0)
            return 0, wire.ping_message(seq=seq if isinstance(seq, int) else 0,
                                        ts_ns=time.time_ns(),
                                        payload=payload if isinstance(payload, bytes) else b"",
                                        delay_ns=delay_ns), delay_ns
        if code:
            return code, None, 0
        if req.path == wire.HEALTH_PATH:
            service = fields.get(1, b"")
            down = isinstance(service, bytes) and service.endswith(b"_down")
            return 0, wire.health_response(not down), 0
        return 12, None, 0

    def _later(self, call: tuple[object, ...]) -> None:
        if self.transport is not None and call[1] in self.windows:
            call[0](*call[1:])  # type: ignore[operator]
            self._flush()

    def _reply(self, sid: int, status: int, body: bytes, close: bool = False) -> None:
        block = h2_head(self.server, status, len(body))
        if body:
            self.out.append(wire.frame(wire.HEADERS, wire.END_HEADERS, sid, block))
            self._data(sid, body, None)
        else:
            self.out.append(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, sid,
                                       block))
            self.windows.pop(sid, None)
        if close:
            self._goaway()

    def _goaway(self) -> None:
        """`close`: no new streams; the ones already received are still answered."""
        if not self.closing:
            self.out.append(wire.goaway(self.last_sid))
            self.closing = True

    def _grpc_reply(self, sid: int, reply: bytes | None, code: int, message: str = "",
                    close: bool = False) -> None:
        srv = self.server
        if reply is None:          # trailers-only response
            self.out.append(wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, sid,
                                       grpc_trailers(srv, code, message, head=True)))
            self.windows.pop(sid, None)
        else:
            self.out.append(wire.frame(wire.HEADERS, wire.END_HEADERS, sid,
                                       grpc_trailers(srv, -1, "", head=True)))
            self._data(sid, wire.grpc_message(reply),
                       wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, sid,
                                  grpc_trailers(srv, 0, "")))
        if close:
            self._goaway()

    # flow control ----------------------------------------------------------------------------
    def _data(self, sid: int, data: bytes, trailers: bytes | None) -> None:
        window = min(self.windows.get(sid, 0), self.conn_window)
        if len(data) <= window and len(data) <= self.max_frame:     # the usual small answer
            self.conn_window -= len(data)
            self.out.append(wire.frame(wire.DATA, 0 if trailers else wire.END_STREAM, sid, data))
            if trailers:
                self.out.append(trailers)
            self.windows.pop(sid, None)
            return
        self.blocked[sid] = [memoryview(data), trailers]
        self._drain()

    def _drain(self) -> None:
        for sid in list(self.blocked):
            if self.conn_window <= 0:
                return
            data, trailers = self.blocked[sid]
            assert isinstance(data, memoryview)
            while len(data):
                n = min(len(data), self.max_frame, self.conn_window, self.windows.get(sid, 0))
                if n <= 0:
                    break
                last = n == len(data)
                flags = wire.END_STREAM if last and trailers is None else 0
                self.out.append(wire.frame(wire.DATA, flags, sid, bytes(data[:n])))
                data = data[n:]
                self.conn_window -= n
                self.windows[sid] -= n
            if len(data):
                self.blocked[sid][0] = data
            else:
                del self.blocked[sid]
                self.windows.pop(sid, None)
                if trailers is not None:
                    self.out.append(cast(bytes, trailers))


def _grpc_choices(query: str) -> list[tuple[float, float]]:
    if "grpc_status" not in query:
        return []
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k == "grpc_status":
            return _choices(v, _grpc_code, param="grpc_status")
    return []


def _grpc_code(text: str) -> float:
    code = int(text) if text.isdigit() else wire.GRPC_CODES.index(text.lower())
    if not 0 <= code <= 16:
        raise ValueError(f"gRPC status {code} must be within 0..16")
    return float(code)


class TcpEchoProtocol(asyncio.Protocol):
    """Writes back whatever arrives (the `tcp` protocol's workload)."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def h2_head(server: EchoServer, status: int, length: int) -> bytes:
    """The HTTP/2 header block of a response (stateless HPACK, so cached)."""
    block = server._h2_heads.get((status, length))
    if block is None:
        block = wire.encode_headers([(b":status", b"%d" % status),
                                     (b"content-type", b"text/plain"),
                                     (b"content-length", b"%d" % length),
                                     (b"x-meshlab-echo", server.name.encode())])
        if len(server._h2_heads) < 1024:
            server._h2_heads[(status, length)] = block
    return block


def grpc_trailers(server: EchoServer, code: int, message: str, *, head: bool = False) -> bytes:
    """gRPC's response headers (code -1), trailers, or both in one trailers-only block."""
    key = (code, message, head)
    block = server._grpc_trailers.get(key)
    if block is None:
        fields: list[tuple[bytes, bytes]] = []
        if head:
            fields += [(b":status", b"200"), (b"content-type", b"application/grpc"),
                       (b"x-meshlab-echo", server.name.encode())]
        if code >= 0:
            fields.append((b"grpc-status", b"%d" % code))
            if message:
                fields.append((b"grpc-message", message.encode()[:200]))
        block = wire.encode_headers(fields)
        if len(server._grpc_trailers) < 256:
            server._grpc_trailers[key] = block
    return block


def serve_tcp(host: str, port: int) -> None:
    """Only the TCP echo, on `port`, until SIGINT/SIGTERM."""
    loop = _new_loop()
    stop = asyncio.Event()

    async def main() -> None:
        server = await loop.create_server(TcpEchoProtocol, host, port, backlog=4096,
                                          reuse_address=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        _print(f"listening on tcp://{host}:{server.sockets[0].getsockname()[1]}")
        await stop.wait()
        server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
