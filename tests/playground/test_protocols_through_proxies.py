"""h2c and gRPC end to end through the playground's data planes on loopback, driven by the native
runner: every call answered, spread over the replicas, the protocol kept to the app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshlab.playground.playground import Playground
from meshlab.playground.telemetry import envoy_stats
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners.native import NativeRunner
from meshlab.topology import Service, Topology

pytestmark = pytest.mark.timeout(90)


def _load(url: str, protocol: str, n: int = 400) -> RunResult:
    # the connections open before the run starts: a short warm-up is enough
    spec = RunSpec(target=url, protocol=protocol, connections=2, streams_per_connection=4,
                   max_requests=n, duration_s=10.0, timeout_s=3.0, warmup_s=0.1)
    return asyncio.run(NativeRunner().run(spec))


def _up(started: list[Playground], state_dir: Path, mesh: str, mode: str = "both",
        protocol: str = "http1") -> Playground:
    topo = Topology(services=[Service(name="backend", replicas=2)])
    pg = Playground(topo, mesh=mesh, mode=mode, state_dir=state_dir, protocol=protocol)
    started.append(pg)
    return pg.start()


@pytest.mark.parametrize(("mesh", "mode"), [
    ("envoy", "both"), ("envoy", "server-only"), ("envoy", "client-only"),
    ("envoy+mtls", "both"), ("envoy+mtls+h2", "both"),
])
def test_h2c_and_grpc_through_envoy(started: list[Playground], state_dir: Path, mesh: str,
                                    mode: str) -> None:
    pg = _up(started, state_dir, mesh, mode)
    for protocol in ("h2c", "grpc"):
        res = _load(pg.url, protocol)
        assert res.requests == 400 and res.errors == 0, (protocol, res.error_kinds)
        assert res.status_codes == {200: 400}
    if "h2" in mesh:          # mTLS with ALPN h2 between the sidecars
        stats = envoy_stats(pg.admin_port("client-sidecar"))
        assert stats["envoy.upstream_cx_http2_total"] >= 1


def test_http1_still_http1_to_the_app_through_envoy(started: list[Playground],
                                                      state_dir: Path) -> None:
    pg = _up(started, state_dir, "envoy")
    res = _load(pg.url + "?status=503:20", "http1", 300)
    assert res.requests == 300 and set(res.status_codes) == {200, 503}


# mTLS needs a proxy on both ends: no server-only case for it
_PLANES = [(mesh, mode) for mesh in ("nginx", "haproxy", "nginx+mtls", "haproxy+mtls")
           for mode in ("both", "server-only") if "mtls" not in mesh or mode == "both"]


@pytest.mark.parametrize(("mesh", "mode"), _PLANES)
@pytest.mark.parametrize("protocol", ["h2c", "grpc"])
def test_h2c_and_grpc_through_nginx_and_haproxy(started: list[Playground], state_dir: Path,
                                                mesh: str, mode: str, protocol: str) -> None:
    pg = _up(started, state_dir, mesh, mode, protocol)
    res = _load(pg.url, protocol)
    assert res.requests == 400 and res.errors == 0, res.error_kinds
    assert res.status_codes == {200: 400}


@pytest.mark.parametrize("mesh", ["envoy", "envoy+mtls", "nginx", "nginx+mtls", "haproxy",
                                  "haproxy+mtls"])
def test_tcp_through_every_data_plane(started: list[Playground], state_dir: Path,
                                      mesh: str) -> None:
    pg = _up(started, state_dir, mesh, "both", "tcp")
    assert pg.url.startswith("tcp://")
    res = _load(pg.url, "tcp")
    logs = {p.name: p.log_tail(400) for p in pg.processes}
    assert res.requests == 400 and res.errors == 0, (res.error_kinds, pg.dead(), logs)
    assert res.status_codes == {200: 400}


def test_unknown_protocols_are_refused() -> None:
    # (a chain carries tcp since its relays forward bytes: test_protocol_chains.py)
    from meshlab.errors import MeshError

    with pytest.raises(MeshError, match="not h2"):
        Playground(mesh="envoy", protocol="h2")


@pytest.mark.parametrize(("mesh", "mode", "spread"), [
    ("envoy", "node-proxy", False), ("envoy", "both", True), ("nginx", "both", True),
    ("haproxy", "both", True),
])
def test_one_grpc_connection_spreads_only_through_an_l7_proxy(
        started: list[Playground], state_dir: Path, mesh: str, mode: str, spread: bool) -> None:
    from meshlab.playground.shares import call_shares

    topo = Topology(services=[Service(name="backend", replicas=3)])
    pg = Playground(topo, mesh=mesh, mode=mode, state_dir=state_dir, protocol="grpc")
    started.append(pg)
    shares = call_shares(pg.start().url, calls=300)
    assert sum(shares.values()) == 300 and "?" not in shares
    if spread:
        assert len(shares) == 3 and min(shares.values()) >= 60, shares
    else:
        assert list(shares.values()) == [300], shares
