"""gRPC in the cluster, on the API stand-in: the fortio server opens its gRPC port, every Service
port declares appProtocol (so a mesh detects gRPC without guessing), a grpc profile's fortio load
targets that port with `-grpc -ping`, and its policy lands on the gRPC route."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from _env_flow import run_all
from standin import ApiStandIn

from meshlab.environments.base import environment_for
from meshlab.environments.kubernetes import KubernetesEnvironment
from meshlab.errors import ProfileError
from meshlab.k8s.workload import ServerSpec, server_manifests
from meshlab.profile import Profile

NS = "bench"


def test_server_opens_grpc_and_declares_app_protocols() -> None:
    deployment, service = server_manifests(ServerSpec(namespace=NS))
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, "1.31.0", strict=True)
    ports = {p["name"]: (p["port"], p["appProtocol"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "http-direct": (8081, "http"),
                     "grpc": (8079, "grpc"), "grpc-direct": (8078, "grpc"),
                     "http2": (8082, "kubernetes.io/h2c"),
                     "http2-direct": (8083, "kubernetes.io/h2c")}
    echo, direct = deployment["spec"]["template"]["spec"]["containers"]
    assert echo["args"][echo["args"].index("-grpc-port") + 1] == "8079"
    assert direct["args"][direct["args"].index("-grpc-port") + 1] == "8078"


def _profile(kubeconfig: Path, protocol: str, policy: dict[str, Any] | None = None) -> Profile:
    scheme = {"h2": "https", "tcp": "tcp"}.get(protocol, "http")
    return Profile.from_dict({
        "name": "k8s-grpc", "target": f"{scheme}://meshlab-server.bench.svc.cluster.local:8080/",
        "environment": "kubernetes", "meshes": ["istio"], "modes": ["both"],
        "policies": [policy] if policy else [],
        "request": {"protocol": protocol},
        "loads": {"rate_rps": [200], "connections": [4], "duration_s": 2, "warmup_s": 0},
        "topology": {"kubeconfig": str(kubeconfig), "context": "lab", "namespace": NS,
                     "load_parallelism": 2}})


def test_grpc_profile_loads_the_grpc_port_through_istio(api: ApiStandIn,
                                                        kubeconfig: Path) -> None:
    api.install_control_plane()
    seen: list[dict[str, Any]] = []

    def on_job(job: dict[str, Any]) -> None:
        deploy = api.get("apps/v1", "deployments", NS, "meshlab-server") or {}
        vs = api.all("networking.istio.io", "v1", "virtualservices", NS)
        seen.append({"args": job["spec"]["template"]["spec"]["containers"][0]["args"],
                     "pod_annotations": deploy["spec"]["template"]["metadata"].get(
                         "annotations", {}),
                     "retry_on": [v["spec"]["http"][0]["retries"]["retryOn"] for v in vs]})
    api.on_job = on_job
    policy = {"name": "grpc-retry", "retries": {"attempts": 2, "retry_on": ["unavailable"]}}
    env = environment_for(_profile(kubeconfig, "grpc", policy))
    assert isinstance(env, KubernetesEnvironment)
    (spec,) = list(env.profile.expand())
    assert spec.protocol == "grpc"

    (result,) = asyncio.run(run_all(env, env.profile))
    assert result.errors == 0 and result.requests == 400
    (job,) = seen
    args = job["args"]
    assert "-grpc" in args and "-ping" in args
    assert args[-1] == "meshlab-server.bench.svc.cluster.local:8079"
    assert job["retry_on"] == ["unavailable"]
    excluded = job["pod_annotations"]["traffic.sidecar.istio.io/excludeInboundPorts"]
    assert excluded.split(",") == ["8081", "8078"]


@pytest.mark.parametrize("protocol", ["h2", "tcp"])
def test_protocols_the_cluster_load_cannot_speak_are_refused(kubeconfig: Path,
                                                             protocol: str) -> None:
    env = environment_for(_profile(kubeconfig, protocol))
    (spec,) = list(env.profile.expand())
    with pytest.raises(ProfileError) as err:
        env.check(spec)
    assert f"request.protocol: {protocol}" in str(err.value)
    assert "speaks http1, h2c, grpc" in str(err.value)
    assert {"h2": "use h2c for HTTP/2", "tcp": "no TCP echo port"}[protocol] in str(err.value)
