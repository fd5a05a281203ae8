"""Traffic shapes in the cluster, on the API stand-in: steps and ramp run as consecutive
constant-rate fortio phases in each load pod (init containers, then the main container), the
phases' histograms merge exactly, the per-second series follows the shape, a saturated phase
counts its unsent requests; Poisson (and a shape a mesh's init containers cannot carry) is
refused before the first Job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _env_flow import run_all
from standin import ApiStandIn

from meshlab.environments.base import environment_for
from meshlab.environments.kubernetes import KubernetesEnvironment
from meshlab.errors import ProfileError
from meshlab.k8s.load import LoadPlan, job_manifest, phase_container
from meshlab.k8s.phases import Phase, shape_phases, shape_problems
from meshlab.profile import Profile
from meshlab.results import RunResult
from meshlab.shape import RampShape, StepsShape

NS = "bench"


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_steps_job_runs_one_phase_per_level_in_order() -> None:
    phases = shape_phases(StepsShape(kind="steps", levels=[0.25, 0.5, 1.0]), rate_rps=400,
                          duration_s=6)
    assert phases == (Phase(0, 2, 100), Phase(2, 2, 200), Phase(4, 2, 400))
    plan = LoadPlan(run_id="r1", namespace=NS, url="http://s:8080/echo", rate_rps=400,
                    connections=4, duration_s=6, parallelism=2, phases=phases)
    pod = job_manifest(plan)["spec"]["template"]["spec"]
    inits, (main,) = pod["initContainers"], pod["containers"]
    assert [c["name"] for c in inits] == ["fortio-phase-0", "fortio-phase-1"]
    assert [phase_container(i, 3) for i in range(3)] == [*[c["name"] for c in inits], "fortio"]
    every = [*inits, main]
    # each pod sends half of each level's rate over its 2 connections, for the level's 2 s
    assert [_flag(c["args"], "-qps") for c in every] == ["50", "100", "200"]
    assert {_flag(c["args"], "-t") for c in every} == {"2s"}
    assert {_flag(c["args"], "-c") for c in every} == {"2"}
    assert [_flag(c["args"], "-labels") for c in every] == [
        f"meshlab measure r1 phase {i}" for i in range(3)]
    assert all(c["image"] == main["image"] and c["resources"] == main["resources"]
               for c in inits)


def test_ramp_is_a_one_second_staircase_at_the_ramps_mean_rate() -> None:
    shape = RampShape(kind="ramp", start_rps=0)
    phases = shape_phases(shape, rate_rps=200, duration_s=4)
    assert [p.rate_rps for p in phases] == [25, 75, 125, 175]
    assert [p.duration_s for p in phases] == [1, 1, 1, 1]
    # each second sends what the ramp makes due in it: 400 in all (mean 100 req/s over 4 s)
    assert sum(p.due_requests for p in phases) == 400
    odd = shape_phases(RampShape(kind="ramp", start_rps=100), rate_rps=200, duration_s=2.5)
    assert [(p.offset_s, p.duration_s) for p in odd] == [(0, 1), (1, 1), (2, 0.5)]
    assert odd[-1].rate_rps == pytest.approx(190)
    plan = LoadPlan(run_id="r2", namespace=NS, url="http://s:8080/echo", rate_rps=200,
                    connections=2, duration_s=4, parallelism=1, phases=phases)
    pod = job_manifest(plan)["spec"]["template"]["spec"]
    args = [c["args"] for c in [*pod["initContainers"], *pod["containers"]]]
    assert [_flag(a, "-qps") for a in args] == ["25", "75", "125", "175"]
    assert all(_flag(a, "-t") == "1s" and "-uniform" in a for a in args)


def _profile(kubeconfig: Path, shape: dict[str, Any], *, rate_rps: float, connections: int,
             duration_s: float, parallelism: int, mesh: str = "none", mode: str = "both",
             max_requests: int | None = None) -> KubernetesEnvironment:
    loads: dict[str, Any] = {"rate_rps": [rate_rps], "connections": [connections],
                             "duration_s": duration_s, "warmup_s": 1, "shape": shape}
    if max_requests is not None:
        loads["max_requests"] = max_requests
    env = environment_for(Profile.from_dict({
        "name": "k8s-shape", "target": "http://meshlab-server.bench.svc.cluster.local:8080/",
        "environment": "kubernetes", "meshes": [mesh], "modes": [mode], "loads": loads,
        "topology": {"kubeconfig": str(kubeconfig), "context": "lab", "namespace": NS,
                     "load_parallelism": parallelism}}))
    assert isinstance(env, KubernetesEnvironment)
    return env


def _run(api: ApiStandIn, env: KubernetesEnvironment) -> tuple[RunResult, list[dict[str, Any]]]:
    jobs: list[dict[str, Any]] = []
    api.on_job = jobs.append
    (result,) = asyncio.run(run_all(env, env.profile))
    return result, jobs


def test_steps_in_the_cluster_merge_phases_and_show_the_shape(api: ApiStandIn,
                                                              kubeconfig: Path) -> None:
    env = _profile(kubeconfig, {"kind": "steps", "levels": [0.25, 0.5, 1.0]}, rate_rps=240,
                   connections=6, duration_s=3, parallelism=3)
    result, jobs = _run(api, env)
    warm, measure = jobs
    # the warm-up is one constant phase at the shape's first level; the measured Job has three
    warm_pod = warm["spec"]["template"]["spec"]
    assert "initContainers" not in warm_pod
    assert _flag(warm_pod["containers"][0]["args"], "-qps") == "20"
    assert len(measure["spec"]["template"]["spec"]["initContainers"]) == 2
    # three pods x three phases merged: 60 + 120 + 240 requests, every one in the histograms
    assert result.requests == 420 and result.latency.total == 420
    assert result.service_time.total == 420 and result.status_codes == {200: 420}
    assert [p.requests for p in result.timeseries] == [60, 120, 240]
    assert [p.second for p in result.timeseries] == [0, 1, 2]
    assert result.unsent_requests == 0
    assert result.duration_s == pytest.approx(3)
    assert result.requested_rate_rps == pytest.approx(140)
    assert result.achieved_rate_rps == pytest.approx(140)
    assert len(result.context["load_pods"]) == 3
    assert sum(p["requests"] for p in result.context["load_pods"]) == 420
    phases = result.context["load_phases"]
    assert [(p["rate_rps"], p["due_requests"], p["requests"]) for p in phases] == [
        (60, 60, 60), (120, 120, 120), (240, 240, 240)]
    assert "one constant-rate fortio phase per level" in result.context["cluster_shape"]
    assert result.spec["shape"] == {"kind": "steps", "levels": [0.25, 0.5, 1.0]}
    assert result.dimensions.shape == "steps 0.25,0.5,1 x 240 req/s"
    assert not [w for w in result.warnings if "achieved" in w or "never sent" in w]


def test_ramp_in_the_cluster_climbs_second_by_second(api: ApiStandIn, kubeconfig: Path) -> None:
    env = _profile(kubeconfig, {"kind": "ramp", "start_rps": 0}, rate_rps=200, connections=2,
                   duration_s=4, parallelism=1)
    result, (warm, measure) = _run(api, env)
    # a ramp from 0 warms up at its first second's rate, never at fortio's max (-qps -1)
    assert _flag(warm["spec"]["template"]["spec"]["containers"][0]["args"], "-qps") == "25"
    assert len(measure["spec"]["template"]["spec"]["initContainers"]) == 3
    # fortio plans int(qps * t) calls in whole calls per connection: 25 over 2 connections is
    # 24, and the one left over each second is due and never sent
    assert [p.requests for p in result.timeseries] == [24, 74, 124, 174]
    assert result.requests == result.latency.total == 396 and result.unsent_requests == 4
    assert result.requested_rate_rps == pytest.approx(100)
    assert "1 s constant-rate fortio phases" in result.context["cluster_shape"]
    assert result.dimensions.shape == "ramp 0->200 req/s"


def test_a_saturated_phase_counts_its_unsent_requests(api: ApiStandIn, kubeconfig: Path) -> None:
    # one connection carries at most 250 req/s in the stand-in: the second level (400 req/s)
    # sends 250 of the 400 due in its second
    env = _profile(kubeconfig, {"kind": "steps", "levels": [0.5, 1.0]}, rate_rps=400,
                   connections=1, duration_s=2, parallelism=1)
    result, _ = _run(api, env)
    assert [p.requests for p in result.timeseries] == [200, 250]
    assert result.unsent_requests == 150
    assert [p["unsent_requests"] for p in result.context["load_phases"]] == [0, 150]
    assert any("150 requests the shape made due were never sent" in w for w in result.warnings)


def test_poisson_is_refused_in_the_cluster_naming_the_fix(kubeconfig: Path) -> None:
    env = _profile(kubeconfig, {"kind": "poisson", "seed": 7}, rate_rps=100, connections=2,
                   duration_s=2, parallelism=1)
    (spec,) = list(env.profile.expand())
    with pytest.raises(ProfileError) as err:
        env.check(spec)
    msg = str(err.value)
    assert "loads.shape: kind 'poisson'" in msg and "fortio has no Poisson arrivals" in msg
    assert "environment direct with runner native" in msg


@pytest.mark.parametrize(("mesh", "mode", "refused"), [
    ("kuma", "both", True), ("consul", "client-only", True), ("kuma", "server-only", False),
    ("istio", "both", False), ("linkerd", "both", False)])
def test_shaped_phases_need_init_containers_the_mesh_carries(
        kubeconfig: Path, mesh: str, mode: str, refused: bool) -> None:
    env = _profile(kubeconfig, {"kind": "steps", "levels": [0.5, 1.0]}, rate_rps=100,
                   connections=2, duration_s=2, parallelism=1, mesh=mesh, mode=mode)
    (spec,) = list(env.profile.expand())
    if not refused:
        env.check(spec)
        return
    with pytest.raises(ProfileError, match="run as init containers, which start before"):
        env.check(spec)


def test_a_shape_with_max_requests_is_refused(kubeconfig: Path) -> None:
    env = _profile(kubeconfig, {"kind": "steps", "levels": [0.5, 1.0]}, rate_rps=100,
                   connections=2, duration_s=2, parallelism=1, max_requests=100)
    (spec,) = list(env.profile.expand())
    with pytest.raises(ProfileError, match=r"loads\.max_requests: a steps shape runs for"):
        env.check(spec)


def test_a_phase_too_thin_for_fortio_is_refused(kubeconfig: Path) -> None:
    # the ramp's first seconds hold 1.5 and 4.5 req/s over 3 pods (0.5 and 1.5 each): fortio
    # would send 2 per pod and stretch those phases
    env = _profile(kubeconfig, {"kind": "ramp", "start_rps": 0}, rate_rps=30, connections=3,
                   duration_s=10, parallelism=3)
    (spec,) = list(env.profile.expand())
    with pytest.raises(ProfileError, match=r"ramp phase\(s\) 0, 1 would send under 2"):
        env.check(spec)


def test_a_ramp_longer_than_the_phase_limit_is_refused() -> None:
    ramp = RampShape(kind="ramp", start_rps=100)
    assert shape_problems(ramp, rate_rps=200, duration_s=300, pods=1) == []
    (problem,) = shape_problems(ramp, rate_rps=200, duration_s=301, pods=1)
    assert "needs 301 fortio phases (one container each), more than 300" in problem
