"""Linkerd on Kubernetes: Server/MeshTLSAuthentication/AuthorizationPolicy, HTTPRoute with retry
and timeout annotations, failure accrual, HTTPLocalRateLimitPolicy; `linkerd install` output
applied by meshlab. No fault injection, connection limits or balancer choice: rejected."""

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
    step,
    whole_rate,
)
from meshlab.policy import GRPC_RETRY_ON, MtlsMode, OutlierDetection, TrafficPolicy

_POLICY = "policy.linkerd.io"
# Linkerd retries connection failures and resets at the transport level on its own
_IMPLICIT = {"connect-failure", "reset", "refused-stream"}
_MAX_EJECTION_S = 300.0


class LinkerdMesh(KubernetesMesh, Mesh[MeshTarget]):
    name = "linkerd"
    cli = "linkerd"
    install_hint = "curl -sL https://run.linkerd.io/install-edge | sh"
    client_version_argv = ("linkerd", "version", "--client", "--short")
    sidecar_containers = ("linkerd-proxy",)
    control_plane_image = re.compile(r"linkerd/(controller|destination|policy-controller|proxy-"
                                     r"identity|identity)(:|@|$)")
    supported = frozenset({"mtls", "retries", "timeout", "outlier_detection", "rate_limit"})
    mtls_note = "always on between meshed pods; strict adds an AuthorizationPolicy"
    skip_inbound_annotation = "config.linkerd.io/skip-inbound-ports"
    pod_opt_out = Injection(annotations={"linkerd.io/inject": "disabled"})
    job_sidecar_exit = Injection(annotations={
        "config.alpha.linkerd.io/proxy-enable-native-sidecar": "true"})
    native_job_sidecar = True
    concurrency_annotation = "config.linkerd.io/proxy-cpu-limit"
    mtls_default = "on (always, between meshed pods)"
    request_metrics = RequestMetrics(
        'response_total{{direction="inbound",namespace="{ns}"}}',
        'response_latency_ms_bucket{{direction="inbound",namespace="{ns}"}}')

    def describe(self) -> MeshInfo:
        return MeshInfo(**self.info_fields())

    def injection(self) -> Injection:
        return Injection(annotations={"linkerd.io/inject": "enabled"})

    def install_steps(self) -> list[CliStep]:
        return [step("linkerd", "check", "--pre"),
                step("linkerd", "install", "--crds", apply_output=True),
                step("linkerd", "install", apply_output=True),
                step("linkerd", "check")]

    def uninstall_steps(self) -> list[CliStep]:
        return [step("linkerd", "uninstall", apply_output=True)]

    def upgrade_steps(self) -> list[CliStep]:
        return [step("linkerd", "upgrade", "--crds", apply_output=True),
                step("linkerd", "upgrade", apply_output=True), step("linkerd", "check")]

    def render(self, policy: TrafficPolicy, ctx: RenderContext) -> list[Manifest]:
        extra = []
        if policy.mtls == MtlsMode.OFF:
            extra.append("mtls: off (Linkerd always encrypts between meshed pods)")
        if policy.retries and policy.retries.backoff_base_s:
            extra.append("retries.backoff_base_s (Linkerd retry backoff is not configurable)")
        if policy.rate_limit and policy.rate_limit.burst:
            extra.append("rate_limit.burst")
        if policy.rate_limit and policy.rate_limit.http_status != 429:
            extra.append("rate_limit.http_status other than 429")
        od = policy.circuit_breaker.outlier_detection if policy.circuit_breaker else None
        if od is not None:
            # failure accrual counts consecutive failures (no time window) and may take every
            # endpoint out; only the model's defaults are accepted, meaning "not configured"
            defaults = OutlierDetection()
            if od.interval_s != defaults.interval_s:
                extra.append("circuit_breaker.outlier_detection.interval_s (Linkerd's failure "
                             "accrual has no detection interval)")
            if od.max_ejection_percent != defaults.max_ejection_percent:
                extra.append("circuit_breaker.outlier_detection.max_ejection_percent (Linkerd "
                             "has no cap on ejected endpoints)")
        self.check_supported(policy, extra=extra, protocol=ctx.protocol)
        svc = ctx.target(policy)
        out: list[Manifest] = []
        needs_server = policy.mtls is not None or policy.rate_limit is not None
        if needs_server:
            access = "deny" if policy.mtls == MtlsMode.STRICT else "all-unauthenticated"
            out.append({"apiVersion": f"{_POLICY}/v1beta3", "kind": "Server",
                        "metadata": metadata(policy, ctx),
                        "spec": {"podSelector": {"matchLabels": {"app": svc}},
                                 "port": ctx.port, "accessPolicy": access}})
        if policy.mtls == MtlsMode.STRICT:
            out.append({"apiVersion": f"{_POLICY}/v1alpha1", "kind": "MeshTLSAuthentication",
                        "metadata": metadata(policy, ctx), "spec": {"identities": ["*"]}})
            out.append({"apiVersion": f"{_POLICY}/v1alpha1", "kind": "AuthorizationPolicy",
                        "metadata": metadata(policy, ctx),
                        "spec": {"targetRef": {"group": _POLICY, "kind": "Server",
                                               "name": metadata(policy, ctx)["name"]},
                                 "requiredAuthenticationRefs": [
                                     {"group": _POLICY, "kind": "MeshTLSAuthentication",
                                      "name": metadata(policy, ctx)["name"]}]}})
        if policy.rate_limit:
            rps = whole_rate(self.name, policy, policy.rate_limit.requests_per_s)
            out.append({"apiVersion": f"{_POLICY}/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
                        "metadata": metadata(policy, ctx),
                        "spec": {"targetRef": {"group": _POLICY, "kind": "Server",
                                               "name": metadata(policy, ctx)["name"]},
                                 "total": {"requestsPerSecond": rps}}})
        if policy.retries or policy.timeout:
            out.append(self._route(policy, ctx, svc))
        cb = policy.circuit_breaker
        if cb and cb.outlier_detection:
            od = cb.outlier_detection
            # the penalty backs off from base_ejection_s up to Envoy's default cap
            # (max_ejection_time 300 s), so both meshes eject for the same times
            prefix = "balancer.linkerd.io/failure-accrual"
            out.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": svc, "namespace": ctx.namespace, "annotations": {
                            prefix: "consecutive",
                            f"{prefix}-consecutive-max-failures": str(od.consecutive_5xx),
                            f"{prefix}-consecutive-min-penalty": go_duration(od.base_ejection_s),
                            f"{prefix}-consecutive-max-penalty":
                                go_duration(max(od.base_ejection_s, _MAX_EJECTION_S))}}})
        return out

    def _route(self, policy: TrafficPolicy, ctx: RenderContext, svc: str) -> Manifest:
        if ctx.protocol == "grpc":
            return self._grpc_route(policy, ctx, svc)
        ann: dict[str, str] = {}
        rule: dict[str, Any] = {"backendRefs": [{"name": svc, "port": ctx.port}]}
        if policy.retries:
            r = policy.retries
            conds: list[str] = []
            for c in r.retry_on:
                if c in _IMPLICIT:
                    continue
                if c == "retriable-4xx":
                    conds.append("409")
                elif c != "retriable-status-codes":
                    conds.append(c)
            # the codes count whether or not retry_on names them (as in the other adapters)
            conds += [str(x) for x in r.retriable_status_codes if str(x) not in conds]
            if not conds:
                raise MeshError("linkerd: retries.retry_on names only connection failures, which "
                                "Linkerd retries by itself; add 5xx, gateway-error or codes")
            ann["retry.linkerd.io/http"] = ",".join(conds)
            ann["retry.linkerd.io/limit"] = str(r.attempts)
            if r.per_try_timeout_s:
                ann["retry.linkerd.io/timeout"] = go_duration(r.per_try_timeout_s)
        if policy.timeout:
            rule["timeouts"] = {"request": go_duration(policy.timeout.request_timeout_s)}
            if policy.timeout.idle_timeout_s:
                ann["timeout.linkerd.io/idle"] = go_duration(policy.timeout.idle_timeout_s)
        return {"apiVersion": f"{_POLICY}/v1beta3", "kind": "HTTPRoute",
                "metadata": metadata(policy, ctx, annotations=ann),
                "spec": {"parentRefs": [{"group": "core", "kind": "Service", "name": svc,
                                         "port": ctx.port}],
                         "rules": [rule]}}

    def _grpc_route(self, policy: TrafficPolicy, ctx: RenderContext, svc: str) -> Manifest:
        """A Gateway API GRPCRoute with Linkerd's gRPC retry and timeout annotations
        (`retry.linkerd.io/grpc`, `timeout.linkerd.io/request`: GRPCRoute has no timeouts)."""
        ann: dict[str, str] = {}
        if policy.retries:
            r = policy.retries
            http = [c for c in r.retry_on if c not in GRPC_RETRY_ON and c not in _IMPLICIT]
            if http or r.retriable_status_codes:
                raise MeshError(
                    f"linkerd cannot express policy {policy.name!r} on protocol grpc: "
                    f"retries.retry_on {', '.join(map(str, http or r.retriable_status_codes))} "
                    f"(a GRPCRoute retries on gRPC status codes, retry.linkerd.io/grpc); use "
                    f"cancelled, deadline-exceeded, internal, resource-exhausted, unavailable")
            conds = [c for c in r.retry_on if c in GRPC_RETRY_ON]
            if not conds:
                raise MeshError(f"linkerd cannot express policy {policy.name!r} on protocol "
                                f"grpc: retries.retry_on names only connection failures, "
                                f"which Linkerd retries by itself; add gRPC codes such as "
                                f"unavailable")
            ann["retry.linkerd.io/grpc"] = ",".join(conds)
            ann["retry.linkerd.io/limit"] = str(r.attempts)
            if r.per_try_timeout_s:
                ann["retry.linkerd.io/timeout"] = go_duration(r.per_try_timeout_s)
        if policy.timeout:
            ann["timeout.linkerd.io/request"] = go_duration(policy.timeout.request_timeout_s)
            if policy.timeout.idle_timeout_s:
                ann["timeout.linkerd.io/idle"] = go_duration(policy.timeout.idle_timeout_s)
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                "metadata": metadata(policy, ctx, annotations=ann),
                "spec": {"parentRefs": [{"group": "core", "kind": "Service", "name": svc,
                                         "port": ctx.port}],
                         # group and kind spelled out: the API server would default them
                         "rules": [{"backendRefs": [{"group": "", "kind": "Service",
                                                     "name": svc, "port": ctx.port}]}]}}
