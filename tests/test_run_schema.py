"""The run schema: one definition of a run as a table row, so the store's `runs` frame, the
analysis frames and the CSV export carry the same columns with the same values; and the typed
`RunDimensions` every row builder reads."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meshlab.analysis import frames_from_results
from meshlab.dimensions import RunDimensions
from meshlab.formats import export_run, export_runs
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.run_schema import (
    BUCKET_COLUMNS,
    DEFAULT_PS,
    DIMENSION_COLUMNS,
    RUN_COLUMN_NAMES,
    RUN_COLUMNS,
    percentile_column,
    run_row,
)
from meshlab.store import Store

_NUMERIC = {c.name for c in RUN_COLUMNS if c.type in ("DOUBLE", "INTEGER", "BIGINT")}


def _local_run(run_id: str = "20261122T100000-aaa001") -> RunResult:
    """A run as a local-playground experiment records it: the matrix point in `spec.dims`, the
    playground's view (its whole policy, data plane, mTLS) in the context."""
    rng = np.random.default_rng(3)
    lat, svc = Histogram(), Histogram()
    svc_ns = (rng.lognormal(0.0, 0.5, 4000) * 250_000).astype(np.int64)
    svc.record_ns(svc_ns)
    lat.record_ns(svc_ns + 10_000)
    spec = RunSpec(target="http://127.0.0.1:9000/?size=64", rate_rps=800.0, connections=8,
                   duration_s=5.0, warmup_s=0.5, mesh="envoy", profile="overhead", index=3,
                   repeat=1, labels=(("team", "perf"),),
                   dims=(("environment", "local"), ("mode", "both"), ("policy", "retries")))
    start = datetime(2026, 11, 22, 10, 0, 0, 250000, tzinfo=UTC)
    return RunResult(
        run_id=run_id, spec=spec.to_dict(), status=RunStatus.COMPLETED, started_at=start,
        ended_at=start + timedelta(seconds=5.5), duration_s=5.0, requested_rate_rps=800.0,
        achieved_rate_rps=799.5, requests=4000, errors=3, status_codes={200: 3997, 503: 3},
        error_kinds={}, latency=lat, service_time=svc, runner="native", runner_version="0.1.0",
        context={"environment": "local", "data_plane": "envoy", "mesh": "envoy+mtls",
                 "mode": "both", "mtls": "strict",
                 "policy": {"name": "retries", "retries": {"attempts": 2}}},
        bytes_received=4000 * 64)


def _imported_run() -> RunResult:
    """A run imported from a tool: no dims, a spec whose rate differs from the requested rate
    the tool reported, environment only in the context."""
    lat = Histogram()
    lat.record_us(np.linspace(200.0, 900.0, 500))
    start = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    return RunResult(
        run_id="20261122T100500-bbb002", spec={"rate_rps": 0, "connections": "4",
                                               "target": "http://svc:8080/"},
        status=RunStatus.COMPLETED, started_at=start, ended_at=start + timedelta(seconds=10),
        duration_s=10.0, requested_rate_rps=50.0, achieved_rate_rps=50.0, requests=500,
        errors=0, status_codes={200: 500}, error_kinds={}, latency=lat, service_time=lat.copy(),
        runner="fortio", context={"format": "fortio", "environment": "kubernetes"})


def _text(value: object, column: str) -> str:
    """One cell as text, whichever path produced it (DuckDB, pandas, CSV)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("started_at", "ended_at"):
        return pd.Timestamp(value).isoformat()         # type: ignore[arg-type]
    if column in _NUMERIC:
        return "" if value == "" else repr(float(value))  # type: ignore[arg-type]
    return str(value)


def _table(df: pd.DataFrame) -> dict[str, dict[str, str]]:
    return {str(row["run_id"]): {c: _text(row[c], c) for c in RUN_COLUMN_NAMES}
            for row in df.to_dict("records")}


def test_store_frames_and_csv_have_the_same_columns_and_values(tmp_path: Path) -> None:
    runs = [_local_run(), _imported_run()]
    store = Store(tmp_path / "m.duckdb")
    store.save_many(runs)
    stored = store.runs()
    frames = frames_from_results(runs).runs
    csv_path, _ = export_runs(runs, "csv", tmp_path / "runs.csv")
    exported = pd.read_csv(csv_path, dtype=str, keep_default_na=False)

    for df in (stored, frames, exported):
        assert list(df.columns) == list(RUN_COLUMN_NAMES)
    by_store, by_frames, by_csv = _table(stored), _table(frames), _table(exported)
    assert by_frames == by_store
    assert by_csv == by_store

    local = by_store["20261122T100000-aaa001"]
    assert {c: local[c] for c in ("environment", "mesh", "data_plane", "mode", "policy", "mtls",
                                  "protocol", "rate_rps", "connections", "repeat",
                                  "run_index", "profile", "format")} == {
        "environment": "local", "mesh": "envoy", "data_plane": "envoy", "mode": "both",
        "policy": "retries", "mtls": "strict", "protocol": "http1", "rate_rps": "800.0",
        "connections": "8.0", "repeat": "1.0", "run_index": "3.0", "profile": "overhead",
        "format": "meshlab"}
    imported = by_store["20261122T100500-bbb002"]
    assert (imported["rate_rps"], imported["connections"], imported["environment"],
            imported["format"], imported["mesh"]) == ("50.0", "4.0", "kubernetes", "fortio", "")


def test_one_run_csv_equals_the_runs_table_row() -> None:
    run = _local_run()
    (row,) = pd.read_csv(io.StringIO(export_run(run, "csv")), dtype=str,
                         keep_default_na=False).to_dict("records")
    expected = run_row(run)
    assert {c: _text(row[c], c) for c in RUN_COLUMN_NAMES} == \
        {c: _text(expected[c], c) for c in RUN_COLUMN_NAMES}


def test_bucket_tables_agree(tmp_path: Path) -> None:
    runs = [_local_run(), _imported_run()]
    store = Store(tmp_path / "m.duckdb")
    store.save_many(runs)
    ids = [r.run_id for r in runs]
    key = ["run_id", "kind", "bucket"]
    stored = store.buckets(ids, kind=None).sort_values(key).reset_index(drop=True)
    frames = frames_from_results(runs).buckets.sort_values(key).reset_index(drop=True)
    _, buckets_path = export_runs(runs, "csv", tmp_path / "runs.csv")
    exported = pd.read_csv(buckets_path).sort_values(key).reset_index(drop=True)
    for df in (stored, frames, exported):
        assert list(df.columns) == list(BUCKET_COLUMNS)
        assert df["count"].sum() == sum(r.latency.total + r.service_time.total for r in runs)
    for df in (frames, exported):
        for c in BUCKET_COLUMNS:
            assert stored[c].astype(str).tolist() == df[c].astype(str).tolist(), c


def test_run_columns_are_named_once_with_units_and_meanings() -> None:
    assert len(set(RUN_COLUMN_NAMES)) == len(RUN_COLUMN_NAMES)
    assert all(c.meaning and c.type in ("VARCHAR", "DOUBLE", "INTEGER", "BIGINT", "TIMESTAMP",
                                        "JSON") for c in RUN_COLUMNS)
    assert {percentile_column(p) for p in DEFAULT_PS} <= set(RUN_COLUMN_NAMES)
    assert set(DIMENSION_COLUMNS) <= set(RUN_COLUMN_NAMES)
    assert set(run_row(_local_run())) == set(RUN_COLUMN_NAMES)
    # every quantity carries its unit in its name
    for c in RUN_COLUMNS:
        if c.type == "DOUBLE" and c.name != "error_rate":
            assert c.name.endswith(("_us", "_s", "_rps")), c.name


@pytest.mark.parametrize(("p", "name"), [(50, "p50_us"), (99.9, "p999_us"),
                                         (99.99, "p9999_us"), (75.0, "p75_us")])
def test_percentile_column(p: float, name: str) -> None:
    assert percentile_column(p) == name


# --- RunDimensions ---------------------------------------------------------------------------

def test_dimensions_of_a_local_run() -> None:
    d = _local_run().dimensions
    assert d == RunDimensions(environment="local", mesh="envoy", data_plane="envoy", mode="both",
                              policy="retries", mtls="strict", rate_rps=800.0, connections=8,
                              protocol="http1", labels=(("team", "perf"),), profile="overhead",
                              target="http://127.0.0.1:9000/?size=64", repeat=1, run_index=3,
                              warmup_s=0.5)
    assert d.label_map == {"team": "perf"}


def test_dimensions_prefer_the_matrix_point_over_the_observed_context() -> None:
    # dims (the profile's matrix) > spec > context (what the environment observed)
    spec = {"dims": {"mode": "server"}, "mode": "both", "mesh": "istio",
            "policy": {"name": "timeouts", "timeout_s": 1}}
    ctx = {"mode": "client", "mesh": "linkerd", "data_plane": "envoy", "mtls": True,
           "environment": {"name": "kubernetes", "nodes": 3}, "profile": "from-context"}
    d = RunDimensions.from_record(spec, ctx, rate_rps=0.0)
    assert (d.mode, d.mesh, d.policy, d.data_plane, d.mtls, d.environment, d.profile) == (
        "server", "istio", "timeouts", "envoy", "true", "kubernetes", "from-context")


def test_dimensions_defaults_and_protocol() -> None:
    d = RunDimensions.from_record({}, {}, rate_rps=0)
    assert d == RunDimensions() and d.protocol == "http1" and d.rate_rps == 0.0
    assert d.connections is None and d.labels == () and d.mesh is None
    h2 = RunDimensions.from_record({"dims": {"protocol": "http2"}}, {}, rate_rps=10)
    assert h2.protocol == "http2" and h2.rate_rps == 10.0
    bad = RunDimensions.from_record({"connections": "many", "repeat": None,
                                     "warmup_s": "x"}, {}, rate_rps=1)
    assert (bad.connections, bad.repeat, bad.warmup_s) == (None, None, None)


def test_dimensions_are_frozen_hashable_and_follow_the_record() -> None:
    run = _local_run()
    d = run.dimensions
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.mesh = "istio"  # type: ignore[misc]
    assert not hasattr(d, "__dict__")                     # slots
    assert len({d, run.dimensions}) == 1                  # hashable, equal by value
    run.spec = {**run.spec, "mesh": "nginx"}
    assert run.dimensions.mesh == "nginx"                 # derived, never a stale copy
    assert run.requested_rate_rps == run.dimensions.rate_rps


def test_dimensions_survive_the_json_round_trip() -> None:
    run = _local_run()
    back = RunResult.from_dict(json.loads(json.dumps(run.to_dict(), default=str)))
    assert back.dimensions == run.dimensions
