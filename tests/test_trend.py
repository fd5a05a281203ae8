"""Trends: per-group points in time order, the previous points' band, a planted regression
marked (and not widening the band after it), the chart, the CLI table and the workbench tab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meshlab.analysis import load_frames, synthetic_result
from meshlab.analysis.trend import trend
from meshlab.store import Store

pytestmark = pytest.mark.timeout(180)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight builds of two meshes, two runs each; build 1.6 of envoy is 1.5x slower."""
    path = tmp_path_factory.mktemp("trend") / "s.duckdb"
    store = Store(path)
    for b in range(8):
        for m, mesh in enumerate(("none", "envoy")):
            for rep in range(2):
                slow = 1.5 if (b == 6 and mesh == "envoy") else 1.0
                store.save(synthetic_result(
                    run_id=f"b{b}-{mesh}-{rep}", mesh=mesh, seed=b * 10 + rep + 100 * m,
                    requests=3000, slowdown=slow * (1.3 if m else 1.0),
                    labels={"build": f"1.{b}"},
                    started_at=T0 + timedelta(hours=b, minutes=rep)))
    return path


def test_planted_regression_is_marked_and_does_not_widen_the_band(store_path: Path) -> None:
    store = Store(store_path, read_only=True)
    runs = store.runs()
    f = load_frames(store, list(runs["run_id"]))
    t = trend(runs, f.buckets, over="label.build")
    assert list(t.columns[:2]) == ["mesh", "point"]
    envoy = t[t["mesh"] == "envoy"].set_index("point")
    assert list(envoy.index) == [f"1.{b}" for b in range(8)]           # time order
    assert "p99_us" in envoy.loc["1.6", "regressions"]
    assert (t.loc[t["mesh"] == "none", "regressions"] == "").all()
    assert envoy.loc["1.7", "p99_us_band_high"] < envoy.loc["1.6", "p99_us"]
    assert (envoy["runs"] == 2).all()


def test_trend_chart_marks_regressions_on_a_log_axis(store_path: Path) -> None:
    from meshlab.report.trends import trend_chart, trend_table

    store = Store(store_path, read_only=True)
    runs = store.runs()
    t = trend(runs, store.buckets(list(runs["run_id"])), over="label.build")
    fig = trend_chart(t, metric="p99_us")
    assert fig.layout.yaxis.type == "log" and fig.layout.showlegend
    crosses = [tr for tr in fig.data if tr.marker and tr.marker.symbol == "x"]
    assert len(crosses) == 1 and list(crosses[0].x) == ["1.6"]
    table = trend_table(t)
    assert "verdict-regression" in table.html()


def test_trend_cli_prints_a_table_and_exits_one_only_when_the_latest_regressed(
        store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from meshlab.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    ok_code = main(["trend", "--store", str(store_path), "--over", "label.build"])
    ok_out, ok_err = capsys.readouterr()
    latest_code = main(["trend", "--store", str(store_path), "--over", "label.build",
                        "--where", "label.build!=1.7"])
    latest_out, _ = capsys.readouterr()
    assert ok_code == 0, ok_err
    assert "regression: p50 latency, p99 latency" in ok_out and "1.48 ms" in ok_out
    assert latest_code == 1 and "REGRESSION at 1.6 (envoy)" in latest_out


def test_workbench_trends_tab(store_path: Path) -> None:
    from meshlab.widgets import Workbench

    wb = Workbench(store_path, defaults={"name": "t", "target": "http://127.0.0.1:1/"})
    wb.tabs.selected_index = 2
    assert "label.build" in wb.trends.over.options
    wb.trends.over.value = "label.build"
    assert "8 point(s)" in wb.trends.message.value and "1 regressed" in wb.trends.message.value
    assert len(wb.trends.output.outputs) == 2
