"""Mesh versions: `meshlab mesh install MESH --version V` checks that the CLI on PATH installs V
(a mesh CLI installs its own release), `meshlab mesh upgrade` runs the mesh's in-place upgrade,
the detected version is stored on every run, and a profile's pin refuses another version."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from _env_flow import run_all
from test_mesh_cli import LINKERD_CP, calls, fake_cli
from test_own_service import _profile, _sample_app

from meshlab.cli import main
from meshlab.environments.base import environment_for
from meshlab.errors import MeshError
from meshlab.meshes.detect import detect_installed, kubernetes_mesh
from meshlab.meshes.version import client_version, install

UPGRADED_CP = LINKERD_CP.replace("edge-26.8.3", "edge-26.9.1")


@pytest.fixture()
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake mesh CLIs first on PATH (see test_mesh_cli.fake_cli)."""
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")
    return d


def test_install_at_a_version_checks_the_cli_first(bin_dir: Path, api, cluster) -> None:
    fake_cli(bin_dir, "istioctl", {"version --remote=false --short": "1.30.3\n"})
    mesh = kubernetes_mesh("istio")
    assert mesh is not None and client_version(mesh) == "1.30.3"
    with pytest.raises(MeshError, match=r"istioctl on PATH is 1.30.3 .*--version 1.29.0 needs "
                                        r"istioctl 1.29.0"):
        install(mesh, cluster, version="1.29.0")
    assert not any("install" in c for c in calls(bin_dir))
    install(mesh, cluster, version="v1.30.3")
    assert "istioctl install -y --set profile=default" in calls(bin_dir)


def test_cli_upgrade_dry_run_and_linkerd_upgrade_applied(bin_dir: Path, api, cluster,
                                                         kubeconfig: Path, capsys) -> None:
    assert main(["mesh", "upgrade", "istio-ambient", "--dry-run", "--version", "1.31.0"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "# istioctl version --remote=false --short  # must report 1.31.0",
        "istioctl upgrade -y --set profile=ambient"]
    fake_cli(bin_dir, "linkerd", {"version --client --short": "edge-26.9.1\n",
                                  "upgrade": UPGRADED_CP, "upgrade --crds": ""})
    api.installed_meshes.add("linkerd")
    cluster.apply_all([d for d in yaml.safe_load_all(LINKERD_CP) if d])
    assert [i.version for i in detect_installed(cluster)] == ["edge-26.8.3"]
    assert main(["mesh", "upgrade", "linkerd", "--version", "edge-26.9.1",
                 "--kubeconfig", str(kubeconfig), "--context", "lab"]) == 0
    assert [i.version for i in detect_installed(cluster)] == ["edge-26.9.1"]


def test_a_pinned_version_the_cluster_does_not_run_is_refused(api, cluster,
                                                              kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={"istio-injection": "enabled"})
    wrong = _profile(kubeconfig, ["istio"], mesh_versions={"istio": "1.29.0"})
    with pytest.raises(MeshError, match=r"pins istio 1.29.0 .* runs 1.30.3"):
        asyncio.run(run_all(environment_for(wrong), wrong))
    right = _profile(kubeconfig, ["istio"], mesh_versions={"istio": "1.30.3"})
    (result,) = asyncio.run(run_all(environment_for(right), right))
    assert result.context["mesh_version"] == "1.30.3"
