"""Istio on Kubernetes: PeerAuthentication, VirtualService, DestinationRule and an EnvoyFilter
for local rate limits (Istio has no rate-limit resource); installed with `istioctl`. Two data
planes: sidecars (`istio`) and ambient (`istio-ambient`: ztunnel, a waypoint for L7).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

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

_MTLS = {MtlsMode.OFF: "DISABLE", MtlsMode.PERMISSIVE: "PERMISSIVE", MtlsMode.STRICT: "STRICT"}
_LB = {"round_robin": "ROUND_ROBIN", "least_request": "LEAST_REQUEST", "random": "RANDOM"}


class IstioMesh(KubernetesMesh, Mesh[MeshTarget]):
    name = "istio"
    data_plane = "sidecar"
    cli = "istioctl"
    install_hint = "https://istio.io/latest/docs/setup/getting-started/#download"
    client_version_argv = ("istioctl", "version", "--remote=false", "--short")
    sidecar_containers: ClassVar[tuple[str, ...]] = ("istio-proxy",)
    control_plane_image = re.compile(r"(^|/)istio/pilot(:|@|$)|/pilot:|(^|/)istiod(:|@|$)")
    supported = frozenset({"mtls", "retries", "timeout", "circuit_breaker", "outlier_detection",
                           "fault.delay", "fault.abort", "rate_limit",
                           "load_balancing.round_robin", "load_balancing.least_request",
                           "load_balancing.random"})
    skip_inbound_annotation = "traffic.sidecar.istio.io/excludeInboundPorts"
    pod_opt_out = Injection(labels={"sidecar.istio.io/inject": "false"})
    job_sidecar_exit = Injection(annotations={"sidecar.istio.io/nativeSidecar": "true"})
    native_job_sidecar = True
    concurrency_annotation = "proxy.istio.io/config"
    mtls_resource = ("security.istio.io/v1", "PeerAuthentication")
    mtls_default = "PERMISSIVE (default)"
    request_metrics: ClassVar[RequestMetrics | None] = RequestMetrics(
        'istio_requests_total{{reporter="destination",destination_workload_namespace="{ns}"}}',
        'istio_request_duration_milliseconds_bucket{{reporter="destination",'
        'destination_workload_namespace="{ns}"}}')

    def __init__(self, *, profile: str = "default", revision: str | None = None) -> None:
        self.profile = profile
        self.revision = revision

    def describe(self) -> MeshInfo:
        return MeshInfo(**self.info_fields())

    def injection(self) -> Injection:
        if self.revision:
            return Injection(labels={"istio.io/rev": self.revision})
        return Injection(labels={"istio-injection": "enabled"})

    def workload_injection(self) -> Injection:
        if self.revision:
            return Injection(labels={"istio.io/rev": self.revision})
        return Injection(labels={"sidecar.istio.io/inject": "true"})

    def injection_enabled(self, namespace_meta: Mapping[str, Any]) -> bool:
        # a revision label (`istio.io/rev=canary`) turns injection on as well
        return (super().injection_enabled(namespace_meta)
                or "istio.io/rev" in (namespace_meta.get("labels") or {}))

    def read_mtls(self, resource: Manifest) -> str:
        return str(((resource.get("spec") or {}).get("mtls") or {}).get("mode", ""))

    def install_steps(self) -> list[CliStep]:
        argv = ["istioctl", "install", "-y", "--set", f"profile={self.profile}"]
        if self.revision:
            argv += ["--revision", self.revision]
        undo = ["istioctl", "uninstall", "-y",
                *(["--revision", self.revision] if self.revision else ["--purge"])]
        return [step(*argv, undo=undo), step("istioctl", "verify-install")]

    def uninstall_steps(self) -> list[CliStep]:
        return [step("istioctl", "uninstall", "--purge", "-y")]

    def upgrade_steps(self) -> list[CliStep]:
        profile = "ambient" if self.data_plane == "ambient" else self.profile
        return [step("istioctl", "upgrade", "-y", "--set", f"profile={profile}")]

    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        # gRPC is an `http` route to Istio: retryOn takes the gRPC codes by Envoy's names
        self.check_supported(policy, protocol=ctx.protocol)
        svc = ctx.target(policy)
        host = f"{svc}.{ctx.namespace}.svc.cluster.local"
        out: list[Manifest] = []
        if policy.mtls is not None:
            out.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": metadata(policy, ctx),
                        "spec": {"mtls": {"mode": _MTLS[policy.mtls]}}})
        route: dict[str, Any] = {}
        if policy.retries:
            r = policy.retries
            on: list[str] = [c for c in r.retry_on if c != "retriable-status-codes"]
            on += [str(c) for c in r.retriable_status_codes]
            retries: dict[str, Any] = {"attempts": r.attempts, "retryOn": ",".join(on)}
            if r.per_try_timeout_s:
                retries["perTryTimeout"] = go_duration(r.per_try_timeout_s)
            if r.backoff_base_s:
                retries["backoff"] = go_duration(r.backoff_base_s)
            route["retries"] = retries
        if policy.timeout:
            route["timeout"] = go_duration(policy.timeout.request_timeout_s)
        if policy.fault:
            fault: dict[str, Any] = {}
            if policy.fault.delay:
                fault["delay"] = {"fixedDelay": go_duration(policy.fault.delay.delay_s),
                                  "percentage": {"value": policy.fault.delay.percent}}
            if policy.fault.abort:
                fault["abort"] = {"httpStatus": policy.fault.abort.http_status,
                                  "percentage": {"value": policy.fault.abort.percent}}
            route["fault"] = fault
        if route:
            out.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                        "metadata": metadata(policy, ctx),
                        "spec": {"hosts": [host], "http": [
                            {**route, "route": [{"destination": {"host": host}}]}]}})
        tp = self._traffic_policy(policy)
        if tp:
            out.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                        "metadata": metadata(policy, ctx),
                        "spec": {"host": host, "trafficPolicy": tp}})
        if policy.rate_limit:
            out.append(self._rate_limit(policy, ctx, svc))
        return out

    def _traffic_policy(self, policy: TrafficPolicy) -> dict[str, Any]:
        tp: dict[str, Any] = {}
        cb = policy.circuit_breaker
        tcp: dict[str, Any] = {}
        http: dict[str, Any] = {}
        if policy.timeout and policy.timeout.idle_timeout_s:
            # VirtualService has no idle timeout; the upstream connection pool does
            http["idleTimeout"] = go_duration(policy.timeout.idle_timeout_s)
        if cb:
            if cb.max_connections:
                tcp["maxConnections"] = cb.max_connections
            http.update({k: v for k, v in (("http1MaxPendingRequests", cb.max_pending_requests),
                                           ("http2MaxRequests", cb.max_requests),
                                           ("maxRetries", cb.max_retries)) if v is not None})
        pool = {k: v for k, v in (("tcp", tcp), ("http", http)) if v}
        if pool:
            tp["connectionPool"] = pool
        if cb and cb.outlier_detection:
            od = cb.outlier_detection
            tp["outlierDetection"] = {"consecutive5xxErrors": od.consecutive_5xx,
                                      "interval": go_duration(od.interval_s),
                                      "baseEjectionTime": go_duration(od.base_ejection_s),
                                      "maxEjectionPercent": od.max_ejection_percent}
        if policy.load_balancing:
            tp["loadBalancer"] = {"simple": _LB[policy.load_balancing.algorithm]}
        return tp

    def _rate_limit(self, policy: TrafficPolicy, ctx: RenderContext, svc: str) -> Manifest:
        rl = policy.rate_limit
        assert rl is not None
        # a token bucket refilled every second with the per-second rate; burst = bucket size
        per_fill, interval_s = rate_as_count(self.name, policy, rl.requests_per_s)
        bucket = {"max_tokens": rl.burst or per_fill, "tokens_per_fill": per_fill,
                  "fill_interval": f"{interval_s}s"}
        pct = {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
               "runtime_key": "meshlab_rl"}
        value = {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
            "type_url": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3."
                        "LocalRateLimit",
            "value": {"stat_prefix": "http_local_rate_limiter", "token_bucket": bucket,
                      "filter_enabled": pct, "filter_enforced": pct,
                      "status": {"code": _envoy_status(rl.http_status)}}}}
        return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                "metadata": metadata(policy, ctx, "ratelimit"),
                "spec": {"workloadSelector": {"labels": {"app": svc}},
                         "configPatches": [{"applyTo": "HTTP_FILTER",
                                            "match": {"context": "SIDECAR_INBOUND",
                                                      "listener": {"filterChain": {"filter": {
                                                          "name": "envoy.filters.network."
                                                                  "http_connection_manager"}}}},
                                            "patch": {"operation": "INSERT_BEFORE",
                                                      "value": value}}]}}


_ENVOY_CODES = {429: "TooManyRequests", 503: "ServiceUnavailable", 500: "InternalServerError",
                502: "BadGateway", 504: "GatewayTimeout", 403: "Forbidden", 400: "BadRequest"}


def _envoy_status(code: int) -> str:
    try:
        return _ENVOY_CODES[code]
    except KeyError:
        raise MeshError(f"istio cannot express rate_limit.http_status {code}: it has no "
                        f"Envoy StatusCode name; use "
                        f"one of {', '.join(map(str, sorted(_ENVOY_CODES)))}") from None


_L4 = frozenset({"mtls"})                    # what ztunnel alone enforces
_WAYPOINT_CLASS = "istio-waypoint"


class IstioAmbientMesh(IstioMesh):
    """Istio's sidecar-less data plane: ztunnel per node carries L4 (mTLS); L7 policy needs a
    waypoint proxy, a Gateway API Gateway of class `istio-waypoint` that the Service is bound
    to (`istio.io/use-waypoint`). Without a waypoint, an L7 policy is an error naming both."""

    name = "istio-ambient"
    data_plane = "ambient"
    sidecar_containers = ()
    control_plane_image = re.compile(r"(^|/)istio/ztunnel(:|@|$)|/ztunnel:")
    supported = IstioMesh.supported - {"rate_limit"}     # EnvoyFilter targets sidecars only
    skip_inbound_annotation = ""
    pod_opt_out = Injection(labels={"istio.io/dataplane-mode": "none"})
    job_sidecar_exit = Injection()
    concurrency_annotation = ""
    mtls_default = "STRICT between ambient pods (ztunnel HBONE)"
    mtls_note = "ztunnel encrypts between ambient pods; PeerAuthentication sets the mode"
    request_metrics = None        # ztunnel reports TCP only; L7 series come from a waypoint

    def injection(self) -> Injection:
        return Injection(labels={"istio.io/dataplane-mode": "ambient"})

    def injection_enabled(self, namespace_meta: Mapping[str, Any]) -> bool:
        return KubernetesMesh.injection_enabled(self, namespace_meta)

    def workload_injection(self) -> Injection:
        return self.injection()

    def skip_inbound(self, ports: Sequence[int]) -> dict[str, str]:
        return {}        # ztunnel captures a pod's inbound traffic as a whole, not per port

    def pod_meshed(self, pod: Mapping[str, Any]) -> bool:
        ann = (pod.get("metadata") or {}).get("annotations") or {}
        return ann.get("ambient.istio.io/redirection") == "enabled"

    def install_steps(self) -> list[CliStep]:
        steps = super().install_steps()
        argv = [a if a != f"profile={self.profile}" else "profile=ambient"
                for a in steps[0].argv]
        return [step(*argv, undo=list(steps[0].undo or ())), *steps[1:]]

    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        l7 = sorted(set(policy.features()) - _L4)
        if l7 and not ctx.waypoint:
            raise MeshError(
                f"istio-ambient cannot express policy {policy.name!r} without a waypoint: "
                f"{', '.join(l7)} need an L7 proxy and the ambient data plane (ztunnel) is L4 "
                f"only; set topology.waypoint (a Gateway of class {_WAYPOINT_CLASS}) or use "
                f"mesh istio (sidecars)")
        out = super().render(policy, ctx)
        if not l7:
            return out
        gateway: Manifest = {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {**metadata(policy, ctx), "name": ctx.waypoint,
                         "labels": {**metadata(policy, ctx)["labels"],
                                    "istio.io/waypoint-for": "service"}},
            "spec": {"gatewayClassName": _WAYPOINT_CLASS, "listeners": [
                {"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}
        bind: Manifest = {"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": ctx.target(policy), "namespace": ctx.namespace,
                                       "labels": {"istio.io/use-waypoint": ctx.waypoint}}}
        return [gateway, bind, *out]
