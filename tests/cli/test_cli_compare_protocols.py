"""Runs of different protocols are never pooled: `meshlab compare` (with or without --by,
even with --pool), `pooled_percentiles` and the report split a selection that mixes them, and
show the protocol in rows and section titles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _cli import cli, lines

from meshlab.analysis import pooled_percentiles, synthetic_result
from meshlab.report.sections import group_frames, prepare
from meshlab.store import Store

# gRPC calls are slower than HTTP/1.1 requests here, and envoy adds 40 % to each: pooled, the
# two protocols would blur into one distribution and one delta
BASE_P50_US = {"http1": 300.0, "grpc": 900.0}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocols") / "m.duckdb"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    runs = []
    i = 0
    for proto, p50 in BASE_P50_US.items():
        for mesh, slowdown in (("none", 1.0), ("envoy", 1.4)):
            for rep in range(2):
                i += 1
                runs.append(synthetic_result(
                    run_id=f"{mesh}-{proto}-{rep}", mesh=mesh, p50_us=p50, slowdown=slowdown,
                    repeat=rep, seed=i, context={"protocol": proto}, duration_s=2.0,
                    started_at=t0 + timedelta(seconds=i)))
    Store(path).save_many(runs)
    return path


@pytest.mark.parametrize("pool", [(), ("--pool",)])
def test_compare_splits_a_mixed_selection_by_protocol(
        db: Path, capsys: pytest.CaptureFixture[str], pool: tuple[str, ...]) -> None:
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                         "mesh=envoy", *pool, "--boot", "200", "--json")
    assert code == 0, err
    by = {(r["protocol"], r["role"]): r for r in lines(out)}
    assert set(by) == {(p, role) for p in BASE_P50_US for role in ("baseline", "candidate")}
    assert all(r["runs"] == 2 for r in by.values())       # never 4: protocols not pooled
    deltas = {p: by[(p, "candidate")]["delta_p50_us"] for p in BASE_P50_US}
    for p, base in BASE_P50_US.items():                   # each against its own protocol
        assert deltas[p] == pytest.approx(0.4 * base, rel=0.25)
        assert by[(p, "candidate")]["difference_p50_us"] == "slower"
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                         "mesh=envoy", *pool, "--boot", "100")
    assert code == 0, err
    assert "split by protocol" in out and "grpc" in out and "http1" in out


def test_compare_by_mesh_adds_the_protocol(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--by", "mesh", "--baseline", "mesh=none",
                         "--boot", "200", "--json")
    assert code == 0, err
    by = {(r["mesh"], r["protocol"]): r for r in lines(out)}
    assert set(by) == {(m, p) for m in ("none", "envoy") for p in BASE_P50_US}
    assert by[("none", "grpc")]["role"] == "baseline"
    grpc, http1 = by[("envoy", "grpc")], by[("envoy", "http1")]
    assert grpc["delta_p50_us"] > 2 * http1["delta_p50_us"] > 0
    code, out, _ = cli(capsys, db, "compare", "--by", "mesh", "--baseline", "mesh=none",
                       "--fast")
    assert code == 0 and "each mesh group" in out and "split by protocol" in out


def test_a_baseline_mixing_protocols_is_matched_to_the_candidates(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                         "mesh=envoy,protocol=grpc", "--boot", "200", "--json")
    assert code == 0, err
    cand = [r for r in lines(out) if r["role"] == "candidate"]
    assert [r["protocol"] for r in cand] == ["grpc"]
    assert cand[0]["delta_p50_us"] == pytest.approx(0.4 * BASE_P50_US["grpc"], rel=0.25)


def test_one_protocol_against_another_is_compared_and_said(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none,protocol=http1",
                         "--candidate", "mesh=none,protocol=grpc", "--boot", "100")
    assert code == 0, err
    assert "protocols differ: baseline http1, candidate grpc" in out


def test_pooled_percentiles_keep_protocols_apart(db: Path) -> None:
    store = Store(db, read_only=True)
    runs = store.runs()
    table = pooled_percentiles(runs, store.buckets(list(runs["run_id"])), group_by=["mesh"])
    assert list(table.columns[:2]) == ["mesh", "protocol"] and len(table) == 4
    assert set(table["runs"]) == {2}


def test_report_sections_are_per_protocol(db: Path) -> None:
    ctx = prepare(db, baseline="mesh=none", candidate="mesh=envoy", renderer=None, n_boot=100)
    assert ctx.problem is None
    names = sorted(g.name for g in ctx.groups)
    assert names == ["protocol=grpc", "protocol=http1"]
    for g in ctx.groups:                  # each group against baseline runs of its protocol
        proto = g.name.split("=")[1]
        assert sorted(g.baseline) == [f"none-{proto}-0", f"none-{proto}-1"]
        p50 = g.table[g.table["metric"] == "p50_us"].iloc[0]
        assert p50["n_baseline"] == 2 and p50["difference"] == "slower"
        assert float(p50["delta"]) == pytest.approx(0.4 * BASE_P50_US[proto], rel=0.25)
    headings = [h for h, _ in group_frames(ctx)]
    assert any("protocol=grpc" in h and "against 2 baseline runs" in h for h in headings)
    assert set(ctx.overhead["candidate_group"]) == set(names)   # the table says which


def test_by_protocol_compares_protocols_on_purpose(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--by", "protocol", "--baseline",
                         "protocol=http1", "--where", "mesh=none", "--boot", "200", "--json")
    assert code == 0, err
    by = {r["protocol"]: r for r in lines(out)}
    assert by["http1"]["role"] == "baseline" and by["grpc"]["role"] == "candidate"
    assert by["grpc"]["delta_p50_us"] == pytest.approx(
        BASE_P50_US["grpc"] - BASE_P50_US["http1"], rel=0.25)
    code, out, _ = cli(capsys, db, "compare", "--by", "protocol", "--baseline",
                       "protocol=http1", "--where", "mesh=none", "--fast")
    assert code == 0 and "each protocol group" in out and "split by" not in out


def test_overhead_by_keeps_protocols_apart(db: Path) -> None:
    from meshlab.analysis import overhead_by

    store = Store(db, read_only=True)
    runs = store.runs()
    table = overhead_by(runs, store.buckets(list(runs["run_id"])), n_boot=50)
    p50 = table[table["metric"] == "p50_us"].set_index("protocol")
    assert sorted(p50.index) == ["grpc", "http1"] and set(p50["n_baseline"]) == {2}
    assert p50.loc["grpc", "delta"] > 2 * p50.loc["http1", "delta"] > 0


def test_trend_keeps_protocols_apart(db: Path) -> None:
    from meshlab.analysis.trend import trend
    from meshlab.report.trends import trend_chart

    store = Store(db, read_only=True)
    runs = store.runs()
    table = trend(runs, store.buckets(list(runs["run_id"])), over="day")
    assert sorted(zip(table["mesh"], table["protocol"], strict=True)) == sorted(
        (m, p) for m in ("none", "envoy") for p in BASE_P50_US)
    assert set(table["runs"]) == {2}
    names = {t.name for t in trend_chart(table).data if t.name}
    assert {"none grpc", "none http1"} <= names
