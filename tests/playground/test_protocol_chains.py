"""h2c, gRPC and TCP through a chain of services (client -> frontend -> backend x2): the relay
in the middle forwards bytes, so every hop carries the load's protocol end to end."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from meshlab.playground.playground import Playground
from meshlab.playground.ports import free_ports
from meshlab.playground.relay import RawRelay
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners.native import NativeRunner
from meshlab.topology import Service, Topology

pytestmark = pytest.mark.timeout(120)

CHAIN = Topology(services=[Service(name="frontend", calls="backend"),
                           Service(name="backend", replicas=2)])


def _load(url: str, protocol: str, n: int = 200) -> RunResult:
    spec = RunSpec(target=url, protocol=protocol, connections=2, streams_per_connection=4,
                   max_requests=n, duration_s=15.0, timeout_s=3.0, warmup_s=0.0)
    return asyncio.run(NativeRunner().run(spec))


def _up(started: list[Playground], state_dir: Path, mesh: str, protocol: str,
        mode: str = "both") -> Playground:
    pg = Playground(CHAIN, mesh=mesh, mode=mode, protocol=protocol, state_dir=state_dir)
    started.append(pg)
    return pg.start()


@pytest.mark.parametrize("protocol", ["h2c", "grpc"])
@pytest.mark.parametrize(("mesh", "mode"), [
    ("none", "both"), ("envoy+mtls", "both"), ("envoy", "node-proxy"), ("nginx", "both"),
    ("nginx+mtls", "both"), ("haproxy+mtls", "both")])
def test_h2c_and_grpc_through_a_chain(started: list[Playground], state_dir: Path, mesh: str,
                                      mode: str, protocol: str) -> None:
    pg = _up(started, state_dir, mesh, protocol, mode)
    res = _load(pg.url, protocol)
    assert res.requests == 200 and res.errors == 0, (res.error_kinds, pg.dead())
    assert res.status_codes == {200: 200}


@pytest.mark.parametrize("protocol", ["h2c", "grpc"])
def test_every_envoy_hop_speaks_http2(started: list[Playground], state_dir: Path,
                                      protocol: str) -> None:
    pg = _up(started, state_dir, "envoy", protocol)
    assert _load(pg.url, protocol).errors == 0
    # each HTTP connection manager of each sidecar (client outbound, frontend inbound, the
    # frontend's outbound behind the relay, the backends' inbound) took HTTP/2 connections
    seen: dict[str, float] = {}
    for name in ("client-sidecar", "frontend-0-sidecar", "backend-0-sidecar",
                 "backend-1-sidecar"):
        text = httpx.get(f"http://127.0.0.1:{pg.admin_port(name)}/stats",
                         params={"filter": r"^http\..*downstream_cx_http2_total$"}).text
        for m in re.finditer(r"^http\.(\S+)\.downstream_cx_http2_total: (\d+)$", text, re.M):
            seen[f"{name}/{m.group(1)}"] = float(m.group(2))
    assert {k for k, v in seen.items() if v >= 1} >= {
        "client-sidecar/outbound_frontend",
        "frontend-0-sidecar/inbound", "frontend-0-sidecar/outbound_backend"}, seen
    assert seen.get("backend-0-sidecar/inbound", 0) + seen.get("backend-1-sidecar/inbound", 0) \
        >= 1, seen


@pytest.mark.parametrize("mesh", ["none", "envoy+mtls", "nginx+mtls", "haproxy+mtls"])
def test_tcp_through_a_chain(started: list[Playground], state_dir: Path, mesh: str) -> None:
    pg = _up(started, state_dir, mesh, "tcp")
    res = _load(pg.url, "tcp")
    assert res.requests == 200 and res.errors == 0, (res.error_kinds, pg.dead())


def test_raw_relay_closes_when_the_next_hop_is_down() -> None:
    listen, closed = free_ports(2)

    async def main() -> bytes:
        relay = RawRelay(name="frontend-0", upstream_port=closed)
        server = await asyncio.start_server(relay.handle, "127.0.0.1", listen)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            return data
    assert asyncio.run(main()) == b""
