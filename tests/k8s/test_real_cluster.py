"""The stand-in flows against a real cluster (opt-in): apply/delete, deploy + check + snapshot,
and the whole environment flow with in-cluster fortio; with a mesh installed also injection and
a policy applied during the run. Deselected by default (pyproject addopts); run with
`MESHLAB_TEST_KUBE_CONTEXT=ctx .venv/bin/pytest -m cluster tests/k8s`. Each test works in its
own namespace `meshlab-test-<random>` and deletes it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from _env_flow import run_all

from meshlab.environments.base import environment_for
from meshlab.errors import ClusterError
from meshlab.k8s.cluster import Cluster, list_contexts
from meshlab.k8s.snapshot import diff_snapshots
from meshlab.k8s.workload import DIRECT_PORT, ServerSpec, deploy_server
from meshlab.meshes.check import check_namespace
from meshlab.meshes.detect import detect_installed, kubernetes_mesh
from meshlab.meshes.detect import snapshot as take_snapshot
from meshlab.meshes.kubernetes import MeshTarget, RenderContext
from meshlab.policy import TrafficPolicy
from meshlab.profile import Profile

pytestmark = pytest.mark.cluster

POLICY = {"name": "resilient", "retries": {"attempts": 2, "retry_on": ["5xx"]},
          "timeout": {"request_timeout_s": 5}}


@pytest.fixture()
def namespace(real_cluster: Cluster) -> Iterator[str]:
    ns = f"meshlab-test-{uuid.uuid4().hex[:6]}"
    yield ns
    try:
        real_cluster.delete("v1", "Namespace", ns)
    except ClusterError as exc:
        if exc.reason != "Unreachable":
            raise
        # the test already failed on the unreachable server; a second report would repeat it


def _installed_mesh(cluster: Cluster) -> str:
    installed = detect_installed(cluster)
    return installed[0].mesh if installed else "none"


def test_context_is_listed_and_reachable(real_cluster: Cluster, kube_context: str) -> None:
    assert kube_context in [c.name for c in list_contexts()]
    assert real_cluster.server_version()["gitVersion"].startswith("v")


def test_apply_and_delete(real_cluster: Cluster, namespace: str) -> None:
    real_cluster.ensure_namespace(namespace)
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "cfg", "namespace": namespace}, "data": {"a": "1"}}
    real_cluster.apply(cm)
    assert real_cluster.apply({**cm, "data": {"b": "2"}})["data"] == {"b": "2"}
    assert real_cluster.delete("v1", "ConfigMap", "cfg", namespace=namespace, wait_s=30)
    assert real_cluster.find("v1", "ConfigMap", "cfg", namespace=namespace) is None


def test_deploy_check_and_snapshot(real_cluster: Cluster, namespace: str) -> None:
    spec = ServerSpec(namespace=namespace, name="server")
    deploy_server(real_cluster, spec, timeout_s=300)
    before = take_snapshot(real_cluster, [namespace])
    assert before.nodes and [p.phase for p in before.pods] == ["Running"]
    assert diff_snapshots(before, take_snapshot(real_cluster, [namespace])) == []
    findings = check_namespace(real_cluster, namespace)
    assert all(f.namespace == namespace for f in findings)
    checks = {f.check for f in findings}
    if _installed_mesh(real_cluster) == "none":
        assert checks == set(), findings        # no mesh: nothing to inject, no sidecars
    else:                                       # a mesh, but injection was never enabled here
        assert {"injection_label", "not_meshed"} <= checks, findings


def test_inject_and_policy(real_cluster: Cluster, namespace: str) -> None:
    name = _installed_mesh(real_cluster)
    if name == "none":
        pytest.skip("no mesh installed in this cluster")
    mesh = kubernetes_mesh(name)
    assert mesh is not None
    spec = ServerSpec(namespace=namespace, name="server")
    real_cluster.ensure_namespace(namespace)
    mesh.enable_injection(real_cluster, namespace)
    deploy_server(real_cluster, spec, pod_annotations=mesh.skip_inbound([DIRECT_PORT]),
                  timeout_s=300)
    assert all(p.meshed for p in take_snapshot(real_cluster, [namespace]).pods)
    target = MeshTarget(real_cluster, RenderContext(namespace=namespace, service="server"))
    mesh.apply(target, TrafficPolicy.model_validate(POLICY))
    applied = list(target.applied)
    assert applied and all(real_cluster.find(m["apiVersion"], m["kind"], m["metadata"]["name"],
                                             namespace=namespace) for m in applied)
    mesh.remove(target)
    assert not any(real_cluster.find(m["apiVersion"], m["kind"], m["metadata"]["name"],
                                     namespace=namespace) for m in applied
                   if m["kind"] != "Service")


def test_environment_flow_with_run_load(real_cluster: Cluster, namespace: str,
                                        kube_context: str) -> None:
    mesh = _installed_mesh(real_cluster)
    profile = Profile.from_dict({
        "name": "cluster-test", "target": f"http://meshlab-server.{namespace}:8080/",
        "environment": "kubernetes", "meshes": sorted({"none", mesh}),
        "policies": [POLICY] if mesh != "none" else [],
        "loads": {"rate_rps": [20], "connections": [2], "duration_s": 3, "warmup_s": 1},
        "topology": {"context": kube_context, "namespace": namespace}})
    results = asyncio.run(run_all(
        environment_for(profile), profile,
        lambda spec: replace(spec, policy=None) if spec.mesh == "none" else spec))
    for r in results:
        assert r.requests == sum(p["requests"] for p in r.context["load_pods"]) > 0
        assert r.context["cluster"] and "changes" in r.context
    assert real_cluster.find("v1", "Namespace", namespace) is None or \
        real_cluster.get("v1", "Namespace", namespace)["status"].get("phase") == "Terminating"
