"""Every field of every TrafficPolicy component, for every Kubernetes mesh: either rendered (its
value is visible in the rendered resources, which still validate against the mesh's CRDs) or
rejected with a MeshError naming the mesh, the policy and the field. Never silently dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from crd_schema import CrdSet
from pydantic import BaseModel
from test_render import CTX, MESHES, _validate

from meshlab.errors import MeshError
from meshlab.policy import TrafficPolicy

LF = "balancer.linkerd.io/failure-accrual-consecutive"
R = "reject"
OD = "circuit_breaker.outlier_detection"

# field path -> (policy body, {mesh: (key, value) that must appear, or (R, word in the error)})
CASES: dict[str, tuple[dict[str, Any], dict[str, tuple[str, Any]]]] = {
    "name": ({"timeout": {"request_timeout_s": 2}},
             dict.fromkeys(MESHES, ("meshlab.io/policy", "fields"))),
    "service": ({"service": "other", "timeout": {"request_timeout_s": 2}},
                {"istio": ("host", "other.bench.svc.cluster.local"), "linkerd": ("name", "other"),
                 "consul": ("name", "other"), "kuma": ("name", "other")}),
    "mtls": ({"mtls": "permissive"},
             {"istio": ("mode", "PERMISSIVE"), "linkerd": ("accessPolicy", "all-unauthenticated"),
              "consul": ("mutualTLSMode", "permissive"), "kuma": ("mode", "Permissive")}),
    "retries.attempts": ({"retries": {"attempts": 7, "retry_on": ["5xx"]}},
                         {"istio": ("attempts", 7), "linkerd": ("retry.linkerd.io/limit", "7"),
                          "consul": ("numRetries", 7), "kuma": ("numRetries", 7)}),
    "retries.per_try_timeout_s": (
        {"retries": {"per_try_timeout_s": 0.3, "retry_on": ["5xx"]}},
        {"istio": ("perTryTimeout", "300ms"), "linkerd": ("retry.linkerd.io/timeout", "300ms"),
         "consul": (R, "retries.per_try_timeout_s"), "kuma": ("perTryTimeout", "300ms")}),
    "retries.retry_on": ({"retries": {"retry_on": ["gateway-error"]}},
                         {"istio": ("retryOn", "gateway-error"),
                          "linkerd": ("retry.linkerd.io/http", "gateway-error"),
                          "consul": ("retryOn", ["gateway-error"]),
                          "kuma": ("retryOn", ["GatewayError"])}),
    "retries.retriable_status_codes": (
        {"retries": {"retry_on": ["retriable-status-codes"], "retriable_status_codes": [418]}},
        {"istio": ("retryOn", "418"), "linkerd": ("retry.linkerd.io/http", "418"),
         "consul": ("retryOnStatusCodes", [418]), "kuma": ("retryOn", ["418"])}),
    "retries.backoff_base_s": (
        {"retries": {"backoff_base_s": 0.04, "retry_on": ["5xx"]}},
        {"istio": ("backoff", "40ms"), "linkerd": (R, "retries.backoff_base_s"),
         "consul": (R, "retries.backoff_base_s"), "kuma": ("baseInterval", "40ms")}),
    "timeout.request_timeout_s": ({"timeout": {"request_timeout_s": 3}},
                                  {"istio": ("timeout", "3s"), "linkerd": ("request", "3s"),
                                   "consul": ("requestTimeout", "3s"),
                                   "kuma": ("requestTimeout", "3s")}),
    "timeout.idle_timeout_s": ({"timeout": {"request_timeout_s": 3, "idle_timeout_s": 77}},
                               {"istio": ("idleTimeout", "77s"),
                                "linkerd": ("timeout.linkerd.io/idle", "77s"),
                                "consul": ("idleTimeout", "77s"), "kuma": ("idleTimeout", "77s")}),
    "circuit_breaker.max_connections": (
        {"circuit_breaker": {"max_connections": 11}},
        {"istio": ("maxConnections", 11), "linkerd": (R, "circuit_breaker"),
         "consul": ("maxConnections", 11), "kuma": ("maxConnections", 11)}),
    "circuit_breaker.max_pending_requests": (
        {"circuit_breaker": {"max_pending_requests": 12}},
        {"istio": ("http1MaxPendingRequests", 12), "linkerd": (R, "circuit_breaker"),
         "consul": ("maxPendingRequests", 12), "kuma": ("maxPendingRequests", 12)}),
    "circuit_breaker.max_requests": (
        {"circuit_breaker": {"max_requests": 13}},
        {"istio": ("http2MaxRequests", 13), "linkerd": (R, "circuit_breaker"),
         "consul": ("maxConcurrentRequests", 13), "kuma": ("maxRequests", 13)}),
    "circuit_breaker.max_retries": (
        {"circuit_breaker": {"max_retries": 4}},
        {"istio": ("maxRetries", 4), "linkerd": (R, "circuit_breaker"),
         "consul": (R, "circuit_breaker.max_retries"), "kuma": ("maxRetries", 4)}),
    f"{OD}.consecutive_5xx": (
        {"circuit_breaker": {"outlier_detection": {"consecutive_5xx": 9}}},
        {"istio": ("consecutive5xxErrors", 9), "linkerd": (f"{LF}-max-failures", "9"),
         "consul": ("maxFailures", 9), "kuma": ("consecutive", 9)}),
    f"{OD}.interval_s": (
        {"circuit_breaker": {"outlier_detection": {"interval_s": 7}}},
        {"istio": ("interval", "7s"), "linkerd": (R, f"{OD}.interval_s"),
         "consul": ("interval", "7s"), "kuma": ("interval", "7s")}),
    f"{OD}.base_ejection_s": (
        {"circuit_breaker": {"outlier_detection": {"base_ejection_s": 17}}},
        {"istio": ("baseEjectionTime", "17s"), "linkerd": (f"{LF}-min-penalty", "17s"),
         "consul": ("baseEjectionTime", "17s"), "kuma": ("baseEjectionTime", "17s")}),
    f"{OD}.max_ejection_percent": (
        {"circuit_breaker": {"outlier_detection": {"max_ejection_percent": 33}}},
        {"istio": ("maxEjectionPercent", 33), "linkerd": (R, f"{OD}.max_ejection_percent"),
         "consul": ("maxEjectionPercent", 33), "kuma": ("maxEjectionPercent", 33)}),
    "fault.delay.delay_s": ({"fault": {"delay": {"delay_s": 0.25}}},
                            {"istio": ("fixedDelay", "250ms"), "linkerd": (R, "fault.delay"),
                             "consul": (R, "fault.delay"), "kuma": ("value", "250ms")}),
    "fault.delay.percent": ({"fault": {"delay": {"delay_s": 1, "percent": 12.5}}},
                            {"istio": ("percentage", {"value": 12.5}),
                             "linkerd": (R, "fault.delay"), "consul": (R, "fault.delay"),
                             "kuma": ("percentage", "12.5")}),
    "fault.abort.http_status": ({"fault": {"abort": {"http_status": 418}}},
                                {"istio": ("httpStatus", 418), "linkerd": (R, "fault.abort"),
                                 "consul": (R, "fault.abort"), "kuma": ("httpStatus", 418)}),
    "fault.abort.percent": ({"fault": {"abort": {"http_status": 503, "percent": 7}}},
                            {"istio": ("percentage", {"value": 7}), "linkerd": (R, "fault.abort"),
                             "consul": (R, "fault.abort"), "kuma": ("percentage", 7)}),
    "rate_limit.requests_per_s": ({"rate_limit": {"requests_per_s": 40}},
                                  {"istio": ("tokens_per_fill", 40),
                                   "linkerd": ("requestsPerSecond", 40),
                                   "consul": ("requestsPerSecond", 40), "kuma": ("num", 40)}),
    "rate_limit.burst": ({"rate_limit": {"requests_per_s": 40, "burst": 80}},
                         {"istio": ("max_tokens", 80), "linkerd": (R, "rate_limit.burst"),
                          "consul": ("requestsMaxBurst", 80), "kuma": (R, "rate_limit.burst")}),
    "rate_limit.http_status": ({"rate_limit": {"requests_per_s": 40, "http_status": 503}},
                               {"istio": ("code", "ServiceUnavailable"),
                                "linkerd": (R, "rate_limit.http_status"),
                                "consul": (R, "rate_limit.http_status"), "kuma": ("status", 503)}),
    "load_balancing.algorithm": ({"load_balancing": {"algorithm": "random"}},
                                 {"istio": ("simple", "RANDOM"),
                                  "linkerd": (R, "load_balancing.random"),
                                  "consul": ("policy", "random"), "kuma": ("type", "Random")}),
}


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every field, descending into nested policy models."""
    for name, info in model.model_fields.items():
        nested = [a for a in getattr(info.annotation, "__args__", (info.annotation,))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            yield from _leaf_fields(nested[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _pairs(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _pairs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _pairs(v)


def test_the_table_covers_every_policy_field() -> None:
    assert sorted(_leaf_fields(TrafficPolicy)) == sorted(CASES)
    assert all(set(expect) == set(MESHES) for _, expect in CASES.values())


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
@pytest.mark.parametrize("field", sorted(CASES))
def test_every_field_is_rendered_or_rejected(crds: CrdSet, mesh_name: str, field: str) -> None:
    body, expect = CASES[field]
    policy = TrafficPolicy.model_validate({"name": "fields", **body})
    key, value = expect[mesh_name]
    if key == R:
        with pytest.raises(MeshError) as err:
            MESHES[mesh_name].render(policy, CTX)
        msg = str(err.value)
        assert mesh_name in msg and "'fields'" in msg and value in msg, msg
        return
    out = MESHES[mesh_name].render(policy, CTX)
    _validate(crds, out)
    assert (key, value) in list(_pairs(out)), f"{field}: no {key}={value!r} in {out}"


def test_linkerd_outlier_defaults_mean_not_configured() -> None:
    """The model's defaults for interval and ejection cap are accepted (nothing is asked that
    Linkerd cannot do); the penalty backs off up to Envoy's default 300 s cap."""
    policy = TrafficPolicy(name="od", circuit_breaker={"outlier_detection": {}})
    (svc,) = MESHES["linkerd"].render(policy, CTX)
    ann = svc["metadata"]["annotations"]
    assert ann[f"{LF}-max-penalty"] == "300s" and ann[f"{LF}-min-penalty"] == "30s"
