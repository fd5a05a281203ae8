"""Browser-test fixtures: Debian's Chromium through Playwright (one per module, a fresh context
per test), and Jupyter config/data/runtime dirs under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def jupyter_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """JUPYTER_CONFIG_DIR, _DATA_DIR and _RUNTIME_DIR in a temporary directory for the module's
    servers (tests stay out of ~)."""
    base = tmp_path_factory.mktemp("jupyter")
    dirs = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("CONFIG", "DATA", "RUNTIME"):
            d = base / f"jupyter-{name.lower()}"
            d.mkdir()
            monkeypatch.setenv(f"JUPYTER_{name}_DIR", str(d))
            dirs[name.lower()] = d
        yield dirs


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so `page` can tell that the test failed."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium per test module, through Playwright (which cannot download
    its own); every test gets a fresh context of it from `page`."""
    if not Path(CHROMIUM).exists():
        pytest.fail("install Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a context of its own (no cookies, storage or tabs shared between tests)."""
    context = browser.new_context(viewport={"width": 1300, "height": 1100})
    try:
        pg = context.new_page()
        yield pg
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            # what the page showed when the test failed, next to the test's other files
            pg.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
    finally:
        context.close()
