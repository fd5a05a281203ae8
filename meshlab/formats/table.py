"""Flat tables of runs (one row per run, the columns of `Store.runs`) and of histogram buckets
(`run_id, kind, bucket, lower_us, upper_us, count`), as CSV text or Parquet files (pyarrow),
and back into runs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshlab.errors import MissingDependency
from meshlab.results import (
    HEADLINE_COUNT_KEY,
    HEADLINE_PERCENTILES_KEY,
    Histogram,
    HostSnapshot,
    RunResult,
    RunStatus,
)
from meshlab.run_schema import (
    BUCKET_COLUMNS,
    DEFAULT_PS,
    RUN_COLUMN_NAMES,
    RUN_COLUMNS,
    bucket_columns,
    percentile_column,
)
from meshlab.run_schema import run_row as schema_row
from meshlab.units import NS_PER_US

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


# --- import: meshlab's own runs tables back into runs -------------------------------------------

def is_runs_csv(data: bytes) -> bool:
    """Bytes of a runs table written by `runs_csv` (its header line)."""
    return data.lstrip(b"\xef\xbb\xbf").startswith(",".join(RUN_COLUMN_NAMES[:3]).encode())


def is_buckets_csv(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf").startswith(",".join(BUCKET_COLUMNS).encode())


def read_csv_rows(data: bytes) -> list[dict[str, Any]]:
    text = data.decode("utf-8-sig")
    return [dict(row) for row in csv.DictReader(io.StringIO(text))]


def read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a Parquet file or of a hive-partitioned Parquet dataset directory."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("pyarrow (for Parquet import)",
                                install="pip install pyarrow") from exc
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def runs_from_rows(rows: Sequence[Mapping[str, Any]],
                   buckets: Sequence[Mapping[str, Any]]) -> list[RunResult]:
    """Runs from rows of the runs table and of its buckets table (CSV text or Parquet values).
    Status codes and error kinds are not table columns: they come back empty."""
    by_run: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for b in buckets:
        key = (str(b["run_id"]), str(b["kind"]))
        by_run.setdefault(key, []).append((int(b["bucket"]), int(b["count"])))
    return [_run(row, by_run) for row in rows]


def _opt(v: object) -> float | None:
    return None if v is None or v == "" else float(str(v))


def _run(row: Mapping[str, Any], buckets: Mapping[tuple[str, str], list[tuple[int, int]]]
         ) -> RunResult:
    run_id = str(row["run_id"])
    spec = json.loads(str(row["spec"]))
    context = json.loads(str(row["context"]))
    host = json.loads(str(row["host"])) if row.get("host") not in (None, "") else None

    def hist(kind: str) -> Histogram:
        pairs = buckets.get((run_id, kind), [])
        if kind == "latency":
            lo, hi, mean = _opt(row.get("min_us")), _opt(row.get("max_us")), _opt(
                row.get("mean_us"))
            total = sum(c for _, c in pairs)
            return Histogram.from_buckets(
                pairs, min_ns=None if lo is None else round(lo * NS_PER_US),
                max_ns=None if hi is None else round(hi * NS_PER_US),
                sum_ns=None if mean is None else mean * NS_PER_US * total)
        return Histogram.from_buckets(pairs)

    warnings = json.loads(str(row.get("warnings") or "[]"))
    warnings = [str(w) for w in warnings] if isinstance(warnings, list) else []
    latency, service_time = hist("latency"), hist("service_time")
    if buckets.get((run_id, "service_time")) == buckets.get((run_id, "latency")):
        service_time = latency.copy()        # the same histogram (imports, closed loop)
    if (run_id, "latency") not in buckets and int(row["requests"]) > 0:
        latency = _rebuilt(row, context, warnings)
        service_time = latency.copy()
    return RunResult(
        run_id=run_id, spec=spec, status=RunStatus(str(row["status"])),
        started_at=_time(row["started_at"]), ended_at=_time(row["ended_at"]),
        duration_s=float(row["duration_s"]), requested_rate_rps=float(row["rate_rps"]),
        achieved_rate_rps=float(row["achieved_rate_rps"]), requests=int(row["requests"]),
        errors=int(row["errors"]), status_codes={}, error_kinds={},
        latency=latency, service_time=service_time,
        host=HostSnapshot.from_dict(host) if isinstance(host, Mapping) else None,
        runner=str(row["runner"]), runner_version=str(row.get("runner_version") or ""),
        context=context if isinstance(context, dict) else {},
        warnings=warnings,
        error=str(row["error"]) if row.get("error") not in (None, "") else None,
        bytes_received=int(row.get("bytes_received") or 0),
        unsent_requests=int(row.get("unsent_requests") or 0))


def _rebuilt(row: Mapping[str, Any], context: dict[str, Any], warnings: list[str]
             ) -> Histogram:
    """No buckets table: the latency histogram rebuilt from the row's min/p50/p90/p99/max (as
    for SMP); the row's percentiles stay the run's own."""
    from meshlab.formats.smp import _rebuild

    points = {"0": "min_us", "50": "p50_us", "90": "p90_us", "99": "p99_us", "100": "max_us"}
    reported = {k: v for k, col in points.items() if (v := _opt(row.get(col))) is not None}
    mean = _opt(row.get("mean_us"))
    h, _ = _rebuild(reported, None if mean is None else mean / 1e3, int(row["requests"]),
                    warnings)
    warnings.append("no buckets table beside the runs table: the latency histogram is rebuilt "
                    "from its min/p50/p90/p99/max")
    table = {f"{p:g}": v for p in DEFAULT_PS
             if (v := _opt(row.get(percentile_column(p)))) is not None}
    if table and h.total:
        context.update({HEADLINE_PERCENTILES_KEY: table, HEADLINE_COUNT_KEY: h.total,
                        "histogram_reconstructed": True})
    return h


def _time(v: object) -> datetime:
    t = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def write_dataset(results: Sequence[RunResult], directory: Path) -> list[Path]:
    """A hive-partitioned Parquet dataset: `runs/profile=P/mesh=M/*.parquet` and `buckets/...`
    partitioned the same way (DuckDB `read_parquet('DIR/runs/**/*.parquet', hive_partitioning
    = true)`, pandas `read_parquet('DIR/runs')`, Spark). Returns the two table directories."""
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependency("pyarrow (for Parquet export)",
                                install="pip install pyarrow") from exc
    runs = [run_row(r) for r in results]
    part: dict[str, tuple[str, str]] = {
        str(r["run_id"]): (str(r["profile"] or "unknown"), str(r["mesh"] or "none"))
        for r in runs}
    for r in runs:
        r["profile"], r["mesh"] = part[str(r["run_id"])]
    runs_schema = pa.schema([(c.name, getattr(pa, _PARQUET_TYPES[c.type])())
                             for c in RUN_COLUMNS])
    buckets = [{**b, "profile": part[b["run_id"]][0], "mesh": part[b["run_id"]][1]}
               for b in bucket_rows(results)]
    bucket_schema = pa.schema([("run_id", pa.string()), ("kind", pa.string()),
                               ("bucket", pa.int32()), ("lower_us", pa.float64()),
                               ("upper_us", pa.float64()), ("count", pa.int64()),
                               ("profile", pa.string()), ("mesh", pa.string())])
    hive = ds.partitioning(pa.schema([("profile", pa.string()), ("mesh", pa.string())]),
                           flavor="hive")
    out = []
    for name, rows, schema in (("runs", runs, runs_schema), ("buckets", buckets, bucket_schema)):
        target = directory / name
        ds.write_dataset(pa.Table.from_pylist(rows, schema=schema), target, format="parquet",
                         partitioning=hive, existing_data_behavior="error",
                         basename_template="part-{i}.parquet")
        out.append(target)
    return out
