"""Mesh versions: which version a mesh CLI installs (a CLI installs its own release, so pinning a
version means having that CLI on PATH), install at a version, and in-place upgrade.
"""

from __future__ import annotations

import re
import shutil

from meshlab.errors import MeshError
from meshlab.k8s.cluster import Cluster
from meshlab.meshes.kubernetes import KubernetesMesh, _run

_VERSION = re.compile(r"(edge-\d+\.\d+\.\d+|\d+\.\d+\.\d+(?:-[\w.]+)?)")


def same_version(a: str, b: str) -> bool:
    return a.strip().lstrip("v") == b.strip().lstrip("v")


def client_version(mesh: KubernetesMesh, *, timeout_s: float = 60.0) -> str:
    """The release the mesh's CLI on PATH installs (`istioctl version --remote=false`)."""
    if shutil.which(mesh.cli) is None:
        raise MeshError(f"{mesh.cli} not found on PATH; install it ({mesh.install_hint})")
    out = _run(mesh.client_version_argv, timeout_s=timeout_s)
    m = _VERSION.search(out)
    if m is None:
        raise MeshError(f"{' '.join(mesh.client_version_argv)!r} printed no version: "
                        f"{out.strip()[:200]!r}")
    return m.group(1)


def require_client_version(mesh: KubernetesMesh, version: str) -> None:
    """MeshError unless the CLI on PATH installs `version`."""
    have = client_version(mesh)
    if not same_version(have, version):
        raise MeshError(f"{mesh.cli} on PATH is {have} and installs {mesh.name} {have}; "
                        f"--version {version} needs {mesh.cli} {version} first on PATH "
                        f"({mesh.install_hint})")


def _version_note(mesh: KubernetesMesh, version: str | None) -> list[str]:
    if not version:
        return []
    return [f"# {' '.join(mesh.client_version_argv)}  # must report {version}"]


def install(mesh: KubernetesMesh, cluster: Cluster | None = None, *, version: str | None = None,
            dry_run: bool = False) -> list[str]:
    """Install `mesh` (at `version`: checked against its CLI first)."""
    if version and not dry_run:
        require_client_version(mesh, version)
    return [*_version_note(mesh, version), *mesh.install(cluster, dry_run=dry_run)]


def upgrade(mesh: KubernetesMesh, cluster: Cluster | None = None, *, version: str | None = None,
            dry_run: bool = False) -> list[str]:
    """Upgrade `mesh` in place to the CLI's release (`version`: checked first); MeshError for a
    mesh meshlab cannot upgrade."""
    steps = mesh.upgrade_steps()
    if not steps:
        raise MeshError(f"meshlab cannot upgrade {mesh.name} in place; uninstall and install "
                        f"the new version")
    if version and not dry_run:
        require_client_version(mesh, version)
    return [*_version_note(mesh, version), *mesh.run_steps(steps, cluster=cluster,
                                                          dry_run=dry_run)]
