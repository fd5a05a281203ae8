"""nginx as a playground data plane: a plan's proxy compiled to an nginx.conf (keep-alive upstream
pools, retries by `proxy_next_upstream`, `limit_req`, aborts by `split_clients`). Rejected (see
FIELDS): fault delay, circuit breaking, outlier detection, retry backoff, permissive mTLS."""

from __future__ import annotations

import functools
from pathlib import Path

from meshlab.playground._binary import ProxyBinary, find_system_binary, ms_text
from meshlab.playground._support import (
    FieldSupport,
    common_values,
    grpc_status_retries,
    status_codes,
    whole_rate,
)
from meshlab.playground.certs import dns_name
from meshlab.playground.plan import Listener, ProxySpec
from meshlab.policy import MtlsMode, TrafficPolicy

MTLS_MODES = frozenset({MtlsMode.OFF, MtlsMode.STRICT})
_LB = {"round_robin": "", "least_request": "least_conn;", "random": "random;"}
_RETRY_ON = {"5xx": ["http_500", "http_502", "http_503", "http_504"],
             "gateway-error": ["http_502", "http_503", "http_504"],
             "reset": ["error"], "connect-failure": ["error", "timeout"],
             "refused-stream": ["error"]}     # retriable-4xx (409) is rejected by FIELDS
_NGINX_CODES = frozenset({403, 404, 429, 500, 502, 503, 504})
"""The only status codes `proxy_next_upstream` can retry on (http_403 ... http_504)."""


def _values(policy: TrafficPolicy) -> list[tuple[str, str]]:
    out = common_values(policy) + status_codes(policy, _NGINX_CODES, "nginx")
    r = policy.retries
    if r is not None and "retriable-4xx" in r.retry_on:
        out.append(("retries.retry_on", "retriable-4xx means 409 (as in Envoy); nginx retries "
                    "only on 403, 404, 429 and 5xx: use retriable-status-codes"))
    if policy.mtls == MtlsMode.PERMISSIVE:
        out.append(("mtls", "permissive: one nginx port cannot take both TLS and plaintext; "
                    "use strict or envoy"))
    if policy.rate_limit is not None and _rate(policy.rate_limit.requests_per_s) is None:
        out.append(("rate_limit.requests_per_s", f"{policy.rate_limit.requests_per_s:g}: nginx "
                    f"limits in whole requests per second or per minute"))
    ab = policy.fault.abort if policy.fault else None
    if ab is not None and round(ab.percent, 2) != ab.percent:
        out.append(("fault.abort.percent", f"{ab.percent:g}: nginx's split_clients takes at "
                    f"most two decimals"))
    return out


def _by_protocol(policy: TrafficPolicy, protocol: str) -> list[tuple[str, str]]:
    return grpc_status_retries(policy, protocol, "nginx's grpc_next_upstream retries on "
                               "connection errors and HTTP statuses, not on the grpc-status a "
                               "gRPC server sends in trailers; use envoy")


_ENVOY_ONLY = "use envoy"
FIELDS = FieldSupport(
    "nginx", rendered=frozenset({"name", "service", "mtls", "retries", "timeout", "rate_limit",
                                 "fault.abort", "load_balancing"}),
    rejected={
        "retries.backoff_base_s": "nginx moves to the next upstream at once, with no backoff; "
                                  "remove it or use envoy",
        "circuit_breaker": "nginx OSS has no pending-request queue or concurrent-request limit "
                           "that overflows with 503; use envoy or haproxy",
        "circuit_breaker.outlier_detection": "nginx's max_fails/fail_timeout is not "
                                             f"consecutive-5xx ejection; {_ENVOY_ONLY}",
        "fault.delay": f"nginx cannot delay a request; {_ENVOY_ONLY}"},
    values=_values, by_protocol=_by_protocol)
"""What nginx renders of each TrafficPolicy field, and what it rejects with the reason."""
SUPPORTED = FIELDS.features()


def _rate(requests_per_s: float) -> str | None:
    """`N r/s` or `N r/m` (nginx's only units), or None when neither is within 1 %."""
    whole = whole_rate(requests_per_s)
    if whole is None:
        return None
    n, window_s = whole
    if window_s == 1:
        return f"{n}r/s"
    n = round(requests_per_s * 60)
    return f"{n}r/m" if abs(n / 60 - requests_per_s) <= 0.01 * requests_per_s else None


@functools.lru_cache(maxsize=1)
def find_binary() -> ProxyBinary:
    return find_system_binary("nginx", install="apt-get install nginx-light (or brew install "
                                               "nginx)", version_pattern=r"nginx/(\S+)")


def _next_upstream(policy: TrafficPolicy | None) -> tuple[list[str], int]:
    """proxy_next_upstream conditions and tries (1 = no retry)."""
    if policy is None or policy.retries is None:
        return ["off"], 1
    r = policy.retries
    conds: list[str] = []
    for on in r.retry_on:
        if on == "retriable-status-codes":
            conds += [f"http_{c}" for c in r.retriable_status_codes]
        else:
            conds += _RETRY_ON.get(on, [])
    conds = [*sorted(set(conds)), "non_idempotent"]
    return conds, r.attempts + 1


def _server(lst: Listener, index: int, workdir: Path) -> list[str]:
    pol = lst.policy
    up = lst.upstream
    uname = f"u{index}"
    conds, tries = _next_upstream(pol)
    lines = [f"  # policy {pol.name!r} on {lst.name}" if pol else f"  # {lst.name}",
             f"  upstream {uname} {{"]
    lb = pol.load_balancing.algorithm if pol and pol.load_balancing else "round_robin"
    if _LB[lb]:
        lines.append(f"    {_LB[lb]}")
    # nginx retries on the *next* server entry only, at most once per entry: repeat the
    # endpoints until there are `tries` entries, so one replica can still be retried (as
    # Envoy's can); with copies a retry may land on the replica that just failed
    copies = -(-tries // len(up.endpoints))
    for _ in range(copies):
        lines += [f"    server {ep.host}:{ep.port} max_fails=0;" for ep in up.endpoints]
    lines += ["    keepalive 64;", "    keepalive_requests 100000;"]
    idle_s = pol.timeout.idle_timeout_s if pol and pol.timeout else None
    if idle_s:
        lines.append(f"    keepalive_timeout {ms_text(idle_s)};")      # idle upstream connections
    lines.append("  }")
    if pol and pol.rate_limit:
        rl = pol.rate_limit
        rate = _rate(rl.requests_per_s)
        lines.append(f"  limit_req_zone $server_port zone=rl{index}:1m rate={rate};")
    if pol and pol.fault and pol.fault.abort:
        pct = f"{pol.fault.abort.percent:g}"
        lines += [f'  split_clients "${{request_id}}" $abort{index} {{', f"    {pct}% 1;",
                  "    * 0;", "  }"]
    listen = f"{lst.port} ssl" if lst.tls and lst.mtls == MtlsMode.STRICT else str(lst.port)
    if lst.protocol in ("h2c", "grpc"):
        listen += " http2"             # plaintext: HTTP/2 with prior knowledge only
    lines += ["  server {", f"    listen 127.0.0.1:{listen};"]
    if idle_s:
        lines.append(f"    keepalive_timeout {ms_text(idle_s)};")      # idle client connections
    if lst.tls and lst.mtls == MtlsMode.STRICT:
        lines += [f"    ssl_certificate {lst.tls.cert};",
                  f"    ssl_certificate_key {lst.tls.key};",
                  f"    ssl_client_certificate {lst.tls.ca};",
                  "    ssl_verify_client on;", "    ssl_verify_depth 2;"]
    lines.append("    location / {")
    if pol and pol.rate_limit:
        burst = max(0, (pol.rate_limit.burst or 1) - 1)
        lines += [f"      limit_req zone=rl{index} burst={burst} nodelay;",
                  f"      limit_req_status {pol.rate_limit.http_status};"]
    if pol and pol.fault and pol.fault.abort:
        lines.append(f"      if ($abort{index}) {{ return {pol.fault.abort.http_status}; }}")
    grpc = up.protocol == "grpc"
    px = "grpc" if grpc else "proxy"         # grpc_pass has the same directive family
    if grpc:
        lines.append(f"      grpc_pass {'grpcs' if up.tls else 'grpc'}://{uname};")
    else:
        scheme = "https" if up.tls else "http"
        lines += [f"      proxy_pass {scheme}://{uname};", "      proxy_http_version 1.1;",
                  '      proxy_set_header Connection "";', "      proxy_set_header Host $host;"]
    lines += [f"      {px}_next_upstream {' '.join(conds)};",
              f"      {px}_next_upstream_tries {tries};",
              f"      {px}_connect_timeout 1s;"]
    read_s = 60.0
    if pol and pol.timeout:
        read_s = pol.timeout.request_timeout_s
        lines.append(f"      {px}_next_upstream_timeout {ms_text(read_s)};")
    if pol and pol.retries and pol.retries.per_try_timeout_s:
        read_s = min(read_s, pol.retries.per_try_timeout_s)
    lines += [f"      {px}_read_timeout {ms_text(read_s)};",
              f"      {px}_send_timeout {ms_text(read_s)};"]
    if up.tls:
        peer = dns_name(up.peer or up.service)
        lines += [f"      {px}_ssl_certificate {up.tls.cert};",
                  f"      {px}_ssl_certificate_key {up.tls.key};",
                  f"      {px}_ssl_trusted_certificate {up.tls.ca};",
                  f"      {px}_ssl_verify on;", f"      {px}_ssl_name {peer};",
                  f"      {px}_ssl_server_name on;", f"      {px}_ssl_session_reuse on;"]
    lines += ["    }", "  }"]
    return lines


STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def _stream_server(lst: Listener, index: int) -> list[str]:
    """A TCP listener (protocol tcp): nginx's stream module, optionally with mTLS."""
    up = lst.upstream
    pol = lst.policy
    lb = _LB[pol.load_balancing.algorithm] if pol and pol.load_balancing else ""
    lines = [f"  # {lst.name} (tcp)", f"  upstream s{index} {{", *([f"    {lb}"] if lb else []),
             # max_fails=0: by default one refused connect (the readiness probe reaching this
             # sidecar before the next hop listens) benches a server for 10 s
             *[f"    server {ep.host}:{ep.port} max_fails=0;" for ep in up.endpoints], "  }",
             "  server {"]
    strict = lst.tls is not None and lst.mtls == MtlsMode.STRICT
    lines.append(f"    listen 127.0.0.1:{lst.port}{' ssl' if strict else ''};")
    if strict and lst.tls is not None:
        lines += [f"    ssl_certificate {lst.tls.cert};",
                  f"    ssl_certificate_key {lst.tls.key};",
                  f"    ssl_client_certificate {lst.tls.ca};",
                  "    ssl_verify_client on;", "    ssl_verify_depth 2;"]
    lines += [f"    proxy_pass s{index};", "    proxy_connect_timeout 1s;"]
    if up.tls:
        lines += ["    proxy_ssl on;", f"    proxy_ssl_certificate {up.tls.cert};",
                  f"    proxy_ssl_certificate_key {up.tls.key};",
                  f"    proxy_ssl_trusted_certificate {up.tls.ca};",
                  "    proxy_ssl_verify on;",
                  f"    proxy_ssl_name {dns_name(up.peer or up.service)};",
                  "    proxy_ssl_server_name on;"]
    return [*lines, "  }"]


def compile_proxy(proxy: ProxySpec, workdir: Path) -> str:
    """nginx.conf text for one proxy of a plan; paths point into `workdir`."""
    tmp = workdir / "tmp"
    tcp = [lst for lst in proxy.listeners if lst.l4]
    if tcp and not STREAM_MODULE.is_file():
        from meshlab.errors import MissingDependency

        raise MissingDependency("nginx stream module", install="apt-get install "
                                "libnginx-mod-stream (nginx proxies protocol tcp with it)")
    lines = [f"load_module {STREAM_MODULE};"] if tcp else []
    lines += [
        "daemon off;", "master_process on;", f"worker_processes {proxy.concurrency};",
        f"pid {workdir / 'nginx.pid'};", f"error_log {workdir / 'error.log'} warn;",
        "events { worker_connections 4096; }", "http {", "  access_log off;",
        "  keepalive_requests 100000;", "  keepalive_timeout 75s;",
        f"  client_body_temp_path {tmp}/body;", f"  proxy_temp_path {tmp}/proxy;",
        f"  fastcgi_temp_path {tmp}/fastcgi;", f"  uwsgi_temp_path {tmp}/uwsgi;",
        f"  scgi_temp_path {tmp}/scgi;",
    ]
    for i, lst in enumerate(proxy.listeners):
        if not lst.l4:
            lines += _server(lst, i, workdir)
    lines.append("}")
    if tcp:
        lines.append("stream {")
        for i, lst in enumerate(proxy.listeners):
            if lst.l4:
                lines += _stream_server(lst, i)
        lines.append("}")
    return "\n".join(lines) + "\n"


def prepare(proxy: ProxySpec, directory: Path, *, binary: str) -> tuple[Path, list[str]]:
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    path = directory / "nginx.conf"
    path.write_text(compile_proxy(proxy, directory), encoding="utf-8")
    return path, [binary, "-p", str(directory), "-c", str(path), "-e",
                  str(directory / "error.log")]
