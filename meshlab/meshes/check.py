"""A configuration check per namespace, like Meshery's configuration analyzer: pods without a
sidecar, mTLS not strict, proxies without resource limits, injection label missing, and a
sidecar that starts after the app container; the mesh facts come from the registered adapters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlab.k8s.cluster import Cluster
from meshlab.k8s.snapshot import pod_info
from meshlab.meshes.detect import detect_installed, kubernetes_mesh, proxy_facts


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    namespace: str
    subject: str
    check: str
    severity: Severity
    message: str


def check_namespace(cluster: Cluster, namespace: str) -> list[Finding]:
    """Findings for one namespace, most severe first."""
    out: list[Finding] = []
    installed = detect_installed(cluster)
    mesh = kubernetes_mesh(installed[0].mesh) if installed else None
    proxies = proxy_facts()
    ns = cluster.get("v1", "Namespace", namespace)
    if mesh is not None and not mesh.injection_enabled(ns["metadata"]):
        out.append(Finding(namespace, f"namespace/{namespace}", "injection_label",
                           Severity.WARNING, f"{mesh.name} injection is not enabled: set "
                           f"{mesh.injection_hint()}"))
    for raw in cluster.pods(namespace=namespace):
        p = pod_info(raw, proxies)
        if p.phase in ("Succeeded", "Failed"):
            continue
        subject = f"pod/{p.name}"
        if mesh is not None and not p.meshed:
            out.append(Finding(namespace, subject, "not_meshed", Severity.ERROR,
                               f"no {mesh.name} sidecar; traffic to and from it bypasses the "
                               f"mesh"))
        for c in p.containers:
            if c.sidecar and not c.limits:
                out.append(Finding(namespace, subject, "proxy_limits", Severity.WARNING,
                                   f"sidecar {c.name} has no resource limits: its CPU use is "
                                   f"unbounded and runs are harder to compare"))
        names = [c["name"] for c in (raw.get("spec") or {}).get("containers") or []]
        native = any(c.get("restartPolicy") == "Always" and c["name"] in proxies.sidecars
                     for c in (raw.get("spec") or {}).get("initContainers") or [])
        side = [i for i, n in enumerate(names) if n in proxies.sidecars]
        if side and not native and side[0] > 0:
            out.append(Finding(namespace, subject, "sidecar_order", Severity.WARNING,
                               f"sidecar {names[side[0]]} starts after {names[0]}; the app can "
                               f"send traffic before its proxy is ready (use native sidecars or "
                               f"hold the app until the proxy starts)"))
    # only meshes whose mode is declared in a resource can be left permissive
    if mesh is not None and mesh.mtls_resource is not None:
        mtls = mesh.observed_mtls(cluster, [namespace])
        if "STRICT" not in mtls.upper():
            out.append(Finding(namespace, f"namespace/{namespace}", "mtls_not_strict",
                               Severity.WARNING, f"mTLS is {mtls or 'not configured'}; "
                               f"plaintext is still accepted"))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(out, key=lambda f: (order[f.severity], f.subject, f.check))
