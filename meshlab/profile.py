"""Profiles: a versionable test matrix (pydantic v2, extra="forbid") and the RunSpecs it yields.

A profile names a target and the matrix dimensions (meshes, rates, connections, repeats ...);
`Profile.expand()` yields one frozen `RunSpec` per concrete run in a stable order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from meshlab._limits import (
    MAX_DEPTH,
    MAX_PROFILE_BYTES,
    document_problems,
    field_value_problem,
    mib,
    url_problem,
)
from meshlab.dimensions import DEFAULT_PROTOCOL
from meshlab.errors import ProfileError
from meshlab.policy import TrafficPolicy
from meshlab.redaction import REDACTED as REDACTED  # re-exported: callers import them here
from meshlab.redaction import is_secret_name as is_secret_name
from meshlab.redaction import redact_document as redact_document
from meshlab.redaction import redact_mapping as redact_mapping
from meshlab.redaction import redact_url as redact_url
from meshlab.registry import ENVIRONMENTS, RUNNERS
from meshlab.shape import ConstantShape, TrafficShape
from meshlab.slo import SloSpec
from meshlab.topology import Topology


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)


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
    dataplane_warmup_s: float = Field(default=2.0, ge=0, le=3_600, description=(
        "seconds of discarded load, on connections of their own, after the data plane is "
        "(re)started or first used in an experiment, before the run's own warmup_s"))
    max_requests: int | None = Field(default=None, gt=0,
                                     description="stop after this many measured requests")
    spread_connections: bool = Field(default=True, description=(
        "open loop: assign sends to connections round-robin so each carries rate/connections"))
    shape: TrafficShape = Field(default_factory=ConstantShape, description=(
        "how the open-loop rate moves over the run: {kind: constant|ramp|steps|poisson, ...}"))

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

    @field_validator("shape")
    @classmethod
    def _shape_needs_open_loop(cls, v: TrafficShape, info: ValidationInfo) -> TrafficShape:
        if v.kind != "constant" and 0 in info.data.get("rate_rps", []):
            raise ValueError(f"kind {v.kind} needs an open-loop rate, but loads.rate_rps holds "
                             f"0 (closed loop): set every rate_rps > 0 (the shape's peak) or "
                             f"use shape kind constant")
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

    @field_validator("headers", "cookies")
    @classmethod
    def _field_values(cls, v: dict[str, str]) -> dict[str, str]:
        # a CR/LF in a value would put a header line of its own on the wire
        for name, value in v.items():
            for what, text in (("name", name), ("value", value)):
                problem = field_value_problem(text)
                if problem:
                    raise ValueError(f"{what} of {name!r}: {problem}")
        return v

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, v: str | None) -> str | None:
        problem = field_value_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

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


# Asked at validation time: a runner added with `register_runner` is accepted by a profile.
RunnerName = Annotated[str, AfterValidator(RUNNERS.accept)]
EnvironmentName = Annotated[str, AfterValidator(ENVIRONMENTS.accept)]


class Profile(_Model):
    """A test matrix you version as a file (cf. Meshery performance profiles, SMP)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    target: str = Field(description="http(s) URL of the service under test (tcp://host:port "
                                    "for protocol tcp)")
    runner: RunnerName = Field(default="native", description=(
        "a runner registered in meshlab.registry.RUNNERS (e.g. native, wrk) or added with "
        "register_runner"))
    repeats: int = Field(default=1, ge=1, le=1000)
    environment: EnvironmentName = Field(default="direct", description=(
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
    slo: SloSpec | None = Field(default=None, description=(
        "limits every run is checked against (p50_ms, p99_ms, p999_ms, error_rate, "
        "min_achieved_ratio); without it, >1 % errors or <95 % of the rate is degraded"))
    order: Literal["interleaved", "sequential"] = Field(default="interleaved", description=(
        "interleaved: within each repeat the data-plane configurations run in a shuffled order "
        "(seeded), so drift of a noisy machine cannot pass for a mesh effect; sequential: in "
        "the order written"))
    seed: int | None = Field(default=None, ge=0, description=(
        "seed of the interleaved order; when absent each experiment draws one and stores it"))
    on_failure: Literal["stop", "continue"] = Field(default="stop", description=(
        "after a broken run (failed, or a deployment process died): stop the experiment as "
        "failed, or continue with a warning on every later run"))

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
        # urlsplit drops tabs and line breaks silently; the runners send the string as given
        problem = url_problem(v)
        if problem:
            raise ValueError(f"{redact_url(v)[:200]!r}: {problem}")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
            raise ValueError(f"{redact_url(v)!r} is not an http(s) URL; use e.g. "
                             "http://127.0.0.1:8080/ (or tcp://host:port for protocol tcp)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{redact_url(v)!r} has an invalid port: {exc}") from None
        if parts.scheme == "tcp" and port is None:
            raise ValueError(f"{redact_url(v)!r} names no port; use e.g. tcp://127.0.0.1:9000")
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

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Profile:
        """Validate a mapping; every problem is reported at once as one ProfileError."""
        if not isinstance(data, Mapping):
            raise ProfileError(f"(root): expected a mapping of profile keys, got "
                               f"{type(data).__name__}", source=source)
        shape = document_problems(data, finite=False)     # deep nesting, alias bombs
        if shape:
            raise ProfileError(shape, source=source)
        nonfinite = document_problems(data)                 # NaN/inf anywhere
        try:
            profile = cls.model_validate(dict(data))
        except ValidationError as exc:
            # every problem at once: a non-finite number's own message wins over pydantic's
            named = {n.split(":", 1)[0] for n in nonfinite}
            rest = [v for v in validation_problems(exc) if v.split(":", 1)[0] not in named]
            raise ProfileError([*nonfinite, *rest], source=source) from None
        if nonfinite:
            raise ProfileError(nonfinite, source=source)
        return profile

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Profile:
        return cls.from_dict(parse_profile_yaml(text, source=source), source=source)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Load a profile from a YAML (or JSON) file."""
        return cls.from_yaml(read_profile_text(path), source=str(path))

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        if redact:
            d["target"] = redact_url(d["target"])
            d["labels"] = {k: redact_url(v) for k, v in d["labels"].items()}
            d["request"]["headers"] = redact_mapping(d["request"]["headers"])
            d["request"]["cookies"] = {k: REDACTED for k in d["request"]["cookies"]}
        return d

    # expansion --------------------------------------------------------------------------
    def expand(self) -> Iterator[RunSpec]:
        """Concrete runs: repeats outermost, so every configuration is measured once before any
        is measured twice. With `order: interleaved` and a `seed`, the data-plane
        configurations (mesh, mode, policy) of each repeat run in an order shuffled by
        `random.Random(seed)` (the load points of one configuration stay together, so a
        playground is reused across them); without a seed, or `sequential`, in the order
        written. Mesh `none` (the baseline) runs without policy; other meshes once per policy.
        `index` is the position in this order."""
        units = [(mesh, mode, policy) for mesh in self.meshes for mode in self.modes
                 for policy in self._policies_for(mesh)]
        rng = random.Random(self.seed) if self.shuffled else None
        index = 0
        for repeat in range(self.repeats):
            order = list(units)
            if rng is not None:
                rng.shuffle(order)
            for mesh, mode, policy in order:
                for proto in self.request.protocol:
                    for rate in self.loads.rate_rps:
                        for conns in self.loads.connections:
                            yield self._spec(index, repeat, mesh, rate, conns, mode, policy,
                                             proto)
                            index += 1

    @property
    def shuffled(self) -> bool:
        """Whether `expand()` shuffles each repeat (interleaved order with a seed)."""
        return self.order == "interleaved" and self.seed is not None

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
            shape=self.loads.shape,
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
    shape: TrafficShape = field(default_factory=ConstantShape)
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
        labels = dict(self.labels)
        if redact:
            headers = redact_mapping(headers)
            labels = {k: redact_url(v) for k, v in labels.items()}
        return {
            "profile": self.profile,
            "index": self.index,
            "target": redact_url(self.target) if redact else self.target,
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
            "shape": self.shape.model_dump(mode="json"),
            "runner": self.runner,
            "repeat": self.repeat,
            "mesh": self.mesh,
            "labels": labels,
            "dims": dict(self.dims),
            "policy": (self.policy.model_dump(mode="json", exclude_none=True)
                       if self.policy else None),
            "protocol": self.protocol,
            "streams_per_connection": self.streams_per_connection,
        }


def read_profile_text(path: str | Path) -> str:
    """A profile file's text: at most MAX_PROFILE_BYTES of UTF-8, else one ProfileError."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"(file): cannot read {p}: {exc.strerror or exc}",
                           source=str(p)) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"(file): larger than the profile size limit of "
                           f"{mib(MAX_PROFILE_BYTES)} ({MAX_PROFILE_BYTES:,} bytes); a profile "
                           "is a test matrix, not data", source=str(p))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"(file): not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                           "the profile as UTF-8", source=str(p)) from None


class _DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a `[` or `{` nested more than MAX_DEPTH flow collections
    deep as soon as it is scanned. The pure-Python scanner walks every open level's possible
    simple key for each token: 5,000 nested `[` took ~5 s before the composer hit the recursion
    limit. A document this deep would be refused by `document_problems` after parsing anyway."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                "while scanning a flow collection", None,
                f"nested deeper than {MAX_DEPTH} levels; a real document needs a few",
                self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, refusing deep flow nesting fast (one ScannerError naming where)."""
    return yaml.load(text, Loader=_DepthLimitedLoader)


def parse_profile_yaml(text: str, *, source: str | None = None) -> Any:
    """YAML (or JSON) text to a value; size, syntax and nesting problems as one ProfileError."""
    if len(text) > MAX_PROFILE_BYTES:
        raise ProfileError(f"(file): longer than the profile size limit of "
                           f"{mib(MAX_PROFILE_BYTES)} ({MAX_PROFILE_BYTES:,} characters)",
                           source=source)
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ProfileError(f"(yaml): {where}{getattr(exc, 'problem', exc)}",
                           source=source) from None
    except RecursionError:
        raise ProfileError("(yaml): nested too deeply to read; a profile needs a few levels",
                           source=source) from None
    except (ValueError, TypeError, OverflowError) as exc:   # e.g. a date like 2024-13-45
        raise ProfileError(f"(yaml): unreadable value: {exc}", source=source) from None


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
