"""`meshlab show` says what a run measured: an imported fortio run is labelled uncorrected (its
context says `latency_corrected: false`) and shows the same percentiles as `runs` and `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshlab.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fortio"
FORTIO = FIXTURES / "fortio-README-rest-run-http-result.json"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.fixture
def fortio_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", "200")
    store = str(tmp_path / "s.duckdb")
    _cli(capsys, "import", str(FORTIO), "--store", store)
    row = json.loads(_cli(capsys, "runs", "--store", store, "--json").splitlines()[0])
    return store, str(row["run_id"])


def test_show_labels_an_uncorrected_import_as_uncorrected(
        fortio_run: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = fortio_run
    text = _cli(capsys, "show", run_id, "--store", store)
    assert "corrected (from intended send)" not in text
    assert "NOT corrected for coordinated omission" in text
    assert "uncorrected (from actual send)" in text
    doc = json.loads(_cli(capsys, "show", run_id, "--store", store, "--json"))
    assert doc["latency_corrected"] is False
    assert doc["percentiles_us"]["corrected"] is None


def test_show_percentiles_agree_with_runs_and_json(
        fortio_run: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = fortio_run
    row = json.loads(_cli(capsys, "runs", "--store", store, "--json").splitlines()[0])
    doc = json.loads(_cli(capsys, "show", run_id, "--store", store, "--json"))
    shown = doc["percentiles_us"]["uncorrected"]
    # fortio's own interpolated values (its 4 requests give distinct p90 and p99), not the
    # histogram's bucket midpoints (which make p90 == p99 == p99.9)
    assert shown["90"] < shown["99"] < shown["99.9"]
    for p, col in (("50", "p50_us"), ("90", "p90_us"), ("99", "p99_us"), ("99.9", "p999_us")):
        assert shown[p] == pytest.approx(row[col], rel=1e-9), p
        assert doc[col] == pytest.approx(row[col], rel=1e-5), p
    text = _cli(capsys, "show", run_id, "--store", store)
    listing = _cli(capsys, "runs", "--store", store)
    p50_line = next(line for line in text.splitlines() if line.strip().startswith("p50 "))
    p50_text = " ".join(p50_line.split()[1:])
    assert p50_text in listing, (p50_text, listing)
