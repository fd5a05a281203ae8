"""The meshlab record a fortio or SMP export carries (run id, status, dimensions, rate,
connections) so that meshlab's own exports import back as the same run."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from meshlab.results import RunResult, RunStatus

# matrix dimensions kept in the spec's `dims` (what `RunResult.dimensions` reads first)
_DIMS = ("environment", "data_plane", "mode", "policy", "mtls", "protocol")


def meshlab_record(result: RunResult) -> dict[str, str]:
    """The run's identity and dimensions as text (SMP labels are strings)."""
    d = result.dimensions
    out = {"run_id": result.run_id, "status": str(result.status), "runner": result.runner,
           "profile": d.profile or "", "mesh": d.mesh or "none",
           "connections": "" if d.connections is None else str(d.connections),
           "requested_rate_rps": repr(float(result.requested_rate_rps)),
           "requests": str(result.requests), "errors": str(result.errors),
           "endpoint_url": d.target or ""}
    for name in _DIMS:
        value = getattr(d, name)
        if value is not None:
            out[name] = str(value)
    streams = result.spec.get("streams_per_connection")
    if isinstance(streams, int) and streams > 1:      # HTTP/2 and gRPC streams per connection
        out["streams_per_connection"] = str(streams)
    for name, value in (("warmup_s", d.warmup_s), ("repeat", d.repeat),
                        ("run_index", d.run_index)):
        if value is not None:
            out[name] = repr(value)
    return out


def _float(text: object) -> float | None:
    try:
        v = float(str(text))
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def _int(text: object) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def apply_record(result: RunResult, record: Mapping[str, Any],
                 labels: Mapping[str, str]) -> RunResult:
    """Restore what `meshlab_record` wrote, and the run's own `labels`, into an imported run
    (in place; returned). Unreadable values are left as the importer found them."""
    spec = result.spec
    spec["labels"] = {str(k): str(v) for k, v in labels.items()}
    result.context.pop("fortio_labels", None)
    rate = _float(record.get("requested_rate_rps"))
    if rate is not None:
        result.requested_rate_rps = spec["rate_rps"] = rate
    conns = _int(record.get("connections"))
    if conns is not None and conns >= 0:
        spec["connections"] = conns
    for key in ("profile", "mesh"):
        if record.get(key):
            spec[key] = str(record[key])
    if record.get("endpoint_url"):
        spec["target"] = str(record["endpoint_url"])
    dims = dict(spec.get("dims") or {})
    dims.update({k: str(record[k]) for k in _DIMS if record.get(k) not in (None, "")})
    if dims:
        spec["dims"] = dims
    streams = _int(record.get("streams_per_connection"))
    if streams is not None and streams >= 1:
        spec["streams_per_connection"] = streams
    warmup = _float(record.get("warmup_s"))
    if warmup is not None:
        spec["warmup_s"] = warmup
    for key, field in (("repeat", "repeat"), ("run_index", "index")):
        v = _int(record.get(key))
        if v is not None:
            spec[field] = v
    if record.get("runner"):
        result.runner = spec["runner"] = str(record["runner"])
    if record.get("run_id"):
        result.run_id = str(record["run_id"])
    with contextlib.suppress(ValueError):
        result.status = RunStatus(str(record.get("status")))
    for key in ("requests", "errors"):
        v = _int(record.get(key))
        if v is not None and v >= 0:
            setattr(result, key, v)
    result.context["meshlab_export"] = True
    return result
