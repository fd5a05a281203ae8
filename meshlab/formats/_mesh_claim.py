"""Whether an imported document's declared mesh could be what its target is behind: a loopback
URL reaches a process on the load generator's machine, never a Kubernetes mesh's workload."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from meshlab.registry import DATA_PLANES

# The label that keeps a declared mesh the target cannot be (`label.declared_mesh=istio`).
DECLARED_MESH_LABEL = "declared_mesh"


def target_could_be_mesh(target: str, mesh: str) -> bool:
    """False when a direct target cannot be behind `mesh`: a loopback address (localhost,
    127.0.0.0/8, ::1) reaches a process on this machine, never a Kubernetes mesh's workload;
    only a playground data plane (envoy, envoy+mtls, nginx, haproxy) can sit there."""
    if mesh.split("+")[0] in DATA_PLANES.names():
        return True
    try:
        host = (urlsplit(target).hostname or "").lower()
    except ValueError:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (ip.is_loopback or ip.is_unspecified)


__all__ = ["DECLARED_MESH_LABEL", "target_could_be_mesh"]
