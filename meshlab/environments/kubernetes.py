"""`KubernetesEnvironment`: a profile's matrix on a cluster: mesh in charge of the namespace,
policy applied, snapshots before/after, in-cluster fortio, Prometheus telemetry, cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import replace
from typing import Any

from meshlab.environments._service import ServiceWorkloads, not_as_requested
from meshlab.environments.base import Deployment, DeploymentReport, Environment
from meshlab.errors import ClusterError, MeshError, MeshlabError, ProfileError
from meshlab.k8s.cluster import Cluster
from meshlab.k8s.images import image_version
from meshlab.k8s.load import LoadOutcome, LoadPlan, run_fortio_job
from meshlab.k8s.phases import RAMP_STEP_S, shape_phases, shape_problems
from meshlab.k8s.prometheus import PrometheusClient, TelemetryWindow
from meshlab.k8s.snapshot import ClusterSnapshot, diff_snapshots
from meshlab.k8s.topology import KubernetesTopology
from meshlab.k8s.workload import (
    CLUSTER_PROTOCOLS,
    DIRECT_PORTS,
    MODES,
    ServerSpec,
    deploy_server,
    mode_plan,
    roll_workloads,
    server_manifests,
    server_port,
    target_url,
)
from meshlab.meshes.detect import (
    check_pinned_version,
    kubernetes_mesh,
    kubernetes_meshes,
    proxy_facts,
    snapshot,
)
from meshlab.meshes.kubernetes import Injection, KubernetesMesh, MeshTarget, RenderContext
from meshlab.policy import TrafficPolicy
from meshlab.profile import Profile, RunSpec
from meshlab.progress import Progress, ProgressCallback
from meshlab.results import RunResult, new_run_id
from meshlab.shape import mean_rate_rps

PART_OF = {"app.kubernetes.io/part-of": "meshlab"}
WARMUP_NOTE = ("warm-up: a separate fortio Job of warmup_s ran first against the same URL with "
               "the same rate and connections and was discarded; the measured Job's pods are "
               "new, so their connections (and client sidecars) start cold except for fortio's "
               "own first call per connection, which fortio leaves out of its results")
SHAPE_NOTE = {
    "steps": "in-cluster steps: one constant-rate fortio phase per level, run one after the other "
             "in each load pod (init containers, then the main container); each phase opens its "
             "connections anew; the series spreads a phase's counts over its seconds",
    "ramp": f"in-cluster ramp: a staircase of {RAMP_STEP_S:g} s constant-rate fortio phases, each "
            f"at the ramp's mean rate over its second (the per-second series' resolution), run "
            f"one after the other in each load pod; each phase opens its connections anew"}


def _emit(progress: ProgressCallback | None, report: Progress) -> None:
    if progress is not None:
        progress(report)


class KubernetesDeployment(Deployment):
    """One run's workload on the cluster; the load runs in-cluster (`run_load`)."""

    def __init__(self, env: KubernetesEnvironment, spec: RunSpec, before: ClusterSnapshot,
                 target: MeshTarget, mesh: KubernetesMesh | None) -> None:
        self.env, self.spec, self.before, self.target, self.mesh = env, spec, before, target, mesh
        mode = spec.dim("mode", "both")
        settings = env.settings
        own = env.own
        self.target_url = own.url if own is not None else target_url(
            env.server, mode, protocol=spec.protocol)
        self.context: dict[str, Any] = {
            "environment": "kubernetes", "data_plane": spec.mesh, "mesh": spec.mesh,
            "mesh_version": before.mesh_version if mesh is not None else "", "mode": mode,
            "policy": spec.policy.name if spec.policy else "none",
            "policy_resources": [f"{m['kind']}/{m['metadata']['name']}" for m in target.applied],
            "mtls": before.mtls, "kube_context": before.context,
            "namespace": env.server.namespace, "load": "in-cluster fortio Job",
            "load_image": settings.image, "fortio_version": image_version(settings.image),
            "load_parallelism": settings.load_parallelism, "cluster": before.to_dict(),
            "smp": before.to_smp()}
        if mesh is not None:
            inj = mesh.workload_injection() if own is not None else mesh.injection()
            self.context["injection"] = {**inj.labels, **inj.annotations}
            self.context["data_plane_mode"] = mesh.data_plane
        if own is not None:
            self.context.update(own.context(env.cluster))
        self.started_s = 0.0
        self.ended_s = 0.0
        self._observed = False

    async def begin(self) -> None:
        self.started_s = time.time()

    async def run_load(self, spec: RunSpec, *,
                       progress: ProgressCallback | None = None) -> RunResult | None:
        """Run `spec`'s load as fortio Jobs in the cluster (a discarded warm-up Job, then the
        measured one) and return the merged run with its context, the after-run snapshot, what
        changed (as "not comparable" warnings) and Prometheus telemetry when configured."""
        outcome, warmup = await self._load(spec, progress)
        result = outcome.result
        result.spec = spec.to_dict(redact=True)
        result.requested_rate_rps = mean_rate_rps(spec.shape, rate_rps=spec.rate_rps)
        if spec.shape.kind in SHAPE_NOTE:
            result.context["cluster_shape"] = SHAPE_NOTE[spec.shape.kind]
        result.context.update(self.context)
        result.context.update(load_pods=outcome.pods, load_node_usage=outcome.node_load,
                              warmup=warmup)
        result.warnings.extend(outcome.warnings)
        report = await self._observe()
        result.context.update(report.context)
        result.telemetry.extend(report.telemetry)
        result.warnings.extend(report.warnings)
        _emit(progress, Progress("done", result.duration_s, spec.duration_s, result.requests,
                                 result.errors, result.latency.percentile_us(50),
                                 result.latency.percentile_us(99), result.achieved_rate_rps))
        return result

    def _plan(self, spec: RunSpec, run_id: str) -> LoadPlan:
        s = self.env.settings
        client_sidecar, _ = mode_plan(self.spec.dim("mode", "both"))
        pod = Injection()
        if self.mesh is not None:       # a client sidecar must let the Job end, else opt out
            pod = self.mesh.job_sidecar_exit if client_sidecar else self.mesh.pod_opt_out
        return LoadPlan(run_id=run_id, namespace=self.env.server.namespace, url=self.target_url,
                        rate_rps=spec.rate_rps, connections=spec.connections,
                        duration_s=spec.duration_s, parallelism=s.load_parallelism,
                        timeout_s=spec.timeout_s, image=s.image, pod_labels=dict(pod.labels),
                        pod_annotations=dict(pod.annotations), load_node=s.load_node,
                        cpu=s.load_cpu, memory=s.load_memory,
                        headers=spec.headers, method=spec.method,
                        body=spec.body.decode("utf-8"), max_requests=spec.max_requests,
                        protocol=spec.protocol,
                        phases=(shape_phases(spec.shape, rate_rps=spec.rate_rps,
                                             duration_s=spec.duration_s)
                                if spec.shape.kind in SHAPE_NOTE else ()))

    async def _load(self, spec: RunSpec,
                    progress: ProgressCallback | None) -> tuple[LoadOutcome, dict[str, Any]]:
        run_id = new_run_id()
        plan = self._plan(spec, run_id)
        warmup: dict[str, Any] = {"duration_s": 0.0}
        if spec.warmup_s > 0:
            # a shaped load warms up in one phase at its first phase's rate (a ramp from 0:
            # its first second's mean; never 0, which fortio reads as "as fast as possible")
            warm = replace(plan, run_id=f"{run_id}-warmup", duration_s=spec.warmup_s,
                           max_requests=None, phase="warmup", phases=(),
                           rate_rps=plan.phases[0].rate_rps if plan.phases else plan.rate_rps)
            w = await self._job(warm, spec.warmup_s, progress)
            warmup = {"duration_s": spec.warmup_s, "job": warm.job_name,
                      "requests": w.result.requests, "errors": w.result.errors,
                      "method": "separate Job, discarded", "note": WARMUP_NOTE}
        self.started_s = time.time()      # the measured window starts with the measured Job
        try:
            return await self._job(plan, spec.duration_s, progress), warmup
        finally:
            self.ended_s = time.time()

    async def _job(self, plan: LoadPlan, total_s: float,
                   progress: ProgressCallback | None) -> LoadOutcome:
        """One fortio Job on a worker thread, with a progress tick per second; cancelling stops
        the wait and the Job is deleted before the cancellation goes on."""
        cancel = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(
            run_fortio_job, self.env.cluster, plan, timeout_s=self.env.settings.job_timeout_s,
            cancel=cancel))
        t0 = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=1.0)
                if done:
                    return task.result()
                elapsed = time.monotonic() - t0
                _emit(progress, Progress(plan.phase, min(elapsed, total_s), total_s, 0, 0))
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait({task}, timeout=60)
            if task.done() and not task.cancelled():
                task.exception()        # retrieved: the cancellation is what matters
            raise

    async def _observe(self) -> DeploymentReport:
        """The after-run snapshot, what changed and the telemetry of the measured window."""
        report = DeploymentReport()
        ns = self.env.server.namespace
        after = await asyncio.to_thread(snapshot, self.env.cluster, [ns], prefer=self.spec.mesh)
        changes = diff_snapshots(self.before, after)
        report.context["cluster_after"] = after.to_dict()
        report.context["changes"] = [str(c) for c in changes]
        report.warnings += [f"not comparable: {c}" for c in changes]
        if self.env.own is not None:
            ctx, warns = await asyncio.to_thread(self.env.own.observe, self.env.cluster,
                                                 self.context["workload"])
            report.context.update(ctx)
            report.warnings += warns
        s = self.env.settings
        if s.prometheus_url:
            prom = PrometheusClient(s.prometheus_url)
            try:
                window = TelemetryWindow(self.started_s, self.ended_s or time.time(),
                                         warmup_trim_s=s.warmup_trim_s,
                                         cooldown_trim_s=s.cooldown_trim_s)
                samples, warns = await prom.run_telemetry(
                    namespace=ns, control_namespace=self.before.mesh_namespace, window=window,
                    sidecars=sorted(proxy_facts().sidecars),
                    request_metrics=self.mesh.request_metrics if self.mesh else None)
                report.telemetry += samples
                report.warnings += warns
            except ClusterError as exc:   # the measurement stands without its telemetry
                report.warnings.append(f"prometheus telemetry not recorded: {exc}")
            finally:
                await prom.aclose()
        self._observed = True
        return report

    async def end(self) -> DeploymentReport:
        """Remove the run's policy; when `run_load` did not finish, still record the after-run
        snapshot and telemetry (they explain a failed run)."""
        report = DeploymentReport()
        try:
            if not self._observed:
                self.ended_s = self.ended_s or time.time()
                report = await self._observe()
        finally:
            await asyncio.to_thread(self.env.release, self.mesh, self.target)
        return report


class KubernetesEnvironment(Environment):
    """Benchmarks on the cluster of a kubeconfig context; `topology` keys are the fields of
    `meshlab.k8s.topology.KubernetesTopology`."""

    name = "kubernetes"
    generates_load = True

    def __init__(self, profile: Profile, *, cluster: Cluster | None = None) -> None:
        super().__init__(profile)
        self.settings = KubernetesTopology.from_profile(profile.topology)
        self.server = ServerSpec.from_topology(self.settings)
        self._cluster = cluster
        self.own = (ServiceWorkloads.from_topology(self.settings) if self.settings.service
                    else None)
        self._mesh_name: str | None = None
        self._ns_before: dict[str, dict[str, str]] | None = None   # None: namespace not touched
        self._created_namespace = False
        self._targets: list[tuple[KubernetesMesh | None, MeshTarget]] = []
        self._lock = threading.Lock()

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            s = self.settings
            self._cluster = Cluster.connect(context=s.context, kubeconfig=s.kubeconfig,
                                            in_cluster=s.in_cluster)
        return self._cluster

    def render_context(self, policy: TrafficPolicy | None = None, *,
                       protocol: str = "http1") -> RenderContext:
        if self.own is not None:
            return RenderContext(namespace=self.own.namespace, service=self.own.service,
                                 port=self.own.port or self.settings.service_port or 80,
                                 client=f"{self.own.service}-load",
                                 waypoint=self.settings.waypoint or "", protocol=protocol)
        return RenderContext(namespace=self.server.namespace, service=self.server.name,
                             port=server_port("both", protocol), client=f"{self.server.name}-load",
                             waypoint=self.settings.waypoint or "", protocol=protocol)

    def check(self, spec: RunSpec) -> None:
        mode = spec.dim("mode", "both")
        if mode not in MODES:
            raise ProfileError(f"modes: {mode!r} is not a Kubernetes mode; choose one of "
                               f"{', '.join(MODES)}")
        n = self.settings.load_parallelism
        problems = []
        mesh = kubernetes_mesh(spec.mesh)
        problems += self._shape_problems(spec, mesh, mode)
        if mode in ("none", "client-only") and (self.own is not None or (
                mesh is not None and not mesh.skip_inbound_annotation)):
            problems.append(f"modes: {mode!r} needs a server port kept out of the data plane; "
                            f"{'the Service' if self.own else spec.mesh} has none: use "
                            f"server-only or both")
        if spec.connections % n:
            problems.append(f"loads.connections: {spec.connections} does not split evenly over "
                            f"topology.load_parallelism {n} fortio pods")
        if spec.max_requests is not None and (spec.max_requests % n or
                                              spec.max_requests < spec.connections):
            problems.append(f"loads.max_requests: {spec.max_requests} must be a multiple of "
                            f"topology.load_parallelism {n} and >= connections "
                            f"{spec.connections} (fortio -n per pod)")
        try:
            spec.body.decode("utf-8")
        except UnicodeDecodeError:
            problems.append("request.body: fortio's -payload takes text; this body is binary")
        if spec.protocol not in CLUSTER_PROTOCOLS or (self.own is not None and
                                                      spec.protocol != "http1"):
            speaks = "http1" if self.own is not None else ", ".join(CLUSTER_PROTOCOLS)
            why = {"h2": " (fortio's server speaks no TLS here: use h2c for HTTP/2)",
                   "tcp": " (the benchmark server opens no TCP echo port)"}.get(spec.protocol, "")
            problems.append(f"request.protocol: {spec.protocol}: the in-cluster fortio load "
                            f"speaks {speaks} {'to your Service' if self.own else ''}".rstrip()
                            + f"{why}; run this protocol with environment local")
        if problems:
            raise ProfileError(problems)
        if spec.policy is not None and spec.policy.features():
            if mesh is None:
                raise MeshError(f"mesh none cannot express policy {spec.policy.name!r}: "
                                f"{', '.join(spec.policy.features())} need a mesh; run the "
                                f"baseline without a policy")
            mesh.render(spec.policy, self.render_context(protocol=spec.protocol))

    def _shape_problems(self, spec: RunSpec, mesh: KubernetesMesh | None, mode: str) -> list[str]:
        out = shape_problems(spec.shape, rate_rps=spec.rate_rps, duration_s=spec.duration_s,
                             pods=self.settings.load_parallelism,
                             max_requests=spec.max_requests)
        client_sidecar, _ = mode_plan(mode)
        if (spec.shape.kind in SHAPE_NOTE and client_sidecar and mesh is not None
                and not mesh.native_job_sidecar):
            out.append(f"loads.shape: {spec.shape.kind} in mode {mode!r}: the phases run as "
                       f"init containers, which start before {mesh.name}'s sidecar and so "
                       f"cannot reach it; use mode server-only or none, or shape kind constant")
        return out

    # deploying -----------------------------------------------------------------------
    def _touch_namespace(self) -> None:
        """Remember how the namespace was before meshlab's first change (close restores it)."""
        if self._ns_before is not None:
            return
        ns = self.cluster.find("v1", "Namespace", self.server.namespace)
        self._created_namespace = ns is None
        meta = (ns or {}).get("metadata") or {}
        self._ns_before = {"labels": dict(meta.get("labels") or {}),
                           "annotations": dict(meta.get("annotations") or {})}
        self.cluster.ensure_namespace(self.server.namespace, labels=PART_OF)

    def _prepare_mesh(self, spec: RunSpec) -> KubernetesMesh | None:
        """Deploy the server and switch the namespace to the spec's mesh (once per mesh)."""
        mesh = kubernetes_mesh(spec.mesh)
        ns = self.server.namespace
        if self._mesh_name == spec.mesh:
            return mesh
        cluster = self.cluster
        check_pinned_version(cluster, mesh, self.settings.mesh_versions)
        if self.own is not None:
            self._mesh_name = None
            mesh = self.own.prepare(cluster, spec.mesh)
            self._mesh_name = spec.mesh
            return mesh
        self._touch_namespace()
        self._mesh_name = None          # until the switch completes
        if mesh is not None and mesh.detect(cluster) is None:
            raise MeshError(f"{mesh.name} is not installed in context {cluster.context!r}; "
                            f"run `meshlab mesh install {mesh.name}`")
        for other in kubernetes_meshes():
            if other.name != spec.mesh:
                self._restore_injection(other)
        if mesh is not None:
            mesh.enable_injection(cluster, ns)
        deploy_server(cluster, self.server,
                      pod_annotations=mesh.skip_inbound(DIRECT_PORTS) if mesh else None)
        roll_workloads(cluster, ns)
        bad = not_as_requested(cluster.pods(namespace=ns, selector={"app": self.server.name}),
                               mesh)
        if bad:
            raise MeshError(f"{len(bad)} pod(s) in {ns} are not ready in "
                            f"{mesh.name if mesh else 'no mesh'}: {', '.join(sorted(bad))}; "
                            f"check the injection webhook and that the rollout finished")
        self._mesh_name = spec.mesh
        return mesh

    def _restore_injection(self, mesh: KubernetesMesh) -> None:
        """Put a mesh's injection keys back to what the namespace had before meshlab."""
        assert self._ns_before is not None
        inj = mesh.injection()
        ns = self.cluster.find("v1", "Namespace", self.server.namespace)
        if ns is None:
            return
        meta = ns.get("metadata") or {}
        labels = {k: self._ns_before["labels"].get(k) for k in inj.labels
                  if (meta.get("labels") or {}).get(k) != self._ns_before["labels"].get(k)}
        ann = {k: self._ns_before["annotations"].get(k) for k in inj.annotations
               if (meta.get("annotations") or {}).get(k) != self._ns_before["annotations"].get(k)}
        if labels or ann:
            self.cluster.label_namespace(self.server.namespace, labels=labels or None,
                                         annotations=ann or None)

    def _deploy_sync(self, spec: RunSpec) -> KubernetesDeployment:
        mesh = self._prepare_mesh(spec)
        target = MeshTarget(self.cluster, self.render_context(protocol=spec.protocol))
        if mesh is not None:
            mesh.apply(target, spec.policy)      # all or nothing: apply_all rolls back
        with self._lock:
            self._targets.append((mesh, target))
        try:
            before = snapshot(self.cluster, [self.server.namespace], prefer=spec.mesh)
        except Exception:
            self.release(mesh, target)
            raise
        return KubernetesDeployment(self, spec, before, target, mesh)

    async def deploy(self, spec: RunSpec) -> Deployment:
        return await asyncio.to_thread(self._deploy_sync, spec)

    def release(self, mesh: KubernetesMesh | None, target: MeshTarget) -> None:
        """Remove the policy resources one deployment applied."""
        with self._lock:
            self._targets = [(m, t) for m, t in self._targets if t is not target]
        if mesh is not None:
            mesh.remove(target)

    # tearing down --------------------------------------------------------------------
    def _teardown(self) -> list[str]:
        """Undo what meshlab did; returns what could not be undone."""
        left: list[str] = []
        for mesh, target in list(self._targets):
            try:
                self.release(mesh, target)
            except MeshlabError as exc:
                left.append(f"policy resources {[m['kind'] for m in target.applied]}: {exc}")
        if self.own is not None:      # the user's namespace: load Jobs, then the pod templates
            return left + self.own.teardown(self.cluster, job_selector=PART_OF)
        if self.settings.keep or self._ns_before is None:
            return left
        cluster, ns = self.cluster, self.server.namespace
        try:
            if self._created_namespace:
                cluster.delete("v1", "Namespace", ns)
                return left
            # a namespace meshlab did not create: take back only what meshlab put there
            cluster.delete_all(server_manifests(self.server), namespace=ns)
            for job in cluster.list_objects("batch/v1", "Job", namespace=ns,
                                            selector=PART_OF):
                cluster.delete("batch/v1", "Job", job["metadata"]["name"], namespace=ns,
                               propagation="Background")
            for mesh in kubernetes_meshes():
                self._restore_injection(mesh)
        except MeshlabError as exc:
            left.append(f"namespace {ns}: {exc}")
        return left

    async def close(self) -> None:
        """Remove policies still applied, then the namespace when meshlab created it (else the
        server, load Jobs and injection settings it added); ClusterError lists what is left."""
        if self._cluster is None:
            return
        cluster = self._cluster
        try:
            left = await asyncio.to_thread(self._teardown)
        finally:
            with contextlib.suppress(Exception):
                cluster.close()
            self._cluster = None
            self._mesh_name = None
            self._ns_before = None
            self._created_namespace = False
        if left:
            raise ClusterError("meshlab could not remove everything it created in context "
                               f"{cluster.context!r}: " + "; ".join(left), reason="Leftovers")
