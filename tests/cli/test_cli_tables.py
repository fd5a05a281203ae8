"""Every table that lists runs (`meshlab run`, `meshlab runs`) shows the dimensions that vary
among its runs: two policies (or modes, or protocols) on one mesh give rows that differ in a
column, not only in their numbers."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.cli.core import _print_outcome
from meshlab.experiment import ExperimentOutcome, ExperimentStatus
from meshlab.results import RunResult
from meshlab.store import Store

_spec = importlib.util.spec_from_file_location(
    "_meshlab_cli_tables_data", Path(__file__).resolve().parent.parent / "_store_data.py")
assert _spec and _spec.loader
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)
make_result = _data.make_result


def _run(run_id: str, *, seed: int, policy: str, mode: str = "both") -> RunResult:
    r = make_result(run_id, seed=seed, mesh="envoy", n=500, telemetry_n=0)
    spec = json.loads(json.dumps(r.spec))
    spec["dims"] = {"mode": mode, "policy": policy}
    return replace(r, spec=spec)


def _header(text: str, first: str = "run_id") -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.split()[:1] == [first])
    return line.split()


def _rows(text: str, run_ids: list[str]) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split() for ln in text.splitlines()
            if ln.split() and ln.split()[0] in run_ids}


RUNS = [_run("20261122T100000-aaaaa1", seed=1, policy="none"),
        _run("20261122T100000-aaaaa2", seed=2, policy="retry3")]
IDS = [r.run_id for r in RUNS]


def test_runs_shows_the_policy_when_it_varies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    store = tmp_path / "s.duckdb"
    Store(store).save_many(RUNS)
    assert main(["runs", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    header = _header(out)
    assert "policy" in header and "mode" not in header      # mode is `both` in every run
    rows = _rows(out, IDS)
    col = header.index("policy")
    assert {rows[i][col] for i in IDS} == {"none", "retry3"}
    # one run alone varies in nothing: no extra column
    assert main(["runs", IDS[0], "--store", str(store)]) == 0
    assert "policy" not in _header(capsys.readouterr().out)


def test_run_table_shows_mode_and_policy_when_they_vary(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    runs = [*RUNS, _run("20261122T100000-aaaaa3", seed=3, policy="retry3", mode="server")]
    _print_outcome(ExperimentOutcome("e1", runs, ExperimentStatus.COMPLETED, "smoke"), "s.db")
    out = capsys.readouterr().out
    header = _header(out)
    assert header[:4] == ["run_id", "mesh", "policy", "mode"]
    rows = _rows(out, [r.run_id for r in runs])
    assert [rows[r.run_id][2:4] for r in runs] == [["none", "both"], ["retry3", "both"],
                                                   ["retry3", "server"]]
