"""What the Kubernetes adapters know about a cluster (control-plane images, sidecars, injection,
mTLS, Prometheus series), asked through the mesh registry; k8s/ takes it as parameters."""

from __future__ import annotations

import pytest

from meshlab.errors import ProfileError
from meshlab.k8s.load import LoadPlan, job_manifest
from meshlab.k8s.prometheus import mesh_queries
from meshlab.k8s.snapshot import pod_info
from meshlab.meshes import get_mesh, mesh_names
from meshlab.meshes.detect import (
    kubernetes_mesh,
    kubernetes_mesh_names,
    kubernetes_meshes,
    proxy_facts,
)
from meshlab.meshes.kubernetes import KubernetesMesh

CONTROL_PLANES = {"docker.io/istio/pilot:1.30.3": "istio",
                  "cr.l5d.io/linkerd/controller:edge-26.8.3": "linkerd",
                  "hashicorp/consul-k8s-control-plane:1.5.0": "consul",
                  "docker.io/kumahq/kuma-cp:2.14.3": "kuma"}


def test_kubernetes_meshes_are_the_registrys_kubernetes_adapters() -> None:
    names = kubernetes_mesh_names()
    assert names[0] == "none" and set(names) <= {"none", *mesh_names()}
    assert set(names[1:]) == {"consul", "istio", "istio-ambient", "kuma", "linkerd"}
    assert all(isinstance(get_mesh(n), KubernetesMesh) for n in names[1:])
    assert kubernetes_mesh("none") is None
    for wrong in ("envoy", "cilium"):
        with pytest.raises(ProfileError, match=f"'{wrong}' is not a Kubernetes mesh; choose "
                                               f"one of none, consul, istio, istio-ambient, kuma, linkerd"):
            kubernetes_mesh(wrong)


@pytest.mark.parametrize("image", sorted(CONTROL_PLANES))
def test_each_adapter_knows_only_its_own_control_plane(image: str) -> None:
    found = [i for i in (m.detect_images({image: "cp"}) for m in kubernetes_meshes()) if i]
    assert [(i.mesh, i.namespace) for i in found] == [(CONTROL_PLANES[image], "cp")]
    assert found[0].version == image.rsplit(":", 1)[1]


def test_proxy_facts_cover_every_sidecar_and_concurrency_annotation() -> None:
    facts = proxy_facts()
    assert facts.sidecars == {"istio-proxy", "linkerd-proxy", "consul-dataplane",
                              "envoy-sidecar", "kuma-sidecar"}
    assert facts.concurrency_annotations == ("proxy.istio.io/config",
                                             "config.linkerd.io/proxy-cpu-limit")
    pod = {"metadata": {"name": "p", "namespace": "bench",
                        "annotations": {"config.linkerd.io/proxy-cpu-limit": "2"}},
           "spec": {"containers": [{"name": "app"}, {"name": "linkerd-proxy"}]}}
    assert pod_info(pod, facts).meshed and pod_info(pod, facts).proxy_concurrency == "2"
    bare = pod_info(pod)                     # the cluster layer alone knows no proxy
    assert not bare.meshed and bare.proxy_concurrency == ""


def test_injection_and_its_hint() -> None:
    istio, linkerd = kubernetes_mesh("istio"), kubernetes_mesh("linkerd")
    assert istio is not None and linkerd is not None
    assert istio.injection_enabled({"labels": {"istio-injection": "enabled"}})
    assert istio.injection_enabled({"labels": {"istio.io/rev": "canary"}})
    assert not istio.injection_enabled({"annotations": {"istio-injection": "enabled"}})
    assert istio.injection_hint() == "label istio-injection=enabled"
    assert linkerd.injection_hint() == "annotation linkerd.io/inject=enabled"
    assert not linkerd.injection_enabled({"labels": {"istio-injection": "enabled"}})


def test_load_pod_takes_the_mesh_opt_out_as_given() -> None:
    kuma = kubernetes_mesh("kuma")
    assert kuma is not None
    plan = LoadPlan(run_id="r", namespace="bench", url="http://s:8081/", rate_rps=10,
                    connections=1, duration_s=1, pod_labels=dict(kuma.pod_opt_out.labels),
                    pod_annotations=dict(kuma.pod_opt_out.annotations))
    meta = job_manifest(plan)["spec"]["template"]["metadata"]
    assert meta["labels"]["kuma.io/sidecar-injection"] == "disabled"
    assert "annotations" not in meta
    assert kuma.skip_inbound([8081]) == {"traffic.kuma.io/exclude-inbound-ports": "8081"}


def test_prometheus_queries_from_the_adapter() -> None:
    istio = kubernetes_mesh("istio")
    assert istio is not None
    q = mesh_queries("bench", "istio-system", "30s", sidecars=istio.sidecar_containers,
                     request_metrics=istio.request_metrics)
    assert q["mesh_request_rate_rps"] == (
        'sum(rate(istio_requests_total{reporter="destination",'
        'destination_workload_namespace="bench"}[30s]))')
    assert 'container=~"istio-proxy"' in q["proxy_cpu_cores"]
    assert "mesh_request_rate_rps" not in mesh_queries("bench", "", "30s")
