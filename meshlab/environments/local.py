"""`environment: local`: a playground per (data plane, mode, policy), kept up while consecutive
RunSpecs need the same one and restarted when they change; telemetry sampled during each run,
dead sidecars reported as warnings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from meshlab.environments.base import Deployment, DeploymentReport, Environment
from meshlab.errors import ProfileError
from meshlab.playground.plan import proxies_on_path
from meshlab.playground.playground import Playground, check_topology, resolve_topology
from meshlab.playground.telemetry import Target, TelemetrySampler, proxy_costs
from meshlab.profile import Profile, RunSpec
from meshlab.results import RunResult
from meshlab.topology import DataPlaneKind, Topology


def _kubernetes_hint(mesh: str) -> list[str]:
    """The fix when `mesh` is a registered Kubernetes mesh (asked only once parsing failed)."""
    from meshlab.meshes.base import get_mesh, mesh_names
    from meshlab.meshes.kubernetes import KubernetesMesh

    name = mesh.split("+", 1)[0].strip().lower()
    if name not in mesh_names() or not isinstance(get_mesh(name), KubernetesMesh):
        return []
    return [f"mesh {mesh!r} runs on Kubernetes: use environment: kubernetes for it; "
            f"environment: local runs the playground data planes "
            f"{', '.join(str(k) for k in DataPlaneKind)}"]


def _key(spec: RunSpec) -> str:
    pol = spec.policy.model_dump(mode="json") if spec.policy else None
    return json.dumps([spec.mesh, spec.dim("mode", "both"), pol, spec.protocol], sort_keys=True)


class LocalDeployment(Deployment):
    """One run against a running playground."""

    def __init__(self, playground: Playground, spec: RunSpec, *, reused: bool) -> None:
        self.playground = playground
        parts = urlsplit(spec.target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.target_url = playground.url.rstrip("/") + ("" if spec.protocol == "tcp" else path)
        self.context = {**playground.context(), "reused": reused}
        self._sampler: TelemetrySampler | None = None
        self._proxies: list[str] = []
        self._on_path = 0

    def derive(self, result: RunResult) -> dict[str, Any]:
        """Istio's published figures (sidecar vCPU per 1,000 req/s, MB per sidecar) from the
        run's proxy telemetry and the rate the client achieved."""
        if not self._proxies:
            return {}
        costs = proxy_costs(result.telemetry, result.achieved_rate_rps,
                            proxies_on_path=self._on_path, sources=self._proxies)
        return {k: None if v is None else round(v, 4) for k, v in costs.items()}

    async def begin(self) -> None:
        pg = self.playground
        targets = []
        for p in pg.processes:
            prefix = "app" if p.role == "app" else p.kind
            admin = p.ports.get("admin") if p.kind == "envoy" else None
            targets.append(Target(f"{prefix}:{p.name}", p.pid, admin, tree=p.kind == "nginx"))
        self._sampler = TelemetrySampler(targets).start()

    async def end(self) -> DeploymentReport:
        samples = self._sampler.stop() if self._sampler else []
        self._sampler = None
        pg = self.playground
        warnings = []
        for name in pg.dead():
            p = pg.process(name)
            warnings.append(f"{p.role} {p.kind}:{name} died during the run (exit code "
                            f"{p.returncode}); its log ends with: {p.log_tail(300)}")
        self._proxies = [f"{p.kind}:{p.name}" for p in pg.proxy_processes()]
        self._on_path = len(proxies_on_path(pg.plan))
        context: dict[str, Any] = {"dead_processes": pg.dead(),
                                   "proxy_sources": self._proxies,
                                   "proxies_on_path": self._on_path}
        own = [s.value for s in samples if s.source == "meshlab:telemetry"]
        if own:
            context["telemetry_cpu_percent"] = round(own[-1], 3)
        return DeploymentReport(telemetry=samples, warnings=warnings, context=context,
                                failure=warnings[0] if warnings else "")


class LocalEnvironment(Environment):
    """Runs a profile's matrix against playgrounds on 127.0.0.1.

    Only the path and query of the profile's `target` are used: `http://playground/?size=1024`
    sends `/?size=1024` to the topology's entry."""

    name = "local"

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        topo = profile.topology
        self.topology: Topology = topo if isinstance(topo, Topology) else \
            Topology.model_validate(topo or {})
        self._playground: Playground | None = None
        self._key: str | None = None
        self.restarts = 0

    def check(self, spec: RunSpec) -> None:
        mode = spec.dim("mode", "both")
        try:
            topo = resolve_topology(self.topology, mesh=spec.mesh, mode=mode,
                                    policy=spec.policy)
        except ProfileError as exc:
            problems = _kubernetes_hint(spec.mesh) or exc.problems
            raise ProfileError([f"meshes/modes: {p}" for p in problems]) from None
        check_topology(topo, spec.protocol)     # MeshError naming data plane, policy, protocol

    async def deploy(self, spec: RunSpec) -> Deployment:
        key = _key(spec)
        pg = self._playground
        reused = pg is not None and key == self._key and not pg.dead()
        if not reused:
            await self.close()
            pg = Playground(self.topology, mesh=spec.mesh, mode=spec.dim("mode", "both"),
                            policy=spec.policy, protocol=spec.protocol)
            await pg.astart()
            self._playground, self._key = pg, key
            self.restarts += 1
        assert pg is not None
        return LocalDeployment(pg, spec, reused=reused)

    async def close(self) -> None:
        if self._playground is not None:
            self._playground.stop()
        self._playground = None
        self._key = None
