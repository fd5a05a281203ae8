"""The DuckDB store of runs and experiments: all-or-nothing batches of runs in, DataFrames out.

Every public call opens and closes its own connection, so processes take turns on one file: a
locked file is retried with backoff up to `lock_timeout_s`, then writes wait in `<db>.spool/`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import duckdb
import numpy as np
import pandas as pd

from meshlab.errors import StoreError
from meshlab.results import Histogram, RunResult, new_run_id
from meshlab.run_schema import DEFAULT_PS, RUN_COLUMN_NAMES, percentile_column
from meshlab.store import _rows as rows
from meshlab.store import _spool as spool
from meshlab.store._connect import DEFAULT_PATH, StoreLocked, check_header, open_connection
from meshlab.store._merge import MergeReport
from meshlab.store._owner import abort_orphaned, current_owner
from meshlab.store._query import (
    FILTERS,
    percentile_frame,
    where_clause,
)
from meshlab.store._schema import (
    KINDS,
    RUN_TABLES,
    SCHEMA_VERSION,
    create_empty,
    ensure_schema,
    read_view,
)
from meshlab.store._write import batches, import_spooled, write_batch

__all__ = ["DEFAULT_PATH", "MergeReport", "Store", "percentile_column"]

_RUN_SELECT = ", ".join(f'"{c}"' for c in RUN_COLUMN_NAMES)

log = logging.getLogger("meshlab.store")
_SCHEMA_LOCK = threading.Lock()      # threads of one process share a DuckDB instance

Filter = str | Sequence[str] | None


class Store:
    """Runs and experiments in one DuckDB file (`data/meshlab.duckdb` unless told otherwise).

    `Store(":memory:")` keeps one in-memory database for the life of the object (tests, demos).
    """

    def __init__(self, path: str | Path = DEFAULT_PATH, *, read_only: bool = False,
                 lock_timeout_s: float = 60.0) -> None:
        self.read_only = read_only
        self.lock_timeout_s = float(lock_timeout_s)
        self._schema_ok = False
        self._version = SCHEMA_VERSION       # of the file, once checked; older: read_view
        self._memory: duckdb.DuckDBPyConnection | None = None
        if str(path) == ":memory:":
            self.path = Path(":memory:")
            self._memory = duckdb.connect(":memory:")
            create_empty(self._memory)
            ensure_schema(self._memory, ":memory:", read_only=False)
            return
        self.path = Path(path).expanduser()
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory of store {self.path}: "
                                 f"{exc.strerror}") from exc
        check_header(self.path)
        # Create or check the schema now when the file is free; a locked file is checked later.
        with contextlib.suppress(StoreLocked), self._connect(timeout_s=0.0):
            pass

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"Store({str(self.path)!r}{mode})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the in-memory database of a `:memory:` store (file stores hold nothing open)."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    # connections --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, *, timeout_s: float | None = None,
                 spooled: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._memory is not None:
            cur = self._memory.cursor()
            try:
                yield cur
            finally:
                cur.close()
            return
        if self.read_only and not self.path.exists():
            con = duckdb.connect(":memory:")      # no file yet: an empty store, not an error
            try:
                create_empty(con)
                yield con
            finally:
                con.close()
            return
        con = open_connection(self.path, read_only=self.read_only,
                              timeout_s=self.lock_timeout_s if timeout_s is None else timeout_s)
        try:
            if not self._schema_ok:
                with _SCHEMA_LOCK:
                    self._version = ensure_schema(con, self.path, read_only=self.read_only)
                self._schema_ok = True
                if not self.read_only:
                    self._abort_orphaned(con)
            if self._version < SCHEMA_VERSION:
                read_view(con, self._version)
            if spooled and not self.read_only:
                self._import_spool(con)
            yield con
        except duckdb.Error as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc
        finally:
            con.close()

    def _abort_orphaned(self, con: duckdb.DuckDBPyConnection) -> None:
        # an experiment left `running` by a process that was killed (SIGKILL, a reboot)
        gone = abort_orphaned(con)
        if gone:
            log.warning("store %s: experiment(s) %s were running in a process that is gone; "
                        "marked aborted", self.path, ", ".join(gone))

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise StoreError(f"cannot {what}: store {self.path} was opened read-only; "
                             f"open it with Store({str(self.path)!r})")

    # experiments --------------------------------------------------------------------------
    def new_experiment(self, *, name: str, profile: Mapping[str, object], description: str = "",
                       labels: Mapping[str, str] | None = None) -> str:
        """Record a new running experiment; returns its id (`exp-20261122T024131-3f9a1c`)."""
        self._writable("create an experiment")
        doc = {"experiment_id": f"exp-{new_run_id()}", "name": name,
               "description": description, "labels": dict(labels or {}),
               "profile": dict(profile), "created_at": datetime.now(UTC).isoformat(),
               "owner": current_owner()}
        try:
            with self._connect() as con:
                rows.insert_experiment(con, doc)
        except StoreLocked:
            spool.write(self.path, "experiment", doc, key=str(doc["experiment_id"]))
            log.warning("store %s is locked; experiment %s spooled", self.path,
                        doc["experiment_id"])
        return str(doc["experiment_id"])

    def finish_experiment(self, experiment_id: str, *, status: str) -> None:
        """Set an experiment's final status (e.g. completed, aborted, failed) and end time."""
        self._writable("finish an experiment")
        doc = {"experiment_id": experiment_id, "status": str(status),
               "finished_at": datetime.now(UTC).isoformat()}
        try:
            with self._connect() as con:
                if rows.finish_experiment(con, doc):
                    return
        except StoreLocked:
            pass
        else:
            if not any(d and d.get("experiment_id") == experiment_id
                       for _, d in spool.pending(self.path)):
                raise StoreError(f"experiment {experiment_id!r} not found in {self.path}; "
                                 f"list experiments with Store.experiments()")
        spool.write(self.path, "finish_experiment", doc, key=experiment_id)

    def experiments(self) -> pd.DataFrame:
        """One row per experiment with its run count, oldest first."""
        with self._connect() as con:
            df = con.execute(
                "SELECT e.experiment_id, e.name, e.description, e.status, e.created_at, "
                "e.finished_at, count(r.run_id) AS runs, e.labels, e.profile "
                "FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.experiment_id "
                "GROUP BY ALL ORDER BY e.created_at, e.experiment_id").df()
        return _utc(df, "created_at", "finished_at")

    # runs: writing ------------------------------------------------------------------------
    def save(self, result: RunResult, *, experiment_id: str | None = None,
             replace: bool = False) -> None:
        """Store a run in one transaction (never half a run). Saving a stored run again is a
        no-op if identical, else a StoreError unless `replace=True`. If the file stays locked
        for `lock_timeout_s`, the run is spooled to `<db>.spool/` for the next writer.
        (A batch of one through `save_many`: the store has one write path.)"""
        self.save_many([result], experiment_id=experiment_id, replace=replace, batch_size=1)

    def save_many(self, results: Iterable[RunResult], *, experiment_id: str | None = None,
                  replace: bool = False, batch_size: int = 200,
                  progress: Callable[[int], None] | None = None) -> int:
        """Store many runs through one connection, `batch_size` runs per transaction (a
        failure leaves no half run and no half batch; earlier batches stay stored); returns
        how many runs were written (new or replaced).

        Runs already stored are skipped when identical, else a StoreError unless
        `replace=True` (as `save`). `progress(n)` is called after each batch with the number
        of runs handled so far. The file lock is held for the whole call; if it stays locked
        by another process for `lock_timeout_s`, every run is spooled to `<db>.spool/` for
        the next writer (and 0 is returned)."""
        self._writable("save runs")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        it = iter(results)
        written = handled = 0
        try:
            with self._connect() as con:
                for batch in batches(it, batch_size):
                    try:
                        written += write_batch(con, batch, where=str(self.path),
                                               experiment_id=experiment_id, replace=replace)
                    except (StoreError, duckdb.Error) as exc:
                        raise _batch_error(exc, self.path, handled, len(batch)) from exc
                    handled += len(batch)
                    if progress is not None:
                        progress(handled)
        except StoreLocked:         # raised on connecting, before any run was taken from `it`
            n = spool.write_saves(self.path, it, experiment_id=experiment_id, replace=replace)
            if progress is not None and n:
                progress(n)
        return written

    def merge_from(self, path: str | Path) -> MergeReport:
        """Copy another store's experiments and runs into this one (`meshlab merge`): a run id
        already here is skipped when its content is the same, else reported as a conflict and
        left as it was; each copied run records `merged_from` and `merged_at` in its context."""
        from meshlab.store._merge import merge_into

        self._writable("merge stores")
        return merge_into(self, path)

    def _import_spool(self, con: duckdb.DuckDBPyConnection) -> int:
        return import_spooled(con, self.path)

    def import_spool(self) -> int:
        """Import writes spooled while the file was locked (every writer does this on its own
        when it connects); returns how many spool files were processed."""
        self._writable("import the spool")
        with self._connect(spooled=False) as con:
            return self._import_spool(con)

    def delete_run(self, run_id: str) -> None:
        """Delete a run and every row belonging to it, in one transaction."""
        self._writable(f"delete run {run_id!r}")
        with self._connect() as con:
            self._require(con, [run_id])
            con.execute("BEGIN TRANSACTION")
            try:
                rows.delete_rows(con, [run_id], RUN_TABLES)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # runs: reading ------------------------------------------------------------------------
    def _require(self, con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> None:
        found = {r for (r,) in con.execute("SELECT run_id FROM runs WHERE list_contains(?, run_id)",
                                           [list(run_ids)]).fetchall()}
        missing = [r for r in run_ids if r not in found]
        if not missing:
            return
        where = "" if self._memory is not None else f" in {self.path}"
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        spooled = ("" if self._memory is not None or first not in spool.spooled_run_ids(self.path)
                   else "; it waits in the spool until a writer gets the file lock")
        raise StoreError(f"run {first!r}{more} not found{where}{spooled}; "
                         f"list runs with `meshlab runs`")

    def load(self, run_id: str) -> RunResult:
        """The stored run, equal to the `RunResult` that was saved."""
        with self._connect() as con:
            result = rows.load_result(con, run_id)
            if result is None:
                self._require(con, [run_id])
        assert result is not None
        return result

    def runs(self, *, experiment_id: Filter = None, profile: Filter = None, mesh: Filter = None,
             runner: Filter = None, status: Filter = None, environment: Filter = None,
             mode: Filter = None, policy: Filter = None, data_plane: Filter = None,
             rate_rps: float | Sequence[float] | None = None,
             connections: int | Sequence[int] | None = None,
             label: Mapping[str, str] | None = None, run_ids: Sequence[str] | None = None,
             since: datetime | str | None = None, until: datetime | str | None = None,
             ) -> pd.DataFrame:
        """One row per run, oldest first; a filter value may be a list (any of its values),
        `label` matches runs carrying all its labels, naive `since`/`until` times are UTC."""
        filters = {k: v for k, v in locals().items() if k in FILTERS and v is not None}
        with self._connect() as con:
            return self._select(con, filters)

    def _select(self, con: duckdb.DuckDBPyConnection,
                filters: Mapping[str, object]) -> pd.DataFrame:
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise StoreError(f"unknown run filter {unknown[0]!r}; use one of "
                             f"{', '.join(FILTERS)}")
        sql, params, label = where_clause(filters)
        df = con.execute(f"SELECT {_RUN_SELECT} FROM runs {sql} "
                         f"ORDER BY started_at, run_id", params).df()
        if label:
            keep = [all(json.loads(text).get(k) == v for k, v in label.items())
                    for text in df["labels"]]
            df = df[np.asarray(keep, dtype=bool)].reset_index(drop=True)
        return _utc(df, "started_at", "ended_at")

    def histogram(self, run_id: str, *, kind: str = "latency") -> Histogram:
        """The exact stored histogram of one run (`latency` or `service_time`)."""
        return self.pooled_histogram([run_id], kind=kind)

    def pooled_histogram(self, run_ids: str | Iterable[str], *,
                         kind: str = "latency") -> Histogram:
        """The histograms of several runs (e.g. repeats) merged into one."""
        ids = _ids(run_ids)
        _check_kind(kind)
        with self._connect() as con:
            self._require(con, ids)
            hists = rows.histograms(con, ids, kind)
        return Histogram.merged(hists[r] for r in ids if r in hists)

    def percentiles(self, run_ids: str | Iterable[str], *, ps: Sequence[float] = DEFAULT_PS,
                    kind: str = "latency") -> pd.DataFrame:
        """One row per run: run_id, p50_us, p90_us ... (see `percentile_column`)."""
        ids = _ids(run_ids)
        _check_kind(kind)
        with self._connect() as con:
            self._require(con, ids)
            hists = rows.histograms(con, ids, kind)
        return percentile_frame(ids, hists, ps)

    def buckets(self, run_ids: str | Iterable[str], *,
                kind: str | None = "latency") -> pd.DataFrame:
        """Non-empty buckets: run_id, kind, bucket, lower_us, upper_us, count (kind=None: both)."""
        if kind is not None:
            _check_kind(kind)
        return self._child("SELECT run_id, kind, bucket, lower_us, upper_us, count "
                           "FROM run_buckets WHERE list_contains(?, run_id) AND "
                           "(? IS NULL OR kind = ?) ORDER BY run_id, kind, bucket",
                           run_ids, kind, kind)

    def timeseries(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Per-second points: run_id, second, requests, errors, p50_us, p99_us."""
        return self._child("SELECT run_id, second, requests, errors, p50_us, p99_us "
                           "FROM run_timeseries WHERE list_contains(?, run_id) "
                           "ORDER BY run_id, seq", run_ids)

    def status_codes(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """HTTP status counts: run_id, code, count."""
        return self._child("SELECT run_id, code, count FROM run_status_codes "
                           "WHERE list_contains(?, run_id) ORDER BY run_id, code", run_ids)

    def errors(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Transport error counts: run_id, kind, count."""
        return self._child("SELECT run_id, kind, count FROM run_errors "
                           "WHERE list_contains(?, run_id) ORDER BY run_id, kind", run_ids)

    def telemetry(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Telemetry samples: run_id, t_s, source, metric, value."""
        return self._child("SELECT run_id, t_s, source, metric, value FROM run_telemetry "
                           "WHERE list_contains(?, run_id) ORDER BY run_id, seq", run_ids)

    def _child(self, sql: str, run_ids: str | Iterable[str], *params: object) -> pd.DataFrame:
        ids = _ids(run_ids)
        with self._connect() as con:
            self._require(con, ids)
            return con.execute(sql, [ids, *params]).df()


# --- helpers ---------------------------------------------------------------------------------

def _batch_error(exc: Exception, path: Path, handled: int, size: int) -> StoreError:
    """The error of a failed batch, saying what of the save_many call is stored."""
    text = str(exc) if isinstance(exc, StoreError) else f"store {path}: {_first_line(exc)}"
    if handled:
        text += (f" (the {handled} run(s) before this batch are stored; none of this batch "
                 f"of {size} is)")
    return StoreError(text)


def _first_line(exc: Exception) -> str:
    # DuckDB appends the SQL with a caret ("LINE 1: ...?, ?, ?..."): noise for a user.
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise StoreError(f"unknown histogram kind {kind!r}; use one of {', '.join(KINDS)}")


def _ids(run_ids: str | Iterable[str]) -> list[str]:
    return [run_ids] if isinstance(run_ids, str) else [str(r) for r in run_ids]


def _utc(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for c in columns:
        df[c] = pd.to_datetime(df[c]).dt.tz_localize("UTC")
    return df
