"""Istio ambient as a data-plane mode of the Istio adapter: ztunnel detection, namespace label,
pods captured without sidecars, L4 policy on ztunnel, L7 policy only through a waypoint (a
Gateway of class istio-waypoint the Service is bound to), and the error naming both."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from _env_flow import run_all
from standin import ApiStandIn
from test_own_service import _namespace_objects, _profile, _sample_app

from meshlab.environments.base import environment_for
from meshlab.errors import MeshError
from meshlab.k8s.cluster import Cluster
from meshlab.meshes.detect import detect_installed, kubernetes_mesh
from meshlab.meshes.istio import IstioAmbientMesh
from meshlab.meshes.kubernetes import RenderContext
from meshlab.policy import TrafficPolicy

L7 = {"name": "resilient", "mtls": "strict", "retries": {"attempts": 2, "retry_on": ["5xx"]}}


def test_ambient_is_a_data_plane_of_the_istio_adapter() -> None:
    mesh = kubernetes_mesh("istio-ambient")
    assert isinstance(mesh, IstioAmbientMesh) and mesh.data_plane == "ambient"
    assert mesh.injection().labels == {"istio.io/dataplane-mode": "ambient"}
    assert "profile=ambient" in mesh.install_steps()[0].argv
    assert mesh.sidecar_containers == () and mesh.skip_inbound([8081]) == {}


def test_l7_policy_without_waypoint_names_both() -> None:
    mesh = kubernetes_mesh("istio-ambient")
    assert mesh is not None
    l4 = mesh.render(TrafficPolicy.model_validate({"name": "l4", "mtls": "strict"}),
                     RenderContext(namespace="shop", service="echo"))
    assert [m["kind"] for m in l4] == ["PeerAuthentication"]
    with pytest.raises(MeshError, match=r"istio-ambient cannot express policy 'resilient' "
                                        r"without a waypoint: retries need an L7 proxy.*"
                                        r"topology.waypoint"):
        mesh.render(TrafficPolicy.model_validate(L7), RenderContext(namespace="shop"))


def test_ztunnel_detected_and_pods_captured_without_sidecars(api: ApiStandIn,
                                                             cluster: Cluster) -> None:
    _sample_app(api, cluster, ns_labels={"istio.io/dataplane-mode": "ambient"})
    found = {i.mesh: i for i in detect_installed(cluster)}
    assert found["istio-ambient"].version == "1.30.3"
    mesh = kubernetes_mesh("istio-ambient")
    assert mesh is not None and mesh.injection_enabled(cluster.get("v1", "Namespace",
                                                                   "shop")["metadata"])
    pods = cluster.pods(namespace="shop", selector={"app": "echo"})
    assert pods and all(mesh.pod_meshed(p) and len(p["spec"]["containers"]) == 1
                        for p in pods)


def test_l7_policy_through_a_waypoint_applied_and_removed(api: ApiStandIn, cluster: Cluster,
                                                          kubeconfig: Path) -> None:
    _sample_app(api, cluster, ns_labels={})
    before = _namespace_objects(cluster)
    seen: list[dict[str, object]] = []

    def on_job(job: dict) -> None:
        svc = api.get("v1", "services", "shop", "echo") or {}
        gws = api.all("gateway.networking.k8s.io", "v1", "gateways", "shop")
        seen.append({"use_waypoint": svc["metadata"].get("labels", {}).get(
            "istio.io/use-waypoint"), "gateways": [(g["metadata"]["name"],
                                                    g["spec"]["gatewayClassName"])
                                                   for g in gws]})
    api.on_job = on_job
    profile = _profile(kubeconfig, ["istio-ambient"], service_mode="toggle",
                       waypoint="echo-waypoint")
    policy = TrafficPolicy.model_validate(L7)
    asyncio.run(run_all(environment_for(profile), profile,
                        lambda spec: replace(spec, policy=policy)))
    assert seen and all(s == {"use_waypoint": "echo-waypoint",
                              "gateways": [("echo-waypoint", "istio-waypoint")]} for s in seen)
    assert not api.all("gateway.networking.k8s.io", "v1", "gateways", "shop")
    assert _namespace_objects(cluster) == before
