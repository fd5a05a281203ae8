"""In-cluster load: an Indexed Job of N fortio pods (`fortio load -json -`), each sending 1/N of
the rate over its share of the connections; results are read from the pods' logs, parsed by the
fortio importer (`meshlab.formats`) and merged into one run (histograms add exactly).
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
    protocol: str = "http1"          # or grpc: fortio's ping service (url is host:port)

    @property
    def job_name(self) -> str:
        return re.sub(r"[^a-z0-9-]", "-", f"meshlab-load-{self.run_id}".lower())[:63].strip("-")

    def fortio_argv(self) -> list[str]:
        n = self.parallelism
        qps = "-1" if self.rate_rps <= 0 else f"{self.rate_rps / n:g}"
        conns = max(self.connections // n, 1)
        argv = ["load", "-json", "-", "-qps", qps, "-c", str(conns)]
        if self.max_requests is not None:
            argv += ["-n", str(max(self.max_requests // n, conns))]
        else:
            argv += ["-t", f"{self.duration_s:g}s"]
        # one failed first call per connection must not abort the run: failures are data
        argv += ["-timeout", f"{self.timeout_s:g}s", "-allow-initial-errors",
                 "-loglevel", "Warning", "-labels", f"meshlab {self.phase} {self.run_id}"]
        if self.rate_rps > 0:
            argv.append("-uniform")
        if self.protocol == "grpc":
            argv += ["-grpc", "-ping"]
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
    pod["spec"]["containers"][0]["args"] = plan.fortio_argv()
    pod["metadata"].setdefault("labels", {}).update(plan.pod_labels)
    if plan.pod_annotations:
        pod["metadata"]["annotations"] = dict(plan.pod_annotations)
    if plan.load_node:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": plan.load_node}
    return job


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


def run_fortio_job(cluster: Cluster, plan: LoadPlan, *, timeout_s: float | None = None,
                   keep_job: bool = False, cancel: threading.Event | None = None) -> LoadOutcome:
    """Run the Job, wait for it, merge what its pods report; the Job (and its pods) is deleted
    afterwards, also when it failed or the wait was cancelled through `cancel`."""
    from meshlab.formats import import_results

    job = job_manifest(plan)
    wait = timeout_s or plan.duration_s * 3 + 120
    ref = f"Job {plan.namespace}/{plan.job_name}"
    cluster.apply(job)
    try:
        cluster.wait_job(plan.job_name, namespace=plan.namespace, timeout_s=wait, cancel=cancel)
        pods = cluster.pods(namespace=plan.namespace, selector={"job-name": plan.job_name})
        parts: list[RunResult] = []
        rows = []
        for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
            name = p["metadata"]["name"]
            if (p.get("status") or {}).get("phase") != "Succeeded":
                continue
            log = cluster.pod_logs(name, namespace=plan.namespace, container="fortio")
            try:
                (res,) = import_results(extract_fortio_json(log))[:1]
            except OutputParseError as exc:
                raise OutputParseError(f"{ref}: pod {name}: {exc}",
                                       excerpt=log[-300:]) from exc
            parts.append(res)
            rows.append({"pod": name, "node": (p.get("spec") or {}).get("nodeName", ""),
                         "requests": res.requests, "achieved_rate_rps": res.achieved_rate_rps,
                         "fortio_version": res.runner_version})
        if len(parts) < plan.parallelism:
            raise ClusterError(f"{ref}: only {len(parts)} of {plan.parallelism} load pods "
                               f"succeeded", reason="LoadIncomplete", resource=ref)
        merged = merge_results(parts, run_id=plan.run_id)
        nodes = sorted({r["node"] for r in rows if r["node"]})
        outcome = LoadOutcome(merged, rows, {n: node_usage(cluster, n) for n in nodes})
        if not any(outcome.node_load.values()):
            outcome.warnings.append("no metrics-server: load generator node usage not recorded")
        if plan.rate_rps > 0 and plan.max_requests is None and not math.isclose(
                merged.achieved_rate_rps, plan.rate_rps, rel_tol=0.05):
            outcome.warnings.append(f"achieved {merged.achieved_rate_rps:.1f} req/s of "
                                    f"{plan.rate_rps:g} requested")
        return outcome
    finally:
        if not keep_job:
            cluster.delete("batch/v1", "Job", plan.job_name, namespace=plan.namespace,
                           propagation="Background")
