"""The user's own Service as the Kubernetes target: `as_is` records the mesh its workloads run
in; `toggle` puts them in each mesh of the matrix in turn (pod-template injection, rollout, every
pod ready and meshed as asked) and puts their pod templates back exactly at the end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshlab.errors import ClusterError, MeshError
from meshlab.k8s._api import Manifest
from meshlab.k8s.cluster import Cluster
from meshlab.k8s.service import (
    TemplateMeta,
    backing_deployments,
    find_service,
    meta_patch,
    pod_ready,
    pods_of,
    restarts_during,
    service_port,
    service_url,
    set_template_meta,
    workload_state,
)
from meshlab.k8s.topology import KubernetesTopology
from meshlab.meshes.detect import detect_installed, kubernetes_mesh, kubernetes_meshes
from meshlab.meshes.kubernetes import KubernetesMesh


def pod_mesh(pod: Manifest, meshes: list[KubernetesMesh]) -> str:
    """The mesh a pod runs in ("none" when none of `meshes` claims it)."""
    return next((m.name for m in meshes if m.pod_meshed(pod)), "none")


def not_as_requested(pods: list[Manifest], mesh: KubernetesMesh | None) -> list[str]:
    """Pods not ready or not in `mesh` (None: in no mesh), as `name (why)`."""
    meshes = kubernetes_meshes()
    want = mesh.name if mesh is not None else "none"
    out = []
    for p in pods:
        if (p.get("metadata") or {}).get("deletionTimestamp") or \
                (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue                               # on its way out, or a finished Job pod
        have = pod_mesh(p, [*([mesh] if mesh else []), *meshes])
        if not pod_ready(p) or have != want:
            out.append(f"{p['metadata']['name']} ({'ready' if pod_ready(p) else 'not ready'}, "
                       f"mesh {have})")
    return out


@dataclass(slots=True)
class ServiceWorkloads:
    """The Service named by `topology.service` and the Deployments behind it."""

    namespace: str
    service: str
    port: int | None
    path: str
    mode: str                                     # "as_is" | "toggle"
    rollout_timeout_s: float = 300.0
    names: list[str] = field(default_factory=list)
    url: str = ""
    originals: dict[str, TemplateMeta] | None = None   # None: nothing changed yet
    current: str | None = None

    @classmethod
    def from_topology(cls, t: KubernetesTopology) -> ServiceWorkloads:
        assert t.service is not None
        return cls(namespace=t.namespace, service=t.service, port=t.service_port,
                   path=t.service_path, mode=t.service_mode)

    def resolve(self, cluster: Cluster) -> list[Manifest]:
        svc = find_service(cluster, self.namespace, self.service)
        self.port = service_port(svc, self.port)
        self.url = service_url(self.service, self.namespace, self.port, self.path)
        deps = backing_deployments(cluster, svc)
        self.names = [str(d["metadata"]["name"]) for d in deps]
        return deps

    def pods(self, cluster: Cluster) -> list[Manifest]:
        return [p for d in self.resolve(cluster) for p in pods_of(cluster, d)]

    def observed_mesh(self, cluster: Cluster) -> str:
        """The mesh every pod of the workloads runs in; "mixed (...)" when they differ."""
        meshes = kubernetes_meshes()
        found = sorted({pod_mesh(p, meshes) for p in self.pods(cluster)})
        return found[0] if len(found) == 1 else f"mixed ({', '.join(found) or 'no pods'})"

    def state(self, cluster: Cluster) -> dict[str, Any]:
        return workload_state(cluster, self.namespace, self.names)

    def context(self, cluster: Cluster) -> dict[str, Any]:
        """What a run records before its load: the target and the workloads' state."""
        return {"load": "in-cluster fortio Job against the user's Service",
                "target_service": {"service": self.service, "port": self.port,
                                   "mode": self.mode, "workloads": self.names, "url": self.url},
                "workload": self.state(cluster)}

    def observe(self, cluster: Cluster,
                before: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The workloads after the run and the container restarts during it (warnings)."""
        after = self.state(cluster)
        restarts = restarts_during(before, after)
        warns = [f"not comparable: {n} had {r} container restart(s) during the run"
                 for n, r in restarts.items() if r > 0]
        return {"workload_after": after, "workload_restarts": restarts}, warns

    def prepare(self, cluster: Cluster, mesh_name: str) -> KubernetesMesh | None:
        """Make the workloads run in `mesh_name` (toggle) or check that they do (as_is)."""
        mesh = kubernetes_mesh(mesh_name)
        deps = self.resolve(cluster)
        if self.mode == "as_is":
            seen = self.observed_mesh(cluster)
            if seen != mesh_name:
                raise MeshError(
                    f"Service {self.namespace}/{self.service}: its workloads run in {seen}, "
                    f"the run asks for {mesh_name}; with topology.service_mode as_is list "
                    f"meshes: [{seen}], or use service_mode toggle")
            return mesh
        if self.current == mesh_name:
            return mesh
        if self.originals is None:
            self.originals = {str(d["metadata"]["name"]): TemplateMeta.of(d) for d in deps}
        installed = {i.mesh for i in detect_installed(cluster)}
        if mesh is not None and mesh.name not in installed:
            raise MeshError(f"{mesh.name} is not installed in context {cluster.context!r}; run "
                            f"`meshlab mesh install {mesh.name}`")
        others = [m for m in kubernetes_meshes() if m.name in installed and m is not mesh
                  and (mesh is None or m.name != mesh.name)]
        self.current = None
        for d in deps:
            orig = self.originals[str(d["metadata"]["name"])]
            labels, ann = dict(orig.labels), dict(orig.annotations)
            for m in others:                          # opt out of every other mesh
                labels.update(m.pod_opt_out.labels)
                ann.update(m.pod_opt_out.annotations)
            if mesh is not None:
                inj = mesh.workload_injection()
                labels.update(inj.labels)
                ann.update(inj.annotations)
            now = TemplateMeta.of(d)
            set_template_meta(cluster, d, labels=meta_patch(now.labels, labels),
                              annotations=meta_patch(now.annotations, ann))
        self._settle(cluster, mesh)
        self.current = mesh_name
        return mesh

    def _settle(self, cluster: Cluster, mesh: KubernetesMesh | None) -> None:
        """Wait for the rollouts, then until every pod is ready and in `mesh`."""
        for n in self.names:
            cluster.wait_rollout(n, namespace=self.namespace, timeout_s=self.rollout_timeout_s)
        deadline = time.monotonic() + self.rollout_timeout_s
        while True:
            deps = self.resolve(cluster)
            bad = [b for d in deps for b in not_as_requested(pods_of(cluster, d), mesh)]
            short = [f"{d['metadata']['name']} has {len(pods_of(cluster, d))} of "
                     f"{int((d.get('spec') or {}).get('replicas', 1))} pods" for d in deps
                     if len(pods_of(cluster, d)) != int((d.get("spec") or {}).get("replicas",
                                                                                  1))]
            if not bad and not short:
                return
            if time.monotonic() >= deadline:
                raise MeshError(
                    f"Service {self.namespace}/{self.service}: after "
                    f"{self.rollout_timeout_s:g} s not every pod is ready in "
                    f"{mesh.name if mesh else 'no mesh'}: {', '.join([*short, *bad])}; check "
                    f"the injection webhook (or ztunnel) and the rollout")
            time.sleep(0.5)

    def teardown(self, cluster: Cluster, *, job_selector: Mapping[str, str]) -> list[str]:
        """Delete meshlab's load Jobs, put the pod templates back; returns what is left."""
        left: list[str] = []
        try:
            for job in cluster.list_objects("batch/v1", "Job", namespace=self.namespace,
                                            selector=job_selector):
                cluster.delete("batch/v1", "Job", job["metadata"]["name"],
                               namespace=self.namespace)
        except ClusterError as exc:
            left.append(f"load Jobs in {self.namespace}: {exc}")
        return left + self.restore(cluster)

    def restore(self, cluster: Cluster) -> list[str]:
        """Put every pod template back as it was; returns what could not be restored."""
        if self.originals is None:
            return []
        left = []
        for name, orig in self.originals.items():
            try:
                d = cluster.get("apps/v1", "Deployment", name, namespace=self.namespace)
                now = TemplateMeta.of(d)
                set_template_meta(cluster, d, labels=meta_patch(now.labels, orig.labels),
                                  annotations=meta_patch(now.annotations, orig.annotations))
                cluster.wait_rollout(name, namespace=self.namespace,
                                     timeout_s=self.rollout_timeout_s)
            except ClusterError as exc:
                left.append(f"Deployment {self.namespace}/{name} pod template: {exc}")
        self.originals = None
        self.current = None
        return left
