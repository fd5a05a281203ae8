"""The typed dimensions of a run (environment, mesh, data plane, mode, policy, mtls, rate,
connections, protocol, labels, and its place in the profile), read out of the stored `spec` and
`context` records in this one place: `RunResult.dimensions`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PROTOCOL = "http1"


def as_text(value: object) -> str | None:
    """A dimension value as text: the name of a mapping (`{"name": "local"}` -> `local`, other
    mappings as JSON), booleans as `true`/`false`, None as None, anything else `str()`."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        name = value.get("name")
        return str(name) if name is not None else json.dumps(value, default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def shape_text(shape: object, *, rate_rps: float | None = None) -> str:
    """A stored `spec.shape` as text: `constant`, `ramp 100->1000 req/s`, `steps 0.25,0.5,1 x
    rate`, `poisson seed 7`; runs that record no shape (imports) were constant."""
    if not isinstance(shape, Mapping) or shape.get("kind") in (None, "constant"):
        return "constant"
    kind = str(shape["kind"])
    peak = f"{rate_rps:g}" if rate_rps is not None else "rate_rps"
    if kind == "ramp":
        return f"ramp {_float(shape.get('start_rps')) or 0:g}->{peak} req/s"
    if kind == "steps":
        levels = shape.get("levels")
        shown = ",".join(f"{x:g}" for x in levels if isinstance(x, int | float)) \
            if isinstance(levels, list) else "?"
        return f"steps {shown} x {peak} req/s"
    if kind == "poisson":
        return f"poisson seed {shape.get('seed')}"
    return kind


def matrix_value(spec: Mapping[str, Any], context: Mapping[str, Any], name: str) -> str | None:
    """A matrix dimension of a stored run: the spec's `dims` (what the profile asked for), then
    the spec itself, then the context (what the environment observed), as text.

    The order matters: a local playground records its whole policy (a dict) and topology in
    the context, while `dims` holds the policy's name the profile's matrix iterated over."""
    dims = spec.get("dims")
    if isinstance(dims, Mapping) and dims.get(name) is not None:
        return as_text(dims[name])
    if spec.get(name) is not None:
        return as_text(spec[name])
    return as_text(context.get(name))


@dataclass(frozen=True, slots=True)
class RunDimensions:
    """What a run varied and where it sits in its profile: the values runs are grouped,
    filtered and compared by. Every field is None when the run does not record it (an
    imported run often knows no environment or mode)."""

    environment: str | None = None        # direct, local, kubernetes
    mesh: str | None = None               # the mesh under test; "none" is the baseline
    data_plane: str | None = None         # the proxy kind on the path (envoy, nginx, none...)
    mode: str | None = None               # which sidecars are on the path (both, server...)
    policy: str | None = None             # the traffic policy's name ("none": no policy)
    mtls: str | None = None               # mTLS mode as the environment reported it
    rate_rps: float = 0.0                 # requested rate; 0 = closed loop at max rate
    connections: int | None = None
    protocol: str = DEFAULT_PROTOCOL      # the load's HTTP protocol
    labels: tuple[tuple[str, str], ...] = ()
    profile: str | None = None
    target: str | None = None             # the URL the load was sent to
    repeat: int | None = None             # repeat number within the matrix point
    run_index: int | None = None          # index of the run in the profile's matrix
    warmup_s: float | None = None
    shape: str = "constant"               # the traffic shape as text (`ramp 0->1000 req/s`)

    @classmethod
    def from_record(cls, spec: Mapping[str, Any], context: Mapping[str, Any], *,
                    rate_rps: float) -> RunDimensions:
        """The dimensions of a stored run from its `spec` and `context` dicts (the one place
        that reads dimensions out of them); `rate_rps` is the run's requested rate."""
        labels = spec.get("labels")
        return cls(
            environment=matrix_value(spec, context, "environment"),
            mesh=matrix_value(spec, context, "mesh"),
            data_plane=matrix_value(spec, context, "data_plane"),
            mode=matrix_value(spec, context, "mode"),
            policy=matrix_value(spec, context, "policy"),
            mtls=matrix_value(spec, context, "mtls"),
            rate_rps=float(rate_rps),
            connections=_int(spec.get("connections")),
            protocol=matrix_value(spec, context, "protocol") or DEFAULT_PROTOCOL,
            labels=(tuple((str(k), str(v)) for k, v in labels.items())
                    if isinstance(labels, Mapping) else ()),
            profile=as_text(spec.get("profile") or context.get("profile")),
            target=as_text(spec.get("target")),
            repeat=_int(spec.get("repeat")),
            run_index=_int(spec.get("index")),
            warmup_s=_float(spec.get("warmup_s")),
            shape=shape_text(spec.get("shape"), rate_rps=_float(spec.get("rate_rps"))),
        )

    @property
    def label_map(self) -> dict[str, str]:
        """The run's own labels as a dict (an experiment's labels are added when stored)."""
        return dict(self.labels)
