"""Conversion between `RunResult` and store rows: the `runs` row of a result, the exact load
of stored runs (many at once), experiments and deletion. Writing lives in `_store_write`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np

from meshlab.results import (
    Histogram,
    HostSnapshot,
    RunResult,
    RunStatus,
    TelemetrySample,
    TimeSeriesPoint,
)
from meshlab.store._schema import DIMENSIONS


def utc_naive(t: datetime) -> datetime:
    """A naive UTC datetime for a TIMESTAMP column (naive input is taken as UTC)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def utc_aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=False, default=str)


def scalar(value: object) -> str | None:
    """A dimension value as text: names of mappings (`{"name": "local"}` -> local), else str."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        name = value.get("name")
        return str(name) if name is not None else dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def dimension(result: RunResult, name: str) -> str | None:
    """A matrix dimension of a run: the spec's `dims`, then the spec, then `result.context`."""
    dims = result.spec.get("dims")
    if isinstance(dims, Mapping) and dims.get(name) is not None:
        return scalar(dims[name])
    if result.spec.get(name) is not None:
        return scalar(result.spec[name])
    return scalar(result.context.get(name))


def run_row(result: RunResult, *, experiment_id: str | None,
            experiment_labels: Mapping[str, str]) -> dict[str, Any]:
    """The `runs` row of a result (column name -> value)."""
    spec = result.spec
    lat = result.latency
    spec_labels = spec.get("labels")
    labels = {**experiment_labels, **(dict(spec_labels) if isinstance(spec_labels, Mapping)
                                      else {})}
    row: dict[str, Any] = {
        "run_id": result.run_id,
        "experiment_id": experiment_id,
        "profile": scalar(spec.get("profile") or result.context.get("profile")),
        "mesh": dimension(result, "mesh"),
        "runner": result.runner,
        "runner_version": result.runner_version,
    }
    for name in DIMENSIONS:
        row[name] = dimension(result, name)
    row.update({
        "target": scalar(spec.get("target")),
        "rate_rps": float(result.requested_rate_rps),
        "connections": _int(spec.get("connections")),
        "duration_s": float(result.duration_s),
        "warmup_s": _float(spec.get("warmup_s")),
        "repeat": _int(spec.get("repeat")),
        "run_index": _int(spec.get("index")),
        "status": str(result.status),
        "started_at": utc_naive(result.started_at),
        "ended_at": utc_naive(result.ended_at),
        "achieved_rate_rps": float(result.achieved_rate_rps),
        "requests": int(result.requests),
        "errors": int(result.errors),
        "error_rate": float(result.error_rate),
        "bytes_received": int(result.bytes_received),
        # the run's own percentiles: fortio/Nighthawk imports keep the tool's reported values
        # (RunResult.headline_percentile_us); run_buckets keeps the histogram for pooling
        "p50_us": _nan_none(result.headline_percentile_us(50)),
        "p90_us": _nan_none(result.headline_percentile_us(90)),
        "p99_us": _nan_none(result.headline_percentile_us(99)),
        "p999_us": _nan_none(result.headline_percentile_us(99.9)),
        "min_us": _nan_none(lat.min_us),
        "max_us": _nan_none(lat.max_us),
        "mean_us": _nan_none(lat.mean_us),
        "stdev_us": _nan_none(lat.stdev_us),
        "uncorrected_p50_us": _nan_none(result.headline_percentile_us(50, kind="service_time")),
        "uncorrected_p99_us": _nan_none(result.headline_percentile_us(99, kind="service_time")),
        "hostname": result.host.hostname if result.host else None,
        "error": result.error,
        "warnings": dumps(list(result.warnings)),
        "labels": dumps(labels),
        "spec": dumps(spec),
        "context": dumps(result.context),
        "host": dumps(result.host.to_dict()) if result.host else None,
        "saved_at": datetime.now(UTC).replace(tzinfo=None),
    })
    return row


# --- reading ---------------------------------------------------------------------------------

def histograms(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
               kind: str) -> dict[str, Histogram]:
    """The exact stored histograms of `run_ids` (every id must exist)."""
    out: dict[str, Histogram] = {}
    for rid, _total, mn, mx, s, ss, ov in con.execute(
            "SELECT run_id, total, min_ns, max_ns, sum_ns, sumsq_ns, overflow "
            "FROM run_histograms WHERE kind = ? AND list_contains(?, run_id)",
            [kind, list(run_ids)]).fetchall():
        out[rid] = Histogram(min_ns=int(mn), max_ns=int(mx), sum_ns=float(s),
                             sumsq_ns=float(ss), overflow=int(ov))
    cols = con.execute(
        "SELECT run_id, bucket, count FROM run_buckets "
        "WHERE kind = ? AND list_contains(?, run_id) ORDER BY run_id",
        [kind, list(run_ids)]).fetchnumpy()
    rids = np.asarray(cols["run_id"], dtype=object)
    buckets = np.asarray(cols["bucket"], dtype=np.int64)
    counts = np.asarray(cols["count"], dtype=np.int64)
    if rids.size:
        starts = np.flatnonzero(np.r_[True, rids[1:] != rids[:-1]])
        ends = np.r_[starts[1:], rids.size]
        for a, b in zip(starts, ends, strict=True):
            h = out.setdefault(str(rids[a]), Histogram())
            np.add.at(h.counts, buckets[a:b], counts[a:b])
    for h in out.values():
        h.total = int(h.counts.sum())
    return out


def _none_nan(x: object) -> float:
    return math.nan if x is None else float(x)  # type: ignore[arg-type]


_RUN_FIELDS = ("run_id, spec, status, started_at, ended_at, duration_s, rate_rps, "
               "achieved_rate_rps, requests, errors, host, runner, runner_version, context, "
               "warnings, error, bytes_received")


def _grouped(con: duckdb.DuckDBPyConnection, sql: str,
             run_ids: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows of a child table by run_id (the first selected column), in the query's order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for rid, *rest in con.execute(sql, [list(run_ids)]).fetchall():
        out.setdefault(str(rid), []).append(tuple(rest))
    return out


def load_results(con: duckdb.DuckDBPyConnection,
                 run_ids: Sequence[str]) -> dict[str, RunResult]:
    """Rebuild stored runs exactly as saved, by run_id (ids not stored are left out): one
    query per table for all of them, so comparing a batch of re-imported runs stays cheap."""
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return {}
    heads = con.execute(f"SELECT {_RUN_FIELDS} FROM runs WHERE list_contains(?, run_id)",
                        [ids]).fetchall()
    if not heads:
        return {}
    lat = histograms(con, ids, "latency")
    svc = histograms(con, ids, "service_time")
    codes = _grouped(con, "SELECT run_id, code, count FROM run_status_codes "
                          "WHERE list_contains(?, run_id) ORDER BY run_id, code", ids)
    kinds = _grouped(con, "SELECT run_id, kind, count FROM run_errors "
                          "WHERE list_contains(?, run_id) ORDER BY run_id, kind", ids)
    ts = _grouped(con, "SELECT run_id, second, requests, errors, p50_us, p99_us "
                       "FROM run_timeseries WHERE list_contains(?, run_id) "
                       "ORDER BY run_id, seq", ids)
    tel = _grouped(con, "SELECT run_id, t_s, source, metric, value FROM run_telemetry "
                        "WHERE list_contains(?, run_id) ORDER BY run_id, seq", ids)
    raw = {rid: doc for rid, doc in con.execute(
        "SELECT run_id, document FROM run_raw WHERE list_contains(?, run_id)", [ids]).fetchall()}
    out: dict[str, RunResult] = {}
    for (rid, spec, status, started, ended, duration_s, rate_rps, achieved, requests, errors,
         host, runner, runner_version, context, warnings, error, bytes_received) in heads:
        out[rid] = RunResult(
            run_id=rid,
            spec=json.loads(spec),
            status=RunStatus(status),
            started_at=utc_aware(started),
            ended_at=utc_aware(ended),
            duration_s=float(duration_s),
            requested_rate_rps=float(rate_rps),
            achieved_rate_rps=float(achieved),
            requests=int(requests),
            errors=int(errors),
            status_codes={int(c): int(n) for c, n in codes.get(rid, [])},
            error_kinds={str(k): int(n) for k, n in kinds.get(rid, [])},
            latency=lat.get(rid, Histogram()),
            service_time=svc.get(rid, Histogram()),
            timeseries=[TimeSeriesPoint(second=int(s), requests=int(r), errors=int(e),
                                        p50_us=_none_nan(p50), p99_us=_none_nan(p99))
                        for s, r, e, p50, p99 in ts.get(rid, [])],
            host=HostSnapshot.from_dict(json.loads(host)) if host else None,
            runner=str(runner),
            runner_version=str(runner_version),
            context=json.loads(context),
            telemetry=[TelemetrySample(t_s=float(t), source=str(s), metric=str(m),
                                       value=_none_nan(v)) for t, s, m, v in tel.get(rid, [])],
            warnings=[str(w) for w in json.loads(warnings)],
            error=error,
            raw=json.loads(raw[rid]) if rid in raw else None,
            bytes_received=int(bytes_received),
        )
    return out


def load_result(con: duckdb.DuckDBPyConnection, run_id: str) -> RunResult | None:
    """One stored run exactly as saved, or None when `run_id` is not stored."""
    return load_results(con, [run_id]).get(run_id)


def same(a: RunResult, b: RunResult) -> bool:
    """Whether two runs hold the same data (a re-import of a stored run)."""
    # JSON text compares NaN equal to NaN and a tuple equal to the list it is stored as.
    def text(r: RunResult) -> str:
        return json.dumps(r.to_dict(), sort_keys=True, default=str)

    return text(a) == text(b)


# --- experiments and deletion ----------------------------------------------------------------

def delete_rows(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                tables: Sequence[str]) -> None:
    """Delete the runs and their rows in `tables` (inside the caller's transaction)."""
    for table in (*tables, "runs"):
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [list(run_ids)])


def insert_experiment(con: duckdb.DuckDBPyConnection, doc: Mapping[str, Any], *,
                      skip_existing: bool = False) -> None:
    if skip_existing and con.execute("SELECT 1 FROM experiments WHERE experiment_id = ?",
                                     [doc["experiment_id"]]).fetchone():
        return
    created = utc_naive(datetime.fromisoformat(str(doc["created_at"])))
    con.execute("INSERT INTO experiments VALUES (?, ?, ?, 'running', ?, NULL, ?, ?)",
                [doc["experiment_id"], doc["name"], doc.get("description", ""), created,
                 dumps(doc.get("labels", {})), dumps(doc.get("profile", {}))])
    if doc.get("owner"):
        from meshlab.store._owner import insert_owner

        insert_owner(con, str(doc["experiment_id"]), doc["owner"])


def finish_experiment(con: duckdb.DuckDBPyConnection, doc: Mapping[str, Any]) -> bool:
    """Set status and end time; False when the experiment is not stored."""
    if not con.execute("SELECT 1 FROM experiments WHERE experiment_id = ?",
                       [doc["experiment_id"]]).fetchone():
        return False
    finished = utc_naive(datetime.fromisoformat(str(doc["finished_at"])))
    con.execute("UPDATE experiments SET status = ?, finished_at = ? WHERE experiment_id = ?",
                [doc["status"], finished, doc["experiment_id"]])
    return True
