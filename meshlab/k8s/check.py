"""A configuration check per namespace, like Meshery's configuration analyzer: pods without a
sidecar, mTLS not strict, proxies without resource limits, injection label missing, and a
sidecar that starts after the app container.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlab.k8s.cluster import Cluster
from meshlab.k8s.images import control_plane_images
from meshlab.k8s.snapshot import SIDECAR_NAMES, detect_mesh, pod_info, take_snapshot

_INJECTION = {"istio": ("labels", "istio-injection", "enabled"),
              "linkerd": ("annotations", "linkerd.io/inject", "enabled"),
              "consul": ("annotations", "consul.hashicorp.com/connect-inject", "true"),
              "kuma": ("labels", "kuma.io/sidecar-injection", "enabled")}


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
    mesh, _, _ = detect_mesh(control_plane_images(cluster))
    ns = cluster.get("v1", "Namespace", namespace)
    if mesh != "none":
        where, key, value = _INJECTION[mesh]
        if (ns["metadata"].get(where) or {}).get(key) != value and not (
                mesh == "istio" and "istio.io/rev" in (ns["metadata"].get("labels") or {})):
            out.append(Finding(namespace, f"namespace/{namespace}", "injection_label",
                               Severity.WARNING, f"{mesh} injection is not enabled: set "
                               f"{where[:-1]} {key}={value}"))
    for raw in cluster.pods(namespace=namespace):
        p = pod_info(raw)
        if p.phase in ("Succeeded", "Failed"):
            continue
        subject = f"pod/{p.name}"
        if mesh != "none" and not p.meshed:
            out.append(Finding(namespace, subject, "not_meshed", Severity.ERROR,
                               f"no {mesh} sidecar; traffic to and from it bypasses the mesh"))
        for c in p.containers:
            if c.sidecar and not c.limits:
                out.append(Finding(namespace, subject, "proxy_limits", Severity.WARNING,
                                   f"sidecar {c.name} has no resource limits: its CPU use is "
                                   f"unbounded and runs are harder to compare"))
        names = [c["name"] for c in (raw.get("spec") or {}).get("containers") or []]
        native = any(c.get("restartPolicy") == "Always" and c["name"] in SIDECAR_NAMES
                     for c in (raw.get("spec") or {}).get("initContainers") or [])
        side = [i for i, n in enumerate(names) if n in SIDECAR_NAMES]
        if side and not native and side[0] > 0:
            out.append(Finding(namespace, subject, "sidecar_order", Severity.WARNING,
                               f"sidecar {names[side[0]]} starts after {names[0]}; the app can "
                               f"send traffic before its proxy is ready (use native sidecars or "
                               f"hold the app until the proxy starts)"))
    snap = take_snapshot(cluster, [namespace])
    if mesh in ("istio", "kuma") and "STRICT" not in snap.mtls.upper():
        out.append(Finding(namespace, f"namespace/{namespace}", "mtls_not_strict",
                           Severity.WARNING, f"mTLS is {snap.mtls or 'not configured'}; "
                           f"plaintext is still accepted"))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(out, key=lambda f: (order[f.severity], f.subject, f.check))
