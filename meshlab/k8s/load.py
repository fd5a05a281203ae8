"""In-cluster load: an Indexed Job of N fortio pods (`fortio load -json -`), each sending 1/N of
the rate over its share of the connections; a shaped load runs its phases one after the other in
each pod; results are read from the pods' logs and merged into one run (histograms add exactly).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshlab.errors import ClusterError, OutputParseError, RunnerError
from meshlab.k8s._api import Manifest
from meshlab.k8s.cluster import Cluster
from meshlab.k8s.phases import Phase, phase_series, unsent_requests
from meshlab.k8s.workload import DEFAULT_IMAGE, render_template
from meshlab.results import Histogram, RunResult


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One in-cluster load run."""

    run_id: str
    namespace: str
    url: str
    rate_rps: float                  # total; 0 = closed loop at max rate
    connections: int                 # total, split over the pods
    duration_s: float
    parallelism: int = 1
    timeout_s: float = 10.0
    image: str = DEFAULT_IMAGE
    # the mesh layer's word for this pod: opt out of injection, or let a Job finish beside its
    # sidecar (a mesh's native-sidecar annotation)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    load_node: str | None = None     # pin the pods to this node (dedicated load generator)
    cpu: str = "1"
    memory: str = "256Mi"
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    body: str = ""                   # fortio -payload (text)
    max_requests: int | None = None  # total; fortio -n, split over the pods
    phase: str = "measure"           # "warmup" Jobs are discarded
    protocol: str = "http1"          # h2c (fortio -h2), or grpc: fortio's ping service
    # a shaped load: constant-rate phases run one after the other in each pod (init containers
    # in order, the last phase in the main container: the fortio image has no shell); () = one
    phases: tuple[Phase, ...] = ()

    @property
    def job_name(self) -> str:
        return re.sub(r"[^a-z0-9-]", "-", f"meshlab-load-{self.run_id}".lower())[:63].strip("-")

    def fortio_argv(self, phase: Phase | None = None) -> list[str]:
        """One pod's `fortio load` arguments (for `phase` of a shaped load: its rate and
        duration, and its index in the labels)."""
        n = self.parallelism
        rate = self.rate_rps if phase is None else phase.rate_rps
        qps = "-1" if rate <= 0 else f"{rate / n:g}"
        conns = max(self.connections // n, 1)
        argv = ["load", "-json", "-", "-qps", qps, "-c", str(conns)]
        if self.max_requests is not None and phase is None:
            argv += ["-n", str(max(self.max_requests // n, conns))]
        else:
            argv += ["-t", f"{self.duration_s if phase is None else phase.duration_s:g}s"]
        label = f"meshlab {self.phase} {self.run_id}"
        if phase is not None:
            label += f" phase {self.phases.index(phase)}"
        # one failed first call per connection must not abort the run: failures are data
        argv += ["-timeout", f"{self.timeout_s:g}s", "-allow-initial-errors",
                 "-loglevel", "Warning", "-labels", label]
        if rate > 0:
            argv.append("-uniform")
        if self.protocol == "grpc":
            argv += ["-grpc", "-ping"]
        elif self.protocol == "h2c":      # HTTP/2 with prior knowledge to an http:// URL
            argv.append("-h2")
        for k, v in self.headers:
            argv += ["-H", f"{k}: {v}"]
        if self.body:
            argv += ["-payload", self.body]
        if self.protocol != "grpc" and (
                self.method not in ("GET", "POST") or (self.method == "POST") != bool(self.body)):
            argv += ["-X", self.method]
        return [*argv, self.url]


def job_manifest(plan: LoadPlan) -> Manifest:
    (job,) = render_template("load-job.yaml", {
        "name": plan.job_name, "namespace": plan.namespace, "run_id": plan.run_id,
        "parallelism": plan.parallelism, "qps": f"{plan.rate_rps / plan.parallelism:g}",
        "phase": plan.phase, "image": plan.image, "cpu": plan.cpu, "memory": plan.memory})
    pod = job["spec"]["template"]
    main = pod["spec"]["containers"][0]
    if plan.phases:
        # init containers run in order, each to completion: phase i's fortio starts when
        # phase i-1's ends, with no shell in the image (fortio's is FROM scratch)
        pod["spec"]["initContainers"] = [
            {**main, "name": phase_container(i, len(plan.phases)), "args": plan.fortio_argv(p)}
            for i, p in enumerate(plan.phases[:-1])]
        main["args"] = plan.fortio_argv(plan.phases[-1])
    else:
        main["args"] = plan.fortio_argv()
    pod["metadata"].setdefault("labels", {}).update(plan.pod_labels)
    if plan.pod_annotations:
        pod["metadata"]["annotations"] = dict(plan.pod_annotations)
    if plan.load_node:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": plan.load_node}
    return job


def phase_container(index: int, phases: int) -> str:
    """The container that runs phase `index` of `phases`: the last one is the pod's main
    container `fortio`, the ones before it init containers `fortio-phase-<index>`."""
    return "fortio" if index == phases - 1 else f"fortio-phase-{index}"


def extract_fortio_json(log: str) -> bytes:
    """The fortio result object in a pod log where stderr log lines surround the JSON."""
    decoder = json.JSONDecoder()
    found: Any = None
    for m in re.finditer(r"(?m)^\{", log):
        try:
            obj, _ = decoder.raw_decode(log, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "DurationHistogram" in obj:
            found = obj
    if found is None:
        raise OutputParseError("no fortio JSON result in the pod log", excerpt=log[-300:])
    return json.dumps(found).encode()


def merge_results(parts: Sequence[RunResult], *, run_id: str) -> RunResult:
    """One run from the per-pod runs: counts and histograms add, rates add, the window spans
    the earliest start to the latest end. RunnerError when there is no part."""
    if not parts:
        raise RunnerError(f"run {run_id}: no fortio result to merge; every load pod must "
                          f"report one (see the Job's pod logs)")
    codes: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    for p in parts:
        codes.update(p.status_codes)
        kinds.update(p.error_kinds)
    first = parts[0]
    return dataclasses.replace(
        first, run_id=run_id, started_at=min(p.started_at for p in parts),
        ended_at=max(p.ended_at for p in parts),
        duration_s=max(p.duration_s for p in parts),
        achieved_rate_rps=sum(p.achieved_rate_rps for p in parts),
        requested_rate_rps=sum(p.requested_rate_rps for p in parts),
        requests=sum(p.requests for p in parts), errors=sum(p.errors for p in parts),
        status_codes=dict(codes), error_kinds=dict(kinds),
        latency=Histogram.merged(p.latency for p in parts),
        service_time=Histogram.merged(p.service_time for p in parts),
        timeseries=[], bytes_received=sum(p.bytes_received for p in parts),
        context={"load_generator": "fortio", "load_pods": len(parts),
                 "latency_corrected": False},   # fortio times each call from its actual send
        warnings=list(dict.fromkeys(w for p in parts for w in p.warnings)), raw=None)


def merge_phases(phases: Sequence[Phase], per_phase: Sequence[Sequence[RunResult]], *,
                 run_id: str) -> RunResult:
    """One run from a shaped load's phases (each a list of per-pod results): the pods of a
    phase merge in parallel, the phases in sequence (histograms and counts add, durations add),
    with the per-second series and the unsent requests rebuilt from the phases."""
    merged = [merge_results(parts, run_id=run_id) for parts in per_phase]
    whole = merge_results(merged, run_id=run_id)
    sent = [m.requests for m in merged]
    unsent = unsent_requests(phases, sent)
    duration_s = sum(m.duration_s for m in merged)
    planned_s = sum(p.duration_s for p in phases)
    whole.duration_s = duration_s
    whole.achieved_rate_rps = whole.requests / duration_s if duration_s > 0 else 0.0
    whole.requested_rate_rps = sum(p.rate_rps * p.duration_s for p in phases) / planned_s
    whole.timeseries = phase_series(phases, merged)
    whole.unsent_requests = sum(unsent)
    whole.context["load_pods"] = len(per_phase[0])
    whole.context["load_phases"] = [
        {"offset_s": p.offset_s, "duration_s": p.duration_s, "rate_rps": p.rate_rps,
         "due_requests": p.due_requests, "requests": m.requests, "errors": m.errors,
         "unsent_requests": u, "measured_duration_s": m.duration_s}
        for p, m, u in zip(phases, merged, unsent, strict=True)]
    return whole


@dataclass(slots=True)
class LoadOutcome:
    result: RunResult
    pods: list[dict[str, Any]] = field(default_factory=list)   # name, node, requests
    node_load: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def node_usage(cluster: Cluster, node: str) -> dict[str, str]:
    """CPU and memory in use on a node (metrics-server); {} when the cluster has none."""
    try:
        doc = cluster.api.request("GET", f"/apis/metrics.k8s.io/v1beta1/nodes/{node}",
                                  resource=f"NodeMetrics {node}")
    except ClusterError:
        return {}
    return {k: str(v) for k, v in (doc.get("usage") or {}).items()}


def _pod_result(cluster: Cluster, plan: LoadPlan, pod: str, container: str,
                ref: str) -> RunResult:
    """The fortio result one container of a load pod printed."""
    from meshlab.formats import import_results

    log = cluster.pod_logs(pod, namespace=plan.namespace, container=container)
    try:
        (res,) = import_results(extract_fortio_json(log))[:1]
    except OutputParseError as exc:
        raise OutputParseError(f"{ref}: pod {pod} container {container}: {exc}",
                               excerpt=log[-300:]) from exc
    return res


def run_fortio_job(cluster: Cluster, plan: LoadPlan, *, timeout_s: float | None = None,
                   keep_job: bool = False, cancel: threading.Event | None = None) -> LoadOutcome:
    """Run the Job, wait for it, merge what its pods report; the Job (and its pods) is deleted
    afterwards, also when it failed or the wait was cancelled through `cancel`."""
    job = job_manifest(plan)
    wait = timeout_s or plan.duration_s * 3 + 120 + 5 * len(plan.phases)   # a start each
    ref = f"Job {plan.namespace}/{plan.job_name}"
    cluster.apply(job)
    try:
        cluster.wait_job(plan.job_name, namespace=plan.namespace, timeout_s=wait, cancel=cancel)
        pods = cluster.pods(namespace=plan.namespace, selector={"job-name": plan.job_name})
        phases = len(plan.phases) or 1
        per_phase: list[list[RunResult]] = [[] for _ in range(phases)]
        rows = []
        for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
            name = p["metadata"]["name"]
            if (p.get("status") or {}).get("phase") != "Succeeded":
                continue
            got = [_pod_result(cluster, plan, name, phase_container(i, phases), ref)
                   for i in range(phases)]
            for i, res in enumerate(got):
                per_phase[i].append(res)
            rows.append({"pod": name, "node": (p.get("spec") or {}).get("nodeName", ""),
                         "requests": sum(r.requests for r in got),
                         "achieved_rate_rps": got[-1].achieved_rate_rps if phases == 1 else
                         sum(r.requests for r in got) / max(sum(r.duration_s for r in got),
                                                            1e-9),
                         "fortio_version": got[0].runner_version})
        if len(per_phase[0]) < plan.parallelism:
            raise ClusterError(f"{ref}: only {len(per_phase[0])} of {plan.parallelism} load "
                               f"pods succeeded", reason="LoadIncomplete", resource=ref)
        merged = (merge_phases(plan.phases, per_phase, run_id=plan.run_id) if plan.phases
                  else merge_results(per_phase[0], run_id=plan.run_id))
        nodes = sorted({r["node"] for r in rows if r["node"]})
        outcome = LoadOutcome(merged, rows, {n: node_usage(cluster, n) for n in nodes})
        if not any(outcome.node_load.values()):
            outcome.warnings.append("no metrics-server: load generator node usage not recorded")
        if plan.phases and merged.unsent_requests:
            outcome.warnings.append(f"{merged.unsent_requests} requests the shape made due "
                                    f"were never sent (fortio -qps fell behind)")
        elif plan.rate_rps > 0 and plan.max_requests is None and not math.isclose(
                merged.achieved_rate_rps, merged.requested_rate_rps, rel_tol=0.05):
            outcome.warnings.append(f"achieved {merged.achieved_rate_rps:.1f} req/s of "
                                    f"{merged.requested_rate_rps:g} requested")
        return outcome
    finally:
        if not keep_job:
            cluster.delete("batch/v1", "Job", plan.job_name, namespace=plan.namespace,
                           propagation="Background")
