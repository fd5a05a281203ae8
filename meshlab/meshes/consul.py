"""Consul on Kubernetes: ServiceDefaults (mTLS, rate limit, upstream limits), ServiceRouter,
ServiceResolver and ServiceIntentions config entries; installed with `consul-k8s install`.
"""

from __future__ import annotations

import re
from typing import Any

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
    step,
    whole_rate,
)
from meshlab.policy import MtlsMode, TrafficPolicy

_API = "consul.hashicorp.com/v1alpha1"
_PROTOCOL = {"http1": "http", "h2c": "http2", "h2": "http2", "grpc": "grpc", "tcp": "tcp"}
"""ServiceDefaults `protocol` per load protocol (Consul's names)."""


class ConsulMesh(KubernetesMesh, Mesh[MeshTarget]):
    name = "consul"
    cli = "consul-k8s"
    install_hint = "https://developer.hashicorp.com/consul/docs/k8s/installation/install-cli"
    client_version_argv = ("consul-k8s", "version")
    sidecar_containers = ("consul-dataplane", "envoy-sidecar")
    control_plane_image = re.compile(r"hashicorp/consul(-k8s-control-plane|-enterprise)?(:|@|$)")
    supported = frozenset({"mtls", "retries", "timeout", "circuit_breaker", "outlier_detection",
                           "rate_limit", "load_balancing.round_robin",
                           "load_balancing.least_request", "load_balancing.random"})
    mtls_note = "always on; strict refuses plaintext (Consul >= 1.16 mutualTLSMode)"
    skip_inbound_annotation = "consul.hashicorp.com/transparent-proxy-exclude-inbound-ports"
    pod_opt_out = Injection(annotations={"consul.hashicorp.com/connect-inject": "false"})
    job_sidecar_exit = Injection(annotations={
        "consul.hashicorp.com/enable-sidecar-proxy-lifecycle": "true"})
    mtls_default = "on (always)"
    request_metrics = RequestMetrics('envoy_cluster_upstream_rq_total{{namespace="{ns}"}}',
                                     'envoy_cluster_upstream_rq_time_bucket{{namespace="{ns}"}}')

    def describe(self) -> MeshInfo:
        return MeshInfo(**self.info_fields())

    def injection(self) -> Injection:
        # the connect-inject webhook honours this namespace annotation like the pod one
        return Injection(annotations={"consul.hashicorp.com/connect-inject": "true"})

    def install_steps(self) -> list[CliStep]:
        return [step("consul-k8s", "install", "-auto-approve", "-set",
                     "connectInject.enabled=true", "-set", "global.name=consul")]

    def uninstall_steps(self) -> list[CliStep]:
        return [step("consul-k8s", "uninstall", "-auto-approve", "-wipe-data")]

    def upgrade_steps(self) -> list[CliStep]:
        return [step("consul-k8s", "upgrade", "-auto-approve")]

    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        extra = []
        if policy.mtls == MtlsMode.OFF:
            extra.append("mtls: off (Consul service mesh always uses mTLS)")
        r = policy.retries
        if r and r.per_try_timeout_s:
            extra.append("retries.per_try_timeout_s")
        if r and r.backoff_base_s:
            extra.append("retries.backoff_base_s")
        if policy.circuit_breaker and policy.circuit_breaker.max_retries is not None:
            extra.append("circuit_breaker.max_retries")
        if policy.rate_limit and policy.rate_limit.http_status != 429:
            extra.append("rate_limit.http_status other than 429")
        self.check_supported(policy, extra=extra, protocol=ctx.protocol)
        svc = ctx.target(policy)
        out: list[Manifest] = []
        # config entries are keyed by service name, so metadata.name is the service; the
        # protocol makes a router possible (http, http2, grpc) and gRPC retryOn values count
        protocol = _PROTOCOL.get(ctx.protocol, "http")
        defaults: dict[str, Any] = {"protocol": protocol}
        if policy.mtls is not None:
            defaults["mutualTLSMode"] = str(policy.mtls)
        if policy.rate_limit:
            rl = policy.rate_limit
            rps = whole_rate(self.name, policy, rl.requests_per_s)
            inst: dict[str, Any] = {"requestsPerSecond": rps}
            if rl.burst:
                inst["requestsMaxBurst"] = rl.burst
            defaults["rateLimits"] = {"instanceLevel": inst}
        out.append(self._entry("ServiceDefaults", svc, policy, ctx, defaults))
        cb = policy.circuit_breaker
        if cb:
            override: dict[str, Any] = {"name": svc}
            limits = {k: v for k, v in (("maxConnections", cb.max_connections),
                                        ("maxPendingRequests", cb.max_pending_requests),
                                        ("maxConcurrentRequests", cb.max_requests)) if v}
            if limits:
                override["limits"] = limits
            if cb.outlier_detection:
                od = cb.outlier_detection
                override["passiveHealthCheck"] = {
                    "interval": go_duration(od.interval_s), "maxFailures": od.consecutive_5xx,
                    "enforcingConsecutive5xx": 100, "maxEjectionPercent": od.max_ejection_percent,
                    "baseEjectionTime": go_duration(od.base_ejection_s)}
            out.append(self._entry("ServiceDefaults", ctx.client, policy, ctx,
                                   {"protocol": protocol,
                                    "upstreamConfig": {"overrides": [override]}}))
        if r or policy.timeout:
            dest: dict[str, Any] = {"service": svc}
            if policy.timeout:
                dest["requestTimeout"] = go_duration(policy.timeout.request_timeout_s)
                if policy.timeout.idle_timeout_s:
                    dest["idleTimeout"] = go_duration(policy.timeout.idle_timeout_s)
            if r:
                dest["numRetries"] = r.attempts
                dest["retryOnConnectFailure"] = "connect-failure" in r.retry_on
                on = [c for c in r.retry_on if c not in ("retriable-status-codes",)]
                if on:
                    dest["retryOn"] = on
                if r.retriable_status_codes:
                    dest["retryOnStatusCodes"] = list(r.retriable_status_codes)
            out.append(self._entry("ServiceRouter", svc, policy, ctx, {"routes": [
                {"match": {"http": {"pathPrefix": "/"}}, "destination": dest}]}))
        if policy.load_balancing:
            out.append(self._entry("ServiceResolver", svc, policy, ctx, {
                "loadBalancer": {"policy": policy.load_balancing.algorithm}}))
        if policy.mtls == MtlsMode.STRICT:
            out.append(self._entry("ServiceIntentions", svc, policy, ctx, {
                "destination": {"name": svc},
                "sources": [{"name": ctx.client, "action": "allow"}]}))
        return out

    def _entry(self, kind: str, name: str, policy: TrafficPolicy, ctx: RenderContext,
               spec: dict[str, Any]) -> Manifest:
        meta = metadata(policy, ctx)
        meta["name"] = name
        return {"apiVersion": _API, "kind": kind, "metadata": meta, "spec": spec}
