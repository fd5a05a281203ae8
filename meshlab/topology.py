"""The playground's topology model: services (replicas of the echo workload, optionally calling a
next hop), a client, and the data plane carrying traffic between them (kind, mode, mTLS, HTTP/2).
Pure pydantic (L1); the playground compiles it to processes and proxy configuration.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal
from urllib.parse import urlencode

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from meshlab.policy import MtlsMode, TrafficPolicy
from meshlab.registry import DATA_PLANES

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns_label(value: str) -> str:
    # a fix, not a regex: pydantic's pattern message would show the expression itself
    if not _NAME_RE.match(value):
        raise ValueError(f"{value!r}: use lowercase letters, digits and '-' (starting and "
                         f"ending with a letter or digit), e.g. 'backend-2'")
    return value


Name = Annotated[str, AfterValidator(_dns_label)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataPlaneKind(enum.StrEnum):
    """What carries traffic between services: nothing (direct), or one kind of proxy. These are
    the built-in names; `meshlab.registry.DATA_PLANES` holds every valid one (registered data
    planes included), and `DataPlane.kind` is checked against it."""

    NONE = "none"
    ENVOY = "envoy"
    NGINX = "nginx"
    HAPROXY = "haproxy"


class Mode(enum.StrEnum):
    """Where proxies sit, as the Istio benchmark names it.

    both: client sidecar + server sidecar; client-only / server-only: one of them; ingress: one
    shared gateway in front of sidecar-carrying services; node-proxy: one shared L4 proxy per node
    carrying mTLS (ambient-like), with an optional L7 waypoint proxy per service.
    """

    BOTH = "both"
    CLIENT_ONLY = "client-only"
    SERVER_ONLY = "server-only"
    INGRESS = "ingress"
    NODE_PROXY = "node-proxy"


class Workload(_Model):
    """The echo server's default behaviour, fortio style; a request's own query overrides it."""

    delay: str | None = Field(default=None, description="e.g. '1ms' or '10ms:20,1s:0.5'")
    status: str | None = Field(default=None, description="e.g. '503:50'")
    size: str | None = Field(default=None, description="response body, e.g. '1024' or '1k:50'")

    def defaults_query(self) -> str:
        """The `--defaults` query string for the echo server (empty when nothing is set)."""
        return urlencode({k: v for k, v in (("delay", self.delay), ("status", self.status),
                                            ("size", self.size)) if v}, safe=":,")


class Service(_Model):
    """A service: `replicas` copies of the echo workload; `calls` makes it relay to a next hop."""

    name: Name = Field(min_length=1, max_length=40)
    replicas: int = Field(default=1, ge=1, le=16)
    workload: Workload = Field(default_factory=Workload)
    replica_workloads: dict[int, Workload] = Field(default_factory=dict, description=(
        "per-replica overrides by 0-based index, e.g. {1: {status: '503:50'}}"))
    calls: str | None = Field(default=None, description="the next hop (a service name)")
    node: Name | None = Field(default=None, description=(
        "node-proxy mode: the node this service runs on (default: its own node)"))

    def workload_for(self, replica: int) -> Workload:
        return self.replica_workloads.get(replica, self.workload)

    @model_validator(mode="after")
    def _replicas(self) -> Service:
        bad = sorted(i for i in self.replica_workloads if not 0 <= i < self.replicas)
        if bad:
            raise ValueError(f"replica_workloads: replica index {bad[0]} is outside "
                             f"0..{self.replicas - 1}")
        if self.calls == self.name:
            raise ValueError(f"service {self.name!r} cannot call itself")
        return self


DataPlaneName = Annotated[str, AfterValidator(DATA_PLANES.accept)]


def _proxy_kinds() -> str:
    """`envoy, haproxy or nginx`: the data planes that are a proxy (all but `none`)."""
    kinds = [k for k in DATA_PLANES.names() if k != DataPlaneKind.NONE]
    return ", ".join(kinds[:-1]) + (" or " if len(kinds) > 1 else "") + kinds[-1]


class DataPlane(_Model):
    """The data plane under test; `kind` is a name registered in `meshlab.registry.DATA_PLANES`
    (`none`, `envoy`, `nginx`, `haproxy` built in)."""

    kind: DataPlaneName = DataPlaneKind.ENVOY.value
    mode: Mode = Mode.BOTH
    mtls: MtlsMode = MtlsMode.OFF
    http2: bool = Field(default=False, description="HTTP/2 between Envoy proxies (as Istio does)")
    waypoint: bool = Field(default=False, description="node-proxy mode: add an L7 waypoint")
    concurrency: int = Field(default=1, ge=1, le=64, description="worker threads per proxy")

    @model_validator(mode="after")
    def _consistent(self) -> DataPlane:
        if self.kind == DataPlaneKind.NONE and (self.mtls != MtlsMode.OFF or self.http2):
            raise ValueError(f"data plane none carries no mTLS or HTTP/2; pick "
                             f"{_proxy_kinds()}")
        if self.http2 and self.kind != DataPlaneKind.ENVOY:
            raise ValueError(f"http2 between proxies is only implemented for envoy, not "
                             f"{self.kind}")
        if self.waypoint and self.mode != Mode.NODE_PROXY:
            raise ValueError("waypoint needs mode node-proxy")
        return self

    @property
    def label(self) -> str:
        """The mesh string this data plane is written as in a profile (`envoy+mtls+h2`)."""
        parts = [str(self.kind)]
        if self.mtls == MtlsMode.STRICT:
            parts.append("mtls")
        elif self.mtls == MtlsMode.PERMISSIVE:
            parts.append("mtls-permissive")
        if self.http2:
            parts.append("h2")
        return "+".join(parts)


class Topology(_Model):
    """Services, the client's entry service, the data plane and the policy applied to it."""

    services: list[Service] = Field(
        default_factory=lambda: [Service(name="backend")], min_length=1)
    entry: str | None = Field(default=None, description="the service the client calls "
                                                         "(default: the first)")
    client: Name = Field(default="client", description="the client's name")
    data_plane: DataPlane = Field(default_factory=DataPlane)
    policy: TrafficPolicy | None = Field(default=None, description=(
        "the run's policy (a profile's policies dimension sets it)"))
    policies: list[TrafficPolicy] = Field(default_factory=list, description=(
        "standing per-service policies (each names its `service`), e.g. a fault on backend "
        "while the run's policy sets a timeout on frontend; the run's policy wins for its "
        "service"))

    @model_validator(mode="after")
    def _graph(self) -> Topology:
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"services: names must be unique, repeated: {', '.join(dupes)}")
        if self.client in names:
            raise ValueError(f"client name {self.client!r} is also a service name")
        if self.entry is not None and self.entry not in names:
            raise ValueError(f"entry: no service named {self.entry!r}")
        for i, s in enumerate(self.services):
            if s.calls is not None and s.calls not in names:
                raise ValueError(f"services[{i}].calls: no service named {s.calls!r}; choose "
                                 f"one of {', '.join(names)}")
        # a chain must end: follow calls from every service
        for s in self.services:
            seen = {s.name}
            nxt = s.calls
            while nxt is not None:
                if nxt in seen:
                    raise ValueError(f"services: calls form a cycle through {nxt!r}")
                seen.add(nxt)
                nxt = self.service(nxt).calls
        for where, pol in [("policy", self.policy)] + [
                (f"policies[{i}]", p) for i, p in enumerate(self.policies)]:
            if pol is not None and pol.service is not None and pol.service not in names:
                raise ValueError(f"{where}.service: no service named {pol.service!r}")
        targets = [p.service for p in self.policies]
        if None in targets:
            raise ValueError("policies: each standing policy names its service")
        dupes = sorted({t for t in targets if t is not None and targets.count(t) > 1})
        if dupes:
            raise ValueError(f"policies: more than one policy for service {dupes[0]!r}")
        return self

    def policy_for(self, service: str) -> TrafficPolicy | None:
        """The policy on traffic towards `service`: the run's policy when it targets this
        service (or every service), else a standing policy naming it."""
        pol = self.policy
        if pol is not None and pol.service == service:
            return pol
        for p in self.policies:
            if p.service == service:
                return p
        return pol if pol is not None and pol.service is None else None

    def all_policies(self) -> list[TrafficPolicy]:
        return ([self.policy] if self.policy is not None else []) + list(self.policies)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def entry_service(self) -> Service:
        return self.service(self.entry) if self.entry else self.services[0]

    def chain(self) -> list[Service]:
        """Services a request visits, entry first (`frontend -> backend`)."""
        out = [self.entry_service]
        while out[-1].calls is not None:
            out.append(self.service(out[-1].calls))
        return out

    def node_of(self, service: Service) -> str:
        return service.node or f"node-{service.name}"

    def with_data_plane(self, data_plane: DataPlane, policy: TrafficPolicy | None = None,
                        ) -> Topology:
        return self.model_copy(update={"data_plane": data_plane, "policy": policy})


MeshOption = Literal["mtls", "mtls-permissive", "h2", "waypoint"]
MESH_OPTIONS: tuple[str, ...] = ("mtls", "mtls-permissive", "h2", "waypoint")


def parse_mesh(text: str, *, mode: str = "both") -> DataPlane:
    """Parse a profile's mesh string `<kind>[+option...]` with options `mtls` (strict),
    `mtls-permissive`, `h2` (envoy) and `waypoint` (node-proxy), e.g. `envoy+mtls+h2`.

    Raises ValueError with the accepted grammar when the text does not parse."""
    kind_text, *opts = text.strip().lower().split("+")
    kinds = DATA_PLANES.names()
    if kind_text not in kinds:
        raise ValueError(f"mesh {text!r}: {DATA_PLANES.unknown_message(kind_text)}, "
                         f"optionally with +mtls, +mtls-permissive, +h2 or +waypoint")
    mode_text, _, mode_opt = mode.partition("+")
    modes = [str(m) for m in Mode]
    if mode_text not in modes or mode_opt not in ("", "waypoint"):
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(modes)} "
                         f"(or node-proxy+waypoint)")
    mtls = MtlsMode.OFF
    http2 = False
    waypoint = mode_opt == "waypoint"
    for opt in opts:
        if opt == "mtls":
            mtls = MtlsMode.STRICT
        elif opt == "mtls-permissive":
            mtls = MtlsMode.PERMISSIVE
        elif opt == "h2":
            http2 = True
        elif opt == "waypoint":
            waypoint = True
        else:
            raise ValueError(f"mesh {text!r}: unknown option {opt!r}; options are "
                             f"{', '.join(MESH_OPTIONS)}")
    return DataPlane(kind=kind_text, mode=Mode(mode_text), mtls=mtls,
                     http2=http2, waypoint=waypoint)
