"""A page per run: status (a failed run shown as failed), units, charts with plotly inlined
once, status codes, warnings, context; an unknown run id is a message and exit code 2."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from meshlab.analysis import synthetic_result
from meshlab.cli import main
from meshlab.results import RunStatus
from meshlab.store import Store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runpage") / "s.duckdb"
    store = Store(path)
    store.save(synthetic_result(run_id="good", requests=4_000, error_rate=0.02,
                                cpu_percent=20.0))
    bad = synthetic_result(run_id="bad", seed=3, requests=500)
    store.save(dataclasses.replace(bad, status=RunStatus.FAILED,
                                   error="target refused connections",
                                   warnings=["only 500 of 4,000 planned requests were sent"]))
    return path


def test_a_run_page_shows_everything_about_the_run(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "good.html"
    assert main(["report", "--store", str(store_path), "--run", "good", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") == 4 and 'src="http' not in page
    visible = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", visible)
    assert re.search(r"Error rate\s+\d\.\d%", text)
    for needle in ("Status codes", "503", "Warnings", "SLO checks",
                   "Spec", "Host", "synthetic-host", "status-completed"):
        assert needle in (text if needle != "status-completed" else page), needle
    tokens = [t.strip("()%[]") for t in re.split(r"[\s,;]+", text)]
    assert not [t for t in tokens if re.fullmatch(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+", t)]


def test_a_failed_run_is_shown_as_failed(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.html"
    assert main(["report", "--store", str(store_path), "--run", "bad", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "status-failed" in page and "target refused connections" in page
    assert "only 500 of 4,000 planned requests were sent" in page


def test_unknown_run_and_missing_groups_exit_two(store_path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--store", str(store_path), "--run", "nope",
                 "--out", str(tmp_path / "x.html")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["report", "--store", str(store_path), "--baseline", "mesh=none"]) == 2
    assert "--candidate" in capsys.readouterr().err


def test_a_shaped_run_draws_its_intended_rate_beside_what_was_sent(tmp_path: Path) -> None:
    from meshlab.report.run_page import intended_per_second

    spec = {"rate_rps": 800, "duration_s": 4, "warmup_s": 1,
            "shape": {"kind": "steps", "levels": [0.25, 0.5, 1, 0.5]}}
    assert intended_per_second(spec, 4) == [200, 400, 800, 400]
    ramp = intended_per_second({**spec, "shape": {"kind": "ramp", "start_rps": 0}}, 4) or []
    assert ramp == sorted(ramp) and sum(ramp) == pytest.approx(1600, abs=2)
    assert intended_per_second({**spec, "shape": {"kind": "constant"}}, 4) is None
    path = tmp_path / "s.duckdb"
    run = synthetic_result(run_id="ramp", requests=1_000)
    Store(path).save(dataclasses.replace(run, spec={**run.spec, **spec}))
    out = tmp_path / "ramp.html"
    assert main(["report", "--store", str(path), "--run", "ramp", "--out", str(out)]) == 0
    assert "intended (steps)" in out.read_text(encoding="utf-8")
