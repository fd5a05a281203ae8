"""From a Topology to a plan: which apps and proxies run, on which ports, with which listeners,
upstreams, TLS and policy. The data plane compilers (envoy, nginx, haproxy) turn each proxy of
the plan into configuration text; the plan itself knows no proxy syntax.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from meshlab.errors import MeshError
from meshlab.playground.certs import CertFiles
from meshlab.policy import MtlsMode, TrafficPolicy
from meshlab.topology import DataPlaneKind, Mode, Service, Topology

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Endpoint:
    port: int
    name: str                       # replica ("backend-0") or proxy ("waypoint-backend")
    host: str = HOST


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str                       # cluster / backend name
    service: str                    # destination service
    endpoints: tuple[Endpoint, ...]
    tls: CertFiles | None = None    # originate mTLS with this identity
    peer: str | None = None         # the identity the peer must present
    http2: bool = False
    protocol: str = "http1"         # what is sent upstream: http1 or grpc (see for_protocol)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str                       # inbound | outbound-<service> | ...
    port: int
    direction: str                  # inbound | outbound
    upstream: Upstream
    tls: CertFiles | None = None    # terminate TLS with this identity (inbound)
    mtls: MtlsMode = MtlsMode.OFF   # inbound: off, permissive (TLS or plaintext), strict
    policy: TrafficPolicy | None = None
    l4: bool = False                # a TCP proxy (node proxy), no HTTP processing
    accept_http2: bool = False
    protocol: str = "http1"         # what arrives: http1, h2c or grpc (see for_protocol)


@dataclass(frozen=True, slots=True)
class ProxySpec:
    name: str                       # "client-sidecar", "backend-0-sidecar", "gateway" ...
    role: str                       # sidecar | gateway | node-proxy | waypoint
    kind: str                       # a data plane name (meshlab.registry.DATA_PLANES)
    admin_port: int
    listeners: tuple[Listener, ...]
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class AppSpec:
    name: str                       # "backend-0"
    service: str
    replica: int
    port: int
    defaults: str = ""              # echo --defaults
    forward_port: int | None = None  # relays: where the next hop is reached
    tcp: bool = False               # a raw TCP echo instead of HTTP (protocol tcp)
    raw: bool = False               # a relay forwarding bytes (h2c, grpc, tcp), not HTTP/1.1


@dataclass(slots=True)
class Plan:
    apps: list[AppSpec] = field(default_factory=list)
    proxies: list[ProxySpec] = field(default_factory=list)
    entry_port: int = 0
    scheme: str = "http"            # tcp: the plan carries raw TCP (see for_protocol)

    @property
    def entry_url(self) -> str:
        if self.scheme == "tcp":
            return f"tcp://{HOST}:{self.entry_port}"
        return f"http://{HOST}:{self.entry_port}/"


PLAN_PROTOCOLS = ("http1", "h2c", "grpc", "tcp")


def for_protocol(plan: Plan, protocol: str) -> Plan:
    """The plan with each listener and upstream told which protocol it carries when the load
    speaks `protocol`: gRPC is HTTP/2 on every hop; h2c reaches the entry listener, and the
    proxies behind it may forward HTTP/1.1 (nginx's proxy_pass does)."""
    if protocol not in PLAN_PROTOCOLS:
        raise MeshError(f"request.protocol: the playground carries "
                        f"{', '.join(PLAN_PROTOCOLS)}, not {protocol}")
    if protocol == "http1":
        return plan
    # a service that calls another relays bytes: whatever its inbound proxy sends it (h2c,
    # HTTP/2 for gRPC, HTTP/1.1 from a proxy that downgrades, raw TCP) reaches its outbound one
    apps = [dataclasses.replace(a, raw=a.forward_port is not None, tcp=protocol == "tcp")
            for a in plan.apps]
    if protocol == "tcp":
        proxies = [dataclasses.replace(proxy, listeners=tuple(
            dataclasses.replace(lst, l4=True, protocol="tcp", accept_http2=False)
            for lst in proxy.listeners)) for proxy in plan.proxies]
        return Plan(apps=apps, proxies=proxies, entry_port=plan.entry_port, scheme="tcp")
    up_proto = "grpc" if protocol == "grpc" else "http1"
    proxies = []
    for proxy in plan.proxies:
        listeners = tuple(dataclasses.replace(
            lst, protocol=protocol if protocol == "grpc" or lst.port == plan.entry_port
            else "http1", upstream=dataclasses.replace(lst.upstream, protocol=up_proto))
            for lst in proxy.listeners)
        proxies.append(dataclasses.replace(proxy, listeners=listeners))
    return Plan(apps=apps, proxies=proxies, entry_port=plan.entry_port)


PortSource = Callable[[], int]
CertSource = Callable[[str], CertFiles]


def build_plan(topology: Topology, *, port: PortSource, certs: CertSource) -> Plan:
    """Lay out processes and listeners for the topology's data plane and mode."""
    dp = topology.data_plane
    mode = dp.mode
    plan = Plan()
    mtls = dp.mtls
    if dp.kind != DataPlaneKind.NONE and mtls != MtlsMode.OFF and \
            mode in (Mode.CLIENT_ONLY, Mode.SERVER_ONLY):
        raise MeshError(f"data plane {dp.kind} in mode {mode}: mTLS needs a proxy on both ends "
                        f"of a hop; use mode both, ingress or node-proxy, or mtls off")
    if dp.kind != DataPlaneKind.NONE and mode == Mode.NODE_PROXY and \
            dp.kind != DataPlaneKind.ENVOY:
        raise MeshError(f"data plane {dp.kind}: mode node-proxy is only implemented for envoy")

    app_ports = {(s.name, r): port() for s in topology.services for r in range(s.replicas)}
    if dp.kind == DataPlaneKind.NONE:
        return _plan_direct(topology, plan, app_ports)
    if mode == Mode.NODE_PROXY:
        return _plan_node_proxy(topology, plan, app_ports, port=port, certs=certs)

    server_side = mode in (Mode.BOTH, Mode.SERVER_ONLY, Mode.INGRESS)
    client_side = mode in (Mode.BOTH, Mode.CLIENT_ONLY, Mode.INGRESS)
    inbound_ports = {key: port() for key in app_ports} if server_side else {}
    tls_on = mtls != MtlsMode.OFF

    policy_for = topology.policy_for

    def outbound(caller: str, target: Service) -> Listener:
        if server_side:
            eps = tuple(Endpoint(inbound_ports[(target.name, r)], f"{target.name}-{r}")
                        for r in range(target.replicas))
        else:
            eps = tuple(Endpoint(app_ports[(target.name, r)], f"{target.name}-{r}")
                        for r in range(target.replicas))
        up = Upstream(name=target.name, service=target.name, endpoints=eps,
                      tls=certs(caller) if tls_on else None,
                      peer=target.name if tls_on else None, http2=dp.http2)
        return Listener(name=f"outbound-{target.name}", port=port(), direction="outbound",
                        upstream=up, policy=policy_for(target.name))

    def inbound(s: Service, r: int) -> Listener:
        up = Upstream(name=f"local-{s.name}", service=s.name,
                      endpoints=(Endpoint(app_ports[(s.name, r)], f"{s.name}-{r}"),))
        # with a client-side proxy, L7 policies live there (as Istio's VirtualService and
        # DestinationRule do); with server-only, the inbound sidecar is the only place
        return Listener(name="inbound", port=inbound_ports[(s.name, r)], direction="inbound",
                        upstream=up, tls=certs(s.name) if tls_on else None, mtls=mtls,
                        policy=None if client_side else policy_for(s.name),
                        accept_http2=dp.http2)

    entry = topology.entry_service
    if client_side:
        # a gateway has its own identity, not the client's
        role = "gateway" if mode == Mode.INGRESS else "sidecar"
        name = "gateway" if mode == Mode.INGRESS else f"{topology.client}-sidecar"
        first = outbound("gateway" if mode == Mode.INGRESS else topology.client, entry)
        plan.proxies.append(ProxySpec(name=name, role=role, kind=dp.kind, admin_port=port(),
                                      listeners=(first,), concurrency=dp.concurrency))
        plan.entry_port = first.port
    else:
        plan.entry_port = inbound_ports[(entry.name, 0)]

    for s in topology.services:
        for r in range(s.replicas):
            listeners: list[Listener] = []
            if server_side:
                listeners.append(inbound(s, r))
            forward_port: int | None = None
            if s.calls is not None:
                target = topology.service(s.calls)
                if client_side:
                    out = outbound(s.name, target)
                    listeners.append(out)
                    forward_port = out.port
                else:
                    forward_port = inbound_ports[(target.name, 0)]
            plan.apps.append(_app(s, r, app_ports, forward_port))
            if listeners:
                plan.proxies.append(ProxySpec(
                    name=f"{s.name}-{r}-sidecar", role="sidecar", kind=dp.kind,
                    admin_port=port(), listeners=tuple(listeners), concurrency=dp.concurrency))
    return plan


def _app(s: Service, r: int, app_ports: dict[tuple[str, int], int],
         forward_port: int | None) -> AppSpec:
    return AppSpec(name=f"{s.name}-{r}", service=s.name, replica=r, port=app_ports[(s.name, r)],
                   defaults=s.workload_for(r).defaults_query(), forward_port=forward_port)


def _plan_direct(topology: Topology, plan: Plan,
                 app_ports: dict[tuple[str, int], int]) -> Plan:
    # no proxy, no load balancing: callers reach replica 0 of the next service
    for s in topology.services:
        fwd = app_ports[(s.calls, 0)] if s.calls else None
        plan.apps.extend(_app(s, r, app_ports, fwd) for r in range(s.replicas))
    plan.entry_port = app_ports[(topology.entry_service.name, 0)]
    return plan


def _plan_node_proxy(topology: Topology, plan: Plan, app_ports: dict[tuple[str, int], int], *,
                     port: PortSource, certs: CertSource) -> Plan:
    """Ambient-like: one L4 proxy per node carries (m)TLS between nodes; an optional L7
    waypoint per called service applies HTTP policies and balances across replicas."""
    dp = topology.data_plane
    tls_on = dp.mtls != MtlsMode.OFF
    client_node = f"node-{topology.client}"
    nodes: dict[str, list[Listener]] = {client_node: []}
    for s in topology.services:
        nodes.setdefault(topology.node_of(s), [])
    ztunnel = {n: f"ztunnel-{n}" for n in nodes}
    inbound_ports = {key: port() for key in app_ports}
    waypoint_ports = {s.name: port() for s in topology.services} if dp.waypoint else {}

    policy_for = topology.policy_for

    # inbound: one TLS port per local replica, forwarding to the app
    for s in topology.services:
        node = topology.node_of(s)
        for r in range(s.replicas):
            up = Upstream(name=f"local-{s.name}-{r}", service=s.name,
                          endpoints=(Endpoint(app_ports[(s.name, r)], f"{s.name}-{r}"),))
            nodes[node].append(Listener(
                name=f"inbound-{s.name}-{r}", port=inbound_ports[(s.name, r)],
                direction="inbound", upstream=up, l4=True, mtls=dp.mtls,
                tls=certs(ztunnel[node]) if tls_on else None))

    replica_eps = {s.name: tuple(Endpoint(inbound_ports[(s.name, r)], f"{s.name}-{r}")
                                 for r in range(s.replicas)) for s in topology.services}

    def outbound(node: str, target: Service) -> Listener:
        if dp.waypoint:
            eps: tuple[Endpoint, ...] = (Endpoint(waypoint_ports[target.name],
                                                  f"waypoint-{target.name}"),)
            peer = f"waypoint-{target.name}"
        else:
            eps, peer = replica_eps[target.name], None
        up = Upstream(name=target.name, service=target.name, endpoints=eps,
                      tls=certs(ztunnel[node]) if tls_on else None,
                      peer=peer if tls_on else None)
        return Listener(name=f"outbound-{target.name}", port=port(), direction="outbound",
                        upstream=up, l4=True,
                        policy=None if dp.waypoint else policy_for(target.name))

    entry = topology.entry_service
    first = outbound(client_node, entry)
    nodes[client_node].append(first)
    plan.entry_port = first.port
    for s in topology.services:
        fwd: int | None = None
        if s.calls is not None:
            out = outbound(topology.node_of(s), topology.service(s.calls))
            nodes[topology.node_of(s)].append(out)
            fwd = out.port
        plan.apps.extend(_app(s, r, app_ports, fwd) for r in range(s.replicas))
    for node, listeners in nodes.items():
        if listeners:
            plan.proxies.append(ProxySpec(name=ztunnel[node], role="node-proxy", kind=dp.kind,
                                          admin_port=port(), listeners=tuple(listeners),
                                          concurrency=dp.concurrency))
    if dp.waypoint:
        for s in topology.services:
            name = f"waypoint-{s.name}"
            # the replicas' node proxies accept only node identities: peer None accepts any
            # certificate the playground CA signed
            up = Upstream(name=s.name, service=s.name, endpoints=replica_eps[s.name],
                          tls=certs(name) if tls_on else None, http2=False)
            lst = Listener(name="inbound", port=waypoint_ports[s.name], direction="inbound",
                           upstream=up, tls=certs(name) if tls_on else None, mtls=dp.mtls,
                           policy=policy_for(s.name))
            plan.proxies.append(ProxySpec(name=name, role="waypoint", kind=dp.kind,
                                          admin_port=port(), listeners=(lst,),
                                          concurrency=dp.concurrency))
    return plan


def proxies_on_path(plan: Plan) -> list[str]:
    """The proxy processes one request passes through, entry first (each counted once: a
    sidecar carrying a hop's inbound and the next hop's outbound is one proxy). Replicas are
    interchangeable, so the walk follows the first endpoint of every upstream."""
    by_port = {lst.port: (proxy, lst) for proxy in plan.proxies for lst in proxy.listeners}
    apps = {app.port: app for app in plan.apps}
    seen: list[str] = []
    port: int | None = plan.entry_port
    for _ in range(4 * (len(by_port) + len(apps)) + 1):      # a plan is acyclic; be safe
        if port is None:
            break
        if port in by_port:
            proxy, lst = by_port[port]
            if proxy.name not in seen:
                seen.append(proxy.name)
            port = lst.upstream.endpoints[0].port
        elif port in apps:
            port = apps[port].forward_port
        else:
            break
    return seen
