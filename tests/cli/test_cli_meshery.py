"""A Meshery performance profile keeps what it meant: a declared mesh the target cannot be is a
label with a warning (not the run's mesh), a schedule is a warning naming the CI alternative,
and a generator meshlab cannot run here is substituted by a flag and recorded on the run."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.formats import ProfileImportWarning, load_profile_any
from meshlab.store import Store

CI_DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "ci-example.md"


def _meshery(path: Path, endpoint: str) -> Path:
    path.write_text(json.dumps({
        "name": "istio soak", "loadGenerators": ["fortio"], "endpoints": [endpoint],
        "serviceMesh": "Istio", "concurrentRequest": 2, "qps": 100, "duration": "1s",
        "schedule": "5b1e2f1a-nightly"}))
    return path


def test_a_loopback_target_is_not_recorded_as_the_declared_mesh(
        tmp_path: Path, echo_url: str) -> None:
    with pytest.warns(ProfileImportWarning) as caught:
        profile = load_profile_any(_meshery(tmp_path / "p.json", echo_url))
    assert profile.meshes == ["none"]
    assert profile.labels["declared_mesh"] == "istio"
    assert profile.labels["meshery.schedule"] == "5b1e2f1a-nightly"
    text = " ".join(str(w.message) for w in caught)
    assert "'istio'" in text and "declared_mesh=istio" in text
    assert "docs/ci-example.md" in text                      # the schedule's alternative


def test_a_target_that_could_be_meshed_keeps_the_declared_mesh(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = load_profile_any(_meshery(tmp_path / "p.json",
                                            "http://productpage.default:9080/productpage"))
    assert profile.meshes == ["istio"] and "declared_mesh" not in profile.labels
    assert [str(w.message) for w in caught if "declared" in str(w.message)] == []


def test_meshery_profile_run_from_a_fresh_machine(
        tmp_path: Path, echo_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    prof = _meshery(tmp_path / "p.json", echo_url)
    db = tmp_path / "s.duckdb"
    if shutil.which("fortio") is None:
        assert main(["run", str(prof), "--store", str(db), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "--runner native" in err                     # the substitution, as a flag
        assert "warning:" in err and "declared_mesh=istio" in err and "schedule" in err
    assert main(["run", str(prof), "--store", str(db), "--quiet", "--runner", "native",
                 "--json"]) in (0, 1)
    capsys.readouterr()
    runs = Store(db, read_only=True).runs()
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["mesh"] == "none" and row["runner"] == "native"
    labels = json.loads(row["labels"])
    assert labels["declared_mesh"] == "istio"
    assert labels["meshery.schedule"] == "5b1e2f1a-nightly"
    assert json.loads(row["context"])["runner_substituted_for"] == "fortio"
    assert "nightly" in CI_DOC.read_text(encoding="utf-8")
