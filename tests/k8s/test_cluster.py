"""Cluster access against the API stand-in: contexts, server-side apply semantics, selectors,
conflicts, waits that name the object, rollback, and every failure as one ClusterError."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from meshlab.errors import ClusterError, WaitTimeout
from meshlab.k8s.cluster import Cluster, list_contexts

NS = "bench"


def _cm(name: str, data: dict[str, str], ns: str = NS) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data}


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "lab",
           "clusters": [{"name": "c", "cluster": {"server": server}}],
           "users": [{"name": "u", "user": {"token": "t0ken"}}],
           "contexts": [{"name": "lab", "context": {"cluster": "c", "user": "u",
                                                   "namespace": NS}},
                        {"name": "other", "context": {"cluster": "c", "user": "u"}}]}
    p = tmp_path / "kubeconfig"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_contexts_and_connect_through_kubeconfig(tmp_path: Path, standin) -> None:
    cfg = _kubeconfig(tmp_path, standin[1])
    ctxs = list_contexts(cfg)
    assert [(c.name, c.current, c.namespace) for c in ctxs] == [("lab", True, NS),
                                                                ("other", False, "default")]
    with Cluster.connect(kubeconfig=cfg) as c:
        assert c.context == "lab" and c.namespace == NS
        assert c.server_version()["gitVersion"] == "v1.31.4"


def test_missing_context_and_kubeconfig_are_clear(tmp_path: Path, standin) -> None:
    cfg = _kubeconfig(tmp_path, standin[1])
    with pytest.raises(ClusterError, match=r"'nope' is not in kubeconfig.*available: lab, other"):
        Cluster.connect(kubeconfig=cfg, context="nope")
    with pytest.raises(ClusterError, match="cannot read kubeconfig"):
        list_contexts(tmp_path / "absent")


def test_unreachable_api_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Cluster.from_url(f"http://127.0.0.1:{port}", request_timeout_s=2) as c, \
            pytest.raises(ClusterError) as err:
        c.server_version()
    assert err.value.reason == "Unreachable" and "cannot reach the API server" in str(err.value)


def test_forbidden_namespace_maps_status_reason_and_resource(api, cluster) -> None:
    api.forbidden_namespaces.add("locked")
    with pytest.raises(ClusterError) as err:
        cluster.pods(namespace="locked")
    e = err.value
    assert (e.status, e.reason, e.resource) == (403, "Forbidden", "Pod locked/*")
    assert "cannot list resource" in str(e) and "RBAC" in str(e)


def test_apply_creates_updates_and_prunes_fields(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    first = cluster.apply(_cm("cfg", {"a": "1", "b": "2"}))
    second = cluster.apply(_cm("cfg", {"a": "1"}))        # b no longer applied: removed
    assert second["data"] == {"a": "1"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["managedFields"][0]["manager"] == "meshlab"
    stored = api.objects["v1/configmaps", NS, "cfg"]
    assert len(stored.history) == 2 and stored >= {"data": {"a": "1"}}


def test_apply_conflict_without_force_is_409(cluster) -> None:
    cluster.ensure_namespace(NS)
    cluster.apply(_cm("cfg", {"a": "1"}))
    cluster.patch("v1", "ConfigMap", "cfg", {"data": {"a": "edited"}}, namespace=NS)
    with pytest.raises(ClusterError) as err:
        cluster.apply(_cm("cfg", {"a": "1"}), force=False)
    assert err.value.status == 409 and "conflict with" in str(err.value)
    assert cluster.apply(_cm("cfg", {"a": "1"}))["data"] == {"a": "1"}   # force takes it


def test_stale_resource_version_is_409(cluster) -> None:
    cluster.ensure_namespace(NS)
    cm = cluster.apply(_cm("cfg", {"a": "1"}))
    cluster.patch("v1", "ConfigMap", "cfg", {"data": {"a": "2"}}, namespace=NS)
    stale = {**cm, "data": {"a": "3"}}
    with pytest.raises(ClusterError) as err:
        cluster.api.request("PUT", "/api/v1/namespaces/bench/configmaps/cfg", body=stale,
                            resource="ConfigMap bench/cfg")
    assert err.value.status == 409 and "has been modified" in str(err.value)


def test_missing_namespace_is_404(cluster) -> None:
    with pytest.raises(ClusterError) as err:
        cluster.apply(_cm("cfg", {"a": "1"}, ns="absent"))
    assert err.value.status == 404 and 'namespaces "absent" not found' in str(err.value)


def test_label_selectors(cluster) -> None:
    cluster.ensure_namespace(NS)
    for name, labels in (("a", {"app": "x", "tier": "1"}), ("b", {"app": "y"}), ("c", {})):
        cluster.apply({**_cm(name, {}), "metadata": {"name": name, "namespace": NS,
                                                     "labels": labels}})
    def names(sel):
        return sorted(o["metadata"]["name"]
                      for o in cluster.list_objects("v1", "ConfigMap", namespace=NS,
                                                    selector=sel))
    assert names({"app": "x"}) == ["a"]
    assert names("app in (x,y)") == ["a", "b"]
    assert names("app!=x") == ["b", "c"]
    assert names("!app") == ["c"]
    assert names("app,tier notin (2)") == ["a", "b"]   # notin matches a missing key
    assert names("app,tier") == ["a"]


def test_apply_all_rolls_back_on_failure(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    cluster.apply(_cm("existing", {"v": "old"}))
    bad = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "vs", "namespace": NS}, "spec": {"hosts": ["h"], "bogus": 1}}
    with pytest.raises(ClusterError) as err:
        cluster.apply_all([_cm("new", {"v": "1"}), _cm("existing", {"v": "new"}), bad])
    assert err.value.status == 422 and "bogus" in str(err.value)
    assert cluster.find("v1", "ConfigMap", "new", namespace=NS) is None
    assert cluster.get("v1", "ConfigMap", "existing", namespace=NS)["data"] == {"v": "old"}


def test_kind_not_served_says_install_crds(cluster) -> None:
    with pytest.raises(ClusterError) as err:
        cluster.list_objects("example.com/v1", "Widget", namespace=NS)
    assert err.value.reason == "NotServed" and "install the CRDs" in str(err.value)


def test_wait_timeout_names_object_and_condition(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    api.seed({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "stuck", "namespace": NS, "generation": 2},
              "spec": {"replicas": 2},
              "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 1,
                         "conditions": [{"type": "Progressing", "status": "False",
                                         "reason": "ProgressDeadlineExceeded",
                                         "message": "ReplicaSet has timed out"}]}})
    with pytest.raises(WaitTimeout) as err:
        cluster.wait_rollout("stuck", namespace=NS, timeout_s=0.3, poll_s=0.1)
    msg = str(err.value)
    assert "Deployment bench/stuck not rolled out" in msg
    assert "Progressing=False (ProgressDeadlineExceeded" in msg


def test_deployment_rollout_restart_and_namespace_deletion(api, cluster) -> None:
    cluster.ensure_namespace(NS)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "srv", "namespace": NS},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "srv"}},
                    "template": {"metadata": {"labels": {"app": "srv"}},
                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    cluster.apply(dep)
    cluster.wait_rollout("srv", namespace=NS, timeout_s=5)
    before = {p["metadata"]["name"] for p in cluster.pods(namespace=NS)}
    cluster.restart_rollout("srv", namespace=NS)
    after = {p["metadata"]["name"] for p in cluster.pods(namespace=NS)}
    assert len(after) == 2 and not before & after
    assert cluster.delete("v1", "Namespace", NS, wait_s=5)
    assert cluster.find("apps/v1", "Deployment", "srv", namespace=NS) is None
    assert not cluster.delete("v1", "Namespace", NS)
