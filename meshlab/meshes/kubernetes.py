"""What every Kubernetes mesh adapter shares: what marks its proxies, pods and mTLS in a cluster
(detection), install/uninstall through the mesh's CLI (dry run, rollback), injection, and
policies applied with rollback.
"""

from __future__ import annotations

import abc
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from meshlab.errors import ClusterError, MeshError
from meshlab.k8s.cluster import ApplyLog, Cluster, Manifest
from meshlab.k8s.images import control_plane_images, image_version
from meshlab.k8s.prometheus import RequestMetrics
from meshlab.policy import TrafficPolicy, protocol_problems

POLICY_LABEL = "meshlab.io/policy"
POLICY_MANAGER = "meshlab-policy"     # field manager of policies; workloads use "meshlab"
PARTIAL_KINDS = frozenset({"Service"})  # policies only add annotations to these


@dataclass(frozen=True, slots=True)
class RenderContext:
    """Where a policy lands: the benchmark namespace, the server service and its port, and the
    client workload (some meshes configure upstream limits on the caller)."""

    namespace: str = "meshlab-bench"
    service: str = "meshlab-server"
    port: int = 8080
    client: str = "meshlab-client"
    mesh_name: str = "default"          # Kuma's Mesh
    waypoint: str = ""                  # Istio ambient: the waypoint Gateway's name, "" = none
    protocol: str = "http1"             # what the load speaks (grpc: gRPC routes and codes)

    def target(self, policy: TrafficPolicy) -> str:
        return policy.service or self.service


@dataclass(frozen=True, slots=True)
class MeshInstallation:
    """A mesh found in a cluster, named from its control-plane images (not pod names)."""

    mesh: str
    version: str
    namespace: str
    images: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"mesh": self.mesh, "version": self.version, "namespace": self.namespace,
                "images": list(self.images)}


@dataclass(frozen=True, slots=True)
class Injection:
    """How a namespace opts in to sidecar injection."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CliStep:
    """One mesh-CLI command; `apply_output`: its stdout is manifests for meshlab to apply;
    `undo`: the command that takes back what the step changed by itself (run when a later
    install step fails)."""

    argv: tuple[str, ...]
    apply_output: bool = False
    undo: tuple[str, ...] = ()

    def show(self, *, delete: bool = False) -> str:
        cmd = " ".join(self.argv)
        if self.apply_output:
            return f"{cmd}  # output {'deleted' if delete else 'server-side applied'} by meshlab"
        return cmd


def step(*argv: str, apply_output: bool = False, undo: Sequence[str] = ()) -> CliStep:
    return CliStep(tuple(argv), apply_output, tuple(undo))


def _run(argv: Sequence[str], *, timeout_s: float) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise MeshError(f"{' '.join(argv)!r} did not finish in {timeout_s:g} s") from exc
    except OSError as exc:
        raise MeshError(f"{' '.join(argv)!r} could not start: {exc}") from exc
    if proc.returncode != 0:
        raise MeshError(f"{' '.join(argv)!r} exited with code {proc.returncode}: "
                        f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def go_duration(seconds: float) -> str:
    """`2s`, `250ms`: whole seconds or milliseconds, a form every mesh (and the Gateway API
    pattern `^([0-9]{1,5}(h|m|s|ms)){1,4}$`) accepts."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(round(seconds * 1000), 1)}ms"


def rate_as_count(mesh: str, policy: TrafficPolicy, requests_per_s: float) -> tuple[int, int]:
    """A rate as `num` requests per whole-second `interval` (2.5/s -> 5 per 2 s), exactly."""
    for interval in range(1, 61):
        num = requests_per_s * interval
        if abs(num - round(num)) < 1e-9 and round(num) >= 1:
            return round(num), interval
    raise MeshError(f"{mesh} cannot express policy {policy.name!r}: rate_limit.requests_per_s "
                    f"{requests_per_s:g} cannot be written as whole requests per 1-60 s; round it")


def whole_rate(mesh: str, policy: TrafficPolicy, requests_per_s: float) -> int:
    """Meshes that count whole requests per second (Linkerd, Consul)."""
    if not float(requests_per_s).is_integer():
        raise MeshError(f"{mesh} cannot express policy {policy.name!r}: its rate limits are "
                        f"whole requests per second and rate_limit.requests_per_s "
                        f"{requests_per_s:g} is not")
    return int(requests_per_s)


def policy_name(policy: TrafficPolicy, suffix: str = "") -> str:
    base = re.sub(r"[^a-z0-9-]", "-", f"meshlab-{policy.name}".lower()).strip("-")
    return (f"{base}-{suffix}" if suffix else base)[:63].strip("-")


def metadata(policy: TrafficPolicy, ctx: RenderContext, suffix: str = "", *,
             namespace: str | None = None, labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": policy_name(policy, suffix),
                            "namespace": namespace or ctx.namespace,
                            "labels": {"app.kubernetes.io/managed-by": "meshlab",
                                       POLICY_LABEL: policy.name, **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


@dataclass(slots=True)
class MeshTarget:
    """What a Kubernetes mesh adapter acts on: a cluster, where policies land, and what it
    applied there (so `remove` can take it back)."""

    cluster: Cluster
    ctx: RenderContext
    applied: list[Manifest] = field(default_factory=list)


class KubernetesMesh(abc.ABC):
    """A service mesh on Kubernetes, driven through its CLI and its custom resources.

    Adapters combine it with `meshlab.meshes.base.Mesh[MeshTarget]`: `apply` and `remove` here
    satisfy that interface; `info_fields()` feeds their `describe()`."""

    name: ClassVar[str]
    data_plane: ClassVar[str] = "sidecar"        # "sidecar" | "ambient"
    cli: ClassVar[str]
    install_hint: ClassVar[str]
    sidecar_containers: ClassVar[tuple[str, ...]]
    control_plane_image: ClassVar[re.Pattern[str]]   # matches the image repo of the control plane
    supported: ClassVar[frozenset[str]]               # TrafficPolicy.features() it can express
    mtls_note: ClassVar[str] = ""
    # how a pod talks to this mesh: keep inbound ports out of the sidecar, opt out of
    # injection, let a Job's pod finish beside its sidecar, size the proxy
    skip_inbound_annotation: ClassVar[str]
    pod_opt_out: ClassVar[Injection]
    job_sidecar_exit: ClassVar[Injection] = Injection()
    # whether a load pod's init containers reach the mesh (its Job sidecar is a native sidecar,
    # started before them, or there is no sidecar): a shaped load runs its phases there
    native_job_sidecar: ClassVar[bool] = False
    concurrency_annotation: ClassVar[str] = ""
    # what the cluster says about mTLS: the resource declaring the mode (apiVersion, kind) or
    # None when the mesh always encrypts; `mtls_default` when nothing declares a mode
    mtls_resource: ClassVar[tuple[str, str] | None] = None
    mtls_default: ClassVar[str] = ""
    request_metrics: ClassVar[RequestMetrics | None] = None   # the mesh's own Prometheus series
    client_version_argv: ClassVar[tuple[str, ...]] = ()       # prints the CLI's own release

    # --- pure parts: tested without a cluster -------------------------------------------
    @abc.abstractmethod
    def injection(self) -> Injection:
        """The namespace label/annotation that turns on sidecar injection."""

    @abc.abstractmethod
    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        """The mesh's own resources for `policy`; MeshError when it cannot express it."""

    @abc.abstractmethod
    def install_steps(self) -> list[CliStep]:
        """CLI steps that install the mesh (some print manifests meshlab applies itself)."""

    @abc.abstractmethod
    def uninstall_steps(self) -> list[CliStep]:
        """CLI steps that remove it."""

    def upgrade_steps(self) -> list[CliStep]:
        """CLI steps that upgrade it in place to the CLI's release ([]: not supported)."""
        return []

    def check_supported(self, policy: TrafficPolicy, *, extra: Sequence[str] = (),
                        protocol: str = "http1") -> None:
        wrong = protocol_problems(policy, protocol)
        if wrong:
            raise MeshError(f"{self.name} cannot express policy {policy.name!r} on protocol "
                            f"{protocol}: " + "; ".join(f"{f} ({why})" for f, why in wrong))
        missing = [*policy.unsupported(self.supported), *extra]
        if missing:
            raise MeshError(
                f"{self.name} cannot express policy {policy.name!r}: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not supported by {self.name} "
                f"(supported: {', '.join(sorted(self.supported))}); remove "
                f"{'it' if len(missing) == 1 else 'them'} from the policy or use another mesh")

    def detect_images(self, images: Mapping[str, str]) -> MeshInstallation | None:
        """From `{image: namespace}` of every control-plane container, this mesh or None."""
        mine = sorted(i for i in images if self.control_plane_image.search(i))
        if not mine:
            return None
        versions = sorted({image_version(i) for i in mine})
        return MeshInstallation(self.name, versions[-1] if len(versions) == 1 else
                                ",".join(versions), images[mine[0]], tuple(mine))

    def workload_injection(self) -> Injection:
        """The pod-template label/annotation that puts one workload in this mesh."""
        return self.injection()

    def pod_meshed(self, pod: Mapping[str, Any]) -> bool:
        """Whether a pod runs in this mesh's data plane (default: it has this mesh's sidecar,
        native sidecars included)."""
        spec = pod.get("spec") or {}
        names = {c.get("name") for c in [*(spec.get("containers") or []),
                                          *(spec.get("initContainers") or [])]}
        return bool(names & set(self.sidecar_containers))

    def skip_inbound(self, ports: Sequence[int]) -> dict[str, str]:
        """Pod annotations that keep `ports` out of the sidecar's inbound capture."""
        return {self.skip_inbound_annotation: ",".join(str(p) for p in ports)}

    def injection_enabled(self, namespace_meta: Mapping[str, Any]) -> bool:
        """Whether a namespace's metadata turns on this mesh's injection."""
        inj = self.injection()
        labels = namespace_meta.get("labels") or {}
        ann = namespace_meta.get("annotations") or {}
        return (all(labels.get(k) == v for k, v in inj.labels.items())
                and all(ann.get(k) == v for k, v in inj.annotations.items()))

    def injection_hint(self) -> str:
        """`label istio-injection=enabled`: what to set on a namespace."""
        inj = self.injection()
        return ", ".join([*(f"label {k}={v}" for k, v in inj.labels.items()),
                          *(f"annotation {k}={v}" for k, v in inj.annotations.items())])

    def read_mtls(self, resource: Manifest) -> str:
        """The mode one `mtls_resource` object declares ("" when it declares none)."""
        return ""

    # --- cluster parts -------------------------------------------------------------------
    def detect(self, cluster: Cluster) -> MeshInstallation | None:
        return self.detect_images(control_plane_images(cluster))

    def observed_mtls(self, cluster: Cluster, namespaces: Sequence[str]) -> str:
        """The mTLS mode this mesh's own resources declare for `namespaces` (upper case,
        comma-joined when they differ), else `mtls_default`."""
        if self.mtls_resource is None:
            return self.mtls_default
        api_version, kind = self.mtls_resource
        modes: set[str] = set()
        for ns in namespaces:
            try:
                objs = cluster.list_objects(api_version, kind, namespace=ns)
            except ClusterError:          # CRD not served: nothing declared
                continue
            modes.update(self.read_mtls(o).upper() for o in objs)
        return ",".join(sorted(m for m in modes if m)) or self.mtls_default

    def run_steps(self, steps: Sequence[CliStep], *, cluster: Cluster | None = None,
                  dry_run: bool = False, delete: bool = False,
                  timeout_s: float = 600.0) -> list[str]:
        """Run CLI steps in order; a step with `apply_output` prints manifests that meshlab
        server-side applies (or deletes, for uninstall) itself instead of piping to kubectl.
        With `dry_run` nothing runs: the commands are returned as they would run.

        Installing is all or nothing: when a step fails, what the earlier steps applied is
        taken back, newest first (objects meshlab applied are deleted or restored, a step's
        `undo` command is run), and MeshError says what failed and what was rolled back."""
        shown = [s.show(delete=delete) for s in steps]
        if dry_run:
            return shown
        if shutil.which(self.cli) is None:
            raise MeshError(f"{self.cli} not found on PATH; install it ({self.install_hint}) or "
                            f"use --dry-run to see the commands")
        if cluster is None and any(s.apply_output for s in steps):
            raise MeshError(f"{self.name}: {next(s for s in steps if s.apply_output).show()} "
                            f"needs a cluster to apply its output; pass cluster=...")
        log = ApplyLog()
        done: list[CliStep] = []
        for st in steps:
            try:
                out = _run(st.argv, timeout_s=timeout_s)
                if st.apply_output and cluster is not None:
                    docs = [d for d in yaml.safe_load_all(out) if isinstance(d, dict) and d]
                    if delete:
                        cluster.delete_all(docs)
                    else:
                        cluster.apply_all(docs, log=log)    # a failing doc undoes its step
            except (MeshError, ClusterError, yaml.YAMLError) as exc:
                if isinstance(exc, ClusterError):     # what the failed step's own undo left
                    log.left.extend(exc.not_restored)
                if delete:
                    raise MeshError(f"{self.name} uninstall stopped at {st.show(delete=True)!r}: "
                                    f"{exc}; run it again once the cause is fixed") from exc
                raise MeshError(f"{self.name} install failed at {' '.join(st.argv)!r}: {exc}; "
                                f"{self._roll_back(cluster, log, done, timeout_s)}") from exc
            done.append(st)
        return shown

    def _roll_back(self, cluster: Cluster | None, log: ApplyLog, done: Sequence[CliStep],
                   timeout_s: float) -> str:
        """Undo the completed install steps, newest first; says what was and was not undone."""
        n = len(log)
        stuck_objects = cluster.undo(log) if cluster is not None else []
        left = [*stuck_objects, *log.left]
        undone, stuck = [], []
        for st in reversed(done):
            if not st.undo:
                continue
            try:
                _run(st.undo, timeout_s=timeout_s)
                undone.append(" ".join(st.undo))
            except MeshError as exc:
                stuck.append(f"{' '.join(st.undo)!r} failed ({exc})")
        parts = [f"rolled back {n - len(stuck_objects)} object(s) meshlab had applied"]
        parts += [f"ran {u!r}" for u in undone]
        if left or stuck:
            parts.append(f"NOT rolled back: {', '.join([*left, *stuck])}; remove by hand or "
                         f"run `meshlab mesh uninstall {self.name}`")
        return "; ".join(parts)

    def install(self, cluster: Cluster | None = None, *, dry_run: bool = False) -> list[str]:
        return self.run_steps(self.install_steps(), cluster=cluster, dry_run=dry_run)

    def uninstall(self, cluster: Cluster | None = None, *, dry_run: bool = False) -> list[str]:
        return self.run_steps(self.uninstall_steps(), cluster=cluster, dry_run=dry_run,
                              delete=True)

    def enable_injection(self, cluster: Cluster, namespace: str) -> None:
        inj = self.injection()
        cluster.ensure_namespace(namespace)
        cluster.label_namespace(namespace, labels=dict(inj.labels) or None,
                                annotations=dict(inj.annotations) or None)

    def disable_injection(self, cluster: Cluster, namespace: str) -> None:
        inj = self.injection()
        cluster.label_namespace(namespace, labels=dict.fromkeys(inj.labels) or None,
                                annotations=dict.fromkeys(inj.annotations) or None)

    def apply_policy(self, cluster: Cluster, policy: TrafficPolicy,
                     ctx: RenderContext) -> list[Manifest]:
        """Render and apply; on any failure the resources applied so far are rolled back, and
        the error names each one the rollback could not restore."""
        manifests = self.render(policy, ctx)
        try:
            cluster.apply_all(manifests, namespace=ctx.namespace, field_manager=POLICY_MANAGER)
        except ClusterError as exc:
            if exc.not_restored:
                raise MeshError(
                    f"applying {self.name} policy {policy.name!r} failed: {exc}; NOT rolled "
                    f"back: {', '.join(exc.not_restored)}; restore or delete them by hand"
                ) from exc
            raise MeshError(f"applying {self.name} policy {policy.name!r} failed and was rolled "
                            f"back: {exc}") from exc
        return manifests

    def apply(self, environment: MeshTarget, policy: TrafficPolicy | None = None) -> None:
        """Apply `policy` as this mesh's resources (nothing for None); remembered for remove."""
        if policy is None or not policy.features():
            return
        environment.applied.extend(self.apply_policy(environment.cluster, policy,
                                                     environment.ctx))

    def remove(self, environment: MeshTarget) -> None:
        """Remove every policy resource applied through `apply`."""
        applied, environment.applied = list(environment.applied), []
        self.remove_policy(environment.cluster, applied)

    def info_fields(self, version: str = "") -> dict[str, Any]:
        return {"name": self.name, "kind": "kubernetes", "version": version,
                "supported": self.supported,
                "modes": ("none", "server-only", "client-only", "both"),
                "details": {"cli": self.cli, "sidecars": list(self.sidecar_containers),
                            "injection": {**self.injection().labels,
                                          **self.injection().annotations},
                            "mtls": self.mtls_note}}

    def remove_policy(self, cluster: Cluster, manifests: Sequence[Manifest]) -> int:
        """Delete what `apply_policy` created; partial applies to objects meshlab does not own
        as a whole (annotations on a Service) are withdrawn by applying an empty config."""
        n = 0
        for m in reversed(list(manifests)):
            if m["kind"] in PARTIAL_KINDS:
                meta = m["metadata"]
                cluster.apply({"apiVersion": m["apiVersion"], "kind": m["kind"],
                               "metadata": {"name": meta["name"],
                                            "namespace": meta.get("namespace")}},
                              field_manager=POLICY_MANAGER)
                n += 1
            else:
                n += cluster.delete_all([m])
        return n
