"""The table layer: units as text, human headers, no index, intervals and coloured verdicts."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from meshlab.analysis import judged, load_frames, overhead, synthetic_result
from meshlab.report.tables import (
    comparison_table,
    present,
    runs_table,
    summary_table,
    verdict_table,
)
from meshlab.store import Store
from meshlab.units import format_bytes, format_number, format_percent, format_us, format_value

SCI = re.compile(r"\d(?:\.\d+)?[eE][+-]?\d+")


@pytest.mark.parametrize(("fn", "value", "text"), [
    (format_us, 333.82, "334 us"), (format_us, 2_510.0, "2.51 ms"), (format_us, 1.5e6, "1.50 s"),
    (format_bytes, 1.712017e8, "163.3 MiB"), (format_bytes, 4096, "4.0 KiB"),
    (format_bytes, 512, "512 B"), (format_number, 1.712017e8, "171,201,700"),
    (format_number, 0.00042, "0.00042"), (format_number, 12.345, "12.3"),
    (format_percent, 12.34, "12%"), (format_percent, 0.5, "0.5%"),
    (format_us, float("nan"), "-"), (format_us, None, "-"),
])
def test_units_as_text(fn: object, value: object, text: str) -> None:
    assert fn(value) == text  # type: ignore[operator]


@pytest.mark.parametrize("column", ["p99_us", "rate_rps", "rss_bytes", "delta_pct",
                                    "error_rate", "duration_s", "value"])
@pytest.mark.parametrize("value", [1.712017e8, 3.338200e2, 1e-7, -2.5e-9, 7e15])
def test_no_scientific_notation_for_any_unit(column: str, value: float) -> None:
    assert not SCI.search(format_value(column, value)), format_value(column, value)


def test_the_cli_and_the_tables_share_one_formatter() -> None:
    from meshlab.cli._common import fmt_us

    for v in (0.4, 999.6, 2_510.0, 3_400_000.0, float("nan")):
        assert fmt_us(v) == format_us(v)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    store = Store(tmp_path_factory.mktemp("tables") / "s.duckdb")
    for i in range(3):
        store.save(synthetic_result(run_id=f"b{i}", seed=i, requests=5_000, cpu_percent=30.0))
        store.save(synthetic_result(run_id=f"c{i}", seed=9 + i, requests=5_000, mesh="envoy",
                                    slowdown=1.5, cpu_percent=45.0))
    f = load_frames(store, [f"b{i}" for i in range(3)] + [f"c{i}" for i in range(3)])
    tel = pd.concat([f.telemetry, f.telemetry.assign(metric="rss_bytes", value=1.712017e8)])
    lat = f.buckets[f.buckets["kind"] == "latency"]
    return judged(overhead(f.runs, lat, baseline=["b0", "b1", "b2"],
                           candidate=["c0", "c1", "c2"], telemetry=tel, n_boot=200))


def test_comparison_table_reads_like_a_person_wrote_it(comparison: pd.DataFrame) -> None:
    t = comparison_table(comparison)
    assert list(t.frame.columns) == ["Metric", "Baseline", "Candidate", "Change (95% interval)",
                                     "Absolute change", "Runs (baseline / candidate)",
                                     "Verdict"]
    rows = t.frame.set_index("Metric")
    assert rows.loc["p99 latency", "Verdict"] == "slower"
    assert re.fullmatch(r"\+\d+% \(\+\d+% \.\. \+\d+%\)",
                        rows.loc["p99 latency", "Change (95% interval)"])
    assert rows.loc["proxy memory", "Baseline"] == "163.3 MiB"
    assert rows.loc["p50 latency", "Baseline"].endswith(" us")
    html = t.html()
    assert not SCI.search(re.sub(r"<[^>]+>", " ", html))
    assert "<th" in html and "dataframe" not in html           # no pandas index column
    assert 'class="verdict verdict-slower"' in html and "#f8d7da" in html


def test_verdict_runs_and_summary_tables(comparison: pd.DataFrame) -> None:
    from meshlab.analysis import parse_thresholds, regression_verdict

    v = regression_verdict(comparison, parse_thresholds(["p99=10%", "error_rate=0.00001"]))
    t = verdict_table(v.table)
    assert "regression" in set(t.frame["Verdict"])
    assert "0.001%" in set(t.frame["Threshold"])                  # 1e-05 as a person writes it
    runs = pd.DataFrame({"run_id": ["r1", "r2"], "status": ["completed", "failed"],
                         "rate_rps": [500.0, 0.0], "requests": [171_201_700, 0],
                         "errors": [3, 0], "p99_us": [2_510.0, np.nan],
                         "started_at": pd.to_datetime(["2026-12-03T09:00:00Z"] * 2)})
    rt = runs_table(runs, link=lambda rid: f"run-{rid}.html")
    assert list(rt.frame["Status"]) == ["completed", "failed"]
    assert "verdict-failed" in rt.html() and 'href="run-r2.html"' in rt.html()
    assert list(rt.frame["Requests"]) == ["171,201,700", "0"]
    s = summary_table({"run_id": "r1", "p99_us": 2_510.0, "error_rate": 0.0123,
                       "status_codes": {"200": 10, "503": 2}})
    assert list(s.frame["Value"]) == ["r1", "2.51 ms", "1.2%", "200: 10, 503: 2"]
    assert present(pd.DataFrame({"achieved_rate_rps": [1234.5]})).frame.columns[0] == \
        "Achieved rate"
