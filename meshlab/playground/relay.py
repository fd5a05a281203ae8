"""The relay workload: a service in a multi-hop chain (frontend -> backend) that forwards each
request to its next hop over one kept-alive upstream connection per downstream connection, so
every hop's proxy cost adds up. `python -m meshlab.playground.relay --port N --upstream-port M`.
With `--raw` it forwards bytes instead (h2c, gRPC, TCP): one upstream connection per downstream
one, so an HTTP/2 connection's streams stay multiplexed through the hop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

MAX_HEADER_BYTES = 64 * 1024
_HOP_HEADERS = (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
                b"upgrade")


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, list[tuple[bytes, bytes]],
                                                               bytes] | None:
    """First line, headers and body of one HTTP/1.1 message (content-length or chunked)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        return None
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    hmap = dict(headers)
    body = b""
    if b"chunked" in hmap.get(b"transfer-encoding", b"").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                # trailers end with an empty line
                while chunk != b"\r\n":
                    chunk = await reader.readuntil(b"\r\n")
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    elif b"content-length" in hmap:
        body = await reader.readexactly(int(hmap[b"content-length"]))
    return lines[0], headers, body


def _render(first: bytes, headers: list[tuple[bytes, bytes]], body: bytes, *,
            extra: bytes = b"") -> bytes:
    out = [first, b"\r\n"]
    for name, value in headers:
        if name in _HOP_HEADERS or name == b"content-length":
            continue
        out += [name, b": ", value, b"\r\n"]
    out += [b"content-length: ", str(len(body)).encode(), b"\r\n", extra, b"\r\n", body]
    return b"".join(out)


class Relay:
    """Forwards to 127.0.0.1:upstream_port; answers 502 when the next hop cannot be reached."""

    def __init__(self, *, name: str, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)
        self._hop = f"x-meshlab-hop: {name}\r\n".encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                req = await _read_message(reader)
                if req is None:
                    return
                first, headers, body = req
                data = _render(first, headers, body)
                resp = None
                for _attempt in range(2):    # a kept-alive upstream may have closed meanwhile
                    if up is None:
                        try:
                            up = await asyncio.open_connection(*self.upstream)
                        except OSError:
                            break
                    up[1].write(data)
                    try:
                        await up[1].drain()
                        resp = await _read_message(up[0])
                    except (ConnectionError, asyncio.IncompleteReadError):
                        resp = None
                    if resp is not None:
                        break
                    up[1].close()
                    up = None
                if resp is None:
                    writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n" +
                                 self._hop + b"\r\n")
                else:
                    rfirst, rheaders, rbody = resp
                    writer.write(_render(rfirst, rheaders, rbody, extra=self._hop))
                    if (b"connection", b"close") in rheaders and up is not None:
                        up[1].close()
                        up = None
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            if up is not None:
                up[1].close()
            writer.close()


class RawRelay:
    """Pipes each downstream connection to a new upstream one, both ways, until either side
    closes; a next hop that cannot be reached closes the downstream connection (the client
    counts it as a reset or a lost connection: there is no protocol to answer 502 in)."""

    def __init__(self, *, name: str, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def serve(*, port: int, upstream_port: int, name: str, host: str = "127.0.0.1",
          raw: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; prints `listening on URL` once ready."""
    try:
        import uvloop
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    relay = (RawRelay if raw else Relay)(name=name, upstream_port=upstream_port)
    stop = asyncio.Event()

    async def main() -> None:
        server = await asyncio.start_server(relay.handle, host, port, limit=MAX_HEADER_BYTES,
                                            backlog=4096, reuse_address=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        scheme = "tcp" if raw else "http"
        print(f"listening on {scheme}://{host}:{server.sockets[0].getsockname()[1]}/",
              flush=True)
        await stop.wait()
        server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshlab-relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--name", default="relay")
    parser.add_argument("--raw", action="store_true",
                        help="forward bytes (h2c, gRPC, TCP), not HTTP/1.1 messages")
    args = parser.parse_args(argv)
    serve(port=args.port, upstream_port=args.upstream_port, name=args.name, raw=args.raw)
    return 0


if __name__ == "__main__":
    # the server has closed: skip the interpreter's teardown (~0.2 s of a playground's stop)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
