"""h2c in the cluster, on the API stand-in: the fortio server's Service declares HTTP/2 cleartext
(appProtocol kubernetes.io/h2c) on ports in front of the same HTTP container ports, and an h2c
profile's fortio load speaks `-h2` to them (the captured port, or the direct one in mode none)."""

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
from meshlab.k8s.workload import ServerSpec, server_manifests, server_port
from meshlab.profile import Profile

NS = "bench"


def test_service_declares_h2c_ports_on_the_http_container_ports() -> None:
    deployment, service = server_manifests(ServerSpec(namespace=NS))
    kubernetes_validate.validate(service, "1.31.0", strict=True)
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert by_name["http2"] == {"name": "http2", "port": 8082, "targetPort": 8080,
                                "appProtocol": "kubernetes.io/h2c"}
    assert by_name["http2-direct"]["targetPort"] == by_name["http-direct"]["targetPort"] == 8081
    assert by_name["http2-direct"]["appProtocol"] == "kubernetes.io/h2c"
    # no container port of its own: fortio's HTTP server answers h2c on 8080 and 8081
    container_ports = {p["containerPort"] for c in deployment["spec"]["template"]["spec"][
        "containers"] for p in c["ports"]}
    assert container_ports == {8080, 8079, 8081, 8078}
    # fortio's TCP/UDP echo defaults to 8078, the direct gRPC port: both are switched off
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        assert c["args"][c["args"].index("-tcp-port") + 1] == "disabled"
        assert c["args"][c["args"].index("-udp-port") + 1] == "disabled"
    assert [server_port(m, "h2c") for m in ("both", "server-only", "none", "client-only")] == [
        8082, 8082, 8083, 8083]


@pytest.mark.parametrize(("mode", "port"), [("both", 8082), ("none", 8083)])
def test_h2c_profile_runs_fortio_h2_against_the_h2c_port(api: ApiStandIn, kubeconfig: Path,
                                                         mode: str, port: int) -> None:
    jobs: list[dict[str, Any]] = []
    api.on_job = jobs.append
    env = environment_for(Profile.from_dict({
        "name": "k8s-h2c", "target": "http://meshlab-server.bench.svc.cluster.local:8080/",
        "environment": "kubernetes", "meshes": ["none"], "modes": [mode],
        "request": {"protocol": "h2c"},
        "loads": {"rate_rps": [200], "connections": [4], "duration_s": 2, "warmup_s": 0},
        "topology": {"kubeconfig": str(kubeconfig), "context": "lab", "namespace": NS,
                     "load_parallelism": 2}}))
    assert isinstance(env, KubernetesEnvironment)
    assert env.render_context(protocol="h2c").port == 8082

    (result,) = asyncio.run(run_all(env, env.profile))
    assert result.errors == 0 and result.requests == 400
    assert result.spec["protocol"] == "h2c"
    (job,) = jobs
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "-h2" in args and "-grpc" not in args
    assert args[-1] == f"http://meshlab-server.bench.svc.cluster.local:{port}/echo"
