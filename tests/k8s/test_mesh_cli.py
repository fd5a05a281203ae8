"""Mesh install/uninstall through the mesh's own CLI, against the API stand-in: small sh scripts
first on PATH play `istioctl`, `linkerd`, `consul-k8s` and `kumactl` (print manifests or fail
with a given exit code); a failed install leaves nothing meshlab applied."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

import pytest

from meshlab.cli import main
from meshlab.errors import MeshError
from meshlab.meshes.detect import kubernetes_mesh
from meshlab.meshes.kubernetes import KubernetesMesh

CRDS = Path(__file__).parents[1] / "fixtures" / "crds" / "linkerd"
APPLIED = "  # output server-side applied by meshlab"
DRY_RUN = {
    "istio": ["istioctl install -y --set profile=default", "istioctl verify-install"],
    "linkerd": ["linkerd check --pre", f"linkerd install --crds{APPLIED}",
                f"linkerd install{APPLIED}", "linkerd check"],
    "consul": ["consul-k8s install -auto-approve -set connectInject.enabled=true "
               "-set global.name=consul"],
    "kuma": [f"kumactl install control-plane{APPLIED}"],
}
CLIS = {"istio": "istioctl", "linkerd": "linkerd", "consul": "consul-k8s", "kuma": "kumactl"}


def _control_plane(ns: str, name: str, image: str) -> str:
    return f"""---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-config, namespace: {ns}}}
data: {{mode: test}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: "{image}"}}]
"""


LINKERD_CRDS = (CRDS / "server.rendered.yaml").read_text()
LINKERD_CP = _control_plane("linkerd", "linkerd-destination",
                            "cr.l5d.io/linkerd/controller:edge-26.8.3")
KUMA_CP = _control_plane("kuma-system", "kuma-control-plane", "docker.io/kumahq/kuma-cp:2.14.3")


def fake_cli(bin_dir: Path, name: str, answers: Mapping[str, str | int]) -> Path:
    """Put an executable `name` in `bin_dir`: for the argument string `args`, `answers[args]` is
    text to print (exit 0) or an exit code (with a message on stderr); other calls exit 0
    silently. Every call is appended to bin_dir/calls.log."""
    bin_dir.mkdir(exist_ok=True)
    cases = []
    for i, (args, answer) in enumerate(answers.items()):
        if isinstance(answer, int):
            action = f"echo {shlex.quote(f'{name} {args}: failed on purpose')} >&2; exit {answer}"
        else:
            out = bin_dir / f"{name}-{i}.yaml"
            out.write_text(answer)
            action = f"cat {shlex.quote(str(out))}"
        cases.append(f"  {shlex.quote(args)}) {action} ;;")
    script = bin_dir / name
    script.write_text("#!/bin/sh\n"
                      f"echo \"{name} $*\" >> {shlex.quote(str(bin_dir / 'calls.log'))}\n"
                      'case "$*" in\n' + "\n".join(cases) + "\n  *) : ;;\nesac\n")
    script.chmod(0o755)
    return script


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture()
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")
    return d


def live(api) -> set[tuple[str, str | None, str]]:
    """Every object the stand-in holds (resource, namespace, name)."""
    return {(str(r), ns, n) for (r, ns, n), o in api.objects.items() if not o.deleted}


def writes(api) -> list[tuple[str, str, str]]:
    return [c for c in api.calls if c[0] != "GET"]


def _mesh(name: str) -> KubernetesMesh:
    mesh = kubernetes_mesh(name)
    assert mesh is not None
    return mesh


@pytest.mark.parametrize("name", sorted(DRY_RUN))
def test_dry_run_lists_the_commands_and_applies_nothing(name: str, bin_dir: Path, api,
                                                        cluster) -> None:
    fake_cli(bin_dir, CLIS[name], {})
    assert _mesh(name).install(cluster, dry_run=True) == DRY_RUN[name]
    assert calls(bin_dir) == [] and writes(api) == []


def test_cli_dry_run_prints_the_commands(bin_dir: Path, api, capsys) -> None:
    fake_cli(bin_dir, "linkerd", {})
    assert main(["mesh", "install", "linkerd", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == DRY_RUN["linkerd"]
    assert main(["mesh", "uninstall", "kuma", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "kumactl install control-plane  # output deleted by meshlab"]
    assert calls(bin_dir) == [] and writes(api) == []


@pytest.mark.parametrize("name", sorted(CLIS))
@pytest.mark.parametrize("uninstall", [False, True])
def test_absent_cli_names_the_install_hint(name: str, uninstall: bool, bin_dir: Path, api,
                                          cluster) -> None:
    mesh = _mesh(name)
    run = mesh.uninstall if uninstall else mesh.install
    with pytest.raises(MeshError, match=rf"^{CLIS[name]} not found on PATH; install it") as err:
        run(cluster)
    assert mesh.install_hint in str(err.value) and "--dry-run" in str(err.value)
    assert writes(api) == []


@pytest.mark.parametrize(("name", "answers", "version"), [
    ("linkerd", {"install --crds": LINKERD_CRDS, "install": LINKERD_CP}, "edge-26.8.3"),
    ("kuma", {"install control-plane": KUMA_CP}, "2.14.3"),
])
def test_install_applies_the_output_and_uninstall_deletes_it(
        name: str, answers: dict[str, str | int], version: str, bin_dir: Path, api,
        cluster) -> None:
    fake_cli(bin_dir, CLIS[name], {**answers, "uninstall": LINKERD_CRDS + LINKERD_CP})
    mesh = _mesh(name)
    before = live(api)
    assert mesh.detect(cluster) is None
    assert mesh.install(cluster) == DRY_RUN[name]
    assert calls(bin_dir) == [c.split("  #")[0] for c in DRY_RUN[name]]
    found = mesh.detect(cluster)
    assert found is not None and (found.mesh, found.version) == (name, version)
    assert found.namespace == ("linkerd" if name == "linkerd" else "kuma-system")
    assert len(live(api) - before) >= 3
    mesh.uninstall(cluster)
    assert mesh.detect(cluster) is None
    assert live(api) == before


@pytest.mark.parametrize(("failing", "code"), [("install", 4), ("check", 1)])
def test_a_failing_later_step_rolls_back_what_earlier_steps_applied(
        failing: str, code: int, bin_dir: Path, api, cluster) -> None:
    fake_cli(bin_dir, "linkerd", {"install --crds": LINKERD_CRDS, "install": LINKERD_CP,
                                  failing: code})
    before = live(api)
    with pytest.raises(MeshError, match=rf"linkerd install failed at 'linkerd {failing}'.*"
                                        rf"exited with code {code}.*rolled back") as err:
        _mesh("linkerd").install(cluster)
    assert "failed on purpose" in str(err.value) and "NOT rolled back" not in str(err.value)
    assert calls(bin_dir)[-1] == f"linkerd {failing}"
    assert live(api) == before
    assert cluster.find("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                        "servers.policy.linkerd.io") is None


def test_a_failing_apply_of_the_output_is_rolled_back(bin_dir: Path, api, cluster) -> None:
    fake_cli(bin_dir, "kumactl", {"install control-plane": KUMA_CP})
    api.fail_kinds = {"Deployment": 500}
    before = live(api)
    with pytest.raises(MeshError, match=r"kuma install failed at 'kumactl install "
                                        r"control-plane'.*status=500"):
        _mesh("kuma").install(cluster)
    assert live(api) == before
    assert cluster.find("v1", "Namespace", "kuma-system") is None


def test_a_step_that_applies_by_itself_is_undone_by_its_undo_command(bin_dir: Path, api,
                                                                     cluster) -> None:
    fake_cli(bin_dir, "istioctl", {"verify-install": 3})
    with pytest.raises(MeshError, match=r"failed at 'istioctl verify-install'.*ran "
                                        r"'istioctl uninstall -y --purge'"):
        _mesh("istio").install(cluster)
    assert calls(bin_dir) == ["istioctl install -y --set profile=default",
                              "istioctl verify-install", "istioctl uninstall -y --purge"]
    assert writes(api) == []


def test_uninstall_runs_the_cli(bin_dir: Path, api, cluster) -> None:
    fake_cli(bin_dir, "consul-k8s", {})
    assert _mesh("consul").uninstall(cluster) == ["consul-k8s uninstall -auto-approve -wipe-data"]
    assert calls(bin_dir) == ["consul-k8s uninstall -auto-approve -wipe-data"]
    fake_cli(bin_dir, "consul-k8s", {"uninstall -auto-approve -wipe-data": 2})
    with pytest.raises(MeshError, match=r"consul uninstall stopped at .*exited with code 2"):
        _mesh("consul").uninstall(cluster)


def test_cli_install_and_uninstall_through_a_kubeconfig(bin_dir: Path, api, kubeconfig: Path,
                                                        capsys) -> None:
    fake_cli(bin_dir, "kumactl", {"install control-plane": KUMA_CP})
    before = live(api)
    ctx = ["--kubeconfig", str(kubeconfig), "--context", "lab"]
    assert main(["mesh", "install", "kuma", *ctx]) == 0
    assert capsys.readouterr().out.splitlines() == DRY_RUN["kuma"]
    assert api.get("apps/v1", "deployments", "kuma-system", "kuma-control-plane") is not None
    assert main(["mesh", "uninstall", "kuma", *ctx]) == 0
    assert live(api) == before
    fake_cli(bin_dir, "kumactl", {"install control-plane": 5})
    assert main(["mesh", "install", "kuma", *ctx]) == 1
    assert "kuma install failed at 'kumactl install control-plane'" in capsys.readouterr().err
    assert live(api) == before
