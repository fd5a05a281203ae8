"""Synthetic RunResults with known latency distributions, for demos, docs and tests.

A run's latencies are lognormal around `p50_us`; `slowdown=1.2` makes every request 20% slower,
so an analysis must flag it, and the same parameters with another seed must not be flagged.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from meshlab.results import (
    Histogram,
    HostSnapshot,
    RunResult,
    RunStatus,
    TelemetrySample,
    TimeSeriesPoint,
)


def synthetic_result(
    *,
    run_id: str,
    mesh: str = "none",
    profile: str = "synthetic",
    p50_us: float = 500.0,
    sigma: float = 0.35,
    slowdown: float = 1.0,
    rate_rps: float = 1000.0,
    connections: int = 16,
    duration_s: float = 10.0,
    requests: int | None = None,
    error_rate: float = 0.0,
    repeat: int = 0,
    seed: int = 0,
    context: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    cpu_percent: float | None = None,
    started_at: datetime | None = None,
) -> RunResult:
    """One completed run with lognormal latencies (median `p50_us * slowdown`)."""
    rng = np.random.default_rng(seed)
    n = requests if requests is not None else int(rate_rps * duration_s)
    lat_us = rng.lognormal(math.log(p50_us * slowdown), sigma, n)
    service = Histogram()
    service.record_us(lat_us)
    latency = service.copy()
    errors = int(rng.binomial(n, error_rate)) if error_rate else 0
    start = started_at or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seed)
    seconds = max(int(duration_s), 1)
    per_s = np.array_split(lat_us, seconds)
    ts = [TimeSeriesPoint(second=i, requests=len(c), errors=errors // seconds,
                          p50_us=float(np.percentile(c, 50)) if len(c) else math.nan,
                          p99_us=float(np.percentile(c, 99)) if len(c) else math.nan)
          for i, c in enumerate(per_s)]
    tel = ([TelemetrySample(float(i), "envoy:sidecar", "cpu_percent",
                            float(cpu_percent * (1 + 0.05 * rng.standard_normal())))
            for i in range(seconds)] if cpu_percent is not None else [])
    spec = {"profile": profile, "target": "http://127.0.0.1:8080/", "rate_rps": rate_rps,
            "connections": connections, "duration_s": duration_s, "mesh": mesh,
            "repeat": repeat, "runner": "native", "labels": dict(labels or {}), "dims": {}}
    codes = {200: n - errors, **({503: errors} if errors else {})}
    return RunResult(
        run_id=run_id, spec=spec, status=RunStatus.COMPLETED, started_at=start,
        ended_at=start + timedelta(seconds=duration_s), duration_s=duration_s,
        requested_rate_rps=rate_rps, achieved_rate_rps=n / duration_s, requests=n,
        errors=errors, status_codes=codes, error_kinds={}, latency=latency,
        service_time=service, timeseries=ts, telemetry=tel, context=dict(context or {}),
        host=HostSnapshot("synthetic-host", "synthetic cpu", 2, "6.1", "3.11", "0.1.0"),
    )
