"""haproxy as a playground data plane: a plan's proxy compiled to a haproxy.cfg (`retry-on`, server
`maxconn` + a queue-length rule as circuit breaker, stick-table rate limits, aborts by `rand`, a
stats socket). Rejected (see FIELDS): fault delay, outlier detection, retry backoff and budget,
permissive mTLS."""

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

_LB = {"round_robin": "roundrobin", "least_request": "leastconn", "random": "random"}
# retriable-4xx (409 in Envoy) has no haproxy equivalent: FIELDS rejects it
_RETRY_ON = {"5xx": ["500", "502", "503", "504"], "gateway-error": ["502", "503", "504"],
             "reset": ["empty-response", "junk-response"], "connect-failure": ["conn-failure"],
             "refused-stream": ["conn-failure"]}
_HAPROXY_CODES = frozenset({401, 403, 404, 408, 425, 500, 501, 502, 503, 504})
"""The status codes `retry-on` accepts."""


def _values(policy: TrafficPolicy) -> list[tuple[str, str]]:
    out = common_values(policy) + status_codes(policy, _HAPROXY_CODES, "haproxy")
    r = policy.retries
    if r is not None and "retriable-4xx" in r.retry_on:
        out.append(("retries.retry_on", "retriable-4xx means 409 (as in Envoy), which haproxy's "
                    "retry-on cannot name: use retriable-status-codes"))
    if policy.mtls == MtlsMode.PERMISSIVE:
        out.append(("mtls", "permissive: one haproxy bind cannot take both TLS and plaintext; "
                    "use strict or envoy"))
    cb = policy.circuit_breaker
    if cb is not None and cb.max_pending_requests is not None and \
            cb.max_connections is None and cb.max_requests is None:
        out.append(("circuit_breaker.max_pending_requests", "haproxy queues requests only "
                    "behind a server connection limit: set max_connections or max_requests too"))
    if policy.rate_limit is not None and whole_rate(policy.rate_limit.requests_per_s) is None:
        out.append(("rate_limit.requests_per_s", f"{policy.rate_limit.requests_per_s:g}: "
                    f"haproxy counts whole requests per 1, 10 or 60 s window"))
    return out


def _by_protocol(policy: TrafficPolicy, protocol: str) -> list[tuple[str, str]]:
    return grpc_status_retries(policy, protocol, "haproxy's retry-on sees connection failures "
                               "and HTTP statuses, not the grpc-status a gRPC server sends in "
                               "trailers; use envoy")


FIELDS = FieldSupport(
    "haproxy", rendered=frozenset({"name", "service", "mtls", "retries", "timeout",
                                   "circuit_breaker", "rate_limit", "fault.abort",
                                   "load_balancing"}),
    rejected={
        "retries.backoff_base_s": "haproxy retries at once (a fixed pause only after a "
                                  "connection failure); remove it or use envoy",
        "circuit_breaker.max_retries": "haproxy has no limit on concurrent retries; use envoy",
        "circuit_breaker.outlier_detection": "haproxy's observe/error-limit is not "
                                             "consecutive-5xx ejection; use envoy",
        "fault.delay": "haproxy cannot delay a request; use envoy"},
    values=_values, by_protocol=_by_protocol)
"""What haproxy renders of each TrafficPolicy field, and what it rejects with the reason."""
SUPPORTED = FIELDS.features()


@functools.lru_cache(maxsize=1)
def find_binary() -> ProxyBinary:
    return find_system_binary("haproxy", install="apt-get install haproxy (or brew install "
                                                 "haproxy)", version_pattern=r"version (\S+)")


def _retry_on(policy: TrafficPolicy) -> list[str]:
    assert policy.retries is not None
    out: list[str] = []
    for on in policy.retries.retry_on:
        if on == "retriable-status-codes":
            out += [str(c) for c in policy.retries.retriable_status_codes]
        else:
            out += _RETRY_ON.get(on, [])
    return sorted(set(out))


def _tcp_section(lst: Listener, index: int) -> list[str]:
    """A TCP listener (protocol tcp): frontend and backend in `mode tcp`."""
    up = lst.upstream
    pol = lst.policy
    bind = f"  bind 127.0.0.1:{lst.port}"
    if lst.tls and lst.mtls == MtlsMode.STRICT:
        bind += f" ssl crt {lst.tls.bundle} ca-file {lst.tls.ca} verify required"
    lb = pol.load_balancing.algorithm if pol and pol.load_balancing else "round_robin"
    cb = pol.circuit_breaker if pol else None
    # Envoy's limit holds for the whole cluster, haproxy's maxconn per server
    maxconn = (f" maxconn {max(1, cb.max_connections // len(up.endpoints))}"
               if cb and cb.max_connections else "")
    tls = ""
    if up.tls:
        peer = dns_name(up.peer or up.service)
        tls = (f" ssl crt {up.tls.bundle} ca-file {up.tls.ca} verify required "
               f"verifyhost {peer} sni str({peer})")
    return [f"# {lst.name} (tcp)", f"frontend f{index}", "  mode tcp", bind,
            f"  default_backend b{index}", f"backend b{index}", "  mode tcp",
            f"  balance {_LB[lb]}", "  retries 0",
            *[f"  server s{i} {ep.host}:{ep.port}{maxconn}{tls}"
              for i, ep in enumerate(up.endpoints)]]


def _section(lst: Listener, index: int) -> list[str]:
    if lst.l4:
        return _tcp_section(lst, index)
    pol = lst.policy
    up = lst.upstream
    bind = f"  bind 127.0.0.1:{lst.port}"
    if lst.tls and lst.mtls == MtlsMode.STRICT:
        bind += f" ssl crt {lst.tls.bundle} ca-file {lst.tls.ca} verify required"
        if lst.protocol in ("h2c", "grpc"):
            bind += " alpn h2,http/1.1"
    elif lst.protocol in ("h2c", "grpc"):
        bind += " proto h2"            # HTTP/2 with prior knowledge
    lines = [f"# policy {pol.name!r} on {lst.name}" if pol else f"# {lst.name}",
             f"frontend f{index}", bind, f"  default_backend b{index}"]
    if pol and pol.timeout and pol.timeout.idle_timeout_s:
        lines.append(f"  timeout http-keep-alive {ms_text(pol.timeout.idle_timeout_s)}")
    cb = pol.circuit_breaker if pol else None
    if pol and pol.rate_limit:
        rl = pol.rate_limit
        whole = whole_rate(rl.requests_per_s)
        assert whole is not None, "FIELDS rejects rates without a whole count"
        count, window_s = whole
        # a sliding window: deny above rate x window (+ burst - 1)
        limit = count + max(0, (rl.burst or 1) - 1)
        lines += [f"  stick-table type integer size 1 expire {window_s * 2}s "
                  f"store http_req_rate({window_s}s)",
                  "  http-request track-sc0 int(1)",
                  # `return` takes any status; `deny deny_status` only haproxy's built-in pages
                  f"  http-request return status {rl.http_status} "
                  f"if {{ sc_http_req_rate(0) gt {limit} }}"]
    if pol and pol.fault and pol.fault.abort:
        ab = pol.fault.abort
        lines.append(f"  http-request return status {ab.http_status} "
                     f"if {{ rand(1000000) lt {round(ab.percent * 10_000)} }}")
    if cb and cb.max_pending_requests is not None:
        # requests wait in the backend queue behind the servers' maxconn; like Envoy's pending
        # overflow, a request arriving when max_pending_requests already wait gets a 503
        lines.append(f"  http-request return status 503 "
                     f"if {{ queue(b{index}) ge {cb.max_pending_requests} }}")
    lb = pol.load_balancing.algorithm if pol and pol.load_balancing else "round_robin"
    lines += [f"backend b{index}", f"  balance {_LB[lb]}", "  http-reuse always"]
    if pol and pol.retries:
        lines += [f"  retries {pol.retries.attempts}",
                  f"  retry-on {' '.join(_retry_on(pol))}", "  option redispatch 1"]
    else:
        lines.append("  retries 0")
    server_s = 60.0
    if pol and pol.timeout:
        server_s = pol.timeout.request_timeout_s
    if pol and pol.retries and pol.retries.per_try_timeout_s:
        server_s = min(server_s, pol.retries.per_try_timeout_s)
    lines.append(f"  timeout server {ms_text(server_s)}")
    maxconn = ""
    if cb:
        limits = [v for v in (cb.max_connections, cb.max_requests) if v is not None]
        if limits:
            # Envoy's limits hold for the whole cluster, haproxy's maxconn per server
            maxconn = f" maxconn {max(1, min(limits) // len(up.endpoints))}"
        lines.append(f"  timeout queue {ms_text(server_s)}")
    tls = ""
    if up.tls:
        peer = dns_name(up.peer or up.service)
        tls = (f" ssl crt {up.tls.bundle} ca-file {up.tls.ca} verify required "
               f"verifyhost {peer} sni str({peer})")
    if up.protocol == "grpc":          # gRPC needs HTTP/2 to the next hop
        tls += " alpn h2" if up.tls else " proto h2"
    lines += [f"  server s{i} {ep.host}:{ep.port}{maxconn}{tls}"
              for i, ep in enumerate(up.endpoints)]
    return lines


def compile_proxy(proxy: ProxySpec) -> str:
    """haproxy.cfg text for one proxy of a plan; its stats socket listens on the admin port
    (`show stat` there gives request and retry counters)."""
    lines = ["global", "  maxconn 8192", f"  nbthread {proxy.concurrency}",
             f"  stats socket ipv4@127.0.0.1:{proxy.admin_port} level user",
             "  log stderr format raw local0 warning", "defaults", "  mode http",
             "  log global", "  option http-keep-alive", "  timeout connect 1s",
             "  timeout client 75s", "  timeout http-keep-alive 75s", ""]
    for i, lst in enumerate(proxy.listeners):
        lines += [*_section(lst, i), ""]
    return "\n".join(lines)


def show_stat(admin_port: int, *, timeout_s: float = 2.0) -> list[dict[str, str]]:
    """haproxy's `show stat` from the stats socket on `admin_port`: one row per frontend,
    backend and server (`pxname`, `svname`, `req_tot`, `wretr` retries, `wredis` ...)."""
    import csv
    import socket

    with socket.create_connection(("127.0.0.1", admin_port), timeout=timeout_s) as sock:
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", "replace").lstrip("# ")
    return [dict(row) for row in csv.DictReader(line for line in text.splitlines() if line)]


def prepare(proxy: ProxySpec, directory: Path, *, binary: str) -> tuple[Path, list[str]]:
    path = directory / "haproxy.cfg"
    path.write_text(compile_proxy(proxy), encoding="utf-8")
    return path, [binary, "-db", "-f", str(path)]
