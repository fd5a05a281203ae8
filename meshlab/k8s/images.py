"""Container images on a cluster: the version in an image reference, and every workload image
with its namespace (what mesh detection and version recording read)."""

from __future__ import annotations

from meshlab.errors import ClusterError
from meshlab.k8s.cluster import Cluster


def image_version(image: str) -> str:
    """`docker.io/istio/pilot:1.30.3@sha256:..` -> `1.30.3`."""
    ref = image.split("@", 1)[0]
    tail = ref.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else "latest"


def control_plane_images(cluster: Cluster) -> dict[str, str]:
    """`{image: namespace}` of every Deployment, StatefulSet and DaemonSet container."""
    out: dict[str, str] = {}
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        try:
            items = cluster.list_objects("apps/v1", kind, all_namespaces=True)
        except ClusterError as exc:
            if exc.status in (403, 404):
                continue
            raise
        for obj in items:
            spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                if c.get("image"):
                    out.setdefault(str(c["image"]), str(obj["metadata"].get("namespace", "")))
    return out
