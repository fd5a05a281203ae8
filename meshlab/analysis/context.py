"""Context diff: every difference in spec, environment, mesh and host between two run groups,
listed next to the latency delta, so "why is B slower?" starts from facts, not memory."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from meshlab.analysis._counts import count_matrix, percentiles_from_counts
from meshlab.run_schema import percentile_column

# Keys that differ between any two runs by construction; listing them would hide real changes.
IGNORED_KEYS = frozenset({
    "run_id", "experiment_id", "started_at", "ended_at", "spec.index", "spec.repeat", "repeat",
    "status", "requests", "errors", "error_rate", "achieved_rate_rps",
})
_JSON_COLUMNS = ("spec", "context", "host", "labels")
_DIM_COLUMNS = ("profile", "mesh", "runner", "environment", "mode", "policy", "data_plane",
                "rate_rps", "connections", "duration_s")
DIFF_COLUMNS = ["section", "key", "baseline", "candidate", "delta", "delta_pct"]


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists stay as JSON text (their order matters)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif value is None:
        if prefix:
            out[prefix] = "null"
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    else:
        out[prefix] = str(value)
    return out


def _decode(text: object) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def run_context(row: Mapping[str, Any]) -> dict[str, str]:
    """Flat `section.key -> value` view of one `Store.runs()` row."""
    out: dict[str, str] = {}
    for col in _DIM_COLUMNS:
        v = row.get(col)
        if v is not None and not (isinstance(v, float) and pd.isna(v)):
            out[col] = str(v)
    for col in _JSON_COLUMNS:
        if col in row and row[col] is not None:
            decoded = _decode(row[col])
            if isinstance(decoded, Mapping):
                out.update(flatten(decoded, col))
            elif decoded is not None and not (isinstance(decoded, float) and pd.isna(decoded)):
                out[col] = str(decoded)
    dup = {f"spec.{c}" for c in _DIM_COLUMNS}       # spec.mesh repeats the mesh column
    return {k: v for k, v in out.items() if k not in IGNORED_KEYS and k not in dup}


def _values(runs: pd.DataFrame, ids: Sequence[str]) -> dict[str, set[str]]:
    vals: dict[str, set[str]] = {}
    for row in runs[runs["run_id"].isin(list(ids))].to_dict("records"):
        for k, v in run_context({str(c): x for c, x in row.items()}).items():
            vals.setdefault(k, set()).add(v)
    return vals


def _show(values: set[str] | None) -> str:
    if not values:
        return "(absent)"
    return " | ".join(sorted(values))


def context_diff(runs: pd.DataFrame, *, baseline: Sequence[str], candidate: Sequence[str],
                 buckets: pd.DataFrame | None = None,
                 ps: Sequence[float] = (50.0, 90.0, 99.0, 99.9)) -> pd.DataFrame:
    """Rows (section, key, baseline, candidate, delta, delta_pct): first the latency delta of
    the pooled percentiles (section "latency", when `buckets` is given), then every context key
    whose set of values differs between the groups (section = spec, context, host, labels, or
    "run" for dimension columns). Values shared by both groups are not listed."""
    rows: list[dict[str, object]] = []
    if runs.empty:
        return pd.DataFrame(columns=DIFF_COLUMNS)
    if buckets is not None:
        cb = count_matrix(buckets, list(baseline)).sum(axis=0)
        cc = count_matrix(buckets, list(candidate)).sum(axis=0)
        pb, pc = percentiles_from_counts(cb, ps)[0], percentiles_from_counts(cc, ps)[0]
        for j, p in enumerate(ps):
            d = float(pc[j] - pb[j])
            rows.append({"section": "latency", "key": percentile_column(p),
                         "baseline": f"{pb[j]:.1f}", "candidate": f"{pc[j]:.1f}", "delta": d,
                         "delta_pct": d / pb[j] * 100.0 if pb[j] else float("nan")})
    vb, vc = _values(runs, baseline), _values(runs, candidate)
    for key in sorted(set(vb) | set(vc)):
        if vb.get(key) == vc.get(key):
            continue
        section = key.split(".", 1)[0] if "." in key else "run"
        rows.append({"section": section, "key": key, "baseline": _show(vb.get(key)),
                     "candidate": _show(vc.get(key)), "delta": float("nan"),
                     "delta_pct": float("nan")})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)
