"""Flat tables of runs (one row per run, the columns of `Store.runs`) and of histogram buckets
(`run_id, kind, bucket, lower_us, upper_us, count`), as CSV text or Parquet files (pyarrow).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from meshlab.errors import MissingDependency
from meshlab.results import RunResult
from meshlab.run_schema import (
    BUCKET_COLUMNS,
    RUN_COLUMN_NAMES,
    RUN_COLUMNS,
    bucket_columns,
)
from meshlab.run_schema import run_row as schema_row

# DuckDB column type -> Parquet (pyarrow) type name; times are ISO text, as in the CSV.
_PARQUET_TYPES = {"VARCHAR": "string", "JSON": "string", "TIMESTAMP": "string",
                  "DOUBLE": "float64", "INTEGER": "int64", "BIGINT": "int64"}


def run_row(r: RunResult) -> dict[str, Any]:
    """One row of the runs table (`meshlab.run_schema.run_row`) with ISO-8601 UTC times."""
    return {k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in schema_row(r).items()}


def bucket_rows(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """Every non-empty bucket of every run's latency and service-time histogram."""
    cols = bucket_columns(list(results))
    return [dict(zip(BUCKET_COLUMNS, values, strict=True))
            for values in zip(*(cols[c].tolist() for c in BUCKET_COLUMNS), strict=True)]


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def runs_csv(results: Iterable[RunResult]) -> str:
    return csv_text([run_row(r) for r in results], RUN_COLUMN_NAMES)


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
    runs_schema = pa.schema([(c.name, getattr(pa, _PARQUET_TYPES[c.type])())
                             for c in RUN_COLUMNS])
    bucket_schema = pa.schema([("run_id", pa.string()), ("kind", pa.string()),
                               ("bucket", pa.int32()), ("lower_us", pa.float64()),
                               ("upper_us", pa.float64()), ("count", pa.int64())])
    runs = [run_row(r) for r in results]
    pq.write_table(pa.Table.from_pylist(runs, schema=runs_schema), path)
    pq.write_table(pa.Table.from_pylist(bucket_rows(results), schema=bucket_schema), bpath)
    return [path, bpath]
