"""Lossless round trips: a run exported by meshlab in every format (fortio, SMP, CSV, Parquet,
Parquet dataset) and imported again is the same run: dimensions, rate, connections, status,
counts, and its histogram within the histogram's bucket error."""

from __future__ import annotations

import tempfile
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.cli import main
from meshlab.formats import export_run, export_runs, import_results
from meshlab.profile import RunSpec
from meshlab.redaction import is_secret_name
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.store import Store

_BUCKET_REL = 2 / 64          # 64 buckets per octave: a value moves by < 1/64 of itself
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda s: s.strip("-"))
_SETTINGS = settings(max_examples=20, deadline=30_000, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


@st.composite
def runs(draw: st.DrawFn) -> RunResult:
    lat_ns = draw(st.lists(st.integers(20_000, 80_000_000), min_size=1, max_size=300))
    h = Histogram()
    h.record_ns(np.array(lat_ns, dtype=np.int64))
    n = h.total
    errors = draw(st.integers(0, n))
    rate = draw(st.sampled_from([0.0, 1.0, 250.0, 1234.5, 20_000.0]))
    dims = {"environment": draw(st.sampled_from(["direct", "local", "kubernetes"])),
            "mode": draw(st.sampled_from(["both", "server", "client", "none"])),
            "policy": draw(_NAME), "data_plane": draw(st.sampled_from(["envoy", "nginx"])),
            "protocol": draw(st.sampled_from(["http1", "h2c", "h2", "grpc", "tcp"]))}
    # a secret-named label (`pwd`, `token`) is redacted on import by design: not a round trip
    labels = draw(st.dictionaries(_NAME.filter(lambda k: not is_secret_name(k)), _NAME,
                                  max_size=3))
    duration_s = draw(st.sampled_from([0.5, 5.0, 60.0]))
    protocol = dims["protocol"]
    scheme = {"tcp": "tcp", "h2": "https"}.get(protocol, "http")
    spec = RunSpec(target=f"{scheme}://127.0.0.1:{draw(st.integers(1024, 65535))}/echo",
                   protocol=protocol, streams_per_connection=(
                       draw(st.integers(1, 8)) if protocol in ("h2c", "h2", "grpc") else 1),
                   rate_rps=rate, connections=draw(st.integers(1, 512)), duration_s=duration_s,
                   profile=draw(_NAME), mesh=draw(st.sampled_from(["none", "envoy", "istio"])),
                   index=draw(st.integers(0, 50)), repeat=draw(st.integers(0, 5)),
                   labels=tuple(sorted(labels.items())), dims=tuple(sorted(dims.items())))
    start = datetime(2026, 11, 22, 2, 41, 31, tzinfo=UTC) + timedelta(
        seconds=draw(st.integers(0, 10**7)))
    status = draw(st.sampled_from(list(RunStatus)))
    # what each protocol's runner counts a failure as: a status, a gRPC code, a broken echo
    codes, kinds = {200: n - errors, 503: errors}, {}
    if protocol in ("grpc", "tcp"):
        codes = {200: n - errors}
        kind = "grpc_unavailable" if protocol == "grpc" else draw(st.sampled_from(
            ["reset", "timeout", "connect_refused", "closed", "protocol"]))
        kinds = {kind: errors} if errors else {}
    return RunResult(
        run_id=f"20261122T024131-{draw(st.integers(0, 10**6)):06d}", spec=spec.to_dict(),
        status=status, started_at=start, ended_at=start + timedelta(seconds=duration_s),
        duration_s=duration_s, requested_rate_rps=rate, achieved_rate_rps=n / duration_s,
        requests=n, errors=errors, status_codes=codes,
        error_kinds=kinds, latency=h, service_time=h.copy(), runner="native")


def _assert_same_run(got: RunResult, want: RunResult) -> None:
    assert got.run_id == want.run_id
    assert got.dimensions == want.dimensions
    assert got.requested_rate_rps == want.requested_rate_rps
    assert got.status == want.status
    assert (got.requests, got.errors) == (want.requests, want.errors)
    assert got.duration_s == pytest.approx(want.duration_s, rel=1e-6)
    for p in (50.0, 90.0, 99.0):
        assert got.headline_percentile_us(p) == pytest.approx(
            want.headline_percentile_us(p), rel=_BUCKET_REL)
    for a, b in ((got.latency.min_us, want.latency.min_us),
                 (got.latency.max_us, want.latency.max_us)):
        assert a == pytest.approx(b, rel=_BUCKET_REL)


def _import_quietly(path: Path) -> list[RunResult]:
    back = import_results(path)
    for r in back:    # meshlab's own export reads back without complaints about itself
        assert not [w for w in r.warnings if "differs from fortio's rule" in w], r.warnings
    return back


@pytest.mark.parametrize("fmt", ["fortio", "smp", "csv"])
@_SETTINGS
@given(run=runs())
def test_document_export_imports_back_as_the_same_run(fmt: str, run: RunResult,
                                                      tmp_path: Path) -> None:
    path = tmp_path / f"run.{fmt}"
    path.write_text(export_run(run, fmt), encoding="utf-8")
    back = _import_quietly(path)
    assert len(back) == 1
    _assert_same_run(back[0], run)
    if fmt == "fortio":           # fortio keeps the buckets and the status codes
        assert back[0].latency.total == run.latency.total
        assert ({k: v for k, v in back[0].status_codes.items() if v}
                == {k: v for k, v in run.status_codes.items() if v})
        assert back[0].error_kinds == run.error_kinds
        assert back[0].spec["streams_per_connection"] == run.spec["streams_per_connection"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@_SETTINGS
@given(batch=st.lists(runs(), min_size=1, max_size=3, unique_by=lambda r: r.run_id))
def test_table_export_imports_back_with_its_buckets(fmt: str, batch: list[RunResult],
                                                    tmp_path: Path) -> None:
    paths = export_runs(batch, fmt, tmp_path / f"runs.{fmt}")
    back = {r.run_id: r for r in import_results(paths[0])}
    assert import_results(paths[1]) == []         # the buckets table is read with its runs
    assert set(back) == {r.run_id for r in batch}
    for run in batch:
        _assert_same_run(back[run.run_id], run)
        assert back[run.run_id].latency == run.latency        # every bucket, exactly
        assert np.array_equal(back[run.run_id].service_time.counts, run.service_time.counts)


@pytest.mark.parametrize("fmt", ["fortio", "smp", "csv"])
def test_cli_export_then_import_gives_back_the_run(fmt: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = _fixed_run()
    src, dst = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    Store(src).save(run)
    out = tmp_path / f"run.{fmt}"
    assert main(["export", run.run_id, "--format", fmt, "--out", str(out),
                 "--store", str(src)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["import", str(out), "--store", str(dst)]) == 0
    capsys.readouterr()
    _assert_same_run(Store(dst).load(run.run_id), run)


def _fixed_run() -> RunResult:
    rng = np.random.default_rng(3)
    h = Histogram()
    h.record_ns(rng.lognormal(np.log(400_000), 0.6, 2000).astype(np.int64))
    spec = RunSpec(target="http://127.0.0.1:8080/echo", rate_rps=500.0, connections=24,
                   duration_s=4.0, profile="overhead", mesh="envoy", runner="native",
                   labels=(("team", "perf"),),
                   dims=(("environment", "local"), ("mode", "both"), ("policy", "retry"),
                         ("protocol", "http1")))
    start = datetime(2026, 11, 22, 2, 41, 31, tzinfo=UTC)
    return RunResult(
        run_id="20261122T024131-rt0001", spec=spec.to_dict(), status=RunStatus.DEGRADED,
        started_at=start, ended_at=start + timedelta(seconds=4), duration_s=4.0,
        requested_rate_rps=500.0, achieved_rate_rps=500.0, requests=2000, errors=12,
        status_codes={200: 1988, 503: 12}, error_kinds={}, latency=h, service_time=h.copy(),
        runner="native")


@_SETTINGS
@given(batch=st.lists(runs(), min_size=1, max_size=3, unique_by=lambda r: r.run_id))
def test_parquet_dataset_is_hive_partitioned_and_imports_back(batch: list[RunResult],
                                                              tmp_path: Path) -> None:
    import duckdb
    import pandas as pd

    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "ds"    # one per example
    export_runs(batch, "parquet-dataset", out)
    for run in batch:
        d = run.dimensions
        assert list((out / "runs" / f"profile={d.profile}" / f"mesh={d.mesh}").glob("*.parquet"))
    frame = pd.read_parquet(out / "runs")
    assert sorted(frame["run_id"]) == sorted(r.run_id for r in batch)
    got = duckdb.sql(f"SELECT run_id, profile, mesh FROM read_parquet('{out}/runs/**/*.parquet', "
                     "hive_partitioning = true)").fetchall()
    assert sorted(got) == sorted((r.run_id, r.dimensions.profile, r.dimensions.mesh)
                                 for r in batch)
    back = {r.run_id: r for r in import_results(out)}
    assert set(back) == {r.run_id for r in batch}
    for run in batch:
        _assert_same_run(back[run.run_id], run)
        assert back[run.run_id].latency == run.latency


def test_cli_parquet_dataset_export_and_import(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = _fixed_run()
    src, dst, out = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "ds"
    Store(src).save(run)
    assert main(["export", "--format", "parquet-dataset", "--out", str(out),
                 "--store", str(src)]) == 0
    assert main(["export", "--format", "parquet-dataset", "--out", str(out),
                 "--store", str(src)]) == 2           # never into a non-empty directory
    assert main(["import", str(out), "--store", str(dst)]) == 0
    capsys.readouterr()
    _assert_same_run(Store(dst).load(run.run_id), run)


def test_cli_import_of_an_export_into_its_own_store_skips_the_stored_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _fixed_run()
    db, out = tmp_path / "a.duckdb", tmp_path / "run.smp"
    Store(db).save(run)
    assert main(["export", run.run_id, "--format", "smp", "--out", str(out),
                 "--store", str(db)]) == 0
    assert main(["import", str(out), "--store", str(db)]) == 0
    assert "already in" in capsys.readouterr().err
    assert Store(db).load(run.run_id).requests == run.requests
