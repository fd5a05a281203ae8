"""Every field of every TrafficPolicy component, for every playground data plane (Envoy HTTP,
Envoy as the L4 node proxy, nginx, haproxy): either rendered (its value is visible in the
compiled configuration, and absent without the policy) or rejected with a MeshError naming the
data plane, the policy and the field. Never silently dropped. No process is started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from meshlab.errors import MeshError
from meshlab.playground import envoy, haproxy, nginx
from meshlab.playground.playground import check_topology, resolve_topology
from meshlab.policy import TrafficPolicy
from meshlab.topology import Service, Topology

CHAIN = Topology(services=[Service(name="frontend", calls="backend"),
                           Service(name="backend", replicas=2)])
# plane -> (mesh, mode, what the error names)
PLANES = {"envoy": ("envoy", "both", "data plane envoy"),
          "envoy-l4": ("envoy", "node-proxy", "data plane envoy (an L4 node proxy)"),
          "nginx": ("nginx", "both", "data plane nginx"),
          "haproxy": ("haproxy", "both", "data plane haproxy")}
R = "reject"
OD = "circuit_breaker.outlier_detection"
LB = {"load_balancing": {"algorithm": "random"}}
L4_OK = ("envoy-l4",)

Expect = str | tuple[str, str]      # text in the config, or (R, word in the error)


def _all(envoy_: Expect, l4: Expect, nginx_: Expect, haproxy_: Expect) -> dict[str, Expect]:
    return {"envoy": envoy_, "envoy-l4": l4, "nginx": nginx_, "haproxy": haproxy_}


def _http_only(field: str, envoy_: str, nginx_: Expect, haproxy_: Expect) -> dict[str, Expect]:
    return _all(envoy_, (R, field), nginx_, haproxy_)


def _envoy_only(field: str, envoy_: str, word: str | None = None) -> dict[str, Expect]:
    return _all(envoy_, (R, field), (R, word or field), (R, word or field))


# field path -> (policy body, {plane: text that must appear in the config, or (R, word)})
CASES: dict[str, tuple[dict[str, Any], dict[str, Expect]]] = {
    "name": (LB, _all('"outbound-frontend": "fields"', '"outbound-frontend": "fields"',
                      "# policy 'fields' on outbound-frontend",
                      "# policy 'fields' on outbound-frontend")),
    "service": ({"service": "backend", **LB},
                _all('"outbound-backend": "fields"', '"outbound-backend": "fields"',
                     "# policy 'fields' on outbound-backend",
                     "# policy 'fields' on outbound-backend")),
    "mtls": ({"mtls": "strict"}, _all('"require_client_certificate": true',
                                      '"require_client_certificate": true',
                                      "ssl_verify_client on;", "verify required")),
    "retries.attempts": ({"retries": {"attempts": 7, "retry_on": ["5xx"]}}, _http_only(
        "retries.attempts", '"num_retries": 7', "proxy_next_upstream_tries 8;", "retries 7")),
    "retries.per_try_timeout_s": (
        {"retries": {"per_try_timeout_s": 0.37, "retry_on": ["5xx"]}},
        _http_only("retries.per_try_timeout_s", '"per_try_timeout": "0.37s"',
                   "proxy_read_timeout 370ms;", "timeout server 370ms")),
    "retries.retry_on": ({"retries": {"retry_on": ["gateway-error"]}}, _http_only(
        "retries.retry_on", '"retry_on": "gateway-error"',
        "proxy_next_upstream http_502 http_503 http_504 non_idempotent;",
        "retry-on 502 503 504")),
    "retries.retriable_status_codes": (
        {"retries": {"retry_on": ["retriable-status-codes"], "retriable_status_codes": [418]}},
        _http_only("retries.retriable_status_codes", '"retriable_status_codes": [418]',
                   (R, "418"), (R, "418"))),
    "retries.backoff_base_s": (
        {"retries": {"backoff_base_s": 0.04, "retry_on": ["5xx"]}},
        _envoy_only("retries.backoff_base_s", '"base_interval": "0.04s"')),
    "timeout.request_timeout_s": ({"timeout": {"request_timeout_s": 3}}, _http_only(
        "timeout.request_timeout_s", '"timeout": "3s"', "proxy_read_timeout 3000ms;",
        "timeout server 3000ms")),
    "timeout.idle_timeout_s": ({"timeout": {"request_timeout_s": 3, "idle_timeout_s": 77}},
                               _http_only("timeout.idle_timeout_s", '"idle_timeout": "77s"',
                                          "keepalive_timeout 77000ms;",
                                          "timeout http-keep-alive 77000ms")),
    "circuit_breaker.max_connections": (
        {"circuit_breaker": {"max_connections": 11}},
        _all('"max_connections": 11', '"max_connections": 11',
             (R, "circuit_breaker.max_connections"), "maxconn 11")),
    "circuit_breaker.max_pending_requests": (
        {"circuit_breaker": {"max_pending_requests": 12}},
        _all('"max_pending_requests": 12', (R, "circuit_breaker.max_pending_requests"),
             (R, "circuit_breaker.max_pending_requests"),
             (R, "circuit_breaker.max_pending_requests"))),
    "circuit_breaker.max_requests": (
        {"circuit_breaker": {"max_requests": 13}},
        _all('"max_requests": 13', (R, "circuit_breaker.max_requests"),
             (R, "circuit_breaker.max_requests"), "maxconn 13")),
    "circuit_breaker.max_retries": (
        {"circuit_breaker": {"max_retries": 4}},
        _envoy_only("circuit_breaker.max_retries", '"max_retries": 4')),
    f"{OD}.consecutive_5xx": ({"circuit_breaker": {"outlier_detection": {"consecutive_5xx": 9}}},
                              _envoy_only(f"{OD}.consecutive_5xx", '"consecutive_5xx": 9')),
    f"{OD}.interval_s": ({"circuit_breaker": {"outlier_detection": {"interval_s": 7}}},
                         _envoy_only(f"{OD}.interval_s", '"interval": "7s"')),
    f"{OD}.base_ejection_s": ({"circuit_breaker": {"outlier_detection": {"base_ejection_s": 17}}},
                              _envoy_only(f"{OD}.base_ejection_s",
                                          '"base_ejection_time": "17s"')),
    f"{OD}.max_ejection_percent": (
        {"circuit_breaker": {"outlier_detection": {"max_ejection_percent": 33}}},
        _envoy_only(f"{OD}.max_ejection_percent", '"max_ejection_percent": 33')),
    "fault.delay.delay_s": ({"fault": {"delay": {"delay_s": 0.25}}},
                            _envoy_only("fault.delay.delay_s", '"fixed_delay": "0.25s"')),
    "fault.delay.percent": ({"fault": {"delay": {"delay_s": 1, "percent": 12.5}}},
                            _envoy_only("fault.delay.percent", '"numerator": 125000')),
    "fault.abort.http_status": ({"fault": {"abort": {"http_status": 418}}}, _http_only(
        "fault.abort.http_status", '"http_status": 418', "return 418;", "return status 418")),
    "fault.abort.percent": ({"fault": {"abort": {"http_status": 503, "percent": 7}}}, _http_only(
        "fault.abort.percent", '"numerator": 70000', "7% 1;", "rand(1000000) lt 70000")),
    "rate_limit.requests_per_s": ({"rate_limit": {"requests_per_s": 40}}, _http_only(
        "rate_limit.requests_per_s", '"tokens_per_fill": 4,', "rate=40r/s;",
        "sc_http_req_rate(0) gt 40 ")),
    "rate_limit.burst": ({"rate_limit": {"requests_per_s": 40, "burst": 80}}, _http_only(
        "rate_limit.burst", '"max_tokens": 80', "burst=79 nodelay;",
        "sc_http_req_rate(0) gt 119 ")),
    "rate_limit.http_status": ({"rate_limit": {"requests_per_s": 40, "http_status": 418}},
                               _http_only("rate_limit.http_status", "",
                                          "limit_req_status 418;", "return status 418")),
    "load_balancing.algorithm": (LB, _all('"lb_policy": "RANDOM"', '"lb_policy": "RANDOM"',
                                          "    random;", "balance random")),
}
# Envoy's local rate limit answers only with codes its StatusCode enum names
CASES["rate_limit.http_status"][1]["envoy"] = (R, "418")


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every field, descending into nested policy models."""
    for name, info in model.model_fields.items():
        nested = [a for a in getattr(info.annotation, "__args__", (info.annotation,))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            yield from _leaf_fields(nested[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _compiled(plane: str, policy: TrafficPolicy | None) -> str:
    mesh, mode, _ = PLANES[plane]
    plan = check_topology(resolve_topology(CHAIN, mesh=mesh, mode=mode, policy=policy))
    if mesh == "envoy":
        return "\n".join(json.dumps(envoy.compile_proxy(p)) for p in plan.proxies)
    if mesh == "nginx":
        return "\n".join(nginx.compile_proxy(p, Path("/w")) for p in plan.proxies)
    return "\n".join(haproxy.compile_proxy(p) for p in plan.proxies)


def test_the_table_covers_every_policy_field() -> None:
    assert sorted(_leaf_fields(TrafficPolicy)) == sorted(CASES)
    assert all(set(expect) == set(PLANES) for _, expect in CASES.values())


@pytest.mark.parametrize("plane", sorted(PLANES))
@pytest.mark.parametrize("field", sorted(CASES))
def test_every_field_is_rendered_or_rejected(plane: str, field: str) -> None:
    body, expect = CASES[field]
    policy = TrafficPolicy.model_validate({"name": "fields", **body})
    want = expect[plane]
    if isinstance(want, tuple):
        with pytest.raises(MeshError) as err:
            _compiled(plane, policy)
        msg = str(err.value)
        assert PLANES[plane][2] in msg and "'fields'" in msg and want[1] in msg, msg
        return
    text = _compiled(plane, policy)
    assert want in text, f"{plane} {field}: {want!r} not in the compiled config"
    assert want not in _compiled(plane, None), f"{want!r} is there without the policy too"


def test_the_service_field_scopes_the_policy() -> None:
    policy = TrafficPolicy.model_validate({"name": "fields", "service": "backend", **LB})
    for plane in PLANES:
        text = _compiled(plane, policy)
        assert "outbound-frontend\": \"fields\"" not in text
        assert "'fields' on outbound-frontend" not in text


@pytest.mark.parametrize(("mesh", "body", "text"), [
    ("nginx", {"retries": {"retry_on": ["retriable-status-codes"],
                           "retriable_status_codes": [404, 429]}},
     "proxy_next_upstream http_404 http_429 non_idempotent;"),
    ("haproxy", {"retries": {"retry_on": ["retriable-status-codes"],
                             "retriable_status_codes": [404, 425]}}, "retry-on 404 425"),
    ("haproxy", {"circuit_breaker": {"max_connections": 2, "max_pending_requests": 12}},
     "if { queue(b0) ge 12 }"),
    ("nginx", {"rate_limit": {"requests_per_s": 0.5}}, "rate=30r/m;"),
    ("envoy", {"rate_limit": {"requests_per_s": 40, "http_status": 503}}, '"code": 503'),
    ("haproxy", {"rate_limit": {"requests_per_s": 0.5}}, "http_req_rate(10s)"),
])
def test_values_a_plane_can_express_are_rendered(mesh: str, body: dict[str, Any],
                                                 text: str) -> None:
    policy = TrafficPolicy.model_validate({"name": "v", **body})
    assert text in _compiled(mesh, policy)


@pytest.mark.parametrize(("mesh", "body", "words"), [
    ("nginx", {"retries": {"retry_on": ["retriable-4xx"]}}, ["retries.retry_on", "409"]),
    ("haproxy", {"retries": {"retry_on": ["retriable-4xx"]}}, ["retries.retry_on", "409"]),
    ("envoy", {"retries": {"retriable_status_codes": [503]}},
     ["retries.retriable_status_codes", "retriable-status-codes"]),
    ("nginx", {"rate_limit": {"requests_per_s": 0.001}}, ["rate_limit.requests_per_s"]),
    ("nginx", {"fault": {"abort": {"http_status": 503, "percent": 12.345}}},
     ["fault.abort.percent"]),
    ("nginx", {"mtls": "permissive"}, ["mtls", "permissive"]),
])
def test_values_a_plane_cannot_express_are_rejected(mesh: str, body: dict[str, Any],
                                                    words: list[str]) -> None:
    policy = TrafficPolicy.model_validate({"name": "v", **body})
    with pytest.raises(MeshError) as err:
        _compiled(mesh, policy)
    assert all(w in str(err.value) for w in [f"data plane {mesh}", "'v'", *words]), err.value


def test_mtls_for_one_service_is_rejected() -> None:
    run_scoped = TrafficPolicy.model_validate({"name": "m", "service": "backend", "mtls": "off"})
    with pytest.raises(MeshError, match=r"envoy cannot express policy 'm': mtls for service "
                                        r"'backend' only"):
        check_topology(resolve_topology(CHAIN, mesh="envoy+mtls", policy=run_scoped))
    standing = CHAIN.model_copy(update={"policies": [TrafficPolicy.model_validate(
        {"name": "s", "service": "backend", "mtls": "strict"})]})
    with pytest.raises(MeshError, match="policy 's': mtls for service 'backend' only"):
        check_topology(resolve_topology(standing, mesh="nginx"))
    with pytest.raises(MeshError, match="data plane none cannot express policy 'n': mtls"):
        check_topology(resolve_topology(CHAIN, mesh="none", policy=TrafficPolicy(
            name="n", mtls="strict")))


@pytest.mark.parametrize("module", [envoy, nginx, haproxy])
def test_support_tables_name_real_fields(module: Any) -> None:
    fields = set(_leaf_fields(TrafficPolicy))
    for support in [module.FIELDS, getattr(module, "FIELDS_L4", module.FIELDS)]:
        for prefix in [*support.rendered, *support.rejected]:
            assert any(f == prefix or f.startswith(prefix + ".") for f in fields), prefix
