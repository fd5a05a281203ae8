"""Query helpers of the store: run filters as SQL and per-run percentile frames of stored
histograms (pooling and comparisons are analysis: `meshlab.analysis.comparison`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd

from meshlab.errors import StoreError
from meshlab.results import Histogram
from meshlab.run_schema import percentile_column

# Filter name -> runs column; `label` and the time bounds are handled apart.
_COLUMNS = ("experiment_id", "profile", "mesh", "runner", "status", "environment", "mode",
            "policy", "data_plane", "rate_rps", "connections")
FILTERS = (*_COLUMNS, "label", "run_ids", "since", "until")


def _time(value: object, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise StoreError(f"{name}={value!r} is not an ISO date or time; use e.g. "
                             f"'2026-11-22' or '2026-11-22T10:00:00+00:00'") from None
    if not isinstance(value, datetime):
        raise StoreError(f"{name} must be a datetime or an ISO string, got "
                         f"{type(value).__name__}")
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def where_clause(filters: Mapping[str, object]) -> tuple[str, list[object], dict[str, str]]:
    """SQL `WHERE ...` (or ""), its parameters, and the label filter applied afterwards."""
    parts: list[str] = []
    params: list[object] = []
    label: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in _COLUMNS:
            if isinstance(value, str | int | float):
                parts.append(f"{name} = ?")
                params.append(str(value) if isinstance(value, str) else value)
            elif isinstance(value, Sequence):
                parts.append(f"list_contains(?, {name})")
                params.append([str(v) if isinstance(v, str) else v for v in value])
            else:
                raise StoreError(f"filter {name}={value!r}: give a value or a list of values")
        elif name == "run_ids":
            ids = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
            parts.append("list_contains(?, run_id)")
            params.append([str(r) for r in ids])
        elif name == "since":
            parts.append("started_at >= ?")
            params.append(_time(value, name))
        elif name == "until":
            parts.append("started_at < ?")
            params.append(_time(value, name))
        elif name == "label":
            if not isinstance(value, Mapping):
                raise StoreError(f"label filter must be a mapping like {{'branch': 'main'}}, "
                                 f"got {value!r}")
            label = {str(k): str(v) for k, v in value.items()}
    return ("WHERE " + " AND ".join(parts)) if parts else "", params, label


def _pcts(h: Histogram, ps: Sequence[float]) -> dict[str, float]:
    return {percentile_column(p): h.percentile_us(float(p)) for p in ps}


def percentile_frame(run_ids: Sequence[str], hists: Mapping[str, Histogram],
                     ps: Sequence[float]) -> pd.DataFrame:
    """One row per run id (in the order given)."""
    cols = ["run_id", *(percentile_column(p) for p in ps)]
    data = [{"run_id": r, **_pcts(hists.get(r, Histogram()), ps)} for r in run_ids]
    return pd.DataFrame(data, columns=cols)
