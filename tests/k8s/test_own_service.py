"""The user's own Service as the target, end to end on the API stand-in: a sample app of two
Deployments behind one Service, toggled none -> istio (sidecar) -> istio (ambient) -> linkerd,
measured by in-cluster fortio Jobs, and its namespace restored exactly at close (also after a
failed run); `as_is` records the mesh that is there and refuses another one."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _env_flow import run_all
from standin import ApiStandIn

from meshlab.environments._service import pod_mesh
from meshlab.environments.base import environment_for
from meshlab.errors import ClusterError, MeshError
from meshlab.k8s.cluster import Cluster
from meshlab.meshes.detect import kubernetes_meshes
from meshlab.profile import Profile

NS = "shop"
KINDS = [("v1", "Namespace"), ("v1", "Service"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
         ("autoscaling/v2", "HorizontalPodAutoscaler")]
SERVER_MANAGED = ("resourceVersion", "managedFields", "generation")


def _deployment(name: str, version: str, replicas: int, annotations: dict[str, str]) -> dict:
    labels = {"app": "echo", "version": version}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": {"team": "shop"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels, "annotations": annotations},
                                  "spec": {"containers": [{
                                      "name": "echo", "image": f"example/echo:{version}",
                                      "ports": [{"containerPort": 8080}],
                                      "resources": {"requests": {"cpu": "50m"},
                                                    "limits": {"memory": "64Mi"}}}]}}}}


def _sample_app(api: ApiStandIn, cluster: Cluster, *, ns_labels: dict[str, str]) -> None:
    """Istio (sidecar and ambient) and Linkerd installed; the user's app in its namespace."""
    api.install_control_plane()
    api.install_control_plane("istio-ambient", image="docker.io/istio/ztunnel:1.30.3",
                              kind="DaemonSet")
    api.install_control_plane("linkerd", image="cr.l5d.io/linkerd/destination:edge-26.8.3",
                              namespace="linkerd")
    user = "kubectl"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": NS, "labels": ns_labels}}, field_manager=user)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "echo-config", "namespace": NS}, "data": {"a": "1"}},
                  field_manager=user)
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "echo", "namespace": NS},
                   "spec": {"selector": {"app": "echo"},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
                  field_manager=user)
    cluster.apply(_deployment("echo-v1", "v1", 2, {"prometheus.io/scrape": "true"}),
                  field_manager=user)
    cluster.apply(_deployment("echo-v2", "v2", 1, {}), field_manager=user)
    api.seed({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
              "metadata": {"name": "echo-v1", "namespace": NS},
              "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "echo-v1"}, "minReplicas": 2,
                       "maxReplicas": 5},
              "status": {"currentReplicas": 2, "desiredReplicas": 2,
                         "conditions": [{"type": "ScalingActive", "status": "True",
                                         "reason": "ValidMetricFound"}]}})


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    o = copy.deepcopy(obj)
    o.pop("status", None)
    for k in SERVER_MANAGED:
        o["metadata"].pop(k, None)
    (o["metadata"].get("annotations") or {}).pop("deployment.kubernetes.io/revision", None)
    return o


def _namespace_objects(cluster: Cluster) -> dict[str, Any]:
    """Every object of the namespace meshlab could have touched, server fields left out, and
    its pods as (owner, template hash, containers, annotations)."""
    out: dict[str, Any] = {}
    for api_version, kind in KINDS:
        objs = ([cluster.get("v1", "Namespace", NS)] if kind == "Namespace" else
                cluster.list_objects(api_version, kind, namespace=NS))
        for o in objs:
            out[f"{kind}/{o['metadata']['name']}"] = _comparable(o)
    out["pods"] = sorted(
        (p["metadata"]["ownerReferences"][0]["name"],
         p["metadata"]["labels"].get("pod-template-hash"),
         tuple(c["name"] for c in p["spec"]["containers"]),
         tuple(sorted((p["metadata"].get("annotations") or {}).items())))
        for p in cluster.pods(namespace=NS) if "job-name" not in p["metadata"]["labels"])
    return out


def _profile(kubeconfig: Path, meshes: list[str], **topology: Any) -> Profile:
    return Profile.from_dict({
        "name": "own-service", "target": f"http://echo.{NS}.svc.cluster.local/",
        "environment": "kubernetes", "meshes": meshes, "modes": ["both"],
        "loads": {"rate_rps": [50], "connections": [2], "duration_s": 1},
        "topology": {"kubeconfig": str(kubeconfig), "context": "lab", "namespace": NS,
                     "service": "echo", **topology}})


def _app_meshes(api: ApiStandIn) -> list[str]:
    """The mesh each pod of the user's app runs in, as the stand-in holds them now."""
    meshes = kubernetes_meshes()
    return sorted({pod_mesh(p, meshes) for p in api.all("", "v1", "pods", NS)
                   if p["metadata"]["labels"].get("app") == "echo"})


def test_toggle_none_istio_ambient_linkerd_and_restore_exactly(
        api: ApiStandIn, cluster: Cluster, kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={"team": "shop"})
    before = _namespace_objects(cluster)
    seen: list[list[str]] = []
    api.on_job = lambda job: (None if job["metadata"]["labels"]["meshlab.io/phase"] == "warmup"
                              else seen.append(_app_meshes(api)))
    profile = _profile(kubeconfig, ["none", "istio", "istio-ambient", "linkerd"],
                       service_mode="toggle")
    results = asyncio.run(run_all(environment_for(profile), profile))

    order = [r.context["mesh"] for r in results]
    assert sorted(order) == ["istio", "istio-ambient", "linkerd", "none"]
    assert seen == [[m] for m in order]          # every pod in the mesh asked for
    for r in results:
        assert r.requests > 0
        assert r.context["target_service"]["url"] == f"http://echo.{NS}.svc.cluster.local:80/"
        assert r.context["target_service"]["workloads"] == ["echo-v1", "echo-v2"]
        w = r.context["workload"]["deployments"]
        assert w["echo-v1"]["replicas"] == 2 and w["echo-v2"]["replicas"] == 1
        assert w["echo-v1"]["images"] == {"echo": "example/echo:v1"}
        assert w["echo-v1"]["resources"]["echo"] == {"requests": {"cpu": "50m"},
                                                     "limits": {"memory": "64Mi"}}
        hpa = r.context["workload"]["hpa"]
        assert hpa[0]["target"] == "echo-v1" and hpa[0]["desired_replicas"] == 2
        assert r.context["workload_restarts"] == {"echo-v1": 0, "echo-v2": 0}
    by_mesh = {r.context["mesh"]: r for r in results}
    assert by_mesh["istio-ambient"].context["data_plane_mode"] == "ambient"
    assert by_mesh["istio"].context["data_plane_mode"] == "sidecar"
    assert by_mesh["istio"].context["cluster"]["mesh_version"] == "1.30.3"

    after = _namespace_objects(cluster)
    assert after == before
    assert _app_meshes(api) == ["none"]


def test_a_failed_run_still_restores_the_workloads(api: ApiStandIn, cluster: Cluster,
                                                   kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={})
    before = _namespace_objects(cluster)
    api.job_fails = True
    profile = _profile(kubeconfig, ["istio"], service_mode="toggle")
    with pytest.raises(ClusterError, match="BackoffLimitExceeded"):
        asyncio.run(run_all(environment_for(profile), profile))
    assert _namespace_objects(cluster) == before


def test_as_is_records_the_mesh_there_and_refuses_another(api: ApiStandIn, cluster: Cluster,
                                                          kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={"istio-injection": "enabled"})
    before = _namespace_objects(cluster)
    profile = _profile(kubeconfig, ["istio"])
    (result,) = asyncio.run(run_all(environment_for(profile), profile))
    assert result.context["mesh"] == "istio"
    assert result.context["target_service"]["mode"] == "as_is"
    assert _namespace_objects(cluster) == before
    wrong = _profile(kubeconfig, ["none"])
    with pytest.raises(MeshError, match=r"workloads run in istio, the run asks for none"):
        asyncio.run(run_all(environment_for(wrong), wrong))


def test_modes_that_need_a_bypass_port_are_refused_for_a_service(kubeconfig: Path) -> None:
    profile = _profile(kubeconfig, ["none"])
    env = environment_for(profile)
    spec = replace(next(iter(profile.expand())), dims={"mode": "none"})
    with pytest.raises(Exception, match="needs a server port kept out of the data plane"):
        env.check(spec)


def test_an_interrupted_run_still_restores_the_workloads(api: ApiStandIn, cluster: Cluster,
                                                         kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={})
    before = _namespace_objects(cluster)
    api.job_hangs = True
    started: list[str] = []
    api.on_job = lambda job: started.append(job["metadata"]["name"])
    profile = _profile(kubeconfig, ["linkerd"], service_mode="toggle")

    async def interrupt() -> None:
        task = asyncio.ensure_future(run_all(environment_for(profile), profile))
        while not started:                      # the workloads are in linkerd, load running
            await asyncio.sleep(0.05)
        assert _app_meshes(api) == ["linkerd"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(asyncio.wait_for(interrupt(), 60))
    assert _namespace_objects(cluster) == before


def test_in_cluster_fortio_refuses_shapes_it_cannot_run(kubeconfig: Path) -> None:
    profile = Profile.from_dict({**_profile(kubeconfig, ["none"]).to_dict(redact=False),
                                 "loads": {"rate_rps": [50], "connections": [2],
                                           "duration_s": 1, "shape": {"kind": "poisson"}}})
    (spec,) = profile.expand()
    with pytest.raises(Exception, match="fortio load cannot send it"):
        environment_for(profile).check(spec)
