"""Kuma on Kubernetes (targets the v2.14 policy API): MeshTLS, MeshRetry, MeshTimeout,
MeshCircuitBreaker, MeshFaultInjection, MeshRateLimit and MeshLoadBalancingStrategy in the
benchmark namespace; installed with `kumactl install control-plane` (output applied by meshlab).
"""

from __future__ import annotations

import re
from typing import Any

from meshlab.errors import MeshError
from meshlab.k8s.cluster import Manifest
from meshlab.k8s.prometheus import RequestMetrics
from meshlab.meshes.base import Mesh, MeshInfo
from meshlab.meshes.kubernetes import (
    CliStep,
    Injection,
    KubernetesMesh,
    MeshTarget,
    RenderContext,
    go_duration,
    metadata,
    rate_as_count,
    step,
)
from meshlab.policy import MtlsMode, TrafficPolicy

_API = "kuma.io/v1alpha1"
_RETRY_ON = {"5xx": "5XX", "gateway-error": "GatewayError", "reset": "Reset",
             "connect-failure": "ConnectFailure", "retriable-4xx": "Retriable4xx",
             "refused-stream": "RefusedStream"}
_GRPC_RETRY_ON = {"cancelled": "Canceled", "deadline-exceeded": "DeadlineExceeded",
                  "internal": "Internal", "resource-exhausted": "ResourceExhausted",
                  "unavailable": "Unavailable"}
_LB = {"round_robin": "RoundRobin", "least_request": "LeastRequest", "random": "Random"}


def _percent(p: float) -> int | str:
    return int(p) if float(p).is_integer() else f"{p:g}"


class KumaMesh(KubernetesMesh, Mesh[MeshTarget]):
    name = "kuma"
    cli = "kumactl"
    install_hint = "curl -L https://kuma.io/installer.sh | VERSION=2.14.3 sh -"
    client_version_argv = ("kumactl", "version")
    sidecar_containers = ("kuma-sidecar",)
    control_plane_image = re.compile(r"kumahq/kuma-cp(:|@|$)")
    supported = frozenset({"mtls", "retries", "timeout", "circuit_breaker", "outlier_detection",
                           "fault.delay", "fault.abort", "rate_limit",
                           "load_balancing.round_robin", "load_balancing.least_request",
                           "load_balancing.random"})
    mtls_note = "turned on in the Mesh object; MeshTLS picks strict or permissive"
    skip_inbound_annotation = "traffic.kuma.io/exclude-inbound-ports"
    pod_opt_out = Injection(labels={"kuma.io/sidecar-injection": "disabled"})
    job_sidecar_exit = Injection(annotations={"kuma.io/sidecar-drain-time": "1s"})
    mtls_resource = (_API, "MeshTLS")
    request_metrics = RequestMetrics('envoy_cluster_upstream_rq_total{{namespace="{ns}"}}',
                                     'envoy_cluster_upstream_rq_time_bucket{{namespace="{ns}"}}')

    def describe(self) -> MeshInfo:
        return MeshInfo(**self.info_fields())

    def injection(self) -> Injection:
        return Injection(labels={"kuma.io/sidecar-injection": "enabled"})

    def read_mtls(self, resource: Manifest) -> str:
        rules = (resource.get("spec") or {}).get("rules") or []
        return str((rules[0].get("default") or {}).get("mode", "")) if rules else ""

    def install_steps(self) -> list[CliStep]:
        return [step("kumactl", "install", "control-plane", apply_output=True)]

    def uninstall_steps(self) -> list[CliStep]:
        return [step("kumactl", "install", "control-plane", apply_output=True)]

    def upgrade_steps(self) -> list[CliStep]:     # Kuma upgrades by applying the new output
        return [step("kumactl", "install", "control-plane", apply_output=True)]

    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        extra = []
        if policy.mtls == MtlsMode.OFF:
            extra.append("mtls: off (turn mTLS off in the Mesh object, not with a policy)")
        if policy.rate_limit and policy.rate_limit.burst:
            extra.append("rate_limit.burst (Kuma counts requests per interval)")
        self.check_supported(policy, extra=extra, protocol=ctx.protocol)
        svc = ctx.target(policy)
        server = ({"kind": "Dataplane", "labels": {"app": svc}} if policy.service
                  else {"kind": "Mesh"})
        to = {"kind": "MeshService", "name": svc}
        out: list[Manifest] = []

        def add(kind: str, spec: dict[str, Any]) -> None:
            out.append({"apiVersion": _API, "kind": kind,
                        "metadata": metadata(policy, ctx, kind.lower().removeprefix("mesh"),
                                             labels={"kuma.io/mesh": ctx.mesh_name}),
                        "spec": spec})

        def outbound(default: dict[str, Any]) -> dict[str, Any]:
            return {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": to, "default": default}]}

        if policy.mtls is not None:
            add("MeshTLS", {"targetRef": server, "rules": [
                {"default": {"mode": "Strict" if policy.mtls == MtlsMode.STRICT
                             else "Permissive"}}]})
        if policy.retries and ctx.protocol == "grpc":
            add("MeshRetry", outbound({"grpc": self._grpc_retry(policy)}))
        elif policy.retries:
            r = policy.retries
            on = [_RETRY_ON[c] for c in r.retry_on if c != "retriable-status-codes"]
            on += [str(c) for c in r.retriable_status_codes]
            http: dict[str, Any] = {"numRetries": r.attempts, "retryOn": on}
            if r.per_try_timeout_s:
                http["perTryTimeout"] = go_duration(r.per_try_timeout_s)
            if r.backoff_base_s:
                http["backOff"] = {"baseInterval": go_duration(r.backoff_base_s)}
            add("MeshRetry", outbound({"http": http}))
        if policy.timeout:
            t = policy.timeout
            default: dict[str, Any] = {"http": {"requestTimeout":
                                                go_duration(t.request_timeout_s)}}
            if t.idle_timeout_s:
                default["idleTimeout"] = go_duration(t.idle_timeout_s)
            add("MeshTimeout", outbound(default))
        if policy.circuit_breaker:
            add("MeshCircuitBreaker", outbound(self._breaker(policy)))
        if policy.fault:
            f = policy.fault
            faults: list[dict[str, Any]] = []
            if f.delay:
                faults.append({"delay": {"value": go_duration(f.delay.delay_s),
                                         "percentage": _percent(f.delay.percent)}})
            if f.abort:
                faults.append({"abort": {"httpStatus": f.abort.http_status,
                                         "percentage": _percent(f.abort.percent)}})
            add("MeshFaultInjection", {"targetRef": server,
                                       "rules": [{"default": {"http": faults}}]})
        if policy.rate_limit:
            num, interval = rate_as_count(self.name, policy, policy.rate_limit.requests_per_s)
            add("MeshRateLimit", {"targetRef": server, "rules": [{"default": {"local": {"http": {
                "requestRate": {"num": num, "interval": f"{interval}s"},
                "onRateLimit": {"status": policy.rate_limit.http_status}}}}}]})
        if policy.load_balancing:
            add("MeshLoadBalancingStrategy", outbound(
                {"loadBalancer": {"type": _LB[policy.load_balancing.algorithm]}}))
        return out

    def _grpc_retry(self, policy: TrafficPolicy) -> dict[str, Any]:
        """MeshRetry's `grpc` section: it retries on gRPC status codes only."""
        r = policy.retries
        assert r is not None
        other = [c for c in r.retry_on if c not in _GRPC_RETRY_ON]
        if other:
            raise MeshError(f"kuma cannot express policy {policy.name!r} on protocol grpc: "
                            f"retries.retry_on {', '.join(other)} (MeshRetry's grpc section "
                            f"retries on {', '.join(sorted(_GRPC_RETRY_ON))} only)")
        grpc: dict[str, Any] = {"numRetries": r.attempts,
                                "retryOn": [_GRPC_RETRY_ON[c] for c in r.retry_on]}
        if r.per_try_timeout_s:
            grpc["perTryTimeout"] = go_duration(r.per_try_timeout_s)
        if r.backoff_base_s:
            grpc["backOff"] = {"baseInterval": go_duration(r.backoff_base_s)}
        return grpc

    def _breaker(self, policy: TrafficPolicy) -> dict[str, Any]:
        cb = policy.circuit_breaker
        assert cb is not None
        default: dict[str, Any] = {}
        limits = {k: v for k, v in (("maxConnections", cb.max_connections),
                                    ("maxPendingRequests", cb.max_pending_requests),
                                    ("maxRequests", cb.max_requests),
                                    ("maxRetries", cb.max_retries)) if v is not None}
        if limits:
            default["connectionLimits"] = limits
        if cb.outlier_detection:
            od = cb.outlier_detection
            default["outlierDetection"] = {
                "disabled": False, "interval": go_duration(od.interval_s),
                "baseEjectionTime": go_duration(od.base_ejection_s),
                "maxEjectionPercent": od.max_ejection_percent,
                "detectors": {"totalFailures": {"consecutive": od.consecutive_5xx}}}
        return default
