"""What a real API server refuses and meshlab must cope with: updates of custom resources need
the current resourceVersion, a rollback that cannot restore names what it left, nodes hidden by
RBAC, foreground deletes without a garbage collector, CEL rules of the real CRDs, and the
real-cluster fixtures failing once when the server is unreachable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from standin_rules import Deny

from meshlab.errors import ClusterError, MeshError
from meshlab.k8s.snapshot import NODES_HIDDEN
from meshlab.meshes.detect import kubernetes_mesh
from meshlab.meshes.detect import snapshot as take_snapshot
from meshlab.meshes.kubernetes import RenderContext
from meshlab.policy import TrafficPolicy

NS = "bench"
ROOT = Path(__file__).resolve().parents[2]


def _vs(name: str, timeout: str) -> dict:
    host = f"svc.{NS}.svc.cluster.local"
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"hosts": [host], "http": [{"timeout": timeout,
                                                "route": [{"destination": {"host": host}}]}]}}


def test_put_of_a_custom_resource_without_resource_version_is_422(cluster) -> None:
    cluster.ensure_namespace(NS)
    vs = cluster.apply(_vs("vs", "2s"))
    body = {**vs, "metadata": {k: v for k, v in vs["metadata"].items()
                               if k != "resourceVersion"}}
    with pytest.raises(ClusterError) as err:
        cluster.api.request("PUT", f"/apis/networking.istio.io/v1/namespaces/{NS}/"
                            "virtualservices/vs", body=body, resource="VirtualService bench/vs")
    assert err.value.status == 422 and "resourceVersion" in str(err.value)


def test_undo_restores_a_custom_resource_that_existed_before(cluster) -> None:
    """`replace()` PUTs with the resourceVersion it reads just before (old code sent none)."""
    cluster.ensure_namespace(NS)
    cluster.apply(_vs("vs", "2s"), field_manager="someone-else")
    bad = {**_vs("broken", "2s"), "spec": {"hosts": ["h"], "bogus": 1}}
    with pytest.raises(ClusterError) as err:
        cluster.apply_all([_vs("vs", "7s"), bad])
    assert err.value.status == 422 and err.value.not_restored == ()
    restored = cluster.get("networking.istio.io/v1", "VirtualService", "vs", namespace=NS)
    assert restored["spec"]["http"][0]["timeout"] == "2s"


def test_a_restore_that_fails_is_named_not_called_rolled_back(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    cluster.apply({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                   "metadata": {"name": "meshlab-strict", "namespace": NS},
                   "spec": {"mtls": {"mode": "PERMISSIVE"}}}, field_manager="someone-else")
    api.fail_kinds["VirtualService"] = 500       # the policy's second object fails ...
    api.deny.append(Deny("update", "peerauthentications"))   # ... and its first cannot go back
    mesh = kubernetes_mesh("istio")
    assert mesh is not None
    policy = TrafficPolicy.model_validate({"name": "strict", "mtls": "strict",
                                           "timeout": {"request_timeout_s": 2}})
    with pytest.raises(MeshError) as err:
        mesh.apply_policy(cluster, policy, RenderContext(namespace=NS, service="svc"))
    msg = str(err.value)
    assert "failed and was rolled back" not in msg
    assert f"NOT rolled back: PeerAuthentication {NS}/meshlab-strict" in msg


def test_nodes_hidden_by_rbac_degrade_to_a_note(api, cluster) -> None:
    api.install_control_plane()
    cluster.ensure_namespace(NS)
    assert take_snapshot(cluster, [NS]).nodes        # visible: recorded
    api.deny.append(Deny("list", "nodes"))
    snap = take_snapshot(cluster, [NS])
    assert snap.nodes == () and snap.mesh == "istio"
    assert snap.notes and snap.notes[0].startswith(NODES_HIDDEN)
    assert NODES_HIDDEN in " ".join(snap.to_dict()["notes"])


def test_deletes_finish_on_a_server_without_garbage_collector(api, cluster) -> None:
    api.garbage_collector = False
    cluster.ensure_namespace(NS)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "namespace": NS}, "data": {}})
    assert cluster.delete("v1", "ConfigMap", "cfg", namespace=NS, wait_s=2)
    assert cluster.find("v1", "ConfigMap", "cfg", namespace=NS) is None


def test_the_standin_keeps_a_foreground_delete_without_garbage_collector(api, cluster) -> None:
    api.garbage_collector = False
    cluster.ensure_namespace(NS)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "namespace": NS}, "data": {}})
    cluster.delete("v1", "ConfigMap", "cfg", namespace=NS, propagation="Foreground")
    kept = cluster.get("v1", "ConfigMap", "cfg", namespace=NS)
    assert kept["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert kept["metadata"]["deletionTimestamp"]


def test_rbac_refusal_per_verb_and_resource(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    api.deny.append(Deny("create", "configmaps", NS))
    cluster.pods(namespace=NS)                     # other verbs and resources still work
    with pytest.raises(ClusterError) as err:
        cluster.api.request("POST", f"/api/v1/namespaces/{NS}/configmaps",
                            body={"metadata": {"name": "x"}}, resource="ConfigMap bench/x")
    assert err.value.status == 403 and 'cannot create resource "configmaps"' in str(err.value)


@pytest.mark.parametrize(("obj", "message"), [
    (_vs("short", "500us"), "must be a valid duration greater than 1ms"),
    ({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
      "metadata": {"name": "pa", "namespace": NS},
      "spec": {"selector": {"matchLabels": {"app": "a"}},
               "portLevelMtls": {"70000": {"mode": "STRICT"}}}},
     "port must be between 1-65535"),
])
def test_cel_rules_of_the_real_crds_refuse_with_422(cluster, obj: dict, message: str) -> None:
    cluster.ensure_namespace(NS)
    with pytest.raises(ClusterError) as err:
        cluster.apply(obj)
    assert err.value.status == 422 and message in str(err.value)


def test_real_cluster_tests_fail_once_when_the_server_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}]}))
    env = {**os.environ, "KUBECONFIG": str(cfg), "MESHLAB_TEST_KUBE_CONTEXT": "gone",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "cluster",
         "tests/k8s/test_real_cluster.py::test_apply_and_delete"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    tail = proc.stdout.strip().splitlines()[-1]
    assert "1 failed" in tail and "error" not in tail, proc.stdout[-2000:]
