"""HTTP/2 and gRPC unary for the native runner: each connection (`H2Link`) carries
`streams_per_connection` stream slots (`H2Slot`), and the engine schedules slots exactly as it
schedules HTTP/1.1 connections (open loop from intended send times, closed loop, timeouts).

Every request is the same, so its header block is encoded once without touching the HPACK table
(`wire.encode_headers`); a response header block that changes no table is decoded once per
connection and then looked up. gRPC codes other than OK are counted as statuses
`wire.GRPC_STATUS_BASE + code` and reported as error kinds `grpc_<code>` (see `native`).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from time import perf_counter_ns
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import hpack

from meshlab import wire
from meshlab.results import ErrorKind
from meshlab.runners._http import _lost_kind

if TYPE_CHECKING:
    from meshlab.profile import RunSpec
    from meshlab.runners._engine import Engine
    from meshlab.runners._http import Conn

_RECV_WINDOW = 1 << 30
_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">IBI")
_MAX_SID = (1 << 31) - 1
_CANCEL = 0x8


def request_parts(spec: RunSpec, host: str, port: int, tls: bool) -> tuple[bytes, bytes]:
    """(header block, body frames' payload) of the request every stream sends."""
    parts = urlsplit(spec.target)
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        authority += f":{port}"
    names = {k.lower() for k, _ in spec.headers}
    if spec.protocol == "grpc":
        method, path = "POST", wire.PING_PATH.decode()
        body = wire.grpc_message(wire.ping_message(seq=1, payload=spec.body))
        extra = [("content-type", "application/grpc"), ("te", "trailers")]
    else:
        method, path, body, extra = spec.method, parts.path or "/", spec.body, []
        if parts.query:
            path += "?" + parts.query
        if body and "content-length" not in names:
            extra.append(("content-length", str(len(body))))
    headers = [(":method", method), (":scheme", "https" if tls else "http"),
               (":authority", authority), (":path", path)]
    if "user-agent" not in names:
        from meshlab._version import __version__

        headers.append(("user-agent", f"meshlab/{__version__}"))
    headers += extra
    # HTTP/2 field names are lowercase; connection-specific fields are not allowed
    headers += [(k.lower(), v) for k, v in spec.headers
                if k.lower() not in ("host", "connection", "keep-alive", "transfer-encoding",
                                     "upgrade", "content-type" if spec.protocol == "grpc"
                                     else "")]
    return wire.encode_headers([(k.encode(), v.encode()) for k, v in headers]), body


def h2_ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["h2"])
    return ctx


class H2Slot:
    """One stream slot of a link: what the engine sees as a connection."""

    __slots__ = ("busy", "idx", "link", "next_seq", "sid", "t_int", "t_sent")

    def __init__(self, link: H2Link, idx: int) -> None:
        self.link = link
        self.idx = idx
        self.busy = False
        self.next_seq = idx
        self.sid = 0
        self.t_int = 0
        self.t_sent = 0

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.link.transport

    @property
    def failures(self) -> int:
        return self.link.failures

    @failures.setter
    def failures(self, value: int) -> None:
        self.link.failures = value

    def send(self, intended_ns: int) -> None:
        self.t_int = intended_ns
        self.t_sent = perf_counter_ns()
        self.busy = True
        self.link.start(self)

    def close(self) -> None:
        """Give up on the stream in flight (timeout, stop): RST_STREAM, no error counted here.
        A link that never answered anything is closed too (a peer that speaks no HTTP/2)."""
        self.busy = False
        link = self.link
        if self.sid and link.active.pop(self.sid, None) is not None and link.connected \
                and link.transport is not None:
            link.transport.write(wire.frame(wire.RST_STREAM, 0, self.sid, _U32.pack(_CANCEL)))
        self.sid = 0
        eng = link.eng
        if not link.answered or not eng.running:
            link.close()
        elif eng._loop is not None:
            eng._loop.call_soon(self._resume)

    def _resume(self) -> None:
        """After a stream was given up on a live connection, the slot takes work again."""
        eng = self.link.eng
        if eng.running and self.link.connected and not self.busy:
            eng._ready(_conn(self))


class H2Link(asyncio.Protocol):
    """One HTTP/2 connection (client side) and its stream slots."""

    def __init__(self, eng: Engine, idx: int, streams: int, block: bytes, body: bytes,
                 grpc: bool) -> None:
        self.eng = eng
        self.idx = idx
        self.slots = [H2Slot(self, idx * streams + j) for j in range(streams)]
        self.block = block
        self.body = body
        self.grpc = grpc
        self.transport: asyncio.Transport | None = None
        self.connected = False
        self.failures = 0
        self.connecting: asyncio.Future[None] | None = None
        self.opened = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.buf = bytearray()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.blocks: dict[bytes, tuple[int, int]] = {}
        self.active: dict[int, H2Slot] = {}
        self.status: dict[int, int] = {}           # sid -> :status of a response begun
        self.cont: list[object] | None = None      # [sid, block, end_stream] awaiting CONTINUATION
        self.next_sid = 1
        self.send_window = wire.DEFAULT_WINDOW
        self.peer_init_window = wire.DEFAULT_WINDOW
        self.max_frame = wire.DEFAULT_MAX_FRAME
        self.waiting: dict[int, memoryview] = {}   # sid -> request body not yet sent
        self.windows: dict[int, int] = {}          # sid -> stream send window, while waiting
        self.unacked = 0
        self.out: list[bytes] | None = None
        self.again: list[tuple[H2Slot, int]] | None = None
        self.aborted = False
        self.answered = False                      # the peer sent a valid SETTINGS frame
        self.goaway = False

    # asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._reset_state()
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None and sslobj.selected_alpn_protocol() != "h2":
            self.eng.last_kind = ErrorKind.PROTOCOL
            self.close()                            # TLS peer without ALPN h2
            return
        self.transport.write(wire.PREFACE + wire.settings(s2=0, s4=_RECV_WINDOW)
                             + wire.window_update(0, _RECV_WINDOW))
        self.connected = self.opened = True
        self.failures = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        self.transport = None
        kind = _lost_kind(exc) if self.answered or exc is not None else ErrorKind.PROTOCOL
        for slot in list(self.active.values()):
            if slot.busy:
                slot.busy = False
                slot.sid = 0
                self.eng.fail(_conn(slot), kind)
        self.active.clear()
        for slot in self.slots:
            slot.busy = False
        if self.opened:                             # reconnect (with the engine's backoff)
            self.opened = False
            eng = self.eng
            if eng.running:
                for slot in self.slots:
                    eng.on_lost(_conn(slot))
            elif not eng.measuring and hasattr(eng, "relink_later"):
                eng.relink_later(self)              # lost before the start (a non-h2 peer)

    def data_received(self, data: bytes) -> None:
        self.eng.bytes_rx += len(data)
        out = self.out = []                        # requests started meanwhile: one write
        again = self.again = []
        try:
            self._frames(data)
            # closed loop: the next requests go out after the whole read was seen, so a
            # GOAWAY behind the last answer stops them (HTTP/1.1's Connection: close does)
            eng = self.eng
            for slot, t in again:
                if eng.running and self.connected and not slot.busy:
                    slot.t_int = t
                    slot.busy = True
                    self.start(slot)
        finally:
            self.out = self.again = None
            if out and not self.aborted and self.transport is not None:
                self.transport.write(b"".join(out))

    def _frames(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, n = 0, len(buf)
        unpack = _HEAD.unpack_from
        while n - pos >= 9:
            lt, flags, sid = unpack(buf, pos)
            end = pos + 9 + (lt >> 8)
            ftype = lt & 0xFF
            if not self.answered and (ftype != wire.SETTINGS or lt >> 8 > 1 << 16):
                self._protocol_error()              # not HTTP/2 (an HTTP/1.1 reply, say)
                return
            if end > n:
                break
            self._frame(ftype, flags, sid & _MAX_SID, bytes(buf[pos + 9:end]))
            pos = end
            if self.aborted:
                return
        del buf[:pos]
        if self.unacked > _RECV_WINDOW // 2 and not self.aborted and self.transport is not None:
            self.transport.write(wire.window_update(0, self.unacked))
            self.unacked = 0

    # the engine's side ------------------------------------------------------------------------
    def start(self, slot: H2Slot) -> None:
        sid = self.next_sid
        self.next_sid += 2
        slot.sid = sid
        self.active[sid] = slot
        tr = self.transport
        assert tr is not None
        body = self.body
        out = self.out
        if not body:
            frame = _HEAD.pack(len(self.block) << 8 | wire.HEADERS,
                               wire.END_HEADERS | wire.END_STREAM, sid) + self.block
        elif len(body) <= min(self.send_window, self.peer_init_window, self.max_frame):
            self.send_window -= len(body)
            frame = b"".join((_HEAD.pack(len(self.block) << 8 | wire.HEADERS, wire.END_HEADERS,
                                         sid), self.block,
                              _HEAD.pack(len(body) << 8 | wire.DATA, wire.END_STREAM, sid),
                              body))
        else:
            frame = b""
        if frame:
            if out is not None:
                out.append(frame)
            else:
                tr.write(frame)
        else:
            if out:                                 # keep the order of what was started
                tr.write(b"".join(out))
                out.clear()
            tr.write(_HEAD.pack(len(self.block) << 8 | wire.HEADERS, wire.END_HEADERS, sid)
                     + self.block)
            self.waiting[sid] = memoryview(body)
            self.windows[sid] = self.peer_init_window
            self._drain()
        if self.next_sid > _MAX_SID - 2:            # stream ids run out: a fresh connection
            self.goaway = True
            self.connected = False

    def close(self) -> None:
        self.connected = False
        if self.transport is not None and not self.aborted:
            self.aborted = True
            self.transport.abort()

    # frames -----------------------------------------------------------------------------------
    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == wire.DATA:
            self.unacked += len(payload)
            if flags & wire.END_STREAM:
                self._end(sid)
        elif ftype == wire.HEADERS:
            block = wire.strip_padding(flags, payload, priority=True)
            if flags & wire.END_HEADERS:
                self._headers(sid, block, flags & wire.END_STREAM)
            else:
                self.cont = [sid, bytearray(block), flags & wire.END_STREAM]
        elif ftype == wire.CONTINUATION:
            if self.cont is None or self.cont[0] != sid:
                self._protocol_error()
                return
            cast(bytearray, self.cont[1]).extend(payload)
            if flags & wire.END_HEADERS:
                _, parts, end = self.cont
                self.cont = None
                self._headers(sid, bytes(cast(bytearray, parts)), cast(int, end))
        elif ftype == wire.SETTINGS:
            if not flags & wire.ACK:
                self.answered = True
                values = wire.parse_settings(payload)
                if wire.SETTINGS_INITIAL_WINDOW_SIZE in values:
                    delta = values[wire.SETTINGS_INITIAL_WINDOW_SIZE] - self.peer_init_window
                    self.peer_init_window += delta
                    for k in self.windows:
                        self.windows[k] += delta
                self.max_frame = values.get(wire.SETTINGS_MAX_FRAME_SIZE, self.max_frame)
                assert self.transport is not None
                self.transport.write(wire.frame(wire.SETTINGS, wire.ACK, 0))
                self._drain()
        elif ftype == wire.WINDOW_UPDATE:
            inc = _U32.unpack(payload[:4])[0] & _MAX_SID
            if sid == 0:
                self.send_window += inc
            elif sid in self.windows:
                self.windows[sid] += inc
            self._drain()
        elif ftype == wire.RST_STREAM:
            self._failed(sid, ErrorKind.RESET)
        elif ftype == wire.PING:
            if not flags & wire.ACK and self.transport is not None:
                self.transport.write(wire.frame(wire.PING, wire.ACK, 0, payload))
        elif ftype == wire.GOAWAY:
            last = _U32.unpack(payload[:4])[0] & _MAX_SID
            self.goaway = True
            self.connected = False                  # no new streams; reconnect when drained
            for s in [s for s in self.active if s > last]:
                self._failed(s, ErrorKind.CLOSED)
            self._maybe_close()

    def _headers(self, sid: int, block: bytes, end_stream: int) -> None:
        fields = self.blocks.get(block)
        if fields is None:
            try:
                decoded = self.decoder.decode(block, raw=True)
            except hpack.HPACKError:
                self._protocol_error()
                return
            status, code = 0, -1
            for name, value in decoded:
                if name == b":status":
                    status = int(value)
                elif name == b"grpc-status":
                    code = int(value)
            fields = (status, code)
            if wire.hpack_is_stateless(block):
                if len(self.blocks) < 64:
                    self.blocks[block] = fields
            else:
                self.blocks.clear()
        status, code = fields
        if status:
            if status < 200:                      # 1xx: the real response follows
                return
            self.status[sid] = status
        if self.grpc and code >= 0:
            self.status[sid] = wire.GRPC_STATUS_BASE + code
        if end_stream:
            self._end(sid)

    def _end(self, sid: int) -> None:
        """A stream's response is complete: record it, then reuse the slot."""
        t = perf_counter_ns()
        slot = self.active.pop(sid, None)
        status = self.status.pop(sid, 0)
        if slot is None:
            return
        if self.grpc:
            if status >= wire.GRPC_STATUS_BASE:     # grpc-status seen
                status = 200 if status == wire.GRPC_STATUS_BASE else status
            elif status == 200:                     # an HTTP 200 without grpc-status
                status = wire.GRPC_STATUS_BASE + 13   # (grpc-go: internal, missing trailers)
            else:                                   # a proxy's HTTP error, say 503
                status = wire.GRPC_STATUS_BASE + wire.grpc_code_from_http(status)
        eng = self.eng
        eng.codes[status] += 1
        eng.lat_append(t - slot.t_int)
        slot.busy = False
        slot.sid = 0
        if eng.closed_loop:
            if self.again is not None:
                self.again.append((slot, t))
            elif eng.running and self.connected:
                slot.t_int = t
                slot.busy = True
                self.start(slot)
        else:
            eng.svc_append(t - slot.t_sent)
            eng.pull(_conn(slot), t)
        eng.remaining -= 1
        if not eng.remaining:
            eng.finish()
        if self.goaway:
            self._maybe_close()

    def _failed(self, sid: int, kind: ErrorKind) -> None:
        slot = self.active.pop(sid, None)
        self.status.pop(sid, None)
        self.waiting.pop(sid, None)
        self.windows.pop(sid, None)
        if slot is not None and slot.busy:
            slot.busy = False
            slot.sid = 0
            self.eng.fail(_conn(slot), kind)
            if self.eng.running and self.connected:
                self.eng._ready(_conn(slot))

    def _maybe_close(self) -> None:
        if not self.active and self.transport is not None:
            self.transport.close()

    def _drain(self) -> None:
        tr = self.transport
        if tr is None:
            return
        for sid in list(self.waiting):
            data = self.waiting[sid]
            while len(data):
                k = min(len(data), self.max_frame, self.send_window, self.windows[sid])
                if k <= 0:
                    break
                flags = wire.END_STREAM if k == len(data) else 0
                tr.write(wire.frame(wire.DATA, flags, sid, bytes(data[:k])))
                data = data[k:]
                self.send_window -= k
                self.windows[sid] -= k
            if len(data):
                self.waiting[sid] = data
            else:
                del self.waiting[sid]
                del self.windows[sid]

    def _protocol_error(self) -> None:
        self.eng.last_kind = ErrorKind.PROTOCOL
        for sid in list(self.active):
            self._failed_quiet(sid)
        self.close()

    def _failed_quiet(self, sid: int) -> None:
        slot = self.active.pop(sid)
        if slot.busy:
            slot.busy = False
            slot.sid = 0
            self.eng.fail(_conn(slot), ErrorKind.PROTOCOL)


def _conn(slot: H2Slot) -> Conn:
    """A slot stands in for a connection in the engine's bookkeeping (same attributes)."""
    return cast("Conn", slot)
