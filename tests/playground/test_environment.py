"""LocalEnvironment: playgrounds per (data plane, mode, policy), reuse, telemetry, dead sidecars,
and a whole profile run through meshlab.experiment into a real DuckDB store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _playground_helpers import assert_gone, codes, fetch

from meshlab.environments.local import LocalEnvironment
from meshlab.errors import MeshError, ProfileError
from meshlab.experiment._record import broken_reason, empty_result, merge_run
from meshlab.host import host_snapshot
from meshlab.profile import Profile
from meshlab.results import RunStatus
from meshlab.runners.base import get_runner
from meshlab.slo import apply_check

pytestmark = pytest.mark.timeout(90)

PROFILE = {
    "name": "env-test", "environment": "local", "target": "http://playground/?size=64",
    "topology": {"services": [{"name": "backend", "replicas": 2}]},
    "meshes": ["none", "envoy+mtls"],
    "policies": [{"name": "retry", "retries": {"attempts": 2}}],
    "loads": {"rate_rps": [200], "connections": [2], "duration_s": 1.0, "warmup_s": 0.2},
}


def _profile(**over: object) -> Profile:
    return Profile.from_dict({**PROFILE, **over})


def test_deploy_reuse_restart_and_telemetry():
    profile = _profile(repeats=2, policies=[])
    specs = list(profile.expand())
    env = LocalEnvironment(profile)

    async def main() -> list[int]:
        pids: list[int] = []
        async with env:
            seen = []
            for spec in specs:
                env.check(spec)
                dep = await env.deploy(spec)
                pids += [p.pid for p in dep.playground.processes]
                assert dep.target_url.endswith("/?size=64")
                await dep.begin()
                rs = await asyncio.to_thread(fetch, dep.target_url, 30)
                await asyncio.sleep(1.1)
                report = await dep.end()
                assert codes(rs) == {200: 30} and len(rs[0].content) == 64
                assert report.warnings == []
                seen.append((spec.mesh, dep.context["reused"], dep.context, report))
        assert env.restarts == 4      # repeats alternate none / envoy+mtls
        mesh, _, ctx, report = seen[1]
        assert mesh == "envoy+mtls" and ctx["mtls"] == "strict" and ctx["data_plane"] == "envoy"
        metrics = {(s.source, s.metric) for s in report.telemetry}
        assert ("envoy:client-sidecar", "cpu_percent") in metrics
        assert ("envoy:backend-0-sidecar", "rss_bytes") in metrics
        assert ("envoy:client-sidecar", "envoy.downstream_rq_total") in metrics
        assert report.context["proxies_on_path"] == 2      # client + one backend sidecar
        assert "envoy:client-sidecar" in report.context["proxy_sources"]   # costs: derive()
        assert report.context["telemetry_cpu_percent"] < 50   # checked properly in bench
        return pids

    assert_gone(asyncio.run(main()))


def test_same_spec_is_reused_and_dead_sidecar_reported():
    profile = _profile(meshes=["envoy"], policies=[])
    spec = next(profile.expand())
    env = LocalEnvironment(profile)

    async def main() -> None:
        async with env:
            dep = await env.deploy(spec)
            await dep.begin()
            dep.playground.kill("backend-1-sidecar")
            await asyncio.sleep(0.3)
            report = await dep.end()
            assert any("backend-1-sidecar died" in w for w in report.warnings)
            assert report.context["dead_processes"] == ["backend-1-sidecar"]
            # the run is failed with the process's own last words, not stored as good
            result = empty_result(spec, get_runner("native"), datetime.now(UTC),
                                  RunStatus.COMPLETED, "")
            result.requests, result.errors = 100, 55
            merge_run(result, spec, spec, dep, report, host_snapshot(), get_runner("native"),
                      "exp-test")
            apply_check(result)
            assert result.status == RunStatus.FAILED
            assert "backend-1-sidecar died during the run" in result.error
            assert "its log ends with" in result.error
            assert broken_reason(result)
            again = await env.deploy(spec)        # a dead sidecar forces a restart
            assert again.context["reused"] is False and again.playground.dead() == []
            third = await env.deploy(spec)
            assert third.context["reused"] is True
    asyncio.run(main())


def test_check_rejects_bad_mesh_and_unsupported_policy():
    env = LocalEnvironment(_profile(meshes=["envoy+tls"]))
    with pytest.raises(ProfileError, match="unknown option 'tls'"):
        env.check(next(_profile(meshes=["envoy+tls"]).expand()))
    prof = _profile(meshes=["nginx"], policies=[
        {"name": "slow", "fault": {"delay": {"delay_s": 1}}}])
    with pytest.raises(MeshError, match=r"nginx cannot express policy .slow.: fault\.delay"):
        LocalEnvironment(prof).check(next(prof.expand()))


def test_profile_runs_end_to_end_into_the_store(tmp_path: Path):
    from meshlab.experiment import run_profile
    from meshlab.store import Store

    store = Store(tmp_path / "runs.duckdb")
    outcome = run_profile(_profile(meshes=["envoy+mtls", "haproxy"]), store=store)
    assert str(outcome.status) == "completed"
    runs = store.runs()
    assert sorted(runs["mesh"]) == ["envoy+mtls", "haproxy"]
    assert set(runs["status"]) == {"completed"}
    assert set(runs["policy"]) == {"retry"}
    envoy = runs[runs["mesh"] == "envoy+mtls"].iloc[0]
    ctx = json.loads(envoy["context"])
    assert ctx["data_plane"] == "envoy" and ctx["mode"] == "both"
    assert ctx["data_plane_version"] and ctx["policy"]["retries"]["attempts"] == 2
    tel = store.telemetry([envoy["run_id"]])
    assert {"cpu_percent", "rss_bytes", "envoy.upstream_rq_total"} <= set(tel["metric"])
    for _, run in runs.iterrows():       # Istio's figures, for Envoy and haproxy alike
        c = json.loads(run["context"])
        assert c["proxy_vcpu_per_1k_rps_total"] > 0 and c["proxy_mb_per_sidecar"] > 1
        assert c["proxy_vcpu_per_1k_rps_per_sidecar"] == pytest.approx(
            c["proxy_vcpu_per_1k_rps_total"] / c["proxies_on_path"], abs=2e-4)


@pytest.mark.parametrize("mesh", ["nginx", "haproxy"])
def test_sidecar_cost_for_nginx_and_haproxy(mesh):
    """No Envoy counters: the deployment records the proxies on the path and their CPU/RSS;
    derive() turns them into Istio's figures with the run's achieved rate."""
    from datetime import UTC, datetime

    from meshlab.results import Histogram, RunResult, RunStatus

    profile = _profile(meshes=[mesh], policies=[])
    env = LocalEnvironment(profile)

    async def main() -> tuple[dict[str, object], dict[str, object]]:
        async with env:
            dep = await env.deploy(next(profile.expand()))
            await dep.begin()
            t0 = asyncio.get_running_loop().time()
            rs = await asyncio.to_thread(fetch, dep.target_url, 1500, concurrency=8)
            await asyncio.sleep(max(0.0, 2.1 - (asyncio.get_running_loop().time() - t0)))
            rate = len(rs) / (asyncio.get_running_loop().time() - t0)
            report = await dep.end()
            assert codes(rs) == {200: 1500}
            now = datetime.now(UTC)
            result = RunResult(
                run_id="r", spec={}, status=RunStatus.COMPLETED, started_at=now, ended_at=now,
                duration_s=1.0, requested_rate_rps=0.0, achieved_rate_rps=rate, requests=1500,
                errors=0, status_codes={200: 1500}, error_kinds={}, latency=Histogram(),
                service_time=Histogram(), telemetry=list(report.telemetry))
            return report.context, dep.derive(result)

    ctx, costs = asyncio.run(main())
    assert ctx["proxies_on_path"] == 2 and ctx["proxy_sources"] == [
        f"{mesh}:client-sidecar", f"{mesh}:backend-0-sidecar", f"{mesh}:backend-1-sidecar"]
    assert costs["proxy_mb_per_sidecar"] > 1
    total, per = costs["proxy_vcpu_per_1k_rps_total"], costs["proxy_vcpu_per_1k_rps_per_sidecar"]
    # both figures are rounded to 4 places
    assert total is not None and total > 0 and per == pytest.approx(total / 2, abs=2e-4)
