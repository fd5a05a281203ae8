"""Which replica answered: calls over ONE long-lived HTTP/2 connection (gRPC ping or h2c GET),
counted by the echo's `x-meshlab-echo` reply header. A connection-level (L4) balancer sends them
all to one replica; a request-level (L7) proxy spreads them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
from collections import Counter
from urllib.parse import urlsplit

import hpack

from meshlab import wire
from meshlab.errors import PlaygroundError

_HEAD = struct.Struct(">IBI")


def call_shares(url: str, *, calls: int = 300, streams: int = 8, protocol: str = "grpc",
                timeout_s: float = 10.0) -> dict[str, int]:
    """Calls per replica name for `calls` calls, `streams` at a time on one connection. Safe to
    call inside a running event loop (Jupyter): the calls run on a private thread's loop."""
    if protocol not in ("grpc", "h2c"):
        raise ValueError(f"protocol must be grpc or h2c, not {protocol!r}")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _shares(url, calls, streams, protocol,
                                                timeout_s)).result()


async def _shares(url: str, calls: int, streams: int, protocol: str,
                  timeout_s: float) -> dict[str, int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    grpc = protocol == "grpc"
    fields = [(b":method", b"POST" if grpc else b"GET"), (b":scheme", b"http"),
              (b":authority", f"{host}:{port}".encode()),
              (b":path", wire.PING_PATH if grpc else (parts.path or "/").encode())]
    if grpc:
        fields += [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    block = wire.encode_headers(fields)
    body = wire.grpc_message(wire.ping_message(seq=1)) if grpc else b""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        raise PlaygroundError(f"cannot connect to {url}: {exc}") from exc
    decoder = hpack.Decoder()
    counts: Counter[str] = Counter()
    replica: dict[int, str] = {}
    state = {"sid": 1, "sent": 0, "done": 0}

    def send_one() -> None:
        sid = state["sid"]
        state["sid"] += 2
        state["sent"] += 1
        if body:
            writer.write(_HEAD.pack(len(block) << 8 | wire.HEADERS, wire.END_HEADERS, sid)
                         + block + wire.frame(wire.DATA, wire.END_STREAM, sid, body))
        else:
            writer.write(_HEAD.pack(len(block) << 8 | wire.HEADERS,
                                    wire.END_HEADERS | wire.END_STREAM, sid) + block)

    def finish(sid: int, name: str | None = None) -> None:
        counts[name or replica.pop(sid, "?")] += 1
        state["done"] += 1
        if state["sent"] < calls:
            send_one()

    writer.write(wire.PREFACE + wire.settings(s4=1 << 30) + wire.window_update(0, 1 << 30))
    for _ in range(min(streams, calls)):
        send_one()
    buf = b""
    try:
        while state["done"] < calls:
            data = await asyncio.wait_for(reader.read(65536), timeout_s)
            if not data:
                raise PlaygroundError(f"{url} closed the connection after {state['done']} of "
                                      f"{calls} calls")
            buf += data
            while len(buf) >= 9:
                lt, flags, sid = _HEAD.unpack_from(buf)
                end = 9 + (lt >> 8)
                if len(buf) < end:
                    break
                ftype, payload, buf = lt & 0xFF, buf[9:end], buf[end:]
                if ftype == wire.SETTINGS and not flags & wire.ACK:
                    writer.write(wire.frame(wire.SETTINGS, wire.ACK, 0))
                elif ftype == wire.PING and not flags & wire.ACK:
                    writer.write(wire.frame(wire.PING, wire.ACK, 0, payload))
                elif ftype == wire.HEADERS:
                    headers = dict(decoder.decode(wire.strip_padding(flags, payload,
                                                                     priority=True), raw=True))
                    name = headers.get(b"x-meshlab-echo")
                    if name is not None:
                        replica[sid] = bytes(name).decode("latin-1")
                    if flags & wire.END_STREAM:
                        finish(sid)
                elif ftype == wire.DATA and flags & wire.END_STREAM:
                    finish(sid)
                elif ftype == wire.RST_STREAM:
                    finish(sid, "(reset)")
                elif ftype == wire.GOAWAY:
                    raise PlaygroundError(f"{url} sent GOAWAY after {state['done']} calls")
    except TimeoutError as exc:
        raise PlaygroundError(f"{url}: no answer within {timeout_s:g} s after "
                              f"{state['done']} of {calls} calls") from exc
    finally:
        writer.close()
    return dict(sorted(counts.items()))
