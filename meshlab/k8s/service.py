"""The user's own Service as the benchmark target: the Deployments behind it, their state as every
run records it (replicas, restarts, images, requests/limits, HPA decisions), and pod-template
label/annotation changes that are put back exactly. Knows no mesh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlab.errors import ClusterError
from meshlab.k8s._api import Manifest
from meshlab.k8s.cluster import Cluster


@dataclass(frozen=True, slots=True)
class TemplateMeta:
    """A Deployment's pod-template labels and annotations."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def of(cls, deployment: Mapping[str, Any]) -> TemplateMeta:
        meta = (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {})
        return cls(dict(meta.get("labels") or {}), dict(meta.get("annotations") or {}))


def find_service(cluster: Cluster, namespace: str, name: str) -> Manifest:
    svc = cluster.find("v1", "Service", name, namespace=namespace)
    if svc is None:
        raise ClusterError(f"Service {namespace}/{name} does not exist; topology.service names "
                           f"an existing Service in topology.namespace", status=404,
                           reason="NotFound", resource=f"Service {namespace}/{name}")
    return svc


def service_port(svc: Mapping[str, Any], port: int | None) -> int:
    """`port` when the Service exposes it, else its first port; ClusterError otherwise."""
    ports = [int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or []]
    ref = f"Service {svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
    if not ports:
        raise ClusterError(f"{ref} exposes no port", reason="Invalid", resource=ref)
    if port is None:
        return ports[0]
    if port not in ports:
        raise ClusterError(f"{ref} has no port {port}; it exposes {', '.join(map(str, ports))}",
                           reason="Invalid", resource=ref)
    return port


def service_url(name: str, namespace: str, port: int, path: str = "/") -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{port}/{path.lstrip('/')}"


def backing_deployments(cluster: Cluster, svc: Mapping[str, Any]) -> list[Manifest]:
    """The Deployments whose pods the Service selects, by name."""
    ns = str(svc["metadata"].get("namespace"))
    ref = f"Service {ns}/{svc['metadata']['name']}"
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        raise ClusterError(f"{ref} has no selector; meshlab needs the workloads behind it",
                           reason="Invalid", resource=ref)
    out = [d for d in cluster.list_objects("apps/v1", "Deployment", namespace=ns)
           if all(TemplateMeta.of(d).labels.get(k) == v for k, v in selector.items())]
    if not out:
        raise ClusterError(f"{ref} selects no Deployment ({selector}); meshlab benchmarks "
                           f"Services backed by Deployments", reason="NoWorkloads",
                           resource=ref)
    return sorted(out, key=lambda d: str(d["metadata"]["name"]))


def pods_of(cluster: Cluster, deployment: Mapping[str, Any]) -> list[Manifest]:
    """The pods of a Deployment (its selector's matchLabels), finished ones left out."""
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = cluster.pods(namespace=deployment["metadata"].get("namespace"), selector=match)
    return [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded",
                                                                            "Failed")]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and str(c.get("status")) == "True"
        for c in st.get("conditions") or [])


def set_template_meta(cluster: Cluster, deployment: Mapping[str, Any], *,
                      labels: Mapping[str, str | None],
                      annotations: Mapping[str, str | None]) -> Manifest:
    """Set (value) or remove (None) pod-template labels/annotations (a rollout follows)."""
    meta: dict[str, Any] = {}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return cluster.patch("apps/v1", "Deployment", str(deployment["metadata"]["name"]),
                         {"spec": {"template": {"metadata": meta}}},
                         namespace=deployment["metadata"].get("namespace"))


def meta_patch(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str | None]:
    """The merge patch that turns `current` into `wanted` (None removes a key)."""
    out: dict[str, str | None] = {k: v for k, v in wanted.items() if current.get(k) != v}
    out.update({k: None for k in current if k not in wanted})
    return out


def _hpa_state(cluster: Cluster, namespace: str, names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for h in cluster.list_objects("autoscaling/v2", "HorizontalPodAutoscaler",
                                  namespace=namespace):
        spec, st = h.get("spec") or {}, h.get("status") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if target not in names:
            continue
        out.append({"name": h["metadata"]["name"], "target": target,
                    "min_replicas": spec.get("minReplicas", 1),
                    "max_replicas": spec.get("maxReplicas"),
                    "current_replicas": st.get("currentReplicas"),
                    "desired_replicas": st.get("desiredReplicas"),
                    "last_scale_time": st.get("lastScaleTime", ""),
                    "conditions": [f"{c.get('type')}={c.get('status')} ({c.get('reason', '')})"
                                   for c in st.get("conditions") or []]})
    return out


def workload_state(cluster: Cluster, namespace: str, names: Sequence[str]) -> dict[str, Any]:
    """Replicas, ready pods, restarts, images and requests/limits of each Deployment, and
    the decisions of the HPAs scaling them ("not visible" without the rights to list them)."""
    deployments: dict[str, Any] = {}
    for name in names:
        d = cluster.get("apps/v1", "Deployment", name, namespace=namespace)
        containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers") or []
        pods = pods_of(cluster, d)
        restarts = sum(int(c.get("restartCount", 0)) for p in pods
                       for c in (p.get("status") or {}).get("containerStatuses") or [])
        deployments[name] = {
            "replicas": int((d.get("spec") or {}).get("replicas", 1)),
            "ready_replicas": int((d.get("status") or {}).get("readyReplicas", 0)),
            "pods": sorted(p["metadata"]["name"] for p in pods), "restarts": restarts,
            "images": {c["name"]: c.get("image", "") for c in containers},
            "resources": {c["name"]: c.get("resources") or {} for c in containers}}
    hpa: list[dict[str, Any]] | str
    try:
        hpa = _hpa_state(cluster, namespace, names)
    except ClusterError as exc:
        if exc.status not in (403, 404):
            raise
        hpa = "not visible with these rights" if exc.status == 403 else "not served"
    return {"deployments": deployments, "hpa": hpa}


def restarts_during(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, int]:
    """Container restarts per Deployment between two `workload_state`s (pods that were
    replaced count from zero)."""
    out = {}
    for name, a in (after.get("deployments") or {}).items():
        b = (before.get("deployments") or {}).get(name) or {}
        same = set(a.get("pods", ())) == set(b.get("pods", ()))
        out[name] = int(a.get("restarts", 0)) - (int(b.get("restarts", 0)) if same else 0)
    return out
