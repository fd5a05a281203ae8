"""Headless Chromium opens the HTML report and a run's page as a person would, from disk with
no network: readable tables (no scientific notation, index or snake_case), charts with legends
and log latency axes, a failed run shown as failed; screenshots under tests/browser/screenshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import check_tables, plot_layouts, screenshot, visible_tables

from meshlab.analysis import synthetic_result
from meshlab.report import build_report
from meshlab.report.run_page import write_run_page
from meshlab.results import RunStatus
from meshlab.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("report-browser")
    store = Store(d / "s.duckdb")
    for i in range(2):
        common = {"requests": 6_000, "duration_s": 4.0, "cpu_percent": 25.0}
        store.save(synthetic_result(run_id=f"none-{i}", seed=i, **common))  # type: ignore[arg-type]
        store.save(synthetic_result(run_id=f"envoy-{i}", seed=7 + i, mesh="envoy",  # type: ignore[arg-type]
                                    p50_us=40_000.0, error_rate=0.01, **common))
    failed = synthetic_result(run_id="broken", seed=99, requests=300, mesh="envoy")
    store.save(dataclasses.replace(failed, status=RunStatus.FAILED, error="envoy exited"))
    report = d / "report.html"
    build_report(d / "s.duckdb", baseline="mesh=none", candidate="envoy-0,envoy-1", out=report,
                 n_boot=100)
    return {"report": report, "run": write_run_page(d / "s.duckdb", "broken", d / "run.html")}


@pytest.fixture(scope="module")
def opened(pages: dict[str, Path], browser: Any) -> Iterator[dict[str, tuple[Any, list[str]]]]:
    """The report and the run page, each opened once (loading ~5 MB of inlined plotly.js is the
    slow part) in a context of its own, with the non-local requests each page made; the tests
    only read them and download their charts."""
    opened: dict[str, tuple[Any, list[str]]] = {}
    contexts = []
    try:
        for name, path in pages.items():
            context = browser.new_context(viewport={"width": 1300, "height": 1100})
            contexts.append(context)
            page = context.new_page()
            remote: list[str] = []
            page.on("request", lambda r, remote=remote: remote.append(r.url)
                    if not r.url.startswith(("file:", "data:", "blob:")) else None)
            page.goto(path.as_uri(), timeout=60_000, wait_until="commit")   # both load at once
            opened[name] = page, remote
        for page, _ in opened.values():
            page.wait_for_load_state("load", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        yield opened
    finally:
        for context in contexts:
            context.close()


def _open(opened: dict[str, tuple[Any, list[str]]], name: str, tmp_path: Path,
          request: pytest.FixtureRequest) -> tuple[Any, list[str]]:
    """The opened page `name` and its non-local requests; a failing test leaves a screenshot of
    it in its tmp_path."""
    page, remote = opened[name]
    request.addfinalizer(lambda: _shot_on_failure(page, tmp_path, request))
    return page, remote


def _shot_on_failure(page: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)


def test_the_report_reads_well_offline(opened: dict[str, tuple[Any, list[str]]],
                                       tmp_path: Path, request: pytest.FixtureRequest) -> None:
    page, remote = _open(opened, "report", tmp_path, request)
    tables = visible_tables(page)
    assert len(tables) >= 3
    check_tables(tables)
    assert any("slower" in t["text"] for t in tables)
    charts = {c["title"]: c for c in plot_layouts(page)}
    spectrum = charts["A/B: baseline vs candidate"]
    assert spectrum["y"] == "log" and spectrum["legend"] == 2
    assert charts["Latency histogram and CDF"]["x"] == "log"
    assert all(c["legend"] >= 1 for c in charts.values()), charts
    # 1280 px: nothing wider than the page
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1300, width
    screenshot(page, "report")
    assert not remote, remote


def test_a_failed_run_page_says_failed(opened: dict[str, tuple[Any, list[str]]],
                                       tmp_path: Path, request: pytest.FixtureRequest) -> None:
    page, remote = _open(opened, "run", tmp_path, request)
    assert page.inner_text(".meshlab-run-status") == "failed"
    assert "envoy exited" in page.inner_text("body")
    check_tables(visible_tables(page))
    assert all(c["legend"] >= 1 for c in plot_layouts(page))
    screenshot(page, "run-page-failed")
    assert not remote, remote


@pytest.mark.parametrize("name", ["report", "run"])
def test_every_chart_saves_as_png_and_svg_offline(opened: dict[str, tuple[Any, list[str]]],
                                                  tmp_path: Path, request: pytest.FixtureRequest,
                                                  name: str) -> None:
    page, remote = _open(opened, name, tmp_path, request)
    charts = page.locator(".js-plotly-plot").count()
    assert charts >= 2
    assert page.locator("a.meshlab-export-png").count() == charts
    assert page.locator("a.meshlab-export-svg").count() == charts
    for fmt, magic in (("svg", b"<svg"), ("png", b"\x89PNG")):
        with page.expect_download(timeout=30_000) as download:
            page.locator(f"a.meshlab-export-{fmt}").first.click()
        saved = tmp_path / f"chart.{fmt}"
        download.value.save_as(saved)
        assert download.value.suggested_filename.endswith(f".{fmt}")
        assert saved.read_bytes()[:200].lstrip().startswith(magic) or \
            magic in saved.read_bytes()[:200], saved.read_bytes()[:80]
    assert not remote, remote
