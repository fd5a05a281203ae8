"""The store's one write path: a batch of runs in ONE transaction, every table filled by ONE
statement, a bulk `INSERT ... SELECT` from a registered pandas DataFrame (a multi-row VALUES list
when it holds only a few cells). `Store.save` is a batch of one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from meshlab.dimensions import as_text
from meshlab.errors import StoreError
from meshlab.results import RunResult
from meshlab.run_schema import bucket_columns
from meshlab.store import _spool as spool
from meshlab.store._rows import (
    delete_rows,
    dumps,
    finish_experiment,
    insert_experiment,
    load_results,
    run_row,
    same,
)
from meshlab.store._schema import RUN_TABLES


def batches(results: Iterable[RunResult], size: int) -> Iterator[list[RunResult]]:
    """`results` in lists of at most `size` (itertools.batched needs Python 3.12)."""
    it = iter(results)
    while batch := list(itertools.islice(it, size)):
        yield batch


def write_batch(con: duckdb.DuckDBPyConnection, results: Sequence[RunResult], *, where: str,
                experiment_id: str | None, replace: bool,
                skip_existing: bool = False) -> int:
    """Insert runs and all their rows in ONE transaction (all of the batch or none); returns
    how many runs were written.

    A run id already stored is replaced (`replace`), skipped (`skip_existing`, spool imports),
    skipped when the stored run is identical (re-importing a file), or else refused with a
    StoreError before anything of the batch is written."""
    batch = _unique(results, replace=replace)
    con.execute("BEGIN TRANSACTION")
    try:
        stored = sorted(rid for (rid,) in con.execute(
            "SELECT run_id FROM runs WHERE list_contains(?, run_id)", [list(batch)]).fetchall())
        if stored and replace:
            delete_rows(con, stored, RUN_TABLES)
        elif stored:
            if not skip_existing:
                _check_unchanged(con, {rid: batch[rid] for rid in stored}, where)
            for rid in stored:
                del batch[rid]
        if not batch:
            con.execute("ROLLBACK")
            return 0
        labels: dict[str, str] = {}
        if experiment_id is not None:
            # fetchall, not fetchone: DuckDB refuses `register` while a result is unfinished
            got = con.execute("SELECT labels FROM experiments WHERE experiment_id = ?",
                              [experiment_id]).fetchall()
            labels = json.loads(got[0][0]) if got else {}
        for table, rows in tables(list(batch.values()), experiment_id=experiment_id,
                                  experiment_labels=labels).items():
            insert_table(con, table, rows)
        con.execute("COMMIT")
        return len(batch)
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _unique(results: Sequence[RunResult], *, replace: bool) -> dict[str, RunResult]:
    """The batch by run_id: an identical repeat is dropped; with `replace` the last one wins."""
    out: dict[str, RunResult] = {}
    for r in results:
        prev = out.get(r.run_id)
        if prev is not None and prev is not r and not replace and not same(prev, r):
            raise StoreError(f"run {r.run_id!r} is given twice with different data; give each "
                             f"run once, or pass replace=True to keep the last one")
        out[r.run_id] = r
    return out


def _check_unchanged(con: duckdb.DuckDBPyConnection, new: Mapping[str, RunResult],
                     where: str) -> None:
    stored = load_results(con, list(new))
    changed = [rid for rid, r in new.items() if rid in stored and not same(stored[rid], r)]
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise StoreError(f"run {changed[0]!r}{more} is already stored in {where} with other "
                         f"data; pass replace=True or delete it first (Store.delete_run)")


# A registered DataFrame costs a fixed ~2-5 ms per statement (DuckDB sets up a scan of every
# column); one multi-row VALUES statement costs ~8 us per cell. Measured crossover: ~250-450
# cells, so a save of one run puts its 1-row `runs` and 2-row `run_histograms` in with VALUES
# and its ~100-2,000 buckets with a DataFrame; a batch of 200 runs uses DataFrames throughout.
_VALUES_MAX_CELLS = 256

Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def insert_table(con: duckdb.DuckDBPyConnection, table: str, rows: Rows | pd.DataFrame) -> None:
    """All the rows of `table` in ONE statement: a registered DataFrame (`INSERT ... SELECT`),
    or for a few cells a multi-row VALUES list. Missing values are None in `rows`."""
    if isinstance(rows, pd.DataFrame):
        columns, n = tuple(str(c) for c in rows.columns), len(rows)
    else:
        columns, n = rows[0], len(rows[1])
    if n == 0:
        return
    cols = ", ".join(f'"{c}"' for c in columns)
    if n * len(columns) <= _VALUES_MAX_CELLS:
        if isinstance(rows, pd.DataFrame):
            records = list(zip(*([_null(v) if isinstance(v, float) else v for v in rows[c]]
                                 for c in rows.columns), strict=True))
        else:
            records = rows[1]
        marks = "(" + ", ".join("?" * len(columns)) + ")"
        con.execute(f"INSERT INTO {table} ({cols}) VALUES {', '.join([marks] * n)}",
                    [v for rec in records for v in rec])
        return
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows[1], columns=columns)
    name = f"_meshlab_{table}_rows"
    con.register(name, frame)
    try:
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
    finally:
        con.unregister(name)


def tables(results: Sequence[RunResult], *, experiment_id: str | None,
           experiment_labels: Mapping[str, str]) -> dict[str, Rows | pd.DataFrame]:
    """The rows of every table for all `results`, in insertion order (`runs` first)."""
    run_rows = [run_row(r, experiment_id=experiment_id, experiment_labels=experiment_labels)
                for r in results]
    return {
        "runs": (tuple(run_rows[0]), [tuple(row.values()) for row in run_rows]),
        "run_histograms": (
            ("run_id", "kind", "total", "min_ns", "max_ns", "sum_ns", "sumsq_ns", "overflow"),
            [(r.run_id, kind, int(h.total), int(h.min_ns), int(h.max_ns), float(h.sum_ns),
              float(h.sumsq_ns), int(h.overflow))
             for r in results for kind, h in (("latency", r.latency),
                                              ("service_time", r.service_time))]),
        "run_buckets": _buckets(results),
        "run_status_codes": (("run_id", "code", "count"), [
            (r.run_id, int(c), int(n)) for r in results for c, n in r.status_codes.items()]),
        "run_errors": (("run_id", "kind", "count"), [
            (r.run_id, str(k), int(n)) for r in results for k, n in r.error_kinds.items()]),
        "run_timeseries": (
            ("run_id", "seq", "second", "requests", "errors", "p50_us", "p99_us"),
            [(r.run_id, i, int(p.second), int(p.requests), int(p.errors), _null(p.p50_us),
              _null(p.p99_us)) for r in results for i, p in enumerate(r.timeseries)]),
        "run_telemetry": _telemetry(results),
        "run_raw": (("run_id", "format", "document"), [
            (r.run_id, _raw_format(r), dumps(r.raw)) for r in results if r.raw is not None]),
    }


def _null(x: float) -> float | None:
    """NaN as NULL, the same in a VALUES list as in a DataFrame (DuckDB reads NaN as NULL)."""
    x = float(x)
    return None if math.isnan(x) else x


def _telemetry(results: Sequence[RunResult]) -> pd.DataFrame:
    # Column-wise: one run may carry 100,000 samples.
    tel = [t for r in results for t in r.telemetry]
    return pd.DataFrame({
        "run_id": np.repeat(np.array([r.run_id for r in results], dtype=object),
                            [len(r.telemetry) for r in results]),
        "seq": np.concatenate([np.arange(len(r.telemetry), dtype=np.int32) for r in results]),
        "t_s": np.fromiter((t.t_s for t in tel), dtype=np.float64, count=len(tel)),
        "source": [str(t.source) for t in tel],
        "metric": [str(t.metric) for t in tel],
        "value": np.fromiter((t.value for t in tel), dtype=np.float64, count=len(tel))})


def _buckets(results: Sequence[RunResult]) -> pd.DataFrame:
    """The non-empty buckets of both histograms of every run (`run_schema.bucket_columns`)."""
    return pd.DataFrame(bucket_columns(results))


def _raw_format(result: RunResult) -> str:
    fmt = result.raw.get("format") if isinstance(result.raw, Mapping) else None
    return as_text(fmt) or result.runner


def import_spooled(con: duckdb.DuckDBPyConnection, db_path: Path) -> int:
    """Import every write spooled beside `db_path`, each in its own transaction; returns how
    many files were processed (a run already stored is skipped, so an import is idempotent)."""
    n = 0
    for path, doc in spool.pending(db_path):
        try:
            if doc is None:
                raise ValueError("not a spool document")
            op = doc.get("op")
            if op == "save":
                replace = bool(doc.get("replace"))
                write_batch(con, [RunResult.from_dict(doc["result"])], where=str(db_path),
                            experiment_id=doc.get("experiment_id"), replace=replace,
                            skip_existing=not replace)
            elif op == "experiment":
                insert_experiment(con, doc, skip_existing=True)
            elif op == "finish_experiment":
                finish_experiment(con, doc)
            else:
                raise ValueError(f"unknown spool operation {op!r}")
        except (duckdb.ConstraintException, duckdb.TransactionException):
            pass        # imported meanwhile by another thread of this process
        except (KeyError, ValueError, TypeError, duckdb.Error):
            spool.set_aside(path)   # kept as *.bad for a human, never retried forever
            continue
        spool.done(path)
        n += 1
    return n
