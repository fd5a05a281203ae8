"""nginx's stream proxy (protocol tcp) never benches an upstream after a failed connect.

Regression: the playground's readiness probe connects to the client sidecar before the backend
sidecars listen; nginx's stream upstreams default to max_fails=1 fail_timeout=10s, so that one
probe marked every backend down and the load that followed got "no live upstreams" for 10 s
(`test_tcp_through_every_data_plane[nginx+mtls]` failed that way when start-up was slow)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from meshlab.playground import nginx
from meshlab.playground.plan import Endpoint, Listener, ProxySpec, Upstream
from meshlab.playground.ports import free_ports, port_open

pytestmark = pytest.mark.timeout(60)


def _echo_on(port: int, stop: threading.Event) -> threading.Thread:
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(0.1)

    def serve() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(conn.recv(64))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def _round_trip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"ping")
        try:
            return s.recv(64)
        except ConnectionResetError:
            return b""


def test_a_refused_connect_does_not_mark_the_upstreams_down(tmp_path: Path) -> None:
    listen, admin, *backends = free_ports(4)
    up = Upstream(name="backend", service="backend",
                  endpoints=tuple(Endpoint(p, f"backend-{i}") for i, p in enumerate(backends)))
    proxy = ProxySpec(name="client-sidecar", role="sidecar", kind="nginx", admin_port=admin,
                      listeners=(Listener(name="outbound-backend", port=listen,
                                          direction="outbound", upstream=up, l4=True,
                                          protocol="tcp"),))
    _, argv = nginx.prepare(proxy, tmp_path, binary=nginx.find_binary().path)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", listen) and time.monotonic() < deadline:
            time.sleep(0.02)
        # a probe while no backend listens yet: nginx tries both and closes the connection
        assert _round_trip(listen) == b""
        threads = [_echo_on(p, stop) for p in backends]
        # the backends are up now: every connection must reach one at once
        assert [_round_trip(listen) for _ in range(4)] == [b"ping"] * 4
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=10)
    for t in threads:
        t.join(timeout=2)
