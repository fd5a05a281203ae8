"""Imported fortio / Nighthawk / SMP runs in a real DuckDB store: the runs table reports the
tool's own percentiles exactly; pooled percentiles come from the (spread) histograms."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from _formats_reference import ALL_RESULT_FILES, FORTIO_FILES, MESHERY_RESULTS, fortio_docs

from meshlab.analysis import compare_groups, pooled_percentiles
from meshlab.formats import export_run, fortio_histogram_data, import_results
from meshlab.results import HEADLINE_COUNT_KEY, HEADLINE_PERCENTILES_KEY, Histogram, RunResult
from meshlab.store import Store

COLUMNS = {"50": "p50_us", "90": "p90_us", "99": "p99_us", "99.9": "p999_us"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[RunResult]]:
    runs = [r for p in ALL_RESULT_FILES for r in import_results(p)]
    store = Store(tmp_path_factory.mktemp("store") / "meshlab.duckdb")
    assert store.save_many(runs) == len(runs)
    return store, runs


@pytest.mark.parametrize("path", [*FORTIO_FILES, MESHERY_RESULTS], ids=lambda p: p.name)
def test_stored_percentiles_are_fortios_own(stored: tuple[Store, list[RunResult]],
                                            path: Path) -> None:
    store, _ = stored
    docs = [d for name, d in fortio_docs(path) if not name.endswith("#ConnectionStats")]
    for r, doc in zip(import_results(path), docs, strict=True):
        row = store.runs(run_ids=[r.run_id]).iloc[0]
        hd = fortio_histogram_data(doc)
        reported = {f"{p:g}": v * 1e6 for p, v in hd.percentiles}
        assert r.context["percentile_rule"] == "fortio"
        for key, col in COLUMNS.items():
            # what fortio printed where it printed it, else fortio's rule on its buckets
            want = reported.get(key, hd.calc_percentile(float(key)) * 1e6)
            assert row[col] == pytest.approx(want, rel=1e-12), (key, col)
        assert row["uncorrected_p50_us"] == row["p50_us"]       # one timing: service == latency
        assert row["uncorrected_p99_us"] == row["p99_us"]
        assert row["p50_us"] <= row["p90_us"] <= row["p99_us"] <= row["p999_us"]


def test_nighthawk_and_smp_keep_their_reported_percentiles(
        stored: tuple[Store, list[RunResult]]) -> None:
    store, runs = stored
    for r in runs:
        if r.context["format"] not in ("nighthawk", "smp"):
            continue
        row = store.runs(run_ids=[r.run_id]).iloc[0]
        for key, col in COLUMNS.items():
            if key in r.context["reported_percentiles_us"]:
                assert row[col] == pytest.approx(r.context["reported_percentiles_us"][key],
                                                 rel=1e-12)


def test_pooled_percentiles_come_from_the_spread_histograms(
        stored: tuple[Store, list[RunResult]]) -> None:
    store, runs = stored
    meshery = [r for r in runs if r.context["format"] == "meshery"]
    ids = [r.run_id for r in meshery]
    runs, buckets = store.runs(run_ids=ids), store.buckets(ids)
    pooled = pooled_percentiles(runs, buckets, group_by=[]).iloc[0]
    merged = Histogram.merged(r.latency for r in meshery)
    for p, col in ((50, "p50_us"), (99, "p99_us")):
        assert pooled[col] == merged.percentile_us(p)
    compared = compare_groups(runs, buckets, baseline=ids[:1], candidate=ids[1:], pool=True,
                              n_boot=50).table.set_index("metric")
    assert compared.loc["p99_us", "candidate"] == Histogram.merged(
        r.latency for r in meshery[1:]).percentile_us(99)


def test_headline_is_ignored_once_the_histogram_changed(tmp_path: Path) -> None:
    (r,) = import_results(FORTIO_FILES[0])
    assert r.headline_percentile_us(50) == r.context["reported_percentiles_us"]["50"]
    merged = Histogram.merged([r.latency, r.latency])       # e.g. two pods added together
    stale = dataclasses.replace(r, run_id="stale", latency=merged, service_time=merged.copy())
    assert stale.context[HEADLINE_COUNT_KEY] != merged.total
    assert stale.headline_percentile_us(50) == merged.percentile_us(50)
    other = dataclasses.replace(r, run_id="svc", service_time=Histogram())
    assert math.isnan(other.headline_percentile_us(50, kind="service_time"))
    assert HEADLINE_PERCENTILES_KEY in other.context
    store = Store(tmp_path / "m.duckdb")
    store.save_many([stale, other])
    rows = store.runs().set_index("run_id")
    assert rows.loc["stale", "p50_us"] == merged.percentile_us(50)
    assert rows.loc["svc", "p50_us"] == r.context["reported_percentiles_us"]["50"]
    assert rows.loc["svc", "uncorrected_p50_us"] is None or math.isnan(
        rows.loc["svc", "uncorrected_p50_us"])


def test_exports_carry_fortios_values_back_out() -> None:
    for r in import_results(MESHERY_RESULTS):
        (back,) = import_results(export_run(r, "fortio").encode())
        for key in COLUMNS:
            assert back.headline_percentile_us(float(key)) == pytest.approx(
                r.headline_percentile_us(float(key)), rel=1e-12)
