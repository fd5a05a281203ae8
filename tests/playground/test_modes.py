"""Proxy placement modes: client-only, server-only, ingress and the ambient-like node proxy."""

from __future__ import annotations

import pytest
from _playground_helpers import codes, fetch, replicas

from meshlab.errors import MeshError
from meshlab.playground.playground import Playground
from meshlab.playground.telemetry import envoy_stats
from meshlab.policy import (
    FaultAbort,
    FaultDelay,
    FaultInjection,
    LoadBalancing,
    RetryPolicy,
    TimeoutPolicy,
    TrafficPolicy,
)
from meshlab.topology import Service, Topology

pytestmark = pytest.mark.timeout(60)
CHAIN = Topology(services=[Service(name="frontend", calls="backend"),
                           Service(name="backend", replicas=2)])


def _up(started, state_dir, mesh, mode, policy=None, topology=CHAIN) -> Playground:
    pg = Playground(topology, mesh=mesh, mode=mode, policy=policy, state_dir=state_dir)
    started.append(pg)
    return pg.start()


@pytest.mark.parametrize(("mesh", "mode", "proxies"), [
    ("envoy", "client-only", ["client-sidecar", "frontend-0-sidecar"]),
    ("envoy", "server-only", ["backend-0-sidecar", "backend-1-sidecar", "frontend-0-sidecar"]),
    ("envoy+mtls", "ingress", ["backend-0-sidecar", "backend-1-sidecar", "frontend-0-sidecar",
                               "gateway"]),
    ("haproxy", "ingress", ["backend-0-sidecar", "backend-1-sidecar", "frontend-0-sidecar",
                            "gateway"]),
    ("nginx", "client-only", ["client-sidecar", "frontend-0-sidecar"]),
    ("envoy+mtls", "node-proxy", ["ztunnel-node-backend", "ztunnel-node-client",
                                  "ztunnel-node-frontend"]),
    ("envoy+mtls", "node-proxy+waypoint", ["waypoint-backend", "waypoint-frontend",
                                           "ztunnel-node-backend", "ztunnel-node-client",
                                           "ztunnel-node-frontend"]),
])
def test_mode_carries_the_chain(started, state_dir, mesh, mode, proxies):
    pg = _up(started, state_dir, mesh, mode)
    assert sorted(p.name for p in pg.proxy_processes()) == proxies
    rs = fetch(pg.url, 20)
    assert codes(rs) == {200: 20}
    assert {r.headers["x-meshlab-hop"] for r in rs} == {"frontend-0"}
    if mode != "server-only":       # no client-side proxy, no balancing
        assert set(replicas(rs)) == {"backend-0", "backend-1"}
    assert pg.context()["mode"] == mode.split("+")[0]


def test_server_only_applies_policy_at_inbound(started, state_dir):
    pg = _up(started, state_dir, "envoy", "server-only", TrafficPolicy(
        name="abort", service="frontend", fault=FaultInjection(abort=FaultAbort(
            http_status=503, percent=100))))
    assert codes(fetch(pg.url, 5)) == {503: 5}


def test_node_proxy_shares_one_proxy_per_node(started, state_dir):
    topo = Topology(services=[Service(name="frontend", calls="backend", node="n1"),
                              Service(name="backend", node="n1")])
    pg = _up(started, state_dir, "envoy+mtls", "node-proxy", topology=topo)
    assert sorted(p.name for p in pg.proxy_processes()) == ["ztunnel-n1", "ztunnel-node-client"]
    assert codes(fetch(pg.url, 10)) == {200: 10}
    stats = envoy_stats(pg.admin_port("ztunnel-n1"))
    assert stats["envoy.tcp_downstream_cx_total"] >= 2


def test_waypoint_applies_http_policy(started, state_dir):
    pg = _up(started, state_dir, "envoy+mtls", "node-proxy+waypoint", TrafficPolicy(
        name="retry", service="backend", retries=RetryPolicy(attempts=5)))
    assert codes(fetch(pg.url + "?status=503:50", 50))[200] >= 45
    assert envoy_stats(pg.admin_port("waypoint-backend"))["envoy.upstream_rq_retry"] >= 5


@pytest.mark.parametrize(("mesh", "mode", "policy", "match"), [
    ("envoy", "node-proxy", TrafficPolicy(name="r", retries=RetryPolicy()),
     "envoy .*L4 node proxy.* cannot express policy 'r': retries"),
    ("envoy", "server-only", TrafficPolicy(name="lb", load_balancing=LoadBalancing()),
     "server-only cannot express policy 'lb'"),
    ("envoy+mtls", "client-only", None, "mTLS needs a proxy on both ends"),
    ("nginx", "node-proxy", None, "node-proxy is only implemented for envoy"),
])
def test_impossible_combinations_are_rejected(state_dir, mesh, mode, policy, match):
    with pytest.raises(MeshError, match=match):
        Playground(mesh=mesh, mode=mode, policy=policy, state_dir=state_dir)


def test_per_hop_policies_timeout_on_frontend_delay_on_backend(started, state_dir):
    """Istio's bookinfo timeout task: a standing delay on backend, the run's timeout on
    frontend; the client sees the frontend hop time out."""
    import time

    import httpx

    topo = CHAIN.model_copy(update={"policies": [TrafficPolicy(
        name="slow-backend", service="backend",
        fault=FaultInjection(delay=FaultDelay(delay_s=1.0)))]})
    pg = _up(started, state_dir, "envoy", "both", TrafficPolicy(
        name="fe-timeout", service="frontend", timeout=TimeoutPolicy(request_timeout_s=0.3)),
        topology=topo)
    t0 = time.perf_counter()
    assert httpx.get(pg.url, timeout=5).status_code == 504
    assert time.perf_counter() - t0 < 0.9
    assert envoy_stats(pg.admin_port("frontend-0-sidecar"))["envoy.fault_delays"] == 1


def test_standing_policies_are_checked_too(state_dir):
    topo = CHAIN.model_copy(update={"policies": [TrafficPolicy(
        name="slow-backend", service="backend",
        fault=FaultInjection(delay=FaultDelay(delay_s=1.0)))]})
    with pytest.raises(MeshError, match="nginx cannot express policy 'slow-backend'"):
        Playground(topo, mesh="nginx", state_dir=state_dir)
    with pytest.raises(ValueError, match="each standing policy names its service"):
        Topology(policies=[TrafficPolicy(name="x", retries=RetryPolicy())])
