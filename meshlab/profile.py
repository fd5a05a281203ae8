"""Profiles: a versionable test matrix (pydantic v2, extra="forbid") and the RunSpecs it yields.

A profile names a target and the matrix dimensions (meshes, rates, connections, repeats ...);
`Profile.expand()` yields one frozen `RunSpec` per concrete run in a stable order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from meshlab.dimensions import DEFAULT_PROTOCOL
from meshlab.errors import ProfileError
from meshlab.policy import TrafficPolicy
from meshlab.topology import Topology

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(authorization|cookie|token|secret|password|passwd|api[-_]?key|"
                          r"[-_]key$|^key$|auth|credential|session)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for header/parameter names that carry credentials (Authorization, X-Api-Key ...)."""
    return bool(_SECRET_NAME.search(name))


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy with the values of secret-bearing names replaced by `<redacted>`."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in values.items()}


_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s*(?P<name>[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:\s*(?P<value>.+)$")


def redact_document(value: Any) -> Any:
    """A deep copy of a JSON-like document with credentials replaced by `<redacted>`: values
    under secret-bearing keys (Authorization, UserCredentials, api_key ...), `Name: value`
    header strings with a secret name, and `user:password@` in URLs. For imported documents
    (fortio, Meshery ...) that are stored as they came."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            secret = isinstance(k, str) and is_secret_name(k)
            if secret and isinstance(v, str) and v:
                out[k] = REDACTED
            elif secret and isinstance(v, list | tuple) and v:
                out[k] = [REDACTED for _ in v]
            else:
                out[k] = redact_document(v)
        return out
    if isinstance(value, list | tuple):
        return [redact_document(v) for v in value]
    if isinstance(value, str):
        m = _HEADER_LINE.match(value)
        if m and is_secret_name(m.group("name")) and len(value) < 8192:
            return f"{m.group('name')}: {REDACTED}"
        return _URL_USERINFO.sub(lambda u: f"{u.group('scheme')}{REDACTED}@", value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list | tuple) else [v]


class LoadMatrix(_Model):
    """Load dimensions: every combination of `rate_rps` x `connections` is a run."""

    rate_rps: list[float] = Field(default=[0.0], min_length=1,
                                  description="requests per second; 0 = closed loop at max rate")
    connections: list[int] = Field(default=[16], min_length=1,
                                   description="persistent HTTP/1.1 connections")
    duration_s: float = Field(default=10.0, gt=0, le=86_400, description="measured seconds")
    warmup_s: float = Field(default=1.0, ge=0, le=3_600,
                            description="seconds of load before measuring (discarded)")
    max_requests: int | None = Field(default=None, gt=0,
                                     description="stop after this many measured requests")
    spread_connections: bool = Field(default=True, description=(
        "open loop: assign sends to connections round-robin so each carries rate/connections"))

    _lists = field_validator("rate_rps", "connections", mode="before")(_as_list)

    @field_validator("rate_rps")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        for r in v:
            if r < 0:
                raise ValueError(f"rate {r} must be >= 0 (0 means closed loop at max rate)")
            if r > 10_000_000:
                raise ValueError(f"rate {r} is above 10,000,000 req/s")
        return v

    @field_validator("connections")
    @classmethod
    def _conns(cls, v: list[int]) -> list[int]:
        for c in v:
            if not 1 <= c <= 10_000:
                raise ValueError(f"connections {c} must be within 1..10000")
        return v


PROTOCOLS = ("http1", "h2c", "h2", "grpc", "tcp")
Protocol = Literal["http1", "h2c", "h2", "grpc", "tcp"]
# which target schemes each protocol can be sent to (h2c: prior knowledge, so plaintext only;
# h2: TLS with ALPN; grpc: plaintext h2c or TLS)
PROTOCOL_SCHEMES = {"http1": ("http", "https"), "h2c": ("http",), "h2": ("https",),
                     "grpc": ("http", "https"), "tcp": ("tcp",)}


class RequestSpec(_Model):
    """What each request sends, and over which protocol.

    `protocol`: http1 (HTTP/1.1), h2c (HTTP/2 with prior knowledge), h2 (HTTP/2 over TLS, ALPN
    h2), grpc (unary `fgrpc.PingServer/Ping`, the target's path is ignored), tcp (send the body,
    read as many bytes echoed back; target `tcp://host:port`). A list is a matrix dimension.
    """

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    cookies: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="literal request body")
    payload_size_bytes: int = Field(default=0, ge=0, le=64 * 1024 * 1024,
                                    description="generated body of this size when no body")
    content_type: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=3_600, description="per-request timeout")
    protocol: list[Protocol] = Field(default=["http1"], min_length=1, description=(
        "http1, h2c, h2, grpc or tcp; a list runs each"))
    streams_per_connection: int = Field(default=1, ge=1, le=1000, description=(
        "h2c/h2/grpc: concurrent streams on each connection"))

    _protocols = field_validator("protocol", mode="before")(_as_list)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _body(self) -> RequestSpec:
        if self.body is not None and self.payload_size_bytes:
            raise ValueError("give either body or payload_size_bytes, not both")
        if len(set(self.protocol)) != len(self.protocol):
            raise ValueError(f"protocol: repeated entries in {self.protocol}")
        for name in self.headers:
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
        return self

    def body_bytes(self) -> bytes:
        """The body each request carries (deterministic filler for payload_size_bytes)."""
        if self.body is not None:
            return self.body.encode()
        if self.payload_size_bytes:
            pattern = b"meshlab-payload-"
            reps = self.payload_size_bytes // len(pattern) + 1
            return (pattern * reps)[: self.payload_size_bytes]
        return b""


RUNNER_NAMES = ("native", "wrk", "hey", "ab", "fortio", "h2load", "k6")


class Profile(_Model):
    """A test matrix you version as a file (cf. Meshery performance profiles, SMP)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    target: str = Field(description="http(s) URL of the service under test (tcp://host:port "
                                    "for protocol tcp)")
    runner: str = "native"
    repeats: int = Field(default=1, ge=1, le=1000)
    environment: Literal["direct", "local", "kubernetes"] = Field(default="direct", description=(
        "direct: load the target URL as is; local: a playground on loopback; kubernetes"))
    topology: Topology | dict[str, Any] | None = Field(default=None, description=(
        "environment topology: for local a meshlab.topology.Topology (services, replicas, "
        "calls; the data plane comes from meshes/modes); for kubernetes a mapping that "
        "environment validates"))
    meshes: list[str] = Field(default=["none"], min_length=1, description=(
        "data planes (local: none, envoy, nginx, haproxy) or meshes (kubernetes: none, istio...)"))
    modes: list[str] = Field(default=["both"], min_length=1, description=(
        "sidecar placement: both, client-only, server-only, ingress, node-proxy"))
    policies: list[TrafficPolicy] = Field(default_factory=list, description=(
        "named traffic policies, each a matrix dimension; empty = no policy"))
    loads: LoadMatrix = Field(default_factory=LoadMatrix)
    request: RequestSpec = Field(default_factory=RequestSpec)
    labels: dict[str, str] = Field(default_factory=dict)

    _lists = field_validator("meshes", "modes", mode="before")(_as_list)

    @field_validator("topology", mode="wrap")
    @classmethod
    def _topology(cls, v: Any, handler: ValidatorFunctionWrapHandler,
                  info: ValidationInfo) -> Any:
        # local: the playground's model, errors reported with their paths; other
        # environments keep their own mapping (the kubernetes one has other keys)
        if info.data.get("environment") == "local" and v is not None:
            return v if isinstance(v, Topology) else Topology.model_validate(v)
        return v if v is None or isinstance(v, dict) else handler(v)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL; use e.g. http://127.0.0.1:8080/")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{v!r} has an invalid port: {exc}") from None
        if parts.scheme == "tcp" and port is None:
            raise ValueError(f"{v!r} names no port; use e.g. tcp://127.0.0.1:9000")
        return v

    @model_validator(mode="after")
    def _dims(self) -> Profile:
        names = [p.name for p in self.policies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policies: names must be unique, repeated: {', '.join(dupes)}")
        if self.environment == "direct" and (self.modes != ["both"] or self.topology):
            raise ValueError("modes and topology need environment: local or kubernetes")
        scheme = urlsplit(self.target).scheme
        for proto in self.request.protocol:
            if scheme not in PROTOCOL_SCHEMES[proto]:
                allowed = " or ".join(f"{s}://" for s in PROTOCOL_SCHEMES[proto])
                raise ValueError(f"request.protocol: {proto} cannot be sent to a {scheme}:// "
                                 f"target; use a {allowed} target")
        return self

    @field_validator("runner")
    @classmethod
    def _runner(cls, v: str) -> str:
        if v not in RUNNER_NAMES:
            raise ValueError(f"unknown runner {v!r}; choose one of {', '.join(RUNNER_NAMES)}")
        return v

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Profile:
        """Validate a mapping; every problem is reported at once as one ProfileError."""
        if not isinstance(data, Mapping):
            raise ProfileError(f"(root): expected a mapping of profile keys, got "
                               f"{type(data).__name__}", source=source)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ProfileError(validation_problems(exc), source=source) from None

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Profile:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ProfileError(f"(yaml): {where}{getattr(exc, 'problem', exc)}",
                               source=source) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Load a profile from a YAML (or JSON) file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"(file): cannot read {p}: {exc.strerror}", source=str(p)) from None
        return cls.from_yaml(text, source=str(p))

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        if redact:
            d["request"]["headers"] = redact_mapping(d["request"]["headers"])
            d["request"]["cookies"] = {k: REDACTED for k in d["request"]["cookies"]}
        return d

    # expansion --------------------------------------------------------------------------
    def expand(self) -> Iterator[RunSpec]:
        """Concrete runs: repeats outermost, so every configuration is measured once before any
        is measured twice (slow drift of a noisy machine then spreads over all of them). Mesh
        `none` (the baseline) runs without policy; other meshes run once per policy."""
        index = 0
        for repeat in range(self.repeats):
            for mesh in self.meshes:
                for mode in self.modes:
                    for policy in self._policies_for(mesh):
                        for proto in self.request.protocol:
                            for rate in self.loads.rate_rps:
                                for conns in self.loads.connections:
                                    yield self._spec(index, repeat, mesh, rate, conns, mode,
                                                     policy, proto)
                                    index += 1

    def run_count(self) -> int:
        per_mesh = sum(len(self._policies_for(m)) for m in self.meshes)
        return (self.repeats * per_mesh * len(self.modes) * len(self.loads.rate_rps)
                * len(self.loads.connections) * len(self.request.protocol))

    def _policies_for(self, mesh: str) -> list[TrafficPolicy | None]:
        """`none` is the baseline: no proxy can apply a policy there, so it runs once per load
        point without one, next to each mesh's runs with every policy."""
        if mesh == "none" or not self.policies:
            return [None]
        return list(self.policies)

    def _spec(self, index: int, repeat: int, mesh: str, rate: float, conns: int, mode: str,
              policy: TrafficPolicy | None, protocol: str = DEFAULT_PROTOCOL) -> RunSpec:
        dims: list[tuple[str, str]] = [("environment", str(self.environment))]
        if self.environment != "direct":
            dims.append(("mode", mode))
        dims.append(("policy", policy.name if policy else "none"))
        req = self.request
        headers = dict(req.headers)
        if req.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in req.cookies.items())
        if req.content_type:
            headers["Content-Type"] = req.content_type
        return RunSpec(
            profile=self.name,
            index=index,
            target=self.target,
            method=req.method,
            headers=tuple(headers.items()),
            body=req.body_bytes(),
            timeout_s=req.timeout_s,
            rate_rps=float(rate),
            connections=int(conns),
            duration_s=self.loads.duration_s,
            warmup_s=self.loads.warmup_s,
            max_requests=self.loads.max_requests,
            spread_connections=self.loads.spread_connections,
            runner=self.runner,
            repeat=repeat,
            mesh=mesh,
            labels=tuple(sorted(self.labels.items())),
            dims=tuple(dims),
            policy=policy,
            protocol=protocol,
            streams_per_connection=req.streams_per_connection,
        )


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One concrete run of a profile's matrix; what a runner takes."""

    target: str
    rate_rps: float = 0.0                 # 0 = closed loop at max rate
    connections: int = 16
    duration_s: float = 10.0
    warmup_s: float = 0.0
    max_requests: int | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout_s: float = 10.0
    spread_connections: bool = True
    runner: str = "native"
    profile: str = "adhoc"
    index: int = 0
    repeat: int = 0
    mesh: str = "none"
    labels: tuple[tuple[str, str], ...] = ()
    dims: tuple[tuple[str, str], ...] = field(default=())   # environment, mode, policy name
    policy: TrafficPolicy | None = None
    protocol: str = DEFAULT_PROTOCOL       # http1, h2c, h2, grpc, tcp
    streams_per_connection: int = 1        # HTTP/2 and gRPC: concurrent streams per connection

    def dim(self, name: str, default: str = "") -> str:
        return dict(self.dims).get(name, default)

    @property
    def open_loop(self) -> bool:
        return self.rate_rps > 0

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """JSON-safe echo of the spec; secrets redacted unless `redact=False`."""
        headers = dict(self.headers)
        if redact:
            headers = redact_mapping(headers)
        return {
            "profile": self.profile,
            "index": self.index,
            "target": self.target,
            "method": self.method,
            "headers": headers,
            "body_size_bytes": len(self.body),
            "timeout_s": self.timeout_s,
            "rate_rps": self.rate_rps,
            "connections": self.connections,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "max_requests": self.max_requests,
            "spread_connections": self.spread_connections,
            "runner": self.runner,
            "repeat": self.repeat,
            "mesh": self.mesh,
            "labels": dict(self.labels),
            "dims": dict(self.dims),
            "policy": (self.policy.model_dump(mode="json", exclude_none=True)
                       if self.policy else None),
            "protocol": self.protocol,
            "streams_per_connection": self.streams_per_connection,
        }


def validation_problems(exc: ValidationError) -> list[str]:
    """`loads.rate_rps[1]: rate -5 must be >= 0` lines from a pydantic ValidationError."""
    out = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += ("." if path else "") + str(part)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required; add it"
        out.append(f"{path or '(root)'}: {msg}")
    return out


def format_problems(problems: Sequence[str]) -> str:
    return "\n".join(problems)
