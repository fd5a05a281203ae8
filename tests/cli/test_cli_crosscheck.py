"""`meshlab crosscheck` stores its runs (same store rules as `meshlab run`) in one labelled
experiment, and `--from-store` prints the same comparison again from the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.store import Store


def _profile(path: Path, target: str) -> Path:
    path.write_text(f"""\
name: cc
target: {target}
loads: {{rate_rps: [200], connections: 2, duration_s: 0.5, warmup_s: 0}}
""")
    return path


def _json_rows(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_crosscheck_stores_its_runs_and_prints_them_again(
        echo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("MESHLAB_STORE", str(db))       # the store rule of `meshlab run`
    monkeypatch.setenv("COLUMNS", "300")
    prof = _profile(tmp_path / "cc.yaml", echo_url)
    assert main(["crosscheck", str(prof), "--runners", "native,hey,fortio", "--json",
                 "--quiet"]) == 0
    live = _json_rows(capsys.readouterr().out)
    exp_id = live[0]["experiment_id"]
    assert isinstance(exp_id, str) and exp_id.startswith("exp-")
    stored = Store(db, read_only=True).runs(label={"crosscheck": "true"})
    assert set(stored["experiment_id"]) == {exp_id}
    assert sorted(stored["run_id"]) == sorted(r["run_id"] for r in live if r["run_id"])

    assert main(["crosscheck", "--from-store", "latest", "--json"]) == 0
    again = _json_rows(capsys.readouterr().out)
    assert again == live

    assert main(["crosscheck", "--from-store", str(exp_id)]) == 0
    text = capsys.readouterr().out
    assert "load generator cross-check" in text and f"--from-store {exp_id}" in text


def test_crosscheck_needs_a_profile_or_from_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crosscheck"]) == 2
    assert "--from-store" in capsys.readouterr().err
