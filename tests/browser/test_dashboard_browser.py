"""Headless Chromium (Debian's, through Playwright) drives the Voila dashboard on loopback: fill
the form, click Run, wait for the run to complete and the chart to appear; save a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import free_port, stop_group, wait_listening

from meshlab.widgets.dashboard import start_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture
def dashboard(tmp_path: Path, echo_url: str, jupyter_dirs: dict[str, Path]) -> Iterator[str]:
    port = free_port()
    proc = start_dashboard(store=tmp_path / "s.duckdb", port=port, workdir=tmp_path,
                           defaults={"name": "browser", "target": echo_url})
    try:
        wait_listening(port, 60, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_group(proc)


def test_run_from_the_dashboard(dashboard: str, page: Any, tmp_path: Path) -> None:
    page.goto(dashboard, timeout=90_000)
    page.wait_for_selector(".meshlab-run", timeout=90_000)
    for field, value in (("loads-rate_rps", "200"), ("loads-duration_s", "2"),
                         ("loads-warmup_s", "0"), ("loads-connections", "2")):
        page.fill(f".meshlab-field-{field} input", value)
    page.click(".meshlab-run button, button.meshlab-run")
    page.wait_for_selector(".meshlab-status:has-text('completed')", timeout=60_000)
    page.wait_for_selector(".meshlab-live .js-plotly-plot .main-svg", timeout=30_000)
    bar = page.locator(".meshlab-progress .progress-bar, .meshlab-progress "
                       ".widget-progress .progress-bar").first
    assert "success" in (bar.get_attribute("class") or "")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 0
