"""Test data for the store tests (numpy-generated RunResults) and the worker processes they start.

Run as a script: `python _store_data.py save DB PREFIX N CHUNK BATCH [START_FILE]` saves N runs
with `Store.save_many` calls of CHUNK runs; `... hold DB SECONDS` holds the DuckDB file lock;
`... bigsaves DB` saves batches of big runs until killed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from meshlab.profile import RunSpec
from meshlab.results import (
    Histogram,
    HostSnapshot,
    RunResult,
    RunStatus,
    TelemetrySample,
    TimeSeriesPoint,
)


def make_result(run_id: str, *, seed: int = 0, mesh: str = "none", rate_rps: float = 1000.0,
                connections: int = 16, repeat: int = 0, n: int = 5_000, telemetry_n: int = 20,
                mode: str = "local", labels: tuple[tuple[str, str], ...] = (("team", "a"),),
                started_at: datetime | None = None, scale_ns: float = 200_000.0,
                status: RunStatus = RunStatus.COMPLETED) -> RunResult:
    """A complete RunResult with lognormal latencies (corrected >= uncorrected)."""
    rng = np.random.default_rng(seed)
    svc_ns = (rng.lognormal(0.0, 0.6, n) * scale_ns).astype(np.int64)
    lat_ns = svc_ns + rng.exponential(scale_ns / 10, n).astype(np.int64)
    latency, service = Histogram(), Histogram()
    latency.record_ns(lat_ns)
    service.record_ns(svc_ns)
    spec = RunSpec(target="http://127.0.0.1:8080/", rate_rps=rate_rps, connections=connections,
                   duration_s=10.0, warmup_s=1.0, repeat=repeat, mesh=mesh, profile="smoke",
                   headers=(("Authorization", "Bearer s3cret"),), labels=labels,
                   dims=(("mode", mode), ("policy", "retry"))).to_dict()
    start = started_at or datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    errors = int(rng.integers(0, 50))
    return RunResult(
        run_id=run_id, spec=spec, status=status, started_at=start,
        ended_at=start + timedelta(seconds=11.5), duration_s=10.0,
        requested_rate_rps=rate_rps, achieved_rate_rps=n / 10.0, requests=n, errors=errors,
        status_codes={200: n - errors, 503: errors}, error_kinds={"reset": 2, "timeout": 1},
        latency=latency, service_time=service,
        timeseries=[TimeSeriesPoint(second=s, requests=n // 10, errors=errors // 10,
                                    p50_us=100.0 + s, p99_us=900.5 + s) for s in range(10)],
        host=HostSnapshot(hostname="bench-1", cpu_model="Test CPU", cores=2, kernel="6.1",
                          python="3.11.7", meshlab_version="0.1.0", tools={"wrk": "4.2.0"}),
        runner="native", runner_version="0.1.0",
        context={"environment": {"name": "local", "nodes": 1}, "data_plane": "envoy",
                 "mtls": True, "topology": ["client", "proxy", "echo"]},
        telemetry=[TelemetrySample(t_s=i * 0.5, source="envoy:sidecar", metric="cpu_percent",
                                   value=float(rng.uniform(0, 100))) for i in range(telemetry_n)],
        warnings=["achieved rate 2% below requested"], error=None,
        raw={"format": "fortio", "RunType": "HTTP", "DurationHistogram": {"Count": n}},
        bytes_received=n * 120)


def _save(db: str, prefix: str, count: int, chunk: int, batch_size: int,
          start_file: str | None) -> None:
    """Save `count` runs with save_many calls of `chunk` runs (`batch_size` per transaction)."""
    from meshlab.store import Store

    results = [make_result(f"{prefix}-{i:03d}", seed=i, n=2_000) for i in range(count)]
    if start_file:                        # start both writers at the same moment
        deadline = time.monotonic() + 30
        while not Path(start_file).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    store = Store(db, lock_timeout_s=60)
    written = sum(store.save_many(results[i:i + chunk], batch_size=batch_size)
                  for i in range(0, count, chunk))
    print(f"done {written}", flush=True)


def _hold(db: str, seconds: float) -> None:
    import duckdb

    con = duckdb.connect(db)
    print("locked", flush=True)
    time.sleep(seconds)
    con.close()


def _bigsaves(db: str) -> None:
    """Save batches of two big runs (one save_many transaction each) until killed."""
    from meshlab.store import Store

    store = Store(db)
    i = 0
    while True:
        batch = [make_result(f"big-{i:04d}-{k}", seed=i, n=20_000, telemetry_n=50_000)
                 for k in range(2)]
        t0 = time.perf_counter()
        print(f"begin {i}", flush=True)
        store.save_many(batch)
        print(f"saved {i} {time.perf_counter() - t0:.4f}", flush=True)
        i += 1


if __name__ == "__main__":
    cmd, db, *rest = sys.argv[1:]
    if cmd == "save":
        _save(db, rest[0], int(rest[1]), int(rest[2]), int(rest[3]),
              rest[4] if len(rest) > 4 else None)
    elif cmd == "hold":
        _hold(db, float(rest[0]))
    elif cmd == "bigsaves":
        _bigsaves(db)
