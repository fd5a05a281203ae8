"""Telemetry during runs: every second, each proxy's CPU and RSS (psutil, its whole process tree)
and Envoy's admin `/stats` counters, sampled in a background thread; plus the figures Istio
publishes, derived from them: proxy vCPU per 1,000 req/s and MB per proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import psutil

from meshlab.results import TelemetrySample

# Envoy stat name -> meshlab metric; counters are summed over listeners/clusters (admin excluded)
_ENVOY_STATS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), m) for p, m in (
        (r"^http\.(?!admin\.)[^:]+\.downstream_rq_total$", "envoy.downstream_rq_total"),
        (r"^http\.(?!admin\.)[^:]+\.downstream_rq_5xx$", "envoy.downstream_rq_5xx"),
        (r"^http\.(?!admin\.)[^:]+\.downstream_cx_active$", "envoy.downstream_cx_active"),
        (r"^tcp\.[^:]+\.downstream_cx_total$", "envoy.tcp_downstream_cx_total"),
        (r"^cluster\.[^:]+\.upstream_rq_total$", "envoy.upstream_rq_total"),
        (r"^cluster\.[^:]+\.upstream_rq_retry$", "envoy.upstream_rq_retry"),
        (r"^cluster\.[^:]+\.upstream_rq_retry_success$", "envoy.upstream_rq_retry_success"),
        (r"^cluster\.[^:]+\.upstream_rq_5xx$", "envoy.upstream_rq_5xx"),
        (r"^cluster\.[^:]+\.upstream_rq_timeout$", "envoy.upstream_rq_timeout"),
        (r"^cluster\.[^:]+\.upstream_rq_pending_overflow$", "envoy.upstream_rq_pending_overflow"),
        (r"^cluster\.[^:]+\.upstream_cx_overflow$", "envoy.upstream_cx_overflow"),
        (r"^cluster\.[^:]+\.upstream_rq_retry_overflow$", "envoy.upstream_rq_retry_overflow"),
        (r"^cluster\.[^:]+\.upstream_cx_active$", "envoy.upstream_cx_active"),
        (r"^cluster\.[^:]+\.upstream_cx_total$", "envoy.upstream_cx_total"),
        (r"^cluster\.[^:]+\.upstream_cx_http2_total$", "envoy.upstream_cx_http2_total"),
        (r"^cluster\.[^:]+\.outlier_detection\.ejections_enforced_total$",
         "envoy.outlier_ejections"),
        (r"\.http_local_rate_limit\.rate_limited$", "envoy.rate_limited"),
        (r"^http\.[^:]+\.fault\.aborts_injected$", "envoy.fault_aborts"),
        (r"^http\.[^:]+\.fault\.delays_injected$", "envoy.fault_delays"),
    ))
_STATS_FILTER = ("downstream_rq_total|downstream_rq_5xx|downstream_cx_active|downstream_cx_total|"
                 "upstream_rq_total|upstream_rq_retry|upstream_rq_5xx|upstream_rq_timeout|"
                 "overflow|upstream_cx_active|upstream_cx_total|upstream_cx_http2_total|"
                 "ejections_enforced_total|rate_limited|injected")


def parse_envoy_stats(text: str) -> dict[str, float]:
    """meshlab metrics from Envoy's text `/stats` output (`name: value` lines)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if not sep:
            continue
        for pattern, metric in _ENVOY_STATS:
            if pattern.search(name):
                with contextlib.suppress(ValueError):
                    out[metric] = out.get(metric, 0.0) + float(value)
                break
    return out


def envoy_stats(admin_port: int, *, client: httpx.Client | None = None) -> dict[str, float]:
    """Read one Envoy's counters now (summed over its listeners and clusters)."""
    url = f"http://127.0.0.1:{admin_port}/stats"
    params = {"filter": _STATS_FILTER}
    if client is None:
        with httpx.Client(timeout=2.0) as c:
            return parse_envoy_stats(c.get(url, params=params).text)
    return parse_envoy_stats(client.get(url, params=params).text)


@dataclass(frozen=True, slots=True)
class Target:
    """A process to sample: `source` names it in the samples (`envoy:client-sidecar`)."""

    source: str
    pid: int
    admin_port: int | None = None       # Envoy admin, for /stats
    tree: bool = False                  # include child processes (nginx's workers)


class TelemetrySampler:
    """Samples targets every `interval_s` in a daemon thread until `stop()`."""

    def __init__(self, targets: Sequence[Target], *, interval_s: float = 1.0) -> None:
        self.targets = list(targets)
        self.interval_s = interval_s
        self.samples: list[TelemetrySample] = []
        self.gone: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._cpu: dict[str, tuple[float, float]] = {}
        self._procs: dict[str, list[psutil.Process]] = {}
        self._admin: dict[int, http.client.HTTPConnection] = {}
        self._stats_path = "/stats?" + urlencode({"filter": _STATS_FILTER})

    def _processes(self, target: Target) -> list[psutil.Process]:
        # cached: listing children scans all of /proc, too costly to do every second
        procs = self._procs.get(target.source)
        if procs is None:
            proc = psutil.Process(target.pid)
            procs = [proc, *proc.children(recursive=True)] if target.tree else [proc]
            self._procs[target.source] = procs
        return procs

    def start(self) -> TelemetrySampler:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="meshlab-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[TelemetrySample]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5.0)
            self._thread = None
        return self.samples

    def _loop(self) -> None:
        own0 = time.thread_time()
        wall0 = time.monotonic()
        self._sample()
        while not self._stop.wait(self.interval_s):
            self._sample()
        self._sample()
        for conn in self._admin.values():
            conn.close()
        wall = time.monotonic() - wall0
        if wall > 0:    # what sampling itself cost, so a reader can check it stays small
            self.samples.append(TelemetrySample(round(wall, 3), "meshlab:telemetry",
                                                "cpu_percent",
                                                100.0 * (time.thread_time() - own0) / wall))

    def _stats(self, port: int) -> dict[str, float]:
        # stdlib keep-alive connection: an httpx client costs more to build (an SSL context)
        # than a whole run of sampling
        conn = self._admin.get(port)
        if conn is None:
            conn = self._admin[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", self._stats_path)
            return parse_envoy_stats(conn.getresponse().read().decode("utf-8", "replace"))
        except (OSError, http.client.HTTPException):
            conn.close()
            del self._admin[port]
            raise

    def _sample(self) -> None:
        now = time.monotonic()
        t = round(now - self._t0, 3)
        for target in self.targets:
            if target.source in self.gone:
                continue
            try:
                procs = self._processes(target)
                if procs[0].status() == psutil.STATUS_ZOMBIE:     # died, not yet reaped
                    raise psutil.NoSuchProcess(target.pid)
                cpu = 0.0
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error), p.oneshot():
                        times = p.cpu_times()
                        cpu += times.user + times.system
                        rss += p.memory_info().rss
            except psutil.Error:
                self.gone.append(target.source)
                continue
            prev = self._cpu.get(target.source)
            self._cpu[target.source] = (now, cpu)
            if prev is not None and now > prev[0]:
                self.samples.append(TelemetrySample(t, target.source, "cpu_percent",
                                                    100.0 * (cpu - prev[1]) / (now - prev[0])))
            self.samples.append(TelemetrySample(t, target.source, "rss_bytes", float(rss)))
            if target.admin_port:
                try:
                    stats = self._stats(target.admin_port)
                except (OSError, http.client.HTTPException):
                    continue
                self.samples.extend(TelemetrySample(t, target.source, m, v)
                                    for m, v in sorted(stats.items()))


def proxy_costs(telemetry: Iterable[TelemetrySample], achieved_rate_rps: float, *,
                proxies_on_path: int, sources: Iterable[str] | None = None,
                ) -> dict[str, float | None]:
    """Istio's published figures from a run's samples and its achieved rate (pure: call it
    wherever the rate is known). `proxies_on_path`: proxies one request passes through (a
    playground run records it in its context); `sources` restricts to some proxies (default:
    every source but meshlab's own).

    - proxy_vcpu_total: mean vCPU of all proxies together
    - proxy_vcpu_per_1k_rps_total: that per 1,000 req/s of achieved rate
    - proxy_vcpu_per_1k_rps_per_sidecar: divided by proxies_on_path, Istio's per-proxy figure
    - proxy_mb_per_sidecar: mean RSS per proxy, in MB (1e6 bytes)
    Rate-based figures are None when the rate or the proxies on the path are 0."""
    wanted = set(sources) if sources is not None else None
    cpu: dict[str, list[float]] = defaultdict(list)
    rss: dict[str, list[float]] = defaultdict(list)
    for s in telemetry:
        if s.source.startswith("meshlab:") or (wanted is not None and s.source not in wanted):
            continue
        if s.metric == "cpu_percent":
            cpu[s.source].append(s.value)
        elif s.metric == "rss_bytes":
            rss[s.source].append(s.value)
    vcpu = sum(sum(v) / len(v) for v in cpu.values()) / 100.0
    mb = [sum(v) / len(v) / 1e6 for v in rss.values()]
    per_1k = vcpu / (achieved_rate_rps / 1000.0) if achieved_rate_rps > 0 and cpu else None
    return {
        "proxies": float(len(rss)),
        "proxies_on_path": float(proxies_on_path),
        "proxy_vcpu_total": vcpu,
        "proxy_vcpu_per_1k_rps_total": per_1k,
        "proxy_vcpu_per_1k_rps_per_sidecar": per_1k / proxies_on_path
        if per_1k is not None and proxies_on_path > 0 else None,
        "proxy_mb_per_sidecar": sum(mb) / len(mb) if mb else None,
    }
