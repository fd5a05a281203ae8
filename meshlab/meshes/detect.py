"""The Kubernetes adapters among the registered meshes, and the one place that asks them what a
cluster runs: which mesh (from control-plane images), which containers are proxies, which mTLS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial

from meshlab.errors import MeshError, ProfileError
from meshlab.k8s.cluster import Cluster
from meshlab.k8s.images import control_plane_images
from meshlab.k8s.snapshot import ClusterSnapshot, MeshState, ProxyFacts, take_snapshot
from meshlab.meshes.base import get_mesh, mesh_names
from meshlab.meshes.kubernetes import KubernetesMesh, MeshInstallation

BASELINE = "none"          # no mesh: the Kubernetes environment runs it without an adapter


def kubernetes_meshes() -> list[KubernetesMesh]:
    """Every registered mesh whose adapter drives Kubernetes, in `mesh_names()` order."""
    out: list[KubernetesMesh] = []
    for name in mesh_names():
        mesh = get_mesh(name)
        if isinstance(mesh, KubernetesMesh):
            out.append(mesh)
    return out


def kubernetes_mesh_names() -> list[str]:
    """The meshes the Kubernetes environment accepts: the baseline, then every adapter."""
    return [BASELINE, *(m.name for m in kubernetes_meshes())]


def kubernetes_mesh(name: str) -> KubernetesMesh | None:
    """The registered adapter for `name` (None for the baseline); ProfileError naming the
    Kubernetes meshes when `name` is unknown or not one of them."""
    if name == BASELINE:
        return None
    mesh = get_mesh(name) if name in mesh_names() else None
    if not isinstance(mesh, KubernetesMesh):
        raise ProfileError(f"meshes: {name!r} is not a Kubernetes mesh; choose one of "
                           f"{', '.join(kubernetes_mesh_names())}")
    return mesh


def proxy_facts(meshes: Iterable[KubernetesMesh] | None = None) -> ProxyFacts:
    """Sidecar container names and proxy-sizing annotations of `meshes` (default: all)."""
    ms = kubernetes_meshes() if meshes is None else list(meshes)
    return ProxyFacts(sidecars=frozenset(c for m in ms for c in m.sidecar_containers),
                      concurrency_annotations=tuple(m.concurrency_annotation for m in ms
                                                    if m.concurrency_annotation))


def detect_installed(cluster: Cluster) -> list[MeshInstallation]:
    """Every registered mesh whose control plane runs in the cluster, in `mesh_names()` order."""
    images = control_plane_images(cluster)
    found = (m.detect_images(images) for m in kubernetes_meshes())
    return [i for i in found if i is not None]


def check_pinned_version(cluster: Cluster, mesh: KubernetesMesh | None,
                         pins: Mapping[str, str]) -> None:
    """MeshError when the profile pins `mesh`'s version and the cluster runs another one."""
    if mesh is None or mesh.name not in pins:
        return
    inst = mesh.detect(cluster)
    want = pins[mesh.name].lstrip("v")
    have = inst.version if inst is not None else "not installed"
    if inst is None or inst.version.lstrip("v") != want:
        raise MeshError(f"the profile pins {mesh.name} {pins[mesh.name]} "
                        f"(topology.mesh_versions) but context {cluster.context!r} runs "
                        f"{have}; run `meshlab mesh install {mesh.name} --version "
                        f"{pins[mesh.name]}` (or `meshlab mesh upgrade`) or change the pin")


def mesh_state(cluster: Cluster, namespaces: Sequence[str], *,
               prefer: str | None = None) -> MeshState:
    """The mesh in charge (`prefer` when installed, else the first found), its version,
    control-plane namespace and the mTLS mode it declares for `namespaces`."""
    installed = detect_installed(cluster)
    if not installed:
        return MeshState()
    inst = next((i for i in installed if i.mesh == prefer), installed[0])
    mesh = kubernetes_mesh(inst.mesh)
    assert mesh is not None
    return MeshState(mesh=inst.mesh, version=inst.version, namespace=inst.namespace,
                     mtls=mesh.observed_mtls(cluster, namespaces))


def snapshot(cluster: Cluster, namespaces: Iterable[str], *,
             prefer: str | None = None) -> ClusterSnapshot:
    """`take_snapshot` with proxies and the mesh in charge filled in by the registered
    adapters (what `meshlab kube snapshot` prints and every Kubernetes run stores)."""
    return take_snapshot(cluster, namespaces, proxies=proxy_facts(),
                         probe=partial(mesh_state, prefer=prefer))
