"""The stand-in's toy controllers (mixed into `ApiStandIn`): Deployments and Jobs get pods, a
mesh's injector adds its sidecar, and `install_control_plane` seeds what meshlab detects.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

SIDECARS = {
    "istio": ("istio-proxy", "docker.io/istio/proxyv2:1.30.3"),
    "linkerd": ("linkerd-proxy", "cr.l5d.io/linkerd/proxy:edge-26.8.3"),
    "consul": ("consul-dataplane", "hashicorp/consul-dataplane:1.9.3"),
    "kuma": ("kuma-sidecar", "docker.io/kumahq/kuma-dp:2.14.3"),
}


def now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




class ToyControllers:
    """What a kube-controller-manager and the mesh injectors would do, just enough for meshlab:
    uses the host's `get`, `all`, `put`, `remove`, `seed` and its test switches."""

    installed_meshes: set[str]
    on_job: Callable[[Obj], None] | None
    job_hangs: bool
    job_fails: bool
    git_version: str

    # toy controllers -------------------------------------------------------------------
    def _reconcile(self, kind: str, obj: Obj) -> None:
        if kind == "Deployment":
            self._deployment(obj)
        elif kind == "Job":
            self._job(obj)

    def _sidecar_for(self, ns: str, template: Mapping[str, Any]) -> str | None:
        nsobj = self.get("v1", "namespaces", None, ns) or {}
        nl = nsobj.get("metadata", {}).get("labels") or {}
        na = nsobj.get("metadata", {}).get("annotations") or {}
        tl = template.get("metadata", {}).get("labels") or {}
        ta = template.get("metadata", {}).get("annotations") or {}
        rules = {
            "istio": (nl.get("istio-injection") == "enabled" or tl.get("sidecar.istio.io/inject")
                      == "true") and tl.get("sidecar.istio.io/inject") != "false",
            "linkerd": (ta.get("linkerd.io/inject") or na.get("linkerd.io/inject")) == "enabled",
            "consul": (ta.get("consul.hashicorp.com/connect-inject") or
                       na.get("consul.hashicorp.com/connect-inject")) == "true",
            "kuma": (tl.get("kuma.io/sidecar-injection") or
                     nl.get("kuma.io/sidecar-injection")) == "enabled",
        }
        return next((m for m, on in rules.items() if on and m in self.installed_meshes), None)

    def _ambient(self, ns: str, template: Mapping[str, Any]) -> bool:
        """Istio ambient: ztunnel captures pods labelled (or in a namespace labelled)
        istio.io/dataplane-mode=ambient, unless the pod says `none`."""
        if "istio-ambient" not in self.installed_meshes:
            return False
        nsobj = self.get("v1", "namespaces", None, ns) or {}
        nl = nsobj.get("metadata", {}).get("labels") or {}
        tl = template.get("metadata", {}).get("labels") or {}
        mode = tl.get("istio.io/dataplane-mode") or nl.get("istio.io/dataplane-mode")
        return mode == "ambient"

    def _pod(self, owner: Obj, template: Mapping[str, Any], name: str, *, phase: str,
             extra_labels: Mapping[str, str], node: str) -> Obj:
        ns = owner["metadata"]["namespace"]
        spec = copy.deepcopy(template.get("spec") or {})
        mesh = self._sidecar_for(ns, template)
        annotations = dict(template.get("metadata", {}).get("annotations") or {})
        if not mesh and self._ambient(ns, template):
            annotations["ambient.istio.io/redirection"] = "enabled"
        if mesh:
            cname, image = SIDECARS[mesh]
            proxy = {"name": cname, "image": image,
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                   "limits": {"cpu": "2", "memory": "1Gi"}}}
            spec["containers"] = [proxy, *spec.get("containers", [])]
        spec["nodeName"] = node
        statuses = [{"name": c["name"], "image": c.get("image", ""), "ready": phase == "Running",
                     "restartCount": 0, "started": True,
                     "state": {"running": {"startedAt": now()}} if phase == "Running" else
                     {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                    for c in spec.get("containers", [])]
        meta = {"name": name, "namespace": ns,
                "labels": {**(template.get("metadata", {}).get("labels") or {}), **extra_labels},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                     "name": owner["metadata"]["name"],
                                     "uid": owner["metadata"]["uid"], "controller": True}]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": {"phase": phase, "podIP": "10.0.0.1", "hostIP": "192.168.0.10",
                           "conditions": [{"type": "Ready", "status": str(phase == "Running")}],
                           "containerStatuses": statuses}}

    def _nodes(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.all("", "v1", "nodes")) or ["node-a"]

    def _deployment(self, dep: Obj) -> None:
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        template = dep["spec"].get("template") or {}
        h = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        want = int(dep["spec"].get("replicas", 1))
        pods = [p for p in self.all("", "v1", "pods", ns)
                if any(r.get("uid") == dep["metadata"]["uid"]
                       for r in p["metadata"].get("ownerReferences", []))]
        keep = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == h][:want]
        for p in pods:
            if p not in keep:
                self.remove("", "v1", "pods", ns, p["metadata"]["name"])
        nodes = self._nodes()
        for i in range(len(keep), want):
            suffix = uuid.uuid4().hex[:5]
            pod = self._pod(dep, template, f"{name}-{h}-{suffix}", phase="Running",
                            extra_labels={"pod-template-hash": h}, node=nodes[i % len(nodes)])
            self.put("", "v1", "pods", pod)
        dep = self.get("apps/v1", "deployments", ns, name) or dep
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": want,
                         "updatedReplicas": want, "readyReplicas": want,
                         "availableReplicas": want,
                         "conditions": [{"type": "Available", "status": "True",
                                         "lastTransitionTime": now()}]}
        self.put("apps", "v1", "deployments", dep)

    def _job(self, job: Obj) -> None:
        name = job["metadata"]["name"]
        if job.get("status", {}).get("conditions"):
            return
        if self.on_job is not None:
            self.on_job(copy.deepcopy(job))
        if self.job_hangs:
            return
        spec = job["spec"]
        n = int(spec.get("parallelism", 1))
        template = spec.get("template") or {}
        nodes = self._nodes()
        for i in range(n):
            labels = {"job-name": name, "batch.kubernetes.io/job-name": name,
                      "batch.kubernetes.io/job-completion-index": str(i)}
            pod = self._pod(job, template, f"{name}-{i}-{uuid.uuid4().hex[:5]}",
                            phase="Failed" if self.job_fails else "Succeeded",
                            extra_labels=labels, node=nodes[i % len(nodes)])
            pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] = str(i)
            self.put("", "v1", "pods", pod)
        cond = ({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"} if self.job_fails else
                {"type": "Complete", "status": "True"})
        job["status"] = {"startTime": now(), "completionTime": now(),
                         "succeeded": 0 if self.job_fails else n,
                         "failed": n if self.job_fails else 0,
                         "conditions": [{**cond, "lastTransitionTime": now()}]}
        self.put("batch", "v1", "jobs", job)

    def install_control_plane(self, mesh: str = "istio", image: str =
                              "docker.io/istio/pilot:1.30.3", namespace: str = "istio-system",
                              nodes: int = 2, kind: str = "Deployment") -> None:
        """A mesh's control plane as meshlab detects it (its image), injection on, nodes."""
        self.installed_meshes.add(mesh)
        for i in range(nodes):
            self.seed({"apiVersion": "v1", "kind": "Node",
                       "metadata": {"name": f"node-{'abcdef'[i]}",
                                    "labels": {"kubernetes.io/hostname": f"node-{'abcdef'[i]}"}},
                       "status": {"nodeInfo": {"kubeletVersion": self.git_version,
                                               "kernelVersion": "6.1.0", "osImage": "Debian",
                                               "architecture": "amd64",
                                               "containerRuntimeVersion": "containerd://1.7"},
                                  "allocatable": {"cpu": "2", "memory": "8Gi"},
                                  "capacity": {"cpu": "2", "memory": "8Gi"}}})
        self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        self.seed({"apiVersion": "apps/v1", "kind": kind,
                   "metadata": {"name": f"{mesh}-control-plane", "namespace": namespace},
                   "spec": {"template": {"spec": {"containers": [
                       {"name": "discovery", "image": image}]}}}})
