"""Headless Chromium drives JupyterLab on loopback: open a copy of the workbench notebook aimed
at the echo server, run all cells, click Run, wait for the progress bar to complete and the
plotly chart to appear; save a screenshot. The server is always stopped."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    check_tables,
    free_port,
    plot_layouts,
    screenshot,
    stop_group,
    visible_tables,
    wait_listening,
)

from meshlab.widgets.dashboard import LAB_SETTINGS, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# the project's JupyterLab settings: no "news" or update-check notifications over the
# notebook, and the notebook's kernel starts without a "Select Kernel" dialog
OVERRIDES = json.loads((LAB_SETTINGS / "overrides.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, echo_url: str, jupyter_dirs: dict[str, Path]
        ) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """JupyterLab on 127.0.0.1 with a token, serving a temporary directory: (the notebook's
    URL, its port, the server). Not waited for here: Chromium starts while JupyterLab does."""
    tmp_path = tmp_path_factory.mktemp("lab")
    root = tmp_path / "root"
    root.mkdir()
    # a copy: JupyterLab autosaves outputs into the notebook it has open
    notebook = write_notebook(root, store=tmp_path / "lab.duckdb",
                              defaults={"name": "lab-browser", "target": echo_url})
    settings = tmp_path / "lab-settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).with_name("jupyter")
    argv = [str(jupyter), "lab", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", f"--LabApp.app_settings_dir={settings}",
            "--LabApp.news_url=", "--ServerApp.log_level=WARN"]
    log = (tmp_path / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}", port, proc
    finally:
        stop_group(proc)
        log.close()


def _accept_dialog(page: Any) -> None:
    """Accept a modal dialog (a kernel prompt) that would swallow the clicks that follow."""
    accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    if accept.count():
        accept.first.click()
        page.wait_for_selector(".jp-Dialog", state="detached", timeout=10_000)


def _run_all_cells(page: Any, until: str, *, attempts: int = 3) -> None:
    """Run every cell until `until` appears. The command is not awaited: its promise waits for
    every cell, and a kernel that reported idle before it could take requests (a loaded
    machine) would leave it pending; a second run-all replaces the first one's outputs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        _accept_dialog(page)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        try:
            page.wait_for_selector(until, timeout=25_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def test_run_the_workbench_in_jupyterlab(lab: tuple[str, int, subprocess.Popen[bytes]],
                                         page: Any, tmp_path: Path) -> None:
    url, port, server = lab
    wait_listening(port, 60, server)
    page.goto(url, timeout=60_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]',
                           timeout=60_000)
    out = ".jp-OutputArea-output"
    _run_all_cells(page, f"{out} .meshlab-run")
    for field, value in (("loads-rate_rps", "200"), ("loads-duration_s", "1"),
                         ("loads-warmup_s", "0"), ("loads-connections", "2")):
        page.fill(f"{out} .meshlab-field-{field} input", value)
    _accept_dialog(page)
    page.click(f"{out} .meshlab-run")
    page.wait_for_selector(f"{out} .meshlab-status:has-text('completed')", timeout=60_000)
    page.wait_for_selector(f"{out} .meshlab-live .js-plotly-plot .main-svg", timeout=30_000)
    bar = page.locator(f"{out} .meshlab-progress .progress-bar").first
    assert "success" in (bar.get_attribute("class") or "")
    assert page.locator(".jp-Notification-Toast, .jp-toast-message").count() == 0   # no news
    assert "native" in page.locator(f"{out} .meshlab-field-runner select option")\
        .all_inner_texts()
    page.wait_for_selector(f"{out} .meshlab-live table", timeout=30_000)
    check_tables(visible_tables(page, f"{out} .meshlab-live"))
    charts = plot_layouts(page, f"{out} .meshlab-live")
    assert charts and all(c["y"] == "log" and c["legend"] >= 1 for c in charts), charts
    screenshot(page, "jupyterlab-workbench")
    shot = tmp_path / "jupyterlab.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
