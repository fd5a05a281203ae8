"""haproxy as a playground data plane: a plan's proxy compiled to a haproxy.cfg (`retry-on`, server
`maxconn` + short queue timeout as circuit breaker, stick-table rate limits, aborts by `rand`).
Rejected: fault delay, outlier detection, permissive mTLS."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from meshlab.errors import MissingDependency
from meshlab.playground.certs import dns_name
from meshlab.playground.plan import Listener, ProxySpec
from meshlab.policy import MtlsMode, TrafficPolicy

SUPPORTED = frozenset({"mtls", "retries", "timeout", "circuit_breaker", "rate_limit",
                       "fault.abort", "load_balancing.round_robin",
                       "load_balancing.least_request", "load_balancing.random"})
MTLS_MODES = frozenset({MtlsMode.OFF, MtlsMode.STRICT})

_LB = {"round_robin": "roundrobin", "least_request": "leastconn", "random": "random"}
_RETRY_ON = {"5xx": ["500", "502", "503", "504"], "gateway-error": ["502", "503", "504"],
             "reset": ["empty-response", "junk-response"], "connect-failure": ["conn-failure"],
             "retriable-4xx": ["408", "425"], "refused-stream": ["conn-failure"]}
_HAPROXY_CODES = {404, 408, 425, 500, 501, 502, 503, 504}


@dataclass(frozen=True, slots=True)
class HaproxyBinary:
    path: str
    source: str
    version: str


@functools.lru_cache(maxsize=1)
def find_binary() -> HaproxyBinary:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                                       else None)
    if path is None:
        raise MissingDependency("haproxy", install="apt-get install haproxy (or brew install "
                                                    "haproxy)")
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(r"version (\S+)", out.stdout + out.stderr)
    return HaproxyBinary(path, "PATH", m.group(1) if m else "")


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _retry_on(policy: TrafficPolicy) -> list[str]:
    assert policy.retries is not None
    out: list[str] = []
    for on in policy.retries.retry_on:
        if on == "retriable-status-codes":
            out += [str(c) for c in policy.retries.retriable_status_codes
                    if c in _HAPROXY_CODES]
        else:
            out += _RETRY_ON[on]
    return sorted(set(out))


def _section(lst: Listener, index: int) -> list[str]:
    pol = lst.policy
    up = lst.upstream
    bind = f"  bind 127.0.0.1:{lst.port}"
    if lst.tls and lst.mtls == MtlsMode.STRICT:
        bind += f" ssl crt {lst.tls.bundle} ca-file {lst.tls.ca} verify required"
    lines = [f"frontend f{index}", bind, f"  default_backend b{index}"]
    if pol and pol.rate_limit:
        rl = pol.rate_limit
        # a sliding 1 s window (10 s for rates below 1/s): deny above rate x window
        window_s = 1 if rl.requests_per_s >= 1 else 10
        limit = max(1, round(rl.requests_per_s * window_s)) + max(0, (rl.burst or 1) - 1)
        lines += [f"  stick-table type integer size 1 expire {window_s * 2}s "
                  f"store http_req_rate({window_s}s)",
                  "  http-request track-sc0 int(1)",
                  f"  http-request deny deny_status {rl.http_status} "
                  f"if {{ sc_http_req_rate(0) gt {limit} }}"]
    if pol and pol.fault and pol.fault.abort:
        ab = pol.fault.abort
        lines.append(f"  http-request return status {ab.http_status} "
                     f"if {{ rand(1000000) lt {round(ab.percent * 10_000)} }}")
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
    lines.append(f"  timeout server {_ms(server_s)}")
    maxconn = ""
    if pol and pol.circuit_breaker:
        cb = pol.circuit_breaker
        limits = [v for v in (cb.max_connections, cb.max_requests) if v is not None]
        if limits:
            maxconn = f" maxconn {min(limits)}"
        # no queue length limit in haproxy: a pending request waits this long, then 503
        lines.append(f"  timeout queue {'1ms' if cb.max_pending_requests else '1s'}")
    tls = ""
    if up.tls:
        peer = dns_name(up.peer or up.service)
        tls = (f" ssl crt {up.tls.bundle} ca-file {up.tls.ca} verify required "
               f"verifyhost {peer} sni str({peer})")
    lines += [f"  server s{i} {ep.host}:{ep.port}{maxconn}{tls}"
              for i, ep in enumerate(up.endpoints)]
    return lines


def compile_proxy(proxy: ProxySpec) -> str:
    """haproxy.cfg text for one proxy of a plan."""
    lines = ["global", "  maxconn 8192", f"  nbthread {proxy.concurrency}",
             "  log stderr format raw local0 warning", "defaults", "  mode http",
             "  log global", "  option http-keep-alive", "  timeout connect 1s",
             "  timeout client 75s", "  timeout http-keep-alive 75s", ""]
    for i, lst in enumerate(proxy.listeners):
        lines += [*_section(lst, i), ""]
    return "\n".join(lines)


def prepare(proxy: ProxySpec, directory: Path, *, binary: str) -> tuple[Path, list[str]]:
    path = directory / "haproxy.cfg"
    path.write_text(compile_proxy(proxy), encoding="utf-8")
    return path, [binary, "-db", "-f", str(path)]
