"""Flows over the stand-in: injection + rollout + verify meshed, policy apply/remove, snapshot
before/after diff, the fortio Job with merged results, Prometheus telemetry, and the five
configuration-check findings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshlab.errors import ClusterError, MeshError, OutputParseError, RunnerError
from meshlab.k8s.load import LoadPlan, extract_fortio_json, merge_results, run_fortio_job
from meshlab.k8s.prometheus import PrometheusClient, TelemetryWindow
from meshlab.k8s.snapshot import diff_snapshots
from meshlab.k8s.workload import (
    DIRECT_PORT,
    ServerSpec,
    deploy_server,
    roll_workloads,
    verify_meshed,
)
from meshlab.meshes.check import Severity, check_namespace
from meshlab.meshes.detect import snapshot as take_snapshot
from meshlab.meshes.istio import IstioMesh
from meshlab.meshes.kubernetes import MeshTarget, RenderContext
from meshlab.policy import TrafficPolicy

FORTIO = (Path(__file__).resolve().parents[1] / "fixtures" / "fortio"
          / "fortio-README-rest-run-http-result.json")
SPEC = ServerSpec(namespace="bench", name="server")


def test_mesh_injection_policy_snapshot_and_check(api, cluster) -> None:
    api.install_control_plane()
    mesh = IstioMesh()
    assert mesh.detect(cluster).version == "1.30.3"
    deploy_server(cluster, SPEC, pod_annotations=mesh.skip_inbound([DIRECT_PORT]))
    with pytest.raises(MeshError, match="no istio sidecar"):
        verify_meshed(cluster, "bench", selector={"app": "server"},
                      sidecars=mesh.sidecar_containers, mesh="istio")
    findings = {f.check: f for f in check_namespace(cluster, "bench")}
    assert set(findings) == {"not_meshed", "injection_label", "mtls_not_strict"}
    assert findings["not_meshed"].severity == Severity.ERROR
    assert "istio-injection=enabled" in findings["injection_label"].message
    mesh.enable_injection(cluster, "bench")
    roll_workloads(cluster, "bench")
    verify_meshed(cluster, "bench", selector={"app": "server"},
                  sidecars=mesh.sidecar_containers, mesh="istio")
    target = MeshTarget(cluster, RenderContext(namespace="bench", service="server"))
    mesh.apply(target, TrafficPolicy(name="strict", mtls="strict", retries={"attempts": 2}))
    before = take_snapshot(cluster, ["bench"])
    assert (before.mesh, before.mesh_version, before.mtls) == ("istio", "1.30.3", "STRICT")
    assert all(p.meshed for p in before.pods)
    assert before.to_smp()["mesh_config"]["proxies"] == 1
    assert "not_meshed" not in {f.check for f in check_namespace(cluster, "bench")}
    # a proxy restarts during the run
    pod = cluster.pods(namespace="bench")[0]
    pod["status"]["containerStatuses"][0]["restartCount"] = 2
    api.seed(pod)
    changes = diff_snapshots(before, take_snapshot(cluster, ["bench"]))
    assert [c.kind for c in changes] == ["container_restart"]
    assert "sidecar istio-proxy restarted 2" in str(changes[0])
    mesh.remove(target)
    assert cluster.list_objects("security.istio.io/v1", "PeerAuthentication",
                                namespace="bench") == []


def test_fortio_job_results_are_merged(api, cluster) -> None:
    cluster.ensure_namespace("bench")
    doc = FORTIO.read_text()
    api.log_source = lambda pod, container: f"12:00:00 I starting\n{doc}\n12:00:01 I done\n"
    plan = LoadPlan(run_id="r1", namespace="bench", url="http://server.bench:8080/echo",
                    rate_rps=90, connections=6, duration_s=1, parallelism=3)
    out = run_fortio_job(cluster, plan, timeout_s=10)
    assert out.result.requests == 3 * 4 and out.result.status_codes == {200: 12}
    assert out.result.latency.total == 12 and len(out.pods) == 3
    assert cluster.find("batch/v1", "Job", plan.job_name, namespace="bench") is None
    job_args = plan.fortio_argv()
    assert job_args[job_args.index("-qps") + 1] == "30" and job_args[-1] == plan.url


def test_fortio_logs_sized_by_each_pods_args_merge_exactly(api, cluster) -> None:
    cluster.ensure_namespace("bench")
    api.fortio_codes = {"200": 0.9, "503": 0.1}
    plan = LoadPlan(run_id="r3", namespace="bench", url="http://server.bench:8080/echo",
                    rate_rps=40, connections=4, duration_s=5, parallelism=2,
                    headers=(("X-Run", "r3"),))
    out = run_fortio_job(cluster, plan, timeout_s=10)
    r = out.result
    assert [p["requests"] for p in out.pods] == [100, 100] and r.requests == 200
    assert r.status_codes == {200: 180, 503: 20} and r.errors == 20
    assert r.latency.total == 200 and r.achieved_rate_rps == pytest.approx(40)
    assert r.latency.percentile_us(50) <= r.latency.percentile_us(99) <= r.latency.max_us
    assert not [w for w in r.warnings if "differs" in w or "count" in w.lower()], r.warnings
    assert r.context["load_pods"] == 2 and r.context["latency_corrected"] is False
    argv = plan.fortio_argv()
    assert argv[argv.index("-H") + 1] == "X-Run: r3" and "-allow-initial-errors" in argv


def test_failed_job_and_garbage_logs(api, cluster) -> None:
    cluster.ensure_namespace("bench")
    api.job_fails = True
    plan = LoadPlan(run_id="r2", namespace="bench", url="http://x:8080/", rate_rps=0,
                    connections=1, duration_s=1)
    with pytest.raises(ClusterError, match="BackoffLimitExceeded") as err:
        run_fortio_job(cluster, plan, timeout_s=5)
    assert err.value.reason == "BackoffLimitExceeded"
    assert cluster.find("batch/v1", "Job", plan.job_name, namespace="bench") is None
    assert cluster.pods(namespace="bench", selector={"job-name": plan.job_name}) == []
    with pytest.raises(OutputParseError, match="no fortio JSON"):
        extract_fortio_json("error: connection refused\n{not json")
    with pytest.raises(RunnerError, match="run r2: no fortio result to merge"):
        merge_results([], run_id="r2")


def _pod(name: str, *, containers: list[dict], init: list[dict] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "bench", "labels": {"app": name}},
            "spec": {"containers": containers, "initContainers": init or []},
            "status": {"phase": "Running"}}


def test_check_finds_proxies_without_limits_and_sidecars_after_the_app(api, cluster) -> None:
    api.install_control_plane()
    cluster.ensure_namespace("bench", labels={"istio-injection": "enabled"})
    app = {"name": "app", "image": "fortio/fortio:1.75.3"}
    limited = {"resources": {"limits": {"cpu": "1", "memory": "256Mi"}}}
    # sidecar listed after the app and without limits: both findings
    api.seed(_pod("late", containers=[app, {"name": "istio-proxy", "image": "proxyv2"}]))
    # sidecar first, with limits: neither
    api.seed(_pod("first", containers=[{"name": "istio-proxy", "image": "proxyv2", **limited},
                                       app]))
    # native sidecar (init container, restartPolicy Always) with limits: neither
    api.seed(_pod("native", containers=[app], init=[
        {"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always", **limited}]))
    found = {(f.subject, f.check): f for f in check_namespace(cluster, "bench")}
    assert set(found) == {("pod/late", "proxy_limits"), ("pod/late", "sidecar_order"),
                          ("namespace/bench", "mtls_not_strict")}
    assert found["pod/late", "proxy_limits"].severity == Severity.WARNING
    assert "istio-proxy has no resource limits" in found["pod/late", "proxy_limits"].message
    assert "istio-proxy starts after app" in found["pod/late", "sidecar_order"].message


def test_prometheus_telemetry_trims_and_converts(prometheus_url: str) -> None:
    async def fetch():
        prom = PrometheusClient(prometheus_url)
        try:
            return await prom.run_telemetry(
                namespace="bench", control_namespace="istio-system",
                sidecars=IstioMesh.sidecar_containers, request_metrics=IstioMesh.request_metrics,
                window=TelemetryWindow(1000.0, 1060.0, warmup_trim_s=10, cooldown_trim_s=5))
        finally:
            await prom.aclose()
    samples, warnings = asyncio.run(fetch())
    p99 = [s for s in samples if s.metric == "mesh_latency_p99_us"]
    assert p99 and p99[0].value == 1500.0 and p99[0].t_s == 10.0   # ms -> us, trimmed start
    cpu = [s for s in samples if s.metric == "proxy_cpu_cores"]
    assert cpu[0].source == "prometheus:server-1"
    assert any("mesh_request_rate_rps" in w for w in warnings)


def test_snapshot_and_check_ask_the_installed_meshs_adapter(api, cluster) -> None:
    api.install_control_plane("linkerd", "cr.l5d.io/linkerd/controller:edge-26.8.3", "linkerd")
    cluster.ensure_namespace("bench")
    api.seed(_pod("app", containers=[{"name": "linkerd-proxy", "image": "proxy"},
                                     {"name": "app", "image": "fortio/fortio:1.75.3"}]))
    snap = take_snapshot(cluster, ["bench"])
    assert (snap.mesh, snap.mesh_version, snap.mesh_namespace) == ("linkerd", "edge-26.8.3",
                                                                    "linkerd")
    assert snap.mtls == "on (always, between meshed pods)" and snap.pods[0].meshed
    found = {f.check: f for f in check_namespace(cluster, "bench")}
    # Linkerd always encrypts: no mTLS finding; its injection is an annotation
    assert set(found) == {"injection_label", "proxy_limits"}
    assert found["injection_label"].message.endswith("set annotation linkerd.io/inject=enabled")
