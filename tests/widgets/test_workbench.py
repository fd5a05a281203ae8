"""Widget handlers driven by setting `.value` and clicking, against a real echo server and a
real DuckDB store; bad input shows a message next to the field or in the browser."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from meshlab.analysis import synthetic_result
from meshlab.results import RunStatus
from meshlab.store import Store
from meshlab.widgets import ResultsBrowser, Workbench

pytestmark = pytest.mark.timeout(120)


def test_bad_form_input_is_shown_next_to_the_field(tmp_path: Path) -> None:
    wb = Workbench(tmp_path / "s.duckdb", defaults={"name": "w", "target": "http://127.0.0.1:1/"})
    wb.form.set("loads.rate_rps", "-5")
    wb.form.set("target", "not a url")
    wb.run_button.click()
    errors = {n: e.value for n, (_, _, e) in wb.form.fields.items() if e.value}
    assert set(errors) == {"loads.rate_rps", "target"}
    assert "must be &gt;= 0" in errors["loads.rate_rps"]
    assert wb.handle is None and "fix" in wb.status.value


def test_run_progress_completes_and_results_appear(tmp_path: Path, echo_url: str) -> None:
    wb = Workbench(tmp_path / "s.duckdb", defaults={"name": "widget", "target": echo_url})
    assert "no store" in wb.browser.message.value
    wb.form.set("loads.rate_rps", "200")
    wb.form.set("loads.connections", "2")
    wb.form.set("loads.duration_s", "1.5")
    wb.form.set("loads.warmup_s", "0")
    wb.run_button.click()
    assert wb.handle is not None and wb.run_button.disabled
    deadline = time.monotonic() + 60
    while not wb.poll():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert wb.progress.value == 1.0 and wb.progress.bar_style == "success", wb.status.value
    assert len(wb.live.outputs) == 2                      # the runs table and the timeline
    assert "completed" in wb.live.outputs[0]["data"]["text/html"]
    assert len(wb.browser.runs.options) == 1
    assert not wb.run_button.disabled


def test_cancel_stops_a_run(tmp_path: Path, echo_url: str) -> None:
    wb = Workbench(tmp_path / "s.duckdb", defaults={"name": "cancel", "target": echo_url})
    wb.form.set("loads.rate_rps", "100")
    wb.form.set("loads.duration_s", "30")
    wb.run_button.click()
    time.sleep(1.0)
    wb.cancel_button.click()
    deadline = time.monotonic() + 30
    while not wb.poll():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "aborted" in wb.status.value


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    store = Store(path)
    for i in range(2):
        store.save(synthetic_result(run_id=f"base-{i}", seed=i, requests=5_000,
                                    labels={"build": "a"}))
        store.save(synthetic_result(run_id=f"slow-{i}", seed=9 + i, requests=5_000, mesh="envoy",
                                    slowdown=1.3, labels={"build": "b"}))
    return path


def test_browser_filters_compares_and_exports(store_path: Path, tmp_path: Path) -> None:
    b = ResultsBrowser(store_path, export_dir=tmp_path / "out")
    assert len(b.runs.options) == 4
    b.mesh.value = "envoy"
    assert [v for _, v in b.runs.options] == ["slow-0", "slow-1"]
    b.mesh.value = "(any)"
    b.label.value = "build=a"
    assert [v for _, v in b.runs.options] == ["base-0", "base-1"]
    b.label.value = ""
    assert not b.compare()                               # nothing picked: a message
    assert "pick" in b.message.value
    b.baseline.value = ("base-0", "base-1")
    b.candidate.value = ("slow-0", "slow-1")
    b.compare_button.click()
    assert "OVERHEAD beyond thresholds" in b.message.value     # envoy vs none
    assert len(b.output.outputs) == 4            # overhead table, two charts, compared runs
    compared = b.output.outputs[3]["data"]["text/html"]
    for rid in ("base-0", "base-1", "slow-0", "slow-1"):    # each row links to its run's page
        assert f'href="?run={rid}"' in compared, compared
    assert 'href="?run=base-0"' in b.runs_view.value
    b.runs.value = ("base-0",)
    b.csv_button.click()
    assert (tmp_path / "out" / "meshlab-runs.csv").read_text().count("\n") == 2
    b.fortio_button.click()
    assert (tmp_path / "out" / "meshlab-fortio" / "base-0.json").exists(), b.message.value
    b.pages_button.click()
    page = tmp_path / "out" / "meshlab-runs" / "run-base-0.html"
    assert page.exists() and "Plotly.newPlot" in page.read_text(), b.message.value


def test_empty_store_is_a_message(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    Store(path).runs()
    b = ResultsBrowser(path)
    assert "no runs" in b.message.value
    b.baseline.options = [("x", "x")]
    b.candidate.options = [("y", "y")]
    b.baseline.value, b.candidate.value = ("x",), ("y",)
    assert not b.compare()
    assert "cannot compare" in b.message.value


def test_form_dropdowns_come_from_the_registries_and_presets_fill_it(tmp_path: Path) -> None:
    from meshlab.environments.base import environment_names
    from meshlab.meshes import mesh_names
    from meshlab.runners.base import runner_names
    from meshlab.widgets.form import DEFAULT_RATE_RPS, ProfileForm, presets

    form = ProfileForm({"name": "f", "target": "http://127.0.0.1:1/"})
    assert list(form.fields["runner"][1].options) == runner_names()
    assert list(form.fields["environment"][1].options) == environment_names()
    assert set(mesh_names()) <= set(form.fields["meshes"][1].options)
    assert "node-proxy" in form.fields["modes"][1].options
    assert form.fields["loads.rate_rps"][1].value == f"{DEFAULT_RATE_RPS:g}"   # open loop
    assert "quickstart" in presets()
    form.preset.value = "quickstart"
    data = form.data()
    assert data["environment"] == "local" and "envoy+mtls" in data["meshes"]
    import yaml

    doc = yaml.safe_load(presets()["quickstart"].read_text())
    assert data["loads"]["rate_rps"] == doc["loads"]["rate_rps"]    # the preset's own values
    assert data["loads"]["duration_s"] == doc["loads"]["duration_s"]
    profile = form.profile()
    assert profile is not None and profile.topology is not None, \
        [e.value for _, _, e in form.fields.values() if e.value]


def test_saving_charts_without_any_is_a_message(tmp_path: Path) -> None:
    wb = Workbench(tmp_path / "s.duckdb", defaults={"name": "w", "target": "http://127.0.0.1:1/"})
    assert wb.export_charts(tmp_path) == [] and "no chart" in wb.status.value


def test_status_line_names_the_run_with_its_live_rate_and_p99() -> None:
    from meshlab.progress import ExperimentSnapshot
    from meshlab.widgets.workbench import status_line

    snap = ExperimentSnapshot(event="progress", experiment_id="e", profile="p",
                              status="running", total_runs=6, run_index=1,
                              run_label="mesh=envoy rate=500 conns=4 repeat=0", phase="measure",
                              rate_rps=498.0, p99_us=1_200.0)
    line = status_line(snap)
    assert "run 2 of 6" in line and "mesh=envoy rate=500" in line
    assert "498 req/s" in line and "p99 1.20 ms" in line


def test_failed_and_degraded_runs_are_marked_and_not_compared(store_path: Path,
                                                              tmp_path: Path) -> None:
    store = Store(store_path)
    broken = synthetic_result(run_id="broken-0", seed=30, requests=5_000, mesh="envoy")
    broken.status = RunStatus.FAILED
    broken.error = "sidecar envoy:backend-0-sidecar died during the run; address already in use"
    store.save(broken)
    shaky = synthetic_result(run_id="shaky-0", seed=31, requests=5_000, mesh="envoy")
    shaky.status = RunStatus.DEGRADED
    shaky.warnings = ["achieved 120 req/s of 600 requested"]
    store.save(shaky)
    b = ResultsBrowser(store_path, export_dir=tmp_path / "out")
    labels = {v: text for text, v in b.runs.options}
    assert labels["broken-0"].startswith("✗ FAILED") and labels["shaky-0"].startswith("✗ DEGR")
    assert not labels["base-0"].startswith("✗")
    assert "color:#c00" in b.message.value and "address already in use" in b.message.value
    b.baseline.value = ("base-0", "base-1")
    b.candidate.value = ("slow-0", "shaky-0")
    assert not b.compare()
    assert "not compared" in b.message.value and "achieved 120 req/s" in b.message.value
    assert len(b.output.outputs) == 0
    b.candidate.value = ("slow-0", "slow-1")
    assert b.compare()


def test_a_failed_run_is_shown_in_red_with_its_reason(tmp_path: Path) -> None:
    with socket.socket() as s:            # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wb = Workbench(tmp_path / "s.duckdb",
                   defaults={"name": "refused", "target": f"http://127.0.0.1:{port}/"})
    wb.form.set("loads.rate_rps", "50")
    wb.form.set("loads.connections", "1")
    wb.form.set("loads.duration_s", "0.5")
    wb.form.set("loads.warmup_s", "0")
    wb.run_button.click()
    deadline = time.monotonic() + 60
    while not wb.poll():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert wb.progress.bar_style == "danger"
    assert "color:#c00" in wb.status.value and "no successful response" in wb.status.value
    assert any(text.startswith("✗ FAILED") for text, _ in wb.browser.runs.options)


def test_dashboard_page_is_the_workbench_or_the_page_a_link_names(store_path: Path) -> None:
    from meshlab.widgets.run_view import dashboard_page, requested_run, run_href

    assert requested_run(run_href("base-0")[1:]) == "base-0"
    assert requested_run("") is None and requested_run("run=") is None
    wb = dashboard_page(store_path, query="")
    assert isinstance(wb, Workbench)
    # the Results tab is built (and the store read) when first opened, not at start-up
    assert wb._browser is None and wb.tabs.children[1].children == ()
    wb.tabs.selected_index = 1
    assert wb._browser is not None and wb.tabs.children[1].children == (wb.browser.widget,)
    page = dashboard_page(store_path, query="run=slow-0")
    texts = [o["data"].get("text/html", "") for o in page.outputs]
    assert "Run slow-0" in texts[0] and "meshlab-run-status" in texts[0]
    assert sum("application/vnd.plotly.v1+json" in o["data"] for o in page.outputs) == 4
    missing = dashboard_page(store_path, query="run=nope")
    assert "cannot show this run" in missing.outputs[0]["data"]["text/html"]
