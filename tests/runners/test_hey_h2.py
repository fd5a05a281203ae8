"""hey over HTTP/2: `-h2` negotiates h2 through TLS ALPN (run for real against the echo
workload behind a TLS terminator on loopback); h2c is refused, because hey's `-h2` sends
HTTP/1.1 to an http:// target (seen with a raw socket below)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _runner_tests import spec

from meshlab.errors import ProfileError
from meshlab.playground.certs import CertificateAuthority
from meshlab.playground.echo import EchoProcess
from meshlab.profile import RunSpec
from meshlab.runners.hey import TLS_WARNING, HeyRunner


@pytest.fixture(scope="module")
def h2_tls_url(tmp_path_factory: pytest.TempPathFactory,
               echo_process: EchoProcess) -> Iterator[tuple[str, list[str]]]:
    """https://127.0.0.1:PORT/ terminating TLS (ALPN h2 only) and piping the bytes to the echo
    server, which speaks HTTP/2 after the connection preface; with the protocols negotiated."""
    files = CertificateAuthority(Path(tmp_path_factory.mktemp("ca"))).issue("h2")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.set_alpn_protocols(["h2"])
    loop = asyncio.new_event_loop()
    negotiated: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_obj = writer.get_extra_info("ssl_object")
        negotiated.append(str(ssl_obj.selected_alpn_protocol() if ssl_obj else None))
        up_r, up_w = await asyncio.open_connection("127.0.0.1", echo_process.port)
        a = asyncio.ensure_future(pipe(reader, up_w))
        b = asyncio.ensure_future(pipe(up_r, writer))
        tasks.update((a, b))
        await asyncio.gather(a, b)

    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}/", negotiated

    async def shut() -> None:
        server.close()
        for t in tasks:
            t.cancel()
        await server.wait_closed()

    asyncio.run_coroutine_threadsafe(shut(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_argv_adds_h2_for_h2_only() -> None:
    h2 = HeyRunner().build_argv(spec(protocol="h2", target="https://127.0.0.1:8443/"))
    assert "-h2" in h2 and h2[-1] == "https://127.0.0.1:8443/"
    assert "-h2" not in HeyRunner().build_argv(spec())


def test_h2c_is_refused_naming_runner_and_protocol() -> None:
    with pytest.raises(ProfileError) as info:
        HeyRunner().check(spec(protocol="h2c"))
    text = str(info.value)
    assert "runner hey cannot speak h2c" in text and "sends HTTP/1.1" in text
    for proto in ("grpc", "tcp"):
        with pytest.raises(ProfileError, match=f"runner hey cannot speak {proto}"):
            HeyRunner().check(spec(protocol=proto))
    with pytest.raises(ProfileError, match="request.streams_per_connection"):
        HeyRunner().check(spec(protocol="h2", target="https://127.0.0.1:8443/",
                               streams_per_connection=4))


def test_hey_h2_sends_http1_to_an_http_target() -> None:
    """Why h2c is refused: what hey -h2 writes on a plain connection is an HTTP/1.1 request."""
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        s.settimeout(10)
        port = s.getsockname()[1]
        proc = subprocess.Popen(["hey", "-h2", "-n", "1", "-c", "1", "-t", "2",
                                 f"http://127.0.0.1:{port}/"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            conn, _ = s.accept()
            with conn:
                conn.settimeout(5)
                first = conn.recv(64)
        finally:
            proc.wait(10)
    assert first.startswith(b"GET / HTTP/1.1\r\n")


def test_hey_h2_over_tls_runs_for_real(h2_tls_url: tuple[str, list[str]]) -> None:
    url, negotiated = h2_tls_url
    s = RunSpec(target=url + "?status=503:20", protocol="h2", connections=2, max_requests=200,
                duration_s=10.0, timeout_s=5.0)
    res = asyncio.run(HeyRunner().run(s))
    assert res.requests == 200 and res.dimensions.protocol == "h2"
    assert set(res.status_codes) == {200, 503}
    assert 0.1 < res.status_codes[503] / res.requests < 0.3
    assert negotiated and set(negotiated) == {"h2"}       # ALPN h2 on every connection
    assert "-h2" in res.context["tool_argv"] and TLS_WARNING in res.warnings
