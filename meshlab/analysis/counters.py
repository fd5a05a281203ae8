"""Proxy counters and status mixes per run group, from the store's telemetry and status tables:
how many retries Envoy made, how many requests each replica's sidecar received, what share of
responses were 503s. Counters are cumulative, so a run's count is its last minus first sample.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import pandas as pd

COUNTER_COLUMNS = ["run_id", "source", "metric", "increase"]


def _in_run_order(df: pd.DataFrame, runs: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows ordered by when their group first ran (charts then read left to right in time)."""
    rank = {v: i for i, v in enumerate(dict.fromkeys(runs[by]))}
    order = df[by].map(rank).fillna(len(rank))
    return df.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def counter_increase(telemetry: pd.DataFrame, metrics: str | Sequence[str], *,
                     source: str | None = None) -> pd.DataFrame:
    """Per run, source and metric: how much a cumulative counter grew during the run (last minus
    first sample). `source` is an exact name or a glob (`envoy:backend-*-sidecar`)."""
    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    if telemetry.empty:
        return pd.DataFrame(columns=COUNTER_COLUMNS)
    t = telemetry[telemetry["metric"].isin(wanted)]
    if source is not None:
        t = t[t["source"].astype(str).map(lambda s: fnmatch.fnmatchcase(s, source))]
    if t.empty:
        return pd.DataFrame(columns=COUNTER_COLUMNS)
    g = t.sort_values("t_s", kind="stable").groupby(["run_id", "source", "metric"])["value"]
    out = (g.last() - g.first()).clip(lower=0).rename("increase").reset_index()
    return out[COUNTER_COLUMNS]


def counters_by(telemetry: pd.DataFrame, runs: pd.DataFrame, metrics: str | Sequence[str], *,
                by: str = "policy", source: str | None = None,
                per_source: bool = False) -> pd.DataFrame:
    """Counter increases summed per group of runs (the `by` column of `runs`) and metric; with
    `per_source`, also per source, plus each source's `share` of its group's total (say, the
    share of requests each replica's sidecar received). Columns: by, [source,] metric, value,
    share; groups in the order they first ran."""
    keys = [by, *(["source"] if per_source else []), "metric"]
    inc = counter_increase(telemetry, metrics, source=source)
    if inc.empty or runs.empty:
        return pd.DataFrame(columns=[*keys, "value", "share"])
    df = inc.merge(runs[["run_id", by]], on="run_id")
    table = df.groupby(keys, dropna=False, sort=True)["increase"].sum().rename("value")
    out = table.reset_index()
    total = out.groupby([by, "metric"], dropna=False)["value"].transform("sum")
    out["share"] = (out["value"] / total.where(total > 0)).fillna(0.0)
    return _in_run_order(out, runs, by)


def counter_ratio(table: pd.DataFrame, numerator: str, denominator: str, *,
                  by: str = "policy") -> pd.Series:
    """`numerator / denominator` per group of a `counters_by` table (say upstream requests per
    client request); NaN where the denominator is zero or missing."""
    wide = table.pivot_table(index=by, columns="metric", values="value", aggfunc="sum")
    num = wide[numerator] if numerator in wide else pd.Series(0.0, index=wide.index)
    if denominator not in wide:
        return pd.Series(float("nan"), index=wide.index, name=f"{numerator}/{denominator}")
    den = wide[denominator]
    return (num / den.where(den > 0)).rename(f"{numerator}/{denominator}")


def status_shares(status_codes: pd.DataFrame, runs: pd.DataFrame, *,
                  by: str = "policy") -> pd.DataFrame:
    """HTTP status counts per group of runs with each code's share of the group's responses.
    Columns: by, code, count, share (0..1); groups in the order they first ran."""
    cols = [by, "code", "count", "share"]
    if status_codes.empty or runs.empty:
        return pd.DataFrame(columns=cols)
    df = status_codes.merge(runs[["run_id", by]], on="run_id")
    out = df.groupby([by, "code"], dropna=False, sort=True)["count"].sum().reset_index()
    total = out.groupby(by, dropna=False)["count"].transform("sum")
    out["share"] = out["count"] / total.where(total > 0)
    return _in_run_order(out[cols], runs, by)
