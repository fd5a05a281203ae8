"""The DataFrames analysis and figures work on, read from a Store or built from RunResults.

`Frames` holds the store-shaped tables of one run selection: runs, buckets, timeseries,
telemetry, status codes. `frames_from_results` builds them without a database (demos, tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from meshlab.results import RunResult
from meshlab.run_schema import BUCKET_COLUMNS, RUN_COLUMN_NAMES, bucket_columns, run_row

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
        return cls(pd.DataFrame(columns=list(RUN_COLUMN_NAMES)),
                   pd.DataFrame(columns=list(BUCKET_COLUMNS)),
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


def frames_from_results(results: Iterable[RunResult]) -> Frames:
    """Store-shaped frames of in-memory results (no database needed): the same columns and
    values as `Store.runs()` and `Store.buckets()` (`meshlab.run_schema`)."""
    rs = list(results)
    runs = pd.DataFrame([run_row(r) for r in rs], columns=list(RUN_COLUMN_NAMES))
    if not runs.empty:
        for c in ("started_at", "ended_at"):
            runs[c] = pd.to_datetime(runs[c], utc=True)
    ts = [(r.run_id, p.second, p.requests, p.errors, p.p50_us, p.p99_us)
          for r in rs for p in r.timeseries]
    tel = [(r.run_id, t.t_s, t.source, t.metric, t.value) for r in rs for t in r.telemetry]
    codes = [(r.run_id, int(c), n) for r in rs for c, n in sorted(r.status_codes.items())]
    return Frames(runs, pd.DataFrame(bucket_columns(rs)),
                  pd.DataFrame(ts, columns=TIMESERIES_COLUMNS),
                  pd.DataFrame(tel, columns=TELEMETRY_COLUMNS),
                  pd.DataFrame(codes, columns=STATUS_COLUMNS))
