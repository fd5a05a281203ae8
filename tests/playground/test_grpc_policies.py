"""Policies by protocol in the playground: gRPC-status retries and per-call deadlines through a
real Envoy, what nginx and haproxy can and cannot express for gRPC, and HTTP policies refused on
raw TCP, each error naming the policy field, the protocol and the data plane."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from meshlab.errors import MeshError
from meshlab.playground import envoy, haproxy, nginx
from meshlab.playground.playground import Playground, check_topology, resolve_topology
from meshlab.playground.telemetry import envoy_stats
from meshlab.policy import TrafficPolicy
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners.native import NativeRunner
from meshlab.topology import Service, Topology, Workload

pytestmark = pytest.mark.timeout(120)

GRPC_RETRY = TrafficPolicy(name="grpc-retry", retries={
    "attempts": 5, "retry_on": ["unavailable", "connect-failure"]})


def _grpc(url: str, n: int) -> RunResult:
    spec = RunSpec(target=url, protocol="grpc", connections=2, streams_per_connection=4,
                   max_requests=n, duration_s=20.0, timeout_s=5.0, warmup_s=0.0)
    return asyncio.run(NativeRunner().run(spec))


def _topo(workload: Workload) -> Topology:
    return Topology(services=[Service(name="backend", replicas=2, workload=workload)])


def test_envoy_retries_grpc_unavailable_into_successes(started: list[Playground],
                                                      state_dir: Path) -> None:
    # the echo answers UNAVAILABLE (HTTP 503 -> gRPC 14) to 25 % of calls
    flaky = _topo(Workload(status="503:25"))
    bare = Playground(flaky, mesh="envoy", protocol="grpc", state_dir=state_dir)
    started.append(bare)
    res = _grpc(bare.start().url, 300)
    assert res.error_kinds.get("grpc_unavailable", 0) >= 30, res.error_kinds   # ~75 expected
    bare.stop()

    pg = Playground(flaky, mesh="envoy", policy=GRPC_RETRY, protocol="grpc",
                    state_dir=state_dir)
    started.append(pg)
    res = _grpc(pg.start().url, 300)
    # 0.25^6 of calls fail all six tries: about 0.07 of 300
    assert res.requests == 300 and res.error_kinds.get("grpc_unavailable", 0) <= 3, \
        res.error_kinds
    stats = envoy_stats(pg.admin_port("client-sidecar"))
    assert stats["envoy.upstream_rq_retry"] >= 30
    assert stats["envoy.upstream_rq_retry_success"] >= 30


def test_envoy_per_call_deadline_gives_deadline_exceeded(started: list[Playground],
                                                        state_dir: Path) -> None:
    slow = _topo(Workload(delay="600ms"))
    policy = TrafficPolicy(name="deadline", timeout={"request_timeout_s": 0.1})
    pg = Playground(slow, mesh="envoy", policy=policy, protocol="grpc", state_dir=state_dir)
    started.append(pg)
    res = _grpc(pg.start().url, 16)
    assert res.requests == 16
    assert res.error_kinds == {"grpc_deadline_exceeded": 16}
    # every call ended at the proxy's deadline, well before the echo's 600 ms answer
    assert res.latency.percentile_us(50) < 450_000


def test_envoy_honours_a_shorter_grpc_timeout_from_the_client(started: list[Playground],
                                                              state_dir: Path) -> None:
    # the policy allows 5 s; the client's own deadline (grpc-timeout: 100 ms) wins
    slow = _topo(Workload(delay="600ms"))
    policy = TrafficPolicy(name="deadline", timeout={"request_timeout_s": 5})
    pg = Playground(slow, mesh="envoy", policy=policy, protocol="grpc", state_dir=state_dir)
    started.append(pg)
    spec = RunSpec(target=pg.start().url, protocol="grpc", connections=2,
                   streams_per_connection=4, max_requests=16, duration_s=20.0, timeout_s=5.0,
                   warmup_s=0.0, headers=(("grpc-timeout", "100m"),))
    res = asyncio.run(NativeRunner().run(spec))
    assert res.error_kinds == {"grpc_deadline_exceeded": 16}
    # without the header the same calls take the echo's 600 ms and succeed
    assert _grpc(pg.url, 8).status_codes == {200: 8}


def _config(mesh: str, policy: TrafficPolicy, protocol: str) -> str:
    topo = resolve_topology(_topo(Workload()), mesh=mesh, policy=policy)
    plan = check_topology(topo, protocol)
    if mesh.startswith("envoy"):
        return "\n".join(json.dumps(envoy.compile_proxy(p)) for p in plan.proxies)
    if mesh.startswith("nginx"):
        return "\n".join(nginx.compile_proxy(p, Path("/w")) for p in plan.proxies)
    return "\n".join(haproxy.compile_proxy(p) for p in plan.proxies)


def test_envoy_renders_grpc_conditions_and_a_stream_deadline() -> None:
    policy = TrafficPolicy(name="g", retries={"attempts": 2, "retry_on": [
        "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"]},
        timeout={"request_timeout_s": 1.5})
    text = _config("envoy", policy, "grpc")
    assert '"retry_on": "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable"' \
        in text
    assert '"max_stream_duration": {"max_stream_duration": "1.5s", ' \
           '"grpc_timeout_header_max": "1.5s"}' in text
    # on HTTP the same timeout stays the router's
    http = _config("envoy", TrafficPolicy(name="t", timeout={"request_timeout_s": 1.5}), "h2c")
    assert '"timeout": "1.5s"' in http and "max_stream_duration" not in http


@pytest.mark.parametrize("mesh", ["nginx", "haproxy"])
def test_grpc_status_retries_are_refused_where_the_proxy_cannot_read_them(mesh: str) -> None:
    with pytest.raises(MeshError) as err:
        _config(mesh, GRPC_RETRY, "grpc")
    text = str(err.value)
    assert f"data plane {mesh}" in text and "'grpc-retry'" in text
    assert "on protocol grpc" in text and "retries.retry_on" in text and "unavailable" in text


def test_nginx_grpc_keeps_what_grpc_next_upstream_expresses() -> None:
    policy = TrafficPolicy(name="g", retries={"attempts": 2,
                                              "retry_on": ["connect-failure", "reset"]},
                           timeout={"request_timeout_s": 2})
    text = _config("nginx", policy, "grpc")
    assert "grpc_next_upstream error timeout non_idempotent;" in text
    assert "grpc_next_upstream_tries 3;" in text and "grpc_read_timeout 2000ms;" in text
    ha = _config("haproxy", policy, "grpc")
    assert "retry-on conn-failure empty-response junk-response" in ha


@pytest.mark.parametrize("protocol", ["http1", "h2c"])
@pytest.mark.parametrize("mesh", ["envoy", "nginx", "haproxy"])
def test_grpc_conditions_need_a_grpc_route(mesh: str, protocol: str) -> None:
    with pytest.raises(MeshError) as err:
        _config(mesh, GRPC_RETRY, protocol)
    text = str(err.value)
    assert f"data plane {mesh}" in text and "retries.retry_on" in text
    assert f"protocol {protocol} carries no gRPC status" in text


@pytest.mark.parametrize("mesh", ["envoy", "envoy+mtls", "nginx", "haproxy"])
@pytest.mark.parametrize("body", [
    {"retries": {"attempts": 2}}, {"timeout": {"request_timeout_s": 1}},
    {"rate_limit": {"requests_per_s": 10}}, {"fault": {"abort": {"http_status": 503}}}])
def test_http_policies_are_refused_on_tcp(mesh: str, body: dict[str, object]) -> None:
    with pytest.raises(MeshError) as err:
        _config(mesh, TrafficPolicy.model_validate({"name": "l7", **body}), "tcp")
    text = str(err.value)
    assert f"data plane {mesh.split('+')[0]}" in text and "on protocol tcp" in text
    assert next(iter(body)) in text and "connections, not requests" in text


def test_tcp_renders_balancing_and_connection_limits() -> None:
    policy = TrafficPolicy(name="l4", load_balancing={"algorithm": "least_request"},
                           circuit_breaker={"max_connections": 8})
    assert "least_conn;" in _config("nginx", policy.model_copy(update={
        "circuit_breaker": None}), "tcp")
    ha = _config("haproxy", policy, "tcp")
    assert "balance leastconn" in ha and "maxconn 4" in ha
    env = _config("envoy", policy, "tcp")
    assert '"lb_policy": "LEAST_REQUEST"' in env and '"max_connections": 8' in env
