"""The whole Kubernetes flow against the API stand-in, driven the way the experiment drives an
environment: environment_for(profile) -> check -> deploy -> begin -> run_load -> end -> close.
The stand-in's Job controller makes fortio pods whose logs are fortio JSON sized by their args."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from standin import ApiStandIn

from meshlab.environments.base import environment_for
from meshlab.environments.kubernetes import KubernetesDeployment, KubernetesEnvironment
from meshlab.errors import ClusterError, MeshError, ProfileError
from meshlab.profile import Profile, RunSpec
from meshlab.progress import Progress
from meshlab.results import RunResult

NS = "bench"
POLICY = {"name": "resilient", "mtls": "strict",
          "retries": {"attempts": 3, "retry_on": ["5xx", "connect-failure"]}}
POLICY_KINDS = [("security.istio.io", "v1", "peerauthentications"),
                ("networking.istio.io", "v1", "virtualservices"),
                ("networking.istio.io", "v1", "destinationrules")]


def _profile(kubeconfig: Path, **topology: Any) -> Profile:
    return Profile.from_dict({
        "name": "k8s-flow", "target": "http://meshlab-server.bench.svc.cluster.local:8080/",
        "environment": "kubernetes", "meshes": ["none", "istio"], "modes": ["both"],
        "policies": [POLICY],
        "loads": {"rate_rps": [300], "connections": [6], "duration_s": 2, "warmup_s": 1},
        "topology": {"kubeconfig": str(kubeconfig), "context": "lab", "namespace": NS,
                     "load_parallelism": 3, **topology}})


def _policies(api: ApiStandIn) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for g, v, p in POLICY_KINDS
                  for o in api.all(g, v, p, NS))


def _watch_jobs(api: ApiStandIn) -> list[dict[str, Any]]:
    """What the cluster looked like whenever a load Job was created."""
    seen: list[dict[str, Any]] = []

    def on_job(job: dict[str, Any]) -> None:
        ns = api.get("v1", "namespaces", None, NS) or {}
        seen.append({"phase": job["metadata"]["labels"]["meshlab.io/phase"],
                     "args": job["spec"]["template"]["spec"]["containers"][0]["args"],
                     "annotations": job["spec"]["template"]["metadata"].get("annotations", {}),
                     "policies": _policies(api),
                     "ns_labels": dict(ns.get("metadata", {}).get("labels") or {})})
    api.on_job = on_job
    return seen


async def _run(env: KubernetesEnvironment, spec: RunSpec,
               progress: list[Progress]) -> tuple[RunResult, list[str], list[str]]:
    """One run as the experiment does it; returns the result, the policies present after
    run_load (still applied) and the warnings of end()."""
    env.check(spec)
    dep = await env.deploy(spec)
    assert isinstance(dep, KubernetesDeployment)
    await dep.begin()
    result = await dep.run_load(replace(spec, target=dep.target_url), progress=progress.append)
    assert result is not None
    during = list(dep.context["policy_resources"])
    report = await dep.end()
    assert not report.warnings and not report.telemetry     # already in the result
    return result, during, report.warnings


def test_none_then_istio_with_policy_end_to_end(api: ApiStandIn, kubeconfig: Path,
                                                prometheus_url: str) -> None:
    api.install_control_plane()
    jobs = _watch_jobs(api)
    env = environment_for(_profile(kubeconfig, prometheus_url=prometheus_url))
    assert isinstance(env, KubernetesEnvironment)
    baseline, istio = list(env.profile.expand())    # the `none` baseline runs without policy
    assert baseline.mesh == "none" and baseline.policy is None
    assert baseline.dim("policy") == "none" and istio.policy is not None
    with pytest.raises(MeshError, match="mesh none cannot express policy 'resilient'"):
        env.check(replace(baseline, policy=istio.policy))   # no mesh to carry retries or mTLS
    progress: list[Progress] = []

    async def flow() -> tuple[RunResult, RunResult, list[str]]:
        try:
            base, _, _ = await _run(env, baseline, progress)
            assert _policies(api) == []
            mesh, during, _ = await _run(env, istio, progress)
            assert _policies(api) == []      # removed by end()
            return base, mesh, during
        finally:
            await env.close()

    base, mesh, during = asyncio.run(flow())
    # two Jobs per run: the discarded warm-up, then the measured one
    assert [j["phase"] for j in jobs] == ["warmup", "measure"] * 2
    assert all(j["policies"] == [] for j in jobs[:2])
    assert all(j["policies"] == ["PeerAuthentication/meshlab-resilient",
                                 "VirtualService/meshlab-resilient"] for j in jobs[2:])
    assert during == ["PeerAuthentication/meshlab-resilient", "VirtualService/meshlab-resilient"]
    assert all(j["ns_labels"].get("istio-injection") == "enabled" for j in jobs[2:])
    assert "istio-injection" not in jobs[0]["ns_labels"]
    assert jobs[3]["annotations"] == {"sidecar.istio.io/nativeSidecar": "true"}
    args = jobs[3]["args"]
    assert args[args.index("-qps") + 1] == "100" and args[args.index("-c") + 1] == "2"
    assert args[args.index("-t") + 1] == "2s"
    assert args[-1] == "http://meshlab-server.bench.svc.cluster.local:8080/echo"

    for result, name in ((base, "none"), (mesh, "istio")):
        pods = result.context["load_pods"]
        assert len(pods) == 3 and result.requests == sum(p["requests"] for p in pods) == 600
        assert result.status_codes == {200: 600} and result.latency.total == 600
        assert result.latency.percentile_us(50) <= result.latency.percentile_us(99)
        assert result.context["mesh"] == name and result.context["mode"] == "both"
        assert result.context["warmup"]["requests"] == 300
        assert result.context["warmup"]["method"] == "separate Job, discarded"
        assert result.context["load_image"] == "fortio/fortio:1.75.3"
        assert result.context["fortio_version"] == "1.75.3"
        assert {p["fortio_version"] for p in pods} == {"1.75.3"}
        assert result.context["cluster"]["context"] == "lab"
        assert result.context["cluster_after"]["server_version"] == "v1.31.4"
        assert result.context["changes"] == []
        assert not [w for w in result.warnings if "not comparable" in w]
        assert result.spec["rate_rps"] == 300 and result.duration_s == pytest.approx(2)
        assert any(s.metric == "mesh_latency_p99_us" for s in result.telemetry) == \
            (name == "istio")
        assert any(s.metric == "proxy_cpu_cores" for s in result.telemetry)
    assert mesh.context["mesh_version"] == "1.30.3" and mesh.context["mtls"] == "STRICT"
    assert mesh.context["policy"] == "resilient" and base.context["policy"] == "none"
    assert all(p["meshed"] for p in mesh.context["cluster"]["pods"])
    assert not any(p["meshed"] for p in base.context["cluster"]["pods"])
    assert [p.phase for p in progress].count("done") == 2
    # the namespace was meshlab's: nothing is left
    assert api.get("v1", "namespaces", None, NS) is None
    assert api.all("apps", "v1", "deployments", NS) == api.all("batch", "v1", "jobs", NS) == []


def test_restart_during_the_run_is_flagged(api: ApiStandIn, kubeconfig: Path) -> None:
    api.install_control_plane()
    env = environment_for(_profile(kubeconfig))
    istio = list(env.profile.expand())[1]

    def restart_proxy(job: dict[str, Any]) -> None:
        if job["metadata"]["labels"]["meshlab.io/phase"] == "measure":
            pod = next(p for p in api.all("", "v1", "pods", NS)
                       if p["metadata"]["labels"].get("app") == "meshlab-server")
            pod["status"]["containerStatuses"][0]["restartCount"] = 1
            api.put("", "v1", "pods", pod)
    api.on_job = restart_proxy

    async def flow() -> RunResult:
        try:
            result, _, _ = await _run(env, istio, [])
            return result
        finally:
            await env.close()

    result = asyncio.run(flow())
    assert any(w.startswith("not comparable: container_restart:") and "istio-proxy" in w
               for w in result.warnings)
    assert result.context["changes"] and result.requests == 600


def test_existing_namespace_keeps_its_own_things(api: ApiStandIn, kubeconfig: Path) -> None:
    api.install_control_plane()
    api.seed({"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": NS, "labels": {"team": "perf"}}})
    api.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine",
                                                                   "namespace": NS}})
    env = environment_for(_profile(kubeconfig, load_parallelism=1))
    spec = replace(list(env.profile.expand())[1], warmup_s=0)

    async def flow() -> None:
        try:
            await _run(env, spec, [])
        finally:
            await env.close()

    asyncio.run(flow())
    ns = api.get("v1", "namespaces", None, NS)
    assert ns is not None and ns["metadata"]["labels"] == {"team": "perf"}
    assert [o["metadata"]["name"] for o in api.all("", "v1", "configmaps", NS)] == ["mine"]
    assert api.all("apps", "v1", "deployments", NS) == api.all("", "v1", "services", NS) == []
    assert api.all("batch", "v1", "jobs", NS) == [] and _policies(api) == []


def test_failed_policy_apply_leaves_nothing_half_applied(api: ApiStandIn,
                                                         kubeconfig: Path) -> None:
    api.install_control_plane()
    api.fail_kinds["VirtualService"] = 500       # PeerAuthentication goes in first, then this
    env = environment_for(_profile(kubeconfig))
    istio = list(env.profile.expand())[1]

    async def flow() -> None:
        try:
            with pytest.raises(MeshError, match=r"rolled back.*etcdserver"):
                await env.deploy(istio)
            assert _policies(api) == []
            assert api.calls and any("peerauthentications" in c[1] for c in api.calls
                                     if c[0] == "PATCH")
        finally:
            await env.close()

    asyncio.run(flow())
    assert api.get("v1", "namespaces", None, NS) is None


def test_failed_server_apply_is_rolled_back(api: ApiStandIn, kubeconfig: Path) -> None:
    api.fail_kinds["Service"] = 500               # the Deployment is applied first
    env = environment_for(_profile(kubeconfig))

    async def flow() -> None:
        try:
            with pytest.raises(ClusterError, match="etcdserver"):
                await env.deploy(replace(next(iter(env.profile.expand())), policy=None))
            assert api.all("apps", "v1", "deployments", NS) == []
        finally:
            await env.close()

    asyncio.run(flow())
    assert api.get("v1", "namespaces", None, NS) is None


def test_check_rejects_what_fortio_pods_cannot_split(kubeconfig: Path) -> None:
    env = environment_for(_profile(kubeconfig, load_parallelism=4))
    spec = list(env.profile.expand())[1]
    with pytest.raises(ProfileError, match="does not split evenly"):
        env.check(spec)
    with pytest.raises(ProfileError, match=r"topology\.load_parallelism: Input should be"):
        environment_for(_profile(kubeconfig, load_parallelism=0))
    with pytest.raises(ProfileError, match=r"topology\.namespce: unknown key"):
        environment_for(_profile(kubeconfig, namespce="x"))
    with pytest.raises(ProfileError, match="modes: 'ingress' is not a Kubernetes mode"):
        env.check(replace(spec, dims=(("mode", "ingress"),)))


def test_cancelling_run_load_deletes_the_job(api: ApiStandIn, kubeconfig: Path) -> None:
    api.job_hangs = True
    env = environment_for(_profile(kubeconfig))
    spec = replace(next(iter(env.profile.expand())), policy=None, warmup_s=0)
    progress: list[Progress] = []

    async def flow() -> None:
        try:
            dep = await env.deploy(spec)
            task = asyncio.ensure_future(dep.run_load(spec, progress=progress.append))
            while not api.all("batch", "v1", "jobs", NS):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.2)                 # one progress tick
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            assert api.all("batch", "v1", "jobs", NS) == []
            await dep.end()
        finally:
            await env.close()

    asyncio.run(flow())
    assert progress and progress[0].phase == "measure" and progress[0].requests == 0
