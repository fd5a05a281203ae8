"""nginx and haproxy data planes: each policy they can express is observable on loopback; what
they cannot express is rejected naming the data plane and the policy."""

from __future__ import annotations

import time

import httpx
import pytest
from _playground_helpers import codes, fetch, replicas

from meshlab.errors import MeshError
from meshlab.playground.playground import Playground
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
    c = codes(fetch(pg.url, 200))
    assert set(c) <= {200, 503}
    assert 0.3 < c[503] / 200 < 0.7


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
    pg = _up(started, state_dir, mesh, TrafficPolicy(
        name="t", timeout=TimeoutPolicy(request_timeout_s=0.3)))
    t0 = time.perf_counter()
    r = httpx.get(pg.url + "?delay=3s", timeout=10)
    assert r.status_code == 504
    assert 0.25 < time.perf_counter() - t0 < 2.0


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
