"""nginx and haproxy data planes: each policy they can express is observable on loopback; what
they cannot express is rejected naming the data plane and the policy."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from _playground_helpers import assert_gone, codes, fetch, replicas

from meshlab.errors import MeshError
from meshlab.playground import nginx
from meshlab.playground.echo import EchoServer
from meshlab.playground.haproxy import show_stat
from meshlab.playground.plan import Endpoint, Listener, ProxySpec, Upstream
from meshlab.playground.playground import Playground
from meshlab.playground.ports import free_ports
from meshlab.playground.process import ManagedProcess, stop_processes, tcp_probe, wait_ready
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
from meshlab.topology import DataPlaneKind, Service, Topology, Workload

pytestmark = pytest.mark.timeout(60)
PLANES = ["nginx", "haproxy"]


def _up(started, state_dir, mesh, policy=None, topology=None) -> Playground:
    pg = Playground(topology, mesh=mesh, policy=policy, state_dir=state_dir)
    started.append(pg)
    return pg.start()


@pytest.mark.parametrize("mesh", PLANES)
def test_chain_and_mtls(started, state_dir, mesh):
    topo = Topology(services=[Service(name="frontend", calls="backend"),
                              Service(name="backend", replicas=2)])
    pg = _up(started, state_dir, f"{mesh}+mtls", topology=topo)
    rs = fetch(pg.url, 20)
    assert codes(rs) == {200: 20}
    assert set(replicas(rs)) == {"backend-0", "backend-1"}
    inbound = pg.process("backend-0-sidecar").ports["inbound"]
    # plaintext to a strict sidecar: refused (reset, or nginx's 400 "plain HTTP to HTTPS port")
    try:
        r = httpx.get(f"http://127.0.0.1:{inbound}/", timeout=3)
    except httpx.HTTPError:
        pass
    else:
        assert r.status_code == 400 and "x-meshlab-echo" not in r.headers
    assert pg.context()["data_plane_version"]


@pytest.mark.parametrize("mesh", PLANES)
def test_fault_abort_half(started, state_dir, mesh):
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="abort", fault=FaultInjection(abort=FaultAbort(http_status=503, percent=50))))
    c = codes(fetch(pg.url, 400, concurrency=16))
    assert set(c) <= {200, 503}
    assert 0.38 < c[503] / 400 < 0.62        # +-4.8 sigma of a fair coin over 400 requests


def test_haproxy_retry_counter_shows_the_retries(started, state_dir):
    pg = _up(started, state_dir, "haproxy", TrafficPolicy(
        name="retry", retries=RetryPolicy(attempts=5, retry_on=["5xx"])))
    assert codes(fetch(pg.url + "?status=503:50", 100))[200] >= 90
    rows = show_stat(pg.admin_port("client-sidecar"))
    backend = next(r for r in rows if r["pxname"] == "b0" and r["svname"] == "BACKEND")
    # ~100 retries expected (one per 503); redispatches are retries onto a re-chosen server
    retried = int(backend["wretr"] or 0) + int(backend["wredis"] or 0)
    assert retried >= 30, backend
    bare = _up(started, state_dir, "haproxy")
    fetch(bare.url + "?status=503:50", 20)
    row = next(r for r in show_stat(bare.admin_port("client-sidecar"))
               if r["pxname"] == "b0" and r["svname"] == "BACKEND")
    assert int(row["wretr"] or 0) + int(row["wredis"] or 0) == 0


def test_nginx_retries_show_in_the_replicas_request_count(tmp_path):
    """nginx OSS has no retry counter (stub_status counts client requests; only the commercial
    API counts upstream tries), so the retries show where they land: the failing echo replica
    answers more requests than the client sent. Real nginx, compiled from a plan, in front of
    an in-process echo server whose request count the test can read."""
    policy = TrafficPolicy(name="retry", retries=RetryPolicy(attempts=5, retry_on=["5xx"]))

    async def main() -> tuple[int, int]:
        async with EchoServer(name="backend-0", defaults="status=503:50", seed=7) as echo:
            admin, port = free_ports(2)
            up = Upstream(name="backend", service="backend",
                          endpoints=(Endpoint(echo.port, "backend-0"),))
            proxy = ProxySpec(name="client-sidecar", role="sidecar", kind=DataPlaneKind.NGINX,
                              admin_port=admin, listeners=(Listener(
                                  name="outbound-backend", port=port, direction="outbound",
                                  upstream=up, policy=policy),))
            _, argv = nginx.prepare(proxy, tmp_path, binary=nginx.find_binary().path)
            proc = ManagedProcess("client-sidecar", argv, log_path=tmp_path / "nginx.log",
                                  kind="nginx", role="sidecar", ports={"outbound": port})
            proc.start()
            try:
                await asyncio.to_thread(wait_ready, [(proc, tcp_probe(port))], timeout_s=10)
                async with httpx.AsyncClient(timeout=10) as client:
                    rs = [await client.get(f"http://127.0.0.1:{port}/") for _ in range(60)]
            finally:
                stop_processes([proc])
            assert_gone([proc.pid])
            return sum(r.status_code == 200 for r in rs), echo.requests

    ok, served = asyncio.run(main())
    assert ok >= 55
    assert served >= 60 + 30, served      # ~120 expected: every 503 was tried again


@pytest.mark.parametrize("mesh", PLANES)
def test_retries_turn_503_into_success(started, state_dir, mesh):
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="retry", retries=RetryPolicy(attempts=5, retry_on=["5xx"])))
    assert codes(fetch(pg.url + "?status=503:50", 100))[200] >= 90


@pytest.mark.parametrize("mesh", PLANES)
def test_retries_move_to_healthy_replica(started, state_dir, mesh):
    topo = Topology(services=[Service(name="backend", replicas=2, replica_workloads={
        1: Workload(status="503")})])
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="retry", retries=RetryPolicy(attempts=1)), topology=topo)
    rs = fetch(pg.url, 40)
    assert codes(rs) == {200: 40}
    assert set(replicas(rs)) == {"backend-0"}


@pytest.mark.parametrize("mesh", PLANES)
def test_timeout_gives_504(started, state_dir, mesh):
    waits = []
    for i, timeout_s in enumerate((0.3, 1.2)):
        pg = _up(started, state_dir, mesh, TrafficPolicy(
            name=f"t{i}", timeout=TimeoutPolicy(request_timeout_s=timeout_s)))
        t0 = time.perf_counter()
        r = httpx.get(pg.url + "?delay=4s", timeout=10)
        assert r.status_code == 504
        waits.append(time.perf_counter() - t0)
    # relative, not absolute: 4x the timeout gives clearly more than 2x the wait
    assert waits[0] < waits[1] and waits[1] / waits[0] > 2, waits


@pytest.mark.parametrize("mesh", PLANES)
def test_rate_limit_returns_429(started, state_dir, mesh):
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="rl", rate_limit=RateLimit(requests_per_s=5, burst=5)))
    t0 = time.perf_counter()
    c = codes(fetch(pg.url, 60, concurrency=4))
    elapsed = time.perf_counter() - t0
    assert set(c) <= {200, 429}
    assert c[429] >= 30
    assert 3 <= c[200] <= 5 + 5 * (elapsed + 1) + 3


@pytest.mark.parametrize("mesh", PLANES)
@pytest.mark.parametrize("algorithm", ["round_robin", "least_request", "random"])
def test_load_balancing(started, state_dir, mesh, algorithm):
    slow = algorithm == "least_request"
    topo = Topology(services=[Service(name="backend", replicas=2, replica_workloads=(
        {1: Workload(delay="150ms")} if slow else {}))])
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="lb", load_balancing=LoadBalancing(algorithm=algorithm)), topology=topo)
    seen = replicas(fetch(pg.url, 80 if slow else 100, concurrency=8 if slow else 1))
    if algorithm == "round_robin":
        assert seen == {"backend-0": 50, "backend-1": 50}
    elif slow:
        assert seen["backend-0"] > 2 * seen["backend-1"]
    else:
        assert 20 <= seen["backend-0"] <= 80


def test_haproxy_circuit_breaker_overflows_with_503(started, state_dir):
    pg = _up(started, state_dir, "haproxy", TrafficPolicy(
        name="cb", circuit_breaker=CircuitBreaker(max_connections=1, max_pending_requests=1)))
    c = codes(fetch(pg.url + "?delay=200ms", 12, concurrency=12))
    assert c[503] >= 3 and c[200] >= 1


@pytest.mark.parametrize(("mesh", "policy", "feature"), [
    ("nginx", TrafficPolicy(name="d", fault=FaultInjection(delay=FaultDelay(delay_s=1))),
     "fault.delay"),
    ("nginx", TrafficPolicy(name="cb", circuit_breaker=CircuitBreaker(max_requests=1)),
     "circuit_breaker"),
    ("haproxy", TrafficPolicy(name="d", fault=FaultInjection(delay=FaultDelay(delay_s=1))),
     "fault.delay"),
    ("haproxy", TrafficPolicy(name="od", circuit_breaker=CircuitBreaker(
        outlier_detection=OutlierDetection())), "outlier_detection"),
    ("none", TrafficPolicy(name="r", retries=RetryPolicy()), "retries"),
])
def test_unsupported_policy_is_rejected_by_name(state_dir, mesh, policy, feature):
    with pytest.raises(MeshError) as err:
        Playground(mesh=mesh, policy=policy, state_dir=state_dir)
    msg = str(err.value)
    assert mesh in msg and repr(policy.name) in msg and feature in msg
    assert not state_dir.exists()


@pytest.mark.parametrize("mesh", PLANES)
def test_permissive_mtls_is_rejected(state_dir, mesh):
    with pytest.raises(MeshError, match=f"{mesh} cannot express mtls permissive"):
        Playground(mesh=f"{mesh}+mtls-permissive", state_dir=state_dir)
