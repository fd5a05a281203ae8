"""Conversion between `RunResult` and store rows: the `runs` row of a result, the exact load
of stored runs (many at once), experiments and deletion. Writing lives in `_write`.
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
from meshlab.run_schema import run_row as schema_row


def utc_naive(t: datetime) -> datetime:
    """A naive UTC datetime for a TIMESTAMP column (naive input is taken as UTC)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def utc_aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=False, default=str)


def run_row(result: RunResult, *, experiment_id: str | None,
            experiment_labels: Mapping[str, str]) -> dict[str, Any]:
    """The `runs` row of a result (column name -> value): `meshlab.run_schema.run_row` with
    naive UTC times, plus when it was saved."""
    row = schema_row(result, experiment_id=experiment_id, experiment_labels=experiment_labels)
    row["started_at"] = utc_naive(result.started_at)
    row["ended_at"] = utc_naive(result.ended_at)
    row["saved_at"] = datetime.now(UTC).replace(tzinfo=None)
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
    heads = con.execute(f"SELECT {_RUN_FIELDS}, unsent_requests FROM runs "
                        f"WHERE list_contains(?, run_id)", [ids]).fetchall()
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
         host, runner, runner_version, context, warnings, error, bytes_received,
         unsent_requests) in heads:
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
            unsent_requests=int(unsent_requests or 0),
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
