"""Fixtures for runner tests: a real nginx (`return 200`) and a scripted raw HTTP server whose
paths answer with Content-Length, chunked, close, until-EOF, reset, hang or one 200 ms stall."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshlab.playground.ports import free_ports, port_open

NGINX = "/usr/sbin/nginx"


@pytest.fixture(scope="session")
def nginx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT/ of a 1-worker nginx answering `200 hello`; killed at the end."""
    exe = NGINX if Path(NGINX).exists() else shutil.which("nginx")
    if not exe:
        pytest.fail("nginx is not installed: run `make test` (it installs nginx-light) or "
                    "apt-get install nginx-light")
    d = tmp_path_factory.mktemp("nginx")
    port = free_ports(1)[0]
    (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  keepalive_requests 1000000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello\\n"; }}
  }}
}}
""")
    proc = subprocess.Popen([exe, "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {(d / 'error.log').read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class ScriptedServer:
    """A raw asyncio HTTP server on a private thread; `url` ends with '/'."""

    url: str = ""
    connections: int = 0
    requests: int = 0
    stall_at: int = -1                 # the request number (1-based) answered 200 ms late
    stall_s: float = 0.2
    loop: asyncio.AbstractEventLoop | None = None
    thread: threading.Thread | None = None
    server: asyncio.AbstractServer | None = None
    transports: list[asyncio.Transport] = field(default_factory=list)

    def reset(self, *, stall_at: int = -1) -> None:
        self.connections = self.requests = 0
        self.stall_at = stall_at


_CL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
_UNTIL_EOF = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until eof"


class _Proto(asyncio.Protocol):
    def __init__(self, srv: ScriptedServer) -> None:
        self.srv = srv
        self.buf = b""
        self.tr: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.tr = transport
        self.srv.connections += 1
        self.srv.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.srv.requests += 1
            path = head.split(b" ", 2)[1]
            self._answer(path)

    def _answer(self, path: bytes) -> None:
        tr = self.tr
        assert tr is not None and self.srv.loop is not None
        if path.startswith(b"/chunked"):
            tr.write(_CHUNKED)
        elif path.startswith(b"/close"):
            tr.write(_CLOSE)
            tr.close()
        elif path.startswith(b"/eof"):
            tr.write(_UNTIL_EOF)
            tr.close()
        elif path.startswith(b"/reset"):
            sock = tr.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tr.abort()
        elif path.startswith(b"/hang"):
            pass
        elif self.srv.requests == self.srv.stall_at:
            tr.pause_reading()
            self.srv.loop.call_later(self.srv.stall_s, self._late, tr)
        else:
            tr.write(_CL)

    def _late(self, tr: asyncio.Transport) -> None:
        if not tr.is_closing():
            tr.write(_CL)
            tr.resume_reading()


def _start_scripted(ssl_ctx: ssl.SSLContext | None = None) -> ScriptedServer:
    srv = ScriptedServer()
    ready = threading.Event()

    def main() -> None:
        loop = asyncio.new_event_loop()
        srv.loop = loop

        async def start() -> None:
            srv.server = await loop.create_server(lambda: _Proto(srv), "127.0.0.1", 0,
                                                  ssl=ssl_ctx)
            port = srv.server.sockets[0].getsockname()[1]
            srv.url = f"http{'s' if ssl_ctx else ''}://127.0.0.1:{port}/"
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()
        for tr in srv.transports:
            tr.abort()
        assert srv.server is not None
        srv.server.close()
        loop.run_until_complete(srv.server.wait_closed())
        loop.close()

    srv.thread = threading.Thread(target=main, name="scripted-http", daemon=True)
    srv.thread.start()
    assert ready.wait(10)
    return srv


def _stop_scripted(srv: ScriptedServer) -> None:
    assert srv.loop is not None and srv.thread is not None
    srv.loop.call_soon_threadsafe(srv.loop.stop)
    srv.thread.join(10)


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[ScriptedServer]:
    srv = _start_scripted()
    try:
        yield srv
    finally:
        _stop_scripted(srv)


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """The scripted server behind TLS with a self-signed 127.0.0.1 certificate that the
    default SSL context trusts (through SSL_CERT_FILE) for this test."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    srv = _start_scripted(ctx)
    try:
        yield srv
    finally:
        _stop_scripted(srv)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    port = free_ports(1)[0]
    with contextlib.suppress(OSError):
        assert not port_open("127.0.0.1", port)
    return port
