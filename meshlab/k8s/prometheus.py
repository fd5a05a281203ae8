"""Telemetry from Prometheus over a run window (httpx, `query_range`): proxy CPU and memory per
pod (cAdvisor), control-plane CPU and memory, and the mesh's own request rate and latency
percentiles (selectors from the mesh layer), with warm-up and cool-down trimmed; returned as
`TelemetrySample`s for run_telemetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshlab.errors import ClusterError
from meshlab.results import TelemetrySample
from meshlab.units import US_PER_MS


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """A mesh's own request counter and latency histogram (milliseconds) as PromQL selectors,
    `{ns}` standing for the benchmark namespace (`{{`/`}}` for literal braces)."""

    total: str
    bucket_ms: str


@dataclass(frozen=True, slots=True)
class TelemetryWindow:
    """A run's wall-clock window (unix seconds) and what to trim from each end."""

    start_s: float
    end_s: float
    warmup_trim_s: float = 0.0
    cooldown_trim_s: float = 0.0
    step_s: float = 5.0
    rate_window: str = "30s"

    @property
    def trimmed(self) -> tuple[float, float]:
        start = self.start_s + self.warmup_trim_s
        end = max(self.end_s - self.cooldown_trim_s, start)
        return start, end


def mesh_queries(namespace: str, control_ns: str, rate_window: str, *,
                 sidecars: Sequence[str] = (),
                 request_metrics: RequestMetrics | None = None) -> dict[str, str]:
    """metric name -> PromQL: proxy containers are those named in `sidecars`; the mesh's own
    request rate and latency need `request_metrics` (none for the baseline)."""
    w = rate_window
    proxies = "|".join(sidecars)
    q = {
        "proxy_cpu_cores": f'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace='
                           f'"{namespace}",container=~"{proxies}"}}[{w}]))',
        "proxy_memory_bytes": f'sum by (pod) (container_memory_working_set_bytes{{namespace='
                              f'"{namespace}",container=~"{proxies}"}})',
        "app_cpu_cores": f'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace='
                         f'"{namespace}",container!~"{proxies}|POD|"}}[{w}]))',
    }
    if control_ns:
        q["control_plane_cpu_cores"] = (f'sum(rate(container_cpu_usage_seconds_total{{namespace='
                                        f'"{control_ns}",container!~"POD|"}}[{w}]))')
        q["control_plane_memory_bytes"] = (f'sum(container_memory_working_set_bytes{{namespace='
                                           f'"{control_ns}",container!~"POD|"}})')
    if request_metrics is not None:
        total = request_metrics.total.format(ns=namespace)
        bucket = request_metrics.bucket_ms.format(ns=namespace)
        q["mesh_request_rate_rps"] = f"sum(rate({total}[{w}]))"
        for p, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            q[f"mesh_latency_{name}_ms"] = (f"histogram_quantile({p}, sum by (le) "
                                            f"(rate({bucket}[{w}])))")
    return q


class PrometheusClient:
    """A small async client for `/api/v1/query_range`; errors become ClusterError."""

    def __init__(self, base_url: str, *, timeout_s: float = 15.0,
                 headers: dict[str, str] | None = None) -> None:
        import httpx  # here, not at import: mesh adapters read RequestMetrics only

        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                         headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query_range(self, query: str, *, start_s: float, end_s: float,
                          step_s: float) -> list[dict[str, Any]]:
        """The `data.result` matrix: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
        import httpx

        try:
            resp = await self._client.get("/api/v1/query_range", params={
                "query": query, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}",
                "step": f"{step_s:g}"})
        except httpx.HTTPError as exc:
            raise ClusterError(f"Prometheus at {self.base_url} is unreachable: {exc}",
                               reason="Unreachable", resource="prometheus") from exc
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if resp.status_code != 200 or doc.get("status") != "success":
            raise ClusterError(f"Prometheus refused {query!r}: {doc.get('errorType', '')} "
                               f"{doc.get('error', resp.text[:200])}", status=resp.status_code,
                               reason=str(doc.get("errorType") or "PrometheusError"),
                               resource="prometheus")
        data = doc.get("data") or {}
        return list(data.get("result") or [])

    async def run_telemetry(self, *, namespace: str, control_namespace: str,
                            window: TelemetryWindow, sidecars: Sequence[str] = (),
                            request_metrics: RequestMetrics | None = None,
                            run_start_s: float | None = None) -> tuple[list[TelemetrySample],
                                                                       list[str]]:
        """Samples for every query of `mesh_queries` (t_s relative to `run_start_s`, default
        the window start), and warnings for queries that returned nothing."""
        origin = window.start_s if run_start_s is None else run_start_s
        start, end = window.trimmed
        samples: list[TelemetrySample] = []
        warnings: list[str] = []
        queries = mesh_queries(namespace, control_namespace, window.rate_window,
                               sidecars=sidecars, request_metrics=request_metrics)
        for metric, query in queries.items():
            series = await self.query_range(query, start_s=start, end_s=end,
                                            step_s=window.step_s)
            if not series:
                warnings.append(f"prometheus: no data for {metric}")
            for s in series:
                pod = (s.get("metric") or {}).get("pod")
                source = f"prometheus:{pod}" if pod else "prometheus"
                name, scale = metric, 1.0
                if metric.endswith("_ms"):            # store latency in microseconds
                    name, scale = metric[:-3] + "_us", US_PER_MS
                for t, v in s.get("values") or []:
                    value = float(v)
                    if value != value:                 # NaN: no traffic in that step
                        continue
                    samples.append(TelemetrySample(round(float(t) - origin, 3), source, name,
                                                   value * scale))
        return samples, warnings
