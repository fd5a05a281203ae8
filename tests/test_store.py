"""Tests of the DuckDB store on real files under tmp_path: round trips, queries, atomic saves,
schema checks, and real concurrent writer processes (lock retry, spool, SIGKILL)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pandas as pd
import pytest

from meshlab.analysis import compare_groups, pooled_percentiles
from meshlab.errors import ProfileError, StoreError
from meshlab.results import Histogram, RunResult, RunStatus, TimeSeriesPoint
from meshlab.store import Store, percentile_column
from meshlab.store import _schema as _store_schema
from meshlab.store import _write as _store_write
from meshlab.store._schema import RUN_TABLES, SCHEMA_VERSION

DATA_SCRIPT = Path(__file__).with_name("_store_data.py")


def _load_data_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_meshlab_store_test_data", DATA_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_result = _load_data_module().make_result

# The columns of Store.runs(): users query these names; renaming one is a breaking change.
# Schema 1 had every one but `protocol` and `format` (added in schema 2).
RUN_COLUMNS = [
    "run_id", "experiment_id", "profile", "mesh", "runner", "runner_version", "environment",
    "mode", "policy", "data_plane", "mtls", "target", "rate_rps", "connections", "protocol",
    "duration_s", "warmup_s", "repeat", "run_index", "status", "started_at", "ended_at",
    "achieved_rate_rps", "requests", "errors", "error_rate", "unsent_requests", "bytes_received",
    "p50_us",
    "p90_us", "p99_us", "p999_us", "min_us", "max_us", "mean_us", "stdev_us",
    "uncorrected_p50_us", "uncorrected_p99_us", "hostname", "error", "format", "warnings",
    "labels", "spec", "context", "host"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "meshlab.duckdb"


@pytest.fixture
def store(db: Path) -> Store:
    return Store(db, lock_timeout_s=10)


def _rows_of(db: Path, run_id: str) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?",  # type: ignore[index]
                               [run_id]).fetchone()[0] for t in ("runs", *RUN_TABLES)}
    finally:
        con.close()


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(DATA_SCRIPT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=DATA_SCRIPT.parent.parent)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        for f in (p.stdout, p.stderr):
            if f:
                f.close()


# --- round trip and queries ------------------------------------------------------------------

def test_round_trip_is_exact(store: Store) -> None:
    r = make_result("r1")
    store.save(r)
    loaded = store.load("r1")
    assert loaded == r
    assert loaded.to_dict() == r.to_dict()           # includes sums, overflow, raw, host
    assert store.histogram("r1", kind="service_time") == r.service_time
    assert store.histogram("r1").sum_ns == r.latency.sum_ns


def test_round_trip_of_sparse_run(store: Store) -> None:
    r = make_result("r-empty", n=0, telemetry_n=0)
    r.timeseries = [TimeSeriesPoint(second=0, requests=0, errors=0, p50_us=math.nan,
                                    p99_us=math.nan)]
    r.host, r.raw, r.status, r.error = None, None, RunStatus.FAILED, "wrk exited with code 1"
    r.status_codes, r.error_kinds, r.warnings, r.spec = {}, {}, [], {}
    store.save(r)
    got = store.load("r-empty")
    assert math.isnan(got.timeseries[0].p50_us)
    got.timeseries = r.timeseries = []
    assert got == r
    row = store.runs().iloc[0]
    assert row["status"] == "failed" and row["error"] == "wrk exited with code 1"
    assert pd.isna(row["p50_us"]) and pd.isna(row["mesh"]) and pd.isna(row["connections"])


def test_runs_columns_dimensions_and_labels(store: Store) -> None:
    exp = store.new_experiment(name="overhead", profile={"name": "smoke"},
                               labels={"branch": "main", "team": "x"})
    store.save(make_result("r1", mesh="none"), experiment_id=exp)
    df = store.runs()
    assert list(df.columns) == RUN_COLUMNS
    row = df.iloc[0]
    assert (row["mesh"], row["mode"], row["policy"], row["environment"], row["data_plane"],
            row["mtls"]) == ("none", "local", "retry", "local", "envoy", "true")
    assert (row["protocol"], row["format"], row["target"]) == (
        "http1", "meshlab", "http://127.0.0.1:8080/")
    assert (row["rate_rps"], row["connections"], row["repeat"]) == (1000.0, 16, 0)
    assert json.loads(row["labels"]) == {"branch": "main", "team": "a"}   # run label wins
    assert json.loads(row["spec"])["headers"]["Authorization"] == "<redacted>"
    assert json.loads(row["host"])["hostname"] == "bench-1"
    assert row["started_at"] == pd.Timestamp("2026-11-22 10:00:00.123456", tz="UTC")
    assert row["error_rate"] == pytest.approx(row["errors"] / row["requests"])
    r = make_result("x")
    assert row["p99_us"] == pytest.approx(r.latency.percentile_us(99))
    assert row["uncorrected_p50_us"] == pytest.approx(r.service_time.percentile_us(50))


def test_run_filters(store: Store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (mesh, rate) in enumerate([("none", 100.0), ("istio", 100.0), ("linkerd", 200.0)]):
        store.save(make_result(f"r{i}", seed=i, mesh=mesh, rate_rps=rate,
                               started_at=t0 + timedelta(hours=i),
                               labels=(("branch", "main" if i < 2 else "dev"),)))
    assert list(store.runs()["run_id"]) == ["r0", "r1", "r2"]
    assert list(store.runs(mesh="istio")["run_id"]) == ["r1"]
    assert list(store.runs(mesh=["none", "linkerd"])["run_id"]) == ["r0", "r2"]
    assert list(store.runs(rate_rps=100)["run_id"]) == ["r0", "r1"]
    assert list(store.runs(label={"branch": "dev"})["run_id"]) == ["r2"]
    assert list(store.runs(run_ids=["r2", "r0"])["run_id"]) == ["r0", "r2"]
    assert list(store.runs(since=t0 + timedelta(minutes=30))["run_id"]) == ["r1", "r2"]
    assert list(store.runs(until="2026-01-01T01:30:00+00:00")["run_id"]) == ["r0", "r1"]
    assert store.runs(status="failed").empty
    assert list(store.runs(mode="local", runner="native")["run_id"]) == ["r0", "r1", "r2"]
    with pytest.raises(StoreError, match="not an ISO date"):
        store.runs(since="yesterday")


def test_percentiles_pooled_and_buckets(store: Store) -> None:
    results = [make_result(f"r{rep}-{mesh}", seed=rep * 10 + k, mesh=mesh, repeat=rep,
                           scale_ns=200_000.0 * (k + 1))
               for rep in range(3) for k, mesh in enumerate(("none", "istio"))]
    for r in results:
        store.save(r)
    pct = store.percentiles(["r1-istio", "r0-none"], ps=(50, 99.9, 99.99))
    assert list(pct.columns) == ["run_id", "p50_us", "p999_us", "p9999_us"]
    assert list(pct["run_id"]) == ["r1-istio", "r0-none"]
    assert pct["p999_us"].iloc[1] == results[0].latency.percentile_us(99.9)
    assert percentile_column(50.0) == "p50_us" and percentile_column(99.9) == "p999_us"

    # Pooling is analysis over the frames the store returns (the store only queries).
    runs, buckets = store.runs(), store.buckets([r.run_id for r in results], kind=None)
    pooled = pooled_percentiles(runs, buckets, group_by=("mesh",))
    assert list(pooled.columns[:3]) == ["mesh", "runs", "requests"]
    by_mesh = pooled.set_index("mesh")
    merged = Histogram.merged(r.latency for r in results if r.spec["mesh"] == "istio")
    assert by_mesh.loc["istio", "runs"] == 3
    assert by_mesh.loc["istio", "requests"] == 3 * 5_000
    assert by_mesh.loc["istio", "p99_us"] == merged.percentile_us(99)
    assert store.pooled_histogram([r.run_id for r in results if r.spec["mesh"] == "istio"]) \
        == merged
    only = pooled_percentiles(runs[runs["mesh"] == "none"], buckets, group_by=(),
                              kind="service_time")
    assert list(only["runs"]) == [3]
    assert (only[["p50_us", "p90_us", "p99_us", "p999_us"]].diff(axis=1).iloc[0, 1:] >= 0).all()

    b = store.buckets(["r0-none"])
    h = results[0].latency
    assert len(b) == len(h.nonzero_buckets()) and int(b["count"].sum()) == h.total
    assert (b["upper_us"] > b["lower_us"]).all() and set(b["kind"]) == {"latency"}
    assert set(store.buckets("r0-none", kind=None)["kind"]) == {"latency", "service_time"}
    with pytest.raises(StoreError, match="unknown histogram kind"):
        store.buckets("r0-none", kind="p99")
    with pytest.raises(ProfileError, match="cannot group by 'colour'"):
        pooled_percentiles(runs, buckets, group_by=("colour",))


def test_compare_reads_the_store_and_judges_in_analysis(store: Store) -> None:
    for rep in range(2):
        store.save(make_result(f"b{rep}", seed=rep, mesh="none"))
        store.save(make_result(f"c{rep}", seed=10 + rep, mesh="istio", scale_ns=400_000.0))
    runs, buckets = store.runs(), store.buckets(["b0", "b1", "c0", "c1"])
    cmp = compare_groups(runs, buckets, baseline={"mesh": "none"}, candidate=["c0", "c1"],
                         n_boot=200)
    row = cmp.table.set_index("metric").loc["p50_us"]
    assert row["candidate"] > row["baseline"] and row["difference"] == "slower"
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert row["delta_pct"] == pytest.approx(100 * row["delta"] / row["baseline"])
    assert {"p99_us", "p999_us", "throughput_rps", "error_rate"} <= set(cmp.table["metric"])
    with pytest.raises(ProfileError, match="matched no runs"):
        compare_groups(runs, buckets, baseline={"mesh": "kuma"}, candidate={"mesh": "istio"})
    with pytest.raises(ProfileError, match="unknown run ids zz"):
        compare_groups(runs, buckets, baseline=["zz"], candidate={"mesh": "istio"})
    assert not hasattr(store, "compare") and not hasattr(store, "pooled_percentiles")


def test_child_frames(store: Store) -> None:
    r = make_result("r1", telemetry_n=5)
    store.save(r)
    ts = store.timeseries("r1")
    assert list(ts.columns) == ["run_id", "second", "requests", "errors", "p50_us", "p99_us"]
    assert list(ts["second"]) == list(range(10))
    codes = store.status_codes(["r1"])
    assert list(codes.columns) == ["run_id", "code", "count"]
    assert dict(zip(codes["code"], codes["count"], strict=True)) == r.status_codes
    errs = store.errors(["r1"])
    assert list(errs.columns) == ["run_id", "kind", "count"]
    assert dict(zip(errs["kind"], errs["count"], strict=True)) == r.error_kinds
    tel = store.telemetry(["r1"])
    assert list(tel.columns) == ["run_id", "t_s", "source", "metric", "value"]
    assert list(tel["value"]) == [t.value for t in r.telemetry]


def test_experiments(store: Store) -> None:
    exp = store.new_experiment(name="e1", profile={"name": "p", "repeats": 2},
                               description="first")
    store.save(make_result("r1"), experiment_id=exp)
    store.save(make_result("r2"), experiment_id=exp)
    store.finish_experiment(exp, status="completed")
    df = store.experiments()
    assert list(df.columns) == ["experiment_id", "name", "description", "status", "created_at",
                                "finished_at", "runs", "labels", "profile"]
    row = df.iloc[0]
    assert (row["experiment_id"], row["status"], row["runs"]) == (exp, "completed", 2)
    assert json.loads(row["profile"]) == {"name": "p", "repeats": 2}
    assert list(store.runs(experiment_id=exp)["run_id"]) == ["r1", "r2"]
    with pytest.raises(StoreError, match="experiment 'nope' not found"):
        store.finish_experiment("nope", status="failed")


def test_empty_store_gives_empty_frames(store: Store, tmp_path: Path) -> None:
    for s in (store, Store(tmp_path / "absent.duckdb", read_only=True)):
        assert set(RUN_COLUMNS) <= set(s.runs().columns) and s.runs().empty
        assert list(s.experiments().columns)[:2] == ["experiment_id", "name"]
        for frame, cols in ((s.buckets([]), ["run_id", "kind", "bucket", "lower_us",
                                             "upper_us", "count"]),
                            (s.timeseries([]), ["run_id", "second", "requests", "errors",
                                                "p50_us", "p99_us"]),
                            (s.status_codes([]), ["run_id", "code", "count"]),
                            (s.errors([]), ["run_id", "kind", "count"]),
                            (s.telemetry([]), ["run_id", "t_s", "source", "metric", "value"]),
                            (s.percentiles([]), ["run_id", "p50_us", "p90_us", "p99_us",
                                                 "p999_us"])):
            assert frame.empty and list(frame.columns) == cols
        pooled = pooled_percentiles(s.runs(), s.buckets([]))
        assert pooled.empty and list(pooled.columns[:4]) == ["mesh", "rate_rps", "connections",
                                                             "runs"]
    assert not (tmp_path / "absent.duckdb").exists()


@pytest.mark.parametrize("call", [
    lambda s: s.load("x"), lambda s: s.histogram("x"), lambda s: s.percentiles(["x"]),
    lambda s: s.timeseries("x"), lambda s: s.delete_run("x"), lambda s: s.buckets(["x"])])
def test_unknown_run(store: Store, db: Path, call: object) -> None:
    with pytest.raises(StoreError) as info:
        call(store)  # type: ignore[operator]
    assert str(info.value) == f"run 'x' not found in {db}; list runs with `meshlab runs`"


def test_duplicate_replace_and_delete(store: Store, db: Path) -> None:
    store.save(make_result("r1", seed=1))
    store.save(make_result("r1", seed=1))            # the same run again: a no-op (re-import)
    with pytest.raises(StoreError, match=r"already stored .* with other data"):
        store.save(make_result("r1", seed=2))
    newer = make_result("r1", seed=2, mesh="istio")
    store.save(newer, replace=True)
    assert store.load("r1") == newer and len(store.runs()) == 1
    store.delete_run("r1")
    assert set(_rows_of(db, "r1").values()) == {0}


def test_memory_store() -> None:
    with Store(":memory:") as s:
        s.save(make_result("m1"))
        assert list(s.runs()["run_id"]) == ["m1"]
        assert s.load("m1") == make_result("m1")


# --- save_many --------------------------------------------------------------------------------

def _varied(n: int, prefix: str = "m") -> list[RunResult]:
    """Runs that differ in shape: sparse, NaN points, no host or raw, many or no buckets."""
    out = [make_result(f"{prefix}{i:02d}", seed=i, n=200 + 300 * i, telemetry_n=i % 4,
                       mesh=("none", "istio")[i % 2], repeat=i % 3) for i in range(n)]
    sparse = out[1]
    sparse.timeseries = [TimeSeriesPoint(second=0, requests=0, errors=0, p50_us=math.nan,
                                         p99_us=1.5)]
    sparse.host, sparse.raw, sparse.status_codes, sparse.error_kinds = None, None, {}, {}
    sparse.latency = Histogram()
    sparse.spec = {}
    return out


def test_save_many_round_trip_matches_save(store: Store, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    results = _varied(12)
    seen: list[int] = []
    exp = store.new_experiment(name="bulk", profile={}, labels={"branch": "main"})
    monkeypatch.setattr(_store_write, "_VALUES_MAX_CELLS", 0)         # DataFrames only
    assert store.save_many(iter(results), experiment_id=exp, batch_size=5,
                           progress=seen.append) == 12
    assert seen == [5, 10, 12]
    for r in results:
        assert store.load(r.run_id) == r
    # one run at a time through VALUES lists stores the same rows as batches through frames
    monkeypatch.setattr(_store_write, "_VALUES_MAX_CELLS", 10**9)     # VALUES lists only
    one = Store(tmp_path / "one.duckdb")
    exp_one = one.new_experiment(name="bulk", profile={}, labels={"branch": "main"})
    for r in results:
        one.save(r, experiment_id=exp_one)
    monkeypatch.undo()
    ids = [r.run_id for r in results]
    pd.testing.assert_frame_equal(store.runs().drop(columns="experiment_id"),
                                  one.runs().drop(columns="experiment_id"))
    for frame in ("timeseries", "status_codes", "errors", "telemetry"):
        pd.testing.assert_frame_equal(getattr(store, frame)(ids), getattr(one, frame)(ids))
    pd.testing.assert_frame_equal(store.buckets(ids, kind=None), one.buckets(ids, kind=None))
    for path in (store.path, one.path):                 # NaN is stored as NULL either way
        con = duckdb.connect(str(path), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM run_timeseries WHERE p50_us IS NULL "
                               "OR isnan(p50_us)").fetchall() == [(1,)]
            assert con.execute("SELECT count(*) FROM run_timeseries WHERE isnan(p50_us)"
                               ).fetchall() == [(0,)]
        finally:
            con.close()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        store.save_many(results, batch_size=0)
    with Store(":memory:") as mem:
        assert mem.save_many(results[:3]) == 3 and mem.load("m02") == results[2]


def test_save_many_failed_batch_leaves_no_run(store: Store, db: Path) -> None:
    results = _varied(12)
    results[8].status_codes = {200: 5, 2**40: 1}    # fits the frame, not the INTEGER column
    with pytest.raises(StoreError, match=r"out of range .*INT32 \(the 5 run\(s\) before this "
                                         r"batch are stored; none of this batch of 5 is\)$"):
        store.save_many(results, batch_size=5)
    stored = set(store.runs()["run_id"])
    assert stored == {r.run_id for r in results[:5]}          # batch 1 committed
    for r in results[5:]:                                       # batch 2 (and 3) left nothing
        assert set(_rows_of(db, r.run_id).values()) == {0}, r.run_id
    assert store.load("m04") == results[4]
    results[8].status_codes = {200: 5}
    assert store.save_many(results, batch_size=5) == 7         # the rest, once fixed


def test_save_many_is_idempotent(store: Store) -> None:
    results = _varied(10)
    assert store.save_many(results[:6], batch_size=4) == 6
    assert store.save_many(results, batch_size=4) == 4          # new + already stored
    assert store.save_many(results) == 0                        # a re-import writes nothing
    assert store.save_many([results[3], results[3]]) == 0       # given twice, identical
    assert len(store.runs()) == 10
    changed = [make_result(r.run_id, seed=99) for r in results[2:4]]
    new = make_result("m-new")
    with pytest.raises(StoreError, match=r"run 'm02' \(and 1 more\) is already stored .* "
                                         r"with other data; pass replace=True"):
        store.save_many([new, *changed])
    assert "m-new" not in set(store.runs()["run_id"])          # the batch wrote nothing
    assert store.save_many([new, *changed], replace=True) == 3
    assert store.load("m03") == changed[1] and len(store.runs()) == 11
    with pytest.raises(StoreError, match="given twice with different data"):
        store.save_many([results[0], changed[0].__class__.from_dict(
            {**results[0].to_dict(), "requests": 1})])


# --- atomicity --------------------------------------------------------------------------------

@pytest.mark.parametrize("table", ["run_histograms", "run_buckets", "run_telemetry", "run_raw"])
def test_failed_save_leaves_no_rows(store: Store, db: Path, table: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(make_result("keep"))
    insert = _store_write.insert_table

    def boom(con: duckdb.DuckDBPyConnection, name: str, rows: object) -> None:
        if name == table:
            raise RuntimeError("disk on fire")
        insert(con, name, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(_store_write, "insert_table", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.save(make_result("half"))
    monkeypatch.undo()
    assert set(_rows_of(db, "half").values()) == {0}
    assert _rows_of(db, "keep")["run_buckets"] > 0
    store.save(make_result("half"))                  # nothing left behind to conflict with
    assert store.load("half") == make_result("half")


def test_sigkill_mid_batch_leaves_no_partial_run(db: Path, procs: list[subprocess.Popen[str]]
                                                ) -> None:
    Store(db)
    p = _worker("bigsaves", str(db))
    procs.append(p)
    assert p.stdout
    took, in_flight = 0.0, -1
    for line in p.stdout:
        if line.startswith("saved"):
            took = float(line.split()[2])
        elif line.startswith("begin") and took:
            in_flight = int(line.split()[1])
            time.sleep(took / 2)                     # about halfway through a transaction
            break
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    store = Store(db)
    runs = store.runs()
    assert len(runs) in (2 * in_flight, 2 * in_flight + 2)   # the killed batch: all or none
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table in RUN_TABLES:
            orphans = con.execute(f"SELECT count(*) FROM {table} WHERE run_id NOT IN "
                                  f"(SELECT run_id FROM runs)").fetchone()
            assert orphans == (0,), table
    finally:
        con.close()
    for rid in runs["run_id"]:
        counts = _rows_of(db, rid)
        assert counts["run_telemetry"] == 50_000 and counts["run_histograms"] == 2
        assert store.histogram(rid).total == 20_000


# --- schema and paths -------------------------------------------------------------------------

def test_creates_directory_and_schema(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "m.duckdb"
    Store(db)
    assert db.exists()
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT schema_version FROM meta").fetchall() == [(SCHEMA_VERSION,)]
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert {"meta", "experiments", "runs", *RUN_TABLES} <= tables


# The `runs` table as schema version 1 created it (before `protocol` and `format`).
_V1_RUNS_DDL = """CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, experiment_id VARCHAR, profile VARCHAR, mesh VARCHAR,
    runner VARCHAR NOT NULL, runner_version VARCHAR NOT NULL, environment VARCHAR, mode VARCHAR,
    policy VARCHAR, data_plane VARCHAR, mtls VARCHAR, target VARCHAR, rate_rps DOUBLE NOT NULL,
    connections INTEGER, duration_s DOUBLE NOT NULL, warmup_s DOUBLE, repeat INTEGER,
    run_index INTEGER, status VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NOT NULL, achieved_rate_rps DOUBLE NOT NULL, requests BIGINT NOT NULL,
    errors BIGINT NOT NULL, error_rate DOUBLE NOT NULL, bytes_received BIGINT NOT NULL,
    p50_us DOUBLE, p90_us DOUBLE, p99_us DOUBLE, p999_us DOUBLE, min_us DOUBLE, max_us DOUBLE,
    mean_us DOUBLE, stdev_us DOUBLE, uncorrected_p50_us DOUBLE, uncorrected_p99_us DOUBLE,
    hostname VARCHAR, error VARCHAR, warnings JSON NOT NULL, labels JSON NOT NULL,
    spec JSON NOT NULL, context JSON NOT NULL, host JSON, saved_at TIMESTAMP NOT NULL)"""


def _write_v1_store(db: Path, results: list[RunResult]) -> None:
    """A store file as meshlab wrote it at schema version 1 (the other tables are unchanged)."""
    con = duckdb.connect(str(db))
    try:
        for ddl in _store_schema._DDL:
            if "EXISTS runs (" not in ddl:
                con.execute(ddl)
        con.execute(_V1_RUNS_DDL)
        con.execute("INSERT INTO meta VALUES (1, ?, '0.1.0')", [datetime(2026, 11, 1)])
        for table, rows in _store_write.tables(results, experiment_id=None,
                                               experiment_labels={}).items():
            if table == "runs":
                assert isinstance(rows, tuple)
                keep = [i for i, c in enumerate(rows[0]) if c not in ("protocol", "format",
                                                                          "unsent_requests")]
                rows = (tuple(rows[0][i] for i in keep), [tuple(v[i] for i in keep)
                                                          for v in rows[1]])
            _store_write.insert_table(con, table, rows)
    finally:
        con.close()


def _file_schema(db: Path) -> tuple[int, list[str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT max(schema_version) FROM meta").fetchone()
        assert row is not None
        cols = [c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'").fetchall()]
        return int(row[0]), cols
    finally:
        con.close()


def test_schema_1_store_is_read_and_migrated(db: Path) -> None:
    native = make_result("old-1")
    imported = make_result("old-2", seed=1)
    imported.context["format"] = "fortio"
    _write_v1_store(db, [native, imported])
    assert "protocol" not in _file_schema(db)[1]
    # read-only: the new columns are filled in the query, the file stays at version 1
    ro = Store(db, read_only=True)
    df = ro.runs()
    assert list(df.columns) == RUN_COLUMNS
    assert list(df["protocol"]) == ["http1", "http1"]
    assert list(df["format"]) == ["meshlab", "fortio"]
    assert ro.load("old-2") == imported
    assert ro.runs(mesh="none", run_ids=["old-1"])["run_id"].tolist() == ["old-1"]
    version, cols = _file_schema(db)
    assert version == 1 and "format" not in cols
    # writable: migrated in place, same frame, and new runs go in beside the old ones
    rw = Store(db)
    pd.testing.assert_frame_equal(rw.runs(), df)
    version, cols = _file_schema(db)
    assert version == SCHEMA_VERSION and {"protocol", "format"} <= set(cols)
    rw.save(make_result("new-1", seed=2))
    assert rw.runs()["protocol"].tolist() == ["http1"] * 3
    assert rw.load("old-1") == native
    assert Store(db, read_only=True).runs()["run_id"].tolist() == ["new-1", "old-1", "old-2"]


def test_newer_schema_is_refused(db: Path) -> None:
    Store(db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE meta SET schema_version = 99")
    con.close()
    with pytest.raises(StoreError, match=r"schema version 99, newer than .* upgrade meshlab"):
        Store(db).runs()


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.duckdb"
    bad.write_text("just some text, not a database\n" * 10)
    with pytest.raises(StoreError, match=re.escape(f"{bad} is not a DuckDB database file")):
        Store(bad)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_read_only_store_refuses_writes(store: Store, db: Path) -> None:
    store.save(make_result("r1"))
    ro = Store(db, read_only=True)
    assert list(ro.runs()["run_id"]) == ["r1"]
    with pytest.raises(StoreError, match="read-only"):
        ro.save(make_result("r2"))


# --- concurrency ------------------------------------------------------------------------------

def test_two_writer_processes_lose_nothing(db: Path, tmp_path: Path,
                                           procs: list[subprocess.Popen[str]]) -> None:
    # a: five save_many calls of 4 runs (2 per transaction), taking turns on the file lock;
    # b: two calls of 20 runs (6 per transaction), holding the lock through each call.
    go = tmp_path / "go"
    for prefix, count, chunk, batch in (("a", 20, 4, 2), ("b", 40, 20, 6)):
        procs.append(_worker("save", str(db), prefix, str(count), str(chunk), str(batch),
                             str(go)))
    time.sleep(0.5)
    go.touch()
    for p, written in zip(procs, (20, 40), strict=True):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.split() == ["done", str(written)]
    store = Store(db)
    ids = set(store.runs()["run_id"])
    assert ids == {f"a-{i:03d}" for i in range(20)} | {f"b-{i:03d}" for i in range(40)}
    assert not list(tmp_path.glob("*.spool/*.json"))
    assert store.load("b-017") == make_result("b-017", seed=17, n=2_000)
    assert store.load("a-019") == make_result("a-019", seed=19, n=2_000)


def test_lock_is_retried_until_free(db: Path, procs: list[subprocess.Popen[str]]) -> None:
    store = Store(db, lock_timeout_s=30)
    p = _worker("hold", str(db), "0.8")
    procs.append(p)
    assert p.stdout and p.stdout.readline().strip() == "locked"
    store.save(make_result("r1"))                    # waits for the holder, then writes
    assert not (db.parent / (db.name + ".spool")).exists()
    assert list(store.runs()["run_id"]) == ["r1"]


def test_spool_when_lock_times_out(db: Path, procs: list[subprocess.Popen[str]]) -> None:
    Store(db)
    p = _worker("hold", str(db), "30")
    procs.append(p)
    assert p.stdout and p.stdout.readline().strip() == "locked"
    store = Store(db, lock_timeout_s=0.3)
    exp = store.new_experiment(name="while-locked", profile={})
    store.save(make_result("r1"), experiment_id=exp)
    seen: list[int] = []
    assert store.save_many((make_result(f"s{i}", seed=i) for i in range(2)),
                           progress=seen.append) == 0       # spooled, not written yet
    assert seen == [2]
    store.finish_experiment(exp, status="completed")
    spool_dir = db.parent / (db.name + ".spool")
    files = sorted(spool_dir.glob("*.json"))
    assert len(files) == 5
    with pytest.raises(StoreError, match=r"stayed locked by another process for 0\.3 s"):
        store.load("r1")
    backup = spool_dir.parent / "copy.json"
    shutil.copy(files[1], backup)
    (spool_dir / "zz-garbage.json").write_text("{not json")
    p.kill()
    p.wait(timeout=10)
    with pytest.raises(StoreError, match=r"run 'r1' not found .* waits in the spool"):
        Store(db, read_only=True).load("r1")      # readers never import
    assert sorted(store.runs()["run_id"]) == ["r1", "s0", "s1"]  # imported by the first
    assert store.load("r1") == make_result("r1")                # free connection
    assert store.load("s1") == make_result("s1", seed=1)
    assert store.experiments().iloc[0]["status"] == "completed"
    assert [f.name for f in spool_dir.iterdir()] == ["zz-garbage.json.bad"]
    shutil.copy(backup, spool_dir / files[1].name)   # a re-import is idempotent
    assert store.import_spool() == 1
    assert len(store.runs()) == 3


def test_large_histograms_insert_in_bulk(store: Store) -> None:
    r = make_result("wide", n=1)
    r.latency = Histogram()
    r.latency.record_ns(np.unique(np.geomspace(1, 2**36, 200_000).astype(np.int64)))
    store.save(r)
    assert len(store.buckets("wide")) == len(r.latency.nonzero_buckets()) > 1_500
    assert store.load("wide") == r
    assert os.path.getsize(store.path) > 0


def test_threads_share_one_store(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for i in range(8):
                store.save(make_result(f"{prefix}{i}", seed=i, n=500, telemetry_n=2))
                store.runs(mesh="none")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(store.runs()) == 16


def test_degraded_run_with_unsent_requests_round_trips(store: Store) -> None:
    r = make_result("sat")
    r.status, r.unsent_requests = RunStatus.DEGRADED, 1_228
    store.save(r)
    assert store.load("sat").status is RunStatus.DEGRADED
    assert store.load("sat").unsent_requests == 1_228
    runs = store.runs()
    assert list(runs["status"]) == ["degraded"] and list(runs["unsent_requests"]) == [1_228]


def test_version_2_file_is_read_and_migrated(db: Path) -> None:
    """A store written before runs.unsent_requests (schema 2): read as it is, migrated on a
    writable open."""
    Store(db).save(make_result("old"))
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE runs DROP COLUMN unsent_requests")
    con.execute("UPDATE meta SET schema_version = 2")
    con.close()
    assert Store(db, read_only=True).load("old").unsent_requests == 0
    store = Store(db)
    new = make_result("new")
    new.unsent_requests = 7
    store.save(new)
    assert store.load("old").unsent_requests == 0 and store.load("new").unsent_requests == 7
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT max(schema_version) FROM meta").fetchall() == [
            (SCHEMA_VERSION,)]
    finally:
        con.close()
