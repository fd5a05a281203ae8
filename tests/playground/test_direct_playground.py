"""A direct run whose target is a running playground's entry point records that playground:
`meshlab run` stores it as the playground's data plane (with mode and mTLS), and a profile that
would store it as another mesh is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.errors import ProfileError
from meshlab.experiment import run_profile
from meshlab.playground.playground import Playground
from meshlab.playground.process import default_state_dir
from meshlab.profile import Profile
from meshlab.store import Store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mtls_playground(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    started: list[Playground]) -> Playground:
    # `meshlab playground up` records playgrounds in the default state dir
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("MESHLAB_STATE_DIR", raising=False)
    pg = Playground(mesh="envoy+mtls", state_dir=default_state_dir(), name="cli").start()
    started.append(pg)
    return pg


def _profile(target: str, meshes: str = "") -> dict[str, object]:
    doc: dict[str, object] = {"name": "through-pg", "target": target, "loads": {
        "rate_rps": [100], "connections": [2], "duration_s": 0.5, "warmup_s": 0}}
    if meshes:
        doc["meshes"] = [meshes]
    return doc


def test_meshlab_run_through_a_running_playground_records_its_data_plane(
        mtls_playground: Playground, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(json.dumps(_profile(mtls_playground.url + "?size=64")))
    db = tmp_path / "s.duckdb"
    assert main(["run", str(prof), "--store", str(db), "--quiet"]) == 0
    assert "running playground 'cli'" in capsys.readouterr().err
    (row,) = Store(db, read_only=True).runs().to_dict(orient="records")
    assert row["mesh"] == "envoy+mtls"
    assert (row["data_plane"], row["mode"], row["mtls"]) == ("envoy", "both", "strict")
    assert json.loads(row["context"])["playground"] == "cli"
    assert row["requests"] > 0 and row["errors"] == 0


@pytest.mark.parametrize("meshes", ["", "nginx"])
def test_a_profile_that_would_mislabel_the_run_is_refused(
        mtls_playground: Playground, meshes: str, tmp_path: Path) -> None:
    profile = Profile.from_dict(_profile(mtls_playground.url, meshes))
    db = tmp_path / "lib.duckdb"
    with pytest.raises(ProfileError, match=r"running playground 'cli'.*meshes: \[envoy\+mtls\]"):
        run_profile(profile, store=db)
    assert not db.exists() or Store(db, read_only=True).runs().empty
