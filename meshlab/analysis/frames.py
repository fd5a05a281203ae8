"""The DataFrames analysis and figures work on, read from a Store or built from RunResults.

`Frames` holds the store-shaped tables of one run selection: runs, buckets, timeseries,
telemetry, status codes. `frames_from_results` builds them without a database (demos, tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from meshlab.results import RunResult, bucket_bounds_ns
from meshlab.units import NS_PER_US

RUN_COLUMNS = [
    "run_id", "experiment_id", "profile", "mesh", "runner", "environment", "mode", "policy",
    "data_plane", "rate_rps", "connections", "duration_s", "repeat", "status", "started_at",
    "ended_at", "achieved_rate_rps", "requests", "errors", "error_rate", "p50_us", "p90_us",
    "p99_us", "p999_us", "max_us", "mean_us", "uncorrected_p50_us", "uncorrected_p99_us",
    "labels", "spec", "context", "host",
]
BUCKET_COLUMNS = ["run_id", "kind", "bucket", "lower_us", "upper_us", "count"]
TIMESERIES_COLUMNS = ["run_id", "second", "requests", "errors", "p50_us", "p99_us"]
TELEMETRY_COLUMNS = ["run_id", "t_s", "source", "metric", "value"]
STATUS_COLUMNS = ["run_id", "code", "count"]


class StoreReader(Protocol):
    """The part of `meshlab.store.Store` analysis reads."""

    def runs(self) -> pd.DataFrame: ...
    def buckets(self, run_ids: Sequence[str], *, kind: str | None = "latency"
                ) -> pd.DataFrame: ...
    def timeseries(self, run_ids: Sequence[str]) -> pd.DataFrame: ...
    def telemetry(self, run_ids: Sequence[str]) -> pd.DataFrame: ...
    def status_codes(self, run_ids: Sequence[str]) -> pd.DataFrame: ...


@dataclass(frozen=True, slots=True)
class Frames:
    """Store-shaped tables of a run selection."""

    runs: pd.DataFrame
    buckets: pd.DataFrame                 # latency and service_time kinds
    timeseries: pd.DataFrame
    telemetry: pd.DataFrame
    status_codes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=STATUS_COLUMNS))

    @classmethod
    def empty(cls) -> Frames:
        return cls(pd.DataFrame(columns=RUN_COLUMNS), pd.DataFrame(columns=BUCKET_COLUMNS),
                   pd.DataFrame(columns=TIMESERIES_COLUMNS),
                   pd.DataFrame(columns=TELEMETRY_COLUMNS),
                   pd.DataFrame(columns=STATUS_COLUMNS))

    def subset(self, run_ids: Iterable[str]) -> Frames:
        ids = list(run_ids)

        def pick(df: pd.DataFrame) -> pd.DataFrame:
            return df[df["run_id"].isin(ids)] if not df.empty else df

        return Frames(pick(self.runs), pick(self.buckets), pick(self.timeseries),
                      pick(self.telemetry), pick(self.status_codes))


def load_frames(store: StoreReader, run_ids: Sequence[str] | None = None) -> Frames:
    """Read the tables of `run_ids` (default: every run) from a Store."""
    runs = store.runs()
    if run_ids is not None:
        runs = runs[runs["run_id"].isin(list(run_ids))]
    ids = [str(r) for r in runs["run_id"]]
    if not ids:
        e = Frames.empty()
        return Frames(runs, e.buckets, e.timeseries, e.telemetry, e.status_codes)
    return Frames(runs.reset_index(drop=True), store.buckets(ids, kind=None),
                  store.timeseries(ids), store.telemetry(ids), store.status_codes(ids))


def run_row(result: RunResult, *, experiment_id: str | None = None) -> dict[str, object]:
    """The `Store.runs()` row of a result (same columns, JSON text for nested values)."""
    spec, ctx = result.spec, result.context
    dims = {**dict(spec.get("dims", {}) or {}), **ctx}
    s = result.summary()
    return {
        "run_id": result.run_id, "experiment_id": experiment_id,
        "profile": spec.get("profile"), "mesh": spec.get("mesh"), "runner": result.runner,
        "environment": dims.get("environment"), "mode": dims.get("mode"),
        "policy": dims.get("policy"), "data_plane": dims.get("data_plane"),
        "rate_rps": float(spec.get("rate_rps", result.requested_rate_rps)),
        "connections": spec.get("connections"), "duration_s": result.duration_s,
        "repeat": spec.get("repeat", 0), "status": str(result.status),
        "started_at": result.started_at, "ended_at": result.ended_at,
        "achieved_rate_rps": result.achieved_rate_rps, "requests": result.requests,
        "errors": result.errors, "error_rate": result.error_rate,
        **{k: s[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
                             "uncorrected_p50_us", "uncorrected_p99_us")},
        "labels": json.dumps(spec.get("labels", {}), sort_keys=True),
        "spec": json.dumps(spec, sort_keys=True, default=str),
        "context": json.dumps(ctx, sort_keys=True, default=str),
        "host": json.dumps(result.host.to_dict() if result.host else None, sort_keys=True),
    }


def frames_from_results(results: Iterable[RunResult]) -> Frames:
    """Store-shaped frames of in-memory results (no database needed)."""
    rs = list(results)
    runs = pd.DataFrame([run_row(r) for r in rs], columns=RUN_COLUMNS)
    bucket_rows = []
    for r in rs:
        for kind, h in (("latency", r.latency), ("service_time", r.service_time)):
            for i, c in h.nonzero_buckets():
                lo, hi = bucket_bounds_ns(i)
                bucket_rows.append((r.run_id, kind, i, float(lo) / NS_PER_US,
                                    float(hi) / NS_PER_US, c))
    ts = [(r.run_id, p.second, p.requests, p.errors, p.p50_us, p.p99_us)
          for r in rs for p in r.timeseries]
    tel = [(r.run_id, t.t_s, t.source, t.metric, t.value) for r in rs for t in r.telemetry]
    codes = [(r.run_id, int(c), n) for r in rs for c, n in sorted(r.status_codes.items())]
    return Frames(runs, pd.DataFrame(bucket_rows, columns=BUCKET_COLUMNS),
                  pd.DataFrame(ts, columns=TIMESERIES_COLUMNS),
                  pd.DataFrame(tel, columns=TELEMETRY_COLUMNS),
                  pd.DataFrame(codes, columns=STATUS_COLUMNS))
