"""Trends across runs: p50/p99 (pooled histograms), error rate and throughput per run group at
each point of a sequence (each experiment in time, or each value of a label such as
`label.build`), with the band the previous points set and the points that leave it marked."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from meshlab.analysis._counts import count_matrix, percentiles_from_counts
from meshlab.analysis.selection import _label
from meshlab.errors import ProfileError

TREND_METRICS = ("p50_us", "p99_us", "error_rate", "throughput_rps")
HIGHER_IS_BETTER = {"throughput_rps"}
TREND_COLUMNS = ["point", "started_at", "runs", "requests", "errors", *TREND_METRICS]


def _point_of(runs: pd.DataFrame, over: str) -> pd.Series:
    if over.startswith("label."):
        name = over.removeprefix("label.")
        return runs["labels"].map(lambda t: _label(t, name)) if "labels" in runs else \
            pd.Series(None, index=runs.index, dtype=object)
    if over == "experiment":
        col = runs["experiment_id"] if "experiment_id" in runs else runs["run_id"]
        return col.fillna(runs["run_id"]).astype(str)
    if over == "day":
        return pd.to_datetime(runs["started_at"], utc=True).dt.strftime("%Y-%m-%d")
    if over in runs.columns:
        return runs[over].astype(str)
    raise ProfileError(f"trend over {over!r}: use experiment, day, label.NAME (e.g. "
                       f"label.build) or a run column such as profile")


def trend(runs: pd.DataFrame, buckets: pd.DataFrame, *, over: str = "experiment",
          group_by: Sequence[str] = ("mesh",), window: int = 5,
          tolerance_pct: float = 10.0) -> pd.DataFrame:
    """One row per group and point, in time order (a point's time is its first run's start).

    Columns: the `group_by` columns, TREND_COLUMNS, and per metric `<m>_band_low`,
    `<m>_band_high` (the range of that metric over the group's previous `window` points) and
    `regressions` (metrics worse than the band by more than `tolerance_pct`, error rate by
    more than 0.1 point as well). Runs without a value for `over`, and runs that did not
    complete, are left out. Runs of different protocols are never pooled: when they mix,
    `protocol` joins the groups."""
    keys = [g for g in group_by if g]
    if ("protocol" in runs.columns and "protocol" not in keys
            and runs["protocol"].astype(str).nunique() > 1):
        keys.append("protocol")
    bad = [k for k in keys if k not in runs.columns]
    if bad:
        raise ProfileError(f"trend grouped by {bad[0]!r}: not a runs column")
    base_cols = [*keys, *TREND_COLUMNS]
    band_cols = [f"{m}_band_{side}" for m in TREND_METRICS for side in ("low", "high")]
    if runs.empty:
        return pd.DataFrame(columns=[*base_cols, *band_cols, "regressions"])
    if "status" in runs.columns:           # a failed or aborted run's numbers are partial
        runs = runs[runs["status"] == "completed"]
    df = runs.assign(_point=_point_of(runs, over)).dropna(subset=["_point"])
    rows: list[dict[str, object]] = []
    for key, g in df.groupby([*keys, "_point"], dropna=False, sort=False):
        key_t = key if isinstance(key, tuple) else (key,)
        ids = [str(r) for r in g["run_id"]]
        counts = count_matrix(buckets, ids).sum(axis=0) if not buckets.empty else np.zeros(1)
        p50, p99 = (percentiles_from_counts(counts, (50.0, 99.0))[0] if counts.sum()
                    else (math.nan, math.nan))
        requests, errors = int(g["requests"].sum()), int(g["errors"].sum())
        rows.append({**dict(zip(keys, key_t[:-1], strict=True)), "point": key_t[-1],
                     "started_at": pd.to_datetime(g["started_at"], utc=True).min(),
                     "runs": len(g), "requests": requests, "errors": errors,
                     "p50_us": float(p50), "p99_us": float(p99),
                     "error_rate": errors / requests if requests else math.nan,
                     "throughput_rps": float(g["achieved_rate_rps"].mean())})
    out = pd.DataFrame(rows, columns=base_cols).sort_values("started_at", kind="stable")
    parts = [_banded(g, window, tolerance_pct) for _, g in
             (out.groupby(keys, dropna=False, sort=True) if keys else [((), out)])]
    return pd.concat(parts).sort_values([*keys, "started_at"], kind="stable") \
        .reset_index(drop=True)


def _worse(metric: str, v: float, lo: float, hi: float, tol: float) -> bool:
    if metric in HIGHER_IS_BETTER:
        return v < lo * (1 - tol)
    if metric == "error_rate":
        return v > hi * (1 + tol) + 0.001
    return v > hi * (1 + tol)


def _banded(g: pd.DataFrame, window: int, tolerance_pct: float) -> pd.DataFrame:
    """The band of each point is the range of the previous `window` points that did not
    regress themselves (a regressed build must not widen the band for the next one)."""
    g = g.copy()
    tol = tolerance_pct / 100.0
    flags: list[list[str]] = [[] for _ in range(len(g))]
    for m in TREND_METRICS:
        kept: list[float] = []
        lows, highs = [], []
        for i, v in enumerate(g[m].astype(float)):
            recent = kept[-max(window, 1):]
            lo, hi = (min(recent), max(recent)) if recent else (math.nan, math.nan)
            lows.append(lo)
            highs.append(hi)
            bad = bool(recent) and math.isfinite(v) and _worse(m, v, lo, hi, tol)
            if bad:
                flags[i].append(m)
            elif math.isfinite(v):
                kept.append(v)
        g[f"{m}_band_low"], g[f"{m}_band_high"] = lows, highs
    g["regressions"] = [", ".join(f) for f in flags]
    return g
