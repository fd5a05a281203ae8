"""The native runner's engine per protocol: HTTP/1.1 (`Engine`), HTTP/2 and gRPC (`H2Engine`,
stream slots over shared connections) and TCP echo (`TcpEngine`)."""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from meshlab.profile import RunSpec
from meshlab.progress import ProgressCallback
from meshlab.results import ErrorKind
from meshlab.runners._engine import BACKOFF_S, Engine
from meshlab.runners._h2 import H2Link, H2Slot, h2_ssl_context, request_parts
from meshlab.runners._http import Conn

TCP_DEFAULT_PAYLOAD = b"meshlab-tcp-echo\n"


def make_engine(spec: RunSpec, *, progress: ProgressCallback | None = None,
                keep_second_buckets: bool = False,
                start_gate: Callable[[], Awaitable[int]] | None = None) -> Engine:
    """The engine that speaks `spec.protocol`."""
    cls: type[Engine] = {"h2c": H2Engine, "h2": H2Engine, "grpc": H2Engine,
                         "tcp": TcpEngine}.get(spec.protocol, Engine)
    return cls(spec, progress=progress, keep_second_buckets=keep_second_buckets,
               start_gate=start_gate)


def connect_error_kind(exc: BaseException) -> ErrorKind:
    if isinstance(exc, TimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.CONNECT_REFUSED
    if isinstance(exc, ConnectionResetError):
        return ErrorKind.RESET
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.PROTOCOL
    refused = (isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED) or \
        f"[Errno {errno.ECONNREFUSED}]" in str(exc)
    return ErrorKind.CONNECT_REFUSED if refused else ErrorKind.OTHER


class H2Engine(Engine):
    """`spec.connections` HTTP/2 connections x `spec.streams_per_connection` stream slots; the
    slots are interleaved (slot i is on connection i % connections) so that consecutive open-loop
    sends go to different connections."""

    def __init__(self, spec: RunSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        tls = self.ssl is not None
        self.ssl = h2_ssl_context() if tls else None
        block, body = request_parts(spec, self.host, self.port, tls)
        n, streams = spec.connections, spec.streams_per_connection
        self.links = [H2Link(self, i, streams, block, body, spec.protocol == "grpc")
                      for i in range(n)]
        for link in self.links:
            for j, slot in enumerate(link.slots):
                slot.idx = slot.next_seq = j * n + link.idx
        slots: list[H2Slot] = sorted((s for link in self.links for s in link.slots),
                                     key=lambda s: s.idx)
        self.conns = slots  # type: ignore[assignment]   # slots quack like connections

    async def _connect(self, conn: Conn, *, initial: bool = False) -> None:
        slot: H2Slot = conn  # type: ignore[assignment]
        link = slot.link
        if link.connected:
            if self.running and not slot.busy:
                self._ready(conn)
            return
        if link.connecting is None or link.connecting.done():
            task = asyncio.ensure_future(self._open(link, initial))
            link.connecting = task
            self._tasks.add(task)                  # cancelled by _cleanup like reconnects
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(link.connecting)

    async def _open(self, link: H2Link, initial: bool) -> None:
        assert self._loop is not None
        kind: ErrorKind | None = None
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: link, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None), timeout=self.spec.timeout_s)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            kind = connect_error_kind(exc)
        if kind is None and self._done is not None and self._done.done():
            link.close()                            # the run ended while connecting
            return
        if kind is None and not link.connected:     # TLS without ALPN h2
            kind = ErrorKind.PROTOCOL
        if kind is not None:
            link.failures += 1
            self.last_kind = kind
            if self.closed_loop and not initial and self.running:
                self._count(kind)
            if self.retrying():
                delay = BACKOFF_S[min(link.failures, len(BACKOFF_S)) - 1]
                self._timers[-1 - link.idx] = self._loop.call_later(delay, self._relink, link)
            return
        if self.running:
            for slot in link.slots:
                if not slot.busy and link.connected:
                    self._ready(slot)  # type: ignore[arg-type]

    def relink_later(self, link: H2Link) -> None:
        """A connection lost before the run started: try again after the usual backoff (the
        engine's reconnects start with the run)."""
        if self._loop is None or not self.retrying():
            return
        link.failures += 1
        delay = BACKOFF_S[min(link.failures, len(BACKOFF_S)) - 1]
        self._timers[-1 - link.idx] = self._loop.call_later(delay, self._relink, link)

    def _relink(self, link: H2Link) -> None:
        if self.retrying() and not link.connected and link.transport is None:
            task = asyncio.ensure_future(self._connect(link.slots[0]))  # type: ignore[arg-type]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _cleanup(self) -> None:
        super()._cleanup()
        for link in self.links:
            link.close()


class TcpConn(Conn):
    """One TCP connection: send the payload, wait until the same bytes came back."""

    __slots__ = ("got",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.got = bytearray()

    def data_received(self, data: bytes) -> None:
        eng = self.eng
        eng.bytes_rx += len(data)
        expected: bytes = eng.request
        if not self.got and data == expected:        # the whole echo in one read
            self._complete(200, True)
            return
        got = self.got
        got += data
        if len(got) < len(expected) and expected.startswith(got):
            return
        ok = got == expected
        self.got = bytearray()
        if ok:
            self._complete(200, True)
        else:
            self._protocol_error()                   # not an echo (an HTTP server, say)


class TcpEngine(Engine):
    """TCP echo: each request writes the body (or a short default line) and is complete when
    the same bytes have come back; a complete echo counts as status 200."""

    def __init__(self, spec: RunSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.request = spec.body or TCP_DEFAULT_PAYLOAD
        self.conns = [TcpConn(self, i) for i in range(spec.connections)]
