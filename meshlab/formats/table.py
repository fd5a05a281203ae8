"""Flat tables of runs (one row per run, the columns of `Store.runs`) and of histogram buckets
(`run_id, kind, bucket, lower_us, upper_us, count`), as CSV text or Parquet files (pyarrow).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from meshlab.errors import MissingDependency
from meshlab.results import RunResult, bucket_bounds_ns
from meshlab.units import NS_PER_US

RUN_COLUMNS = (
    "run_id", "profile", "mesh", "runner", "environment", "mode", "policy", "data_plane",
    "rate_rps", "connections", "duration_s", "repeat", "status", "started_at", "ended_at",
    "achieved_rate_rps", "requests", "errors", "error_rate", "p50_us", "p90_us", "p99_us",
    "p999_us", "max_us", "mean_us", "uncorrected_p50_us", "uncorrected_p99_us", "format",
    "labels", "spec", "context",
)
BUCKET_COLUMNS = ("run_id", "kind", "bucket", "lower_us", "upper_us", "count")


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def run_row(r: RunResult) -> dict[str, Any]:
    """One row: dimensions from the spec (and context), counts, and the run's percentiles
    (`RunResult.headline_percentile_us`: fortio's own values for fortio imports)."""
    spec, ctx = r.spec, r.context
    dims = {**(spec.get("dims") or {}), **{k: ctx[k] for k in ("environment", "mode", "policy",
                                                               "data_plane") if k in ctx}}
    lat = r.latency
    return {
        "run_id": r.run_id,
        "profile": spec.get("profile"),
        "mesh": spec.get("mesh"),
        "runner": r.runner,
        "environment": dims.get("environment"),
        "mode": dims.get("mode"),
        "policy": dims.get("policy"),
        "data_plane": dims.get("data_plane"),
        "rate_rps": r.requested_rate_rps,
        "connections": spec.get("connections"),
        "duration_s": r.duration_s,
        "repeat": spec.get("repeat"),
        "status": str(r.status),
        "started_at": r.started_at.isoformat(),
        "ended_at": r.ended_at.isoformat(),
        "achieved_rate_rps": r.achieved_rate_rps,
        "requests": r.requests,
        "errors": r.errors,
        "error_rate": r.error_rate,
        "p50_us": _num(r.headline_percentile_us(50)),
        "p90_us": _num(r.headline_percentile_us(90)),
        "p99_us": _num(r.headline_percentile_us(99)),
        "p999_us": _num(r.headline_percentile_us(99.9)),
        "max_us": _num(lat.max_us),
        "mean_us": _num(lat.mean_us),
        "uncorrected_p50_us": _num(r.headline_percentile_us(50, kind="service_time")),
        "uncorrected_p99_us": _num(r.headline_percentile_us(99, kind="service_time")),
        "format": ctx.get("format", "meshlab"),
        "labels": json.dumps(spec.get("labels") or {}, sort_keys=True),
        "spec": json.dumps(spec, sort_keys=True, default=str),
        "context": json.dumps(ctx, sort_keys=True, default=str),
    }


def bucket_rows(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """Every non-empty bucket of every run's latency and service-time histogram."""
    rows = []
    for r in results:
        for kind, h in (("latency", r.latency), ("service_time", r.service_time)):
            nz = h.nonzero_buckets()
            if not nz:
                continue
            lo, hi = bucket_bounds_ns([i for i, _ in nz])
            for k, (i, c) in enumerate(nz):
                rows.append({"run_id": r.run_id, "kind": kind, "bucket": i,
                             "lower_us": int(lo[k]) / NS_PER_US,
                             "upper_us": int(hi[k]) / NS_PER_US, "count": c})
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def runs_csv(results: Iterable[RunResult]) -> str:
    return csv_text([run_row(r) for r in results], RUN_COLUMNS)


def buckets_csv(results: Iterable[RunResult]) -> str:
    return csv_text(bucket_rows(results), BUCKET_COLUMNS)


def buckets_path(path: Path) -> Path:
    """`runs.csv` -> `runs_buckets.csv`: where the bucket table goes next to the runs table."""
    return path.with_name(f"{path.stem}_buckets{path.suffix}")


def write_tables(results: Sequence[RunResult], fmt: str, path: Path) -> list[Path]:
    """Write the runs table to `path` and the bucket table beside it; returns both paths."""
    bpath = buckets_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        path.write_text(runs_csv(results), encoding="utf-8")
        bpath.write_text(buckets_csv(results), encoding="utf-8")
        return [path, bpath]
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependency("pyarrow (for Parquet export)",
                                install="pip install 'meshlab[workbench]' or pip install pyarrow"
                                ) from exc
    runs_schema = pa.schema([
        *((c, pa.string()) for c in RUN_COLUMNS[:8]),
        ("rate_rps", pa.float64()), ("connections", pa.int64()), ("duration_s", pa.float64()),
        ("repeat", pa.int64()), ("status", pa.string()), ("started_at", pa.string()),
        ("ended_at", pa.string()), ("achieved_rate_rps", pa.float64()),
        ("requests", pa.int64()), ("errors", pa.int64()), ("error_rate", pa.float64()),
        *((c, pa.float64()) for c in RUN_COLUMNS[19:27]),
        *((c, pa.string()) for c in RUN_COLUMNS[27:]),
    ])
    bucket_schema = pa.schema([("run_id", pa.string()), ("kind", pa.string()),
                               ("bucket", pa.int32()), ("lower_us", pa.float64()),
                               ("upper_us", pa.float64()), ("count", pa.int64())])
    runs = [run_row(r) for r in results]
    pq.write_table(pa.Table.from_pylist(runs, schema=runs_schema), path)
    pq.write_table(pa.Table.from_pylist(bucket_rows(results), schema=bucket_schema), bpath)
    return [path, bpath]
