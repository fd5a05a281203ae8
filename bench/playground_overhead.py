"""What each playground data plane and mode adds over no proxy, at a fixed open-loop rate.

    .venv/bin/python bench/playground_overhead.py            # ~4 min: 3 interleaved rounds, 8 s
    .venv/bin/python bench/playground_overhead.py --quick    # ~1 min smoke run: 1 round, 2 s

For each configuration (data plane + mode) on a one-hop topology (client -> backend, one
replica): the extra p50 and p99 over `none` (histograms pooled over rounds, from the intended
send time), proxy vCPU per 1,000 req/s and MB per proxy (psutil, sampled every second), start-up
time (spawn to every readiness probe passing) and teardown time (to no process left). Rounds are
interleaved so slow drift of a noisy machine spreads over every configuration. Also checks the
targets: a two-sidecar mTLS topology up in < 3 s and gone in < 2 s; sampling < 2 % of a core.
Keep the rate at or below ~1k req/s: two Envoys in a chain fall behind at ~3k on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from meshlab.playground.plan import proxies_on_path
from meshlab.playground.playground import Playground
from meshlab.playground.telemetry import Target, TelemetrySampler, proxy_costs
from meshlab.profile import RunSpec
from meshlab.results import Histogram
from meshlab.runners.native import NativeRunner

CONFIGS = [
    ("none", "both"), ("envoy", "both"), ("envoy", "client-only"), ("envoy", "server-only"),
    ("envoy", "ingress"), ("envoy+mtls", "both"), ("envoy+mtls+h2", "both"),
    ("envoy+mtls", "node-proxy"), ("envoy+mtls", "node-proxy+waypoint"),
    ("nginx", "both"), ("nginx+mtls", "both"), ("haproxy", "both"), ("haproxy+mtls", "both"),
]


@dataclass(frozen=True, slots=True)
class Outcome:
    hist: Histogram
    up_s: float
    down_s: float
    costs: dict[str, float | None]
    errors: int
    dead: list[str]
    sampling_pct: float
    version: str
    binary: str


def _one(mesh: str, mode: str, *, rate: float, duration_s: float, connections: int,
         state: Path) -> Outcome:
    t0 = time.perf_counter()
    pg = Playground(mesh=mesh, mode=mode, state_dir=state)
    pg.start()
    up_s = time.perf_counter() - t0
    try:
        proxies = pg.proxy_processes()
        sampler = TelemetrySampler([Target(f"{p.kind}:{p.name}", p.pid,
                                           p.ports.get("admin") if p.kind == "envoy" else None,
                                           tree=p.kind == "nginx") for p in proxies]).start()
        spec = RunSpec(target=pg.url, rate_rps=rate, connections=connections,
                       duration_s=duration_s, warmup_s=1.0)
        result = asyncio.run(NativeRunner().run(spec))
        samples = sampler.stop()
        dead = pg.dead()
    finally:
        t1 = time.perf_counter()
        pg.stop()
        down_s = time.perf_counter() - t1
    costs = proxy_costs(samples, result.achieved_rate_rps,
                        proxies_on_path=len(proxies_on_path(pg.plan)))
    own = [s.value for s in samples if s.source == "meshlab:telemetry"]
    return Outcome(result.latency, up_s, down_s, costs, result.errors, dead,
                   own[-1] if own else float("nan"), pg.data_plane_version, pg.data_plane_source)


def _median(values: Iterable[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop req/s (default 1000)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated meshes to keep, e.g. envoy,nginx")
    args = ap.parse_args()
    rounds, dur = (1, 2.0) if args.quick else (3, 8.0)
    configs = [c for c in CONFIGS if not args.only or c[0] == "none"
               or c[0].split("+")[0] in args.only.split(",")]
    runs: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for mesh, mode in configs:
                runs[(mesh, mode)].append(_one(mesh, mode, rate=args.rate, duration_s=dur,
                                               connections=args.connections, state=Path(tmp)))
    base = Histogram.merged(r.hist for r in runs[("none", "both")])
    b50, b99 = base.percentile_us(50), base.percentile_us(99)
    print(f"open loop {args.rate:,.0f} req/s, {args.connections} connections, {rounds} x "
          f"{dur:.0f} s; baseline none p50 {b50:,.0f} us, p99 {b99:,.0f} us")
    print("vCPU/1k: all proxies together per 1,000 req/s; /proxy: that over the proxies a "
          "request passes (Istio's figure); MB: mean RSS per proxy")
    print(f"{'data plane':<16}{'mode':<21}{'+p50 us':>9}{'+p99 us':>10}{'proxies':>8}"
          f"{'vCPU/1k':>9}{'/proxy':>8}{'MB/proxy':>9}{'up s':>7}{'down s':>7}{'errors':>7}")
    for (mesh, mode), rs in runs.items():
        h = Histogram.merged(r.hist for r in rs)
        vcpu = _median(r.costs["proxy_vcpu_per_1k_rps_total"] for r in rs)
        per = _median(r.costs["proxy_vcpu_per_1k_rps_per_sidecar"] for r in rs)
        mb = _median(r.costs["proxy_mb_per_sidecar"] for r in rs)
        up = statistics.median(r.up_s for r in rs)
        down = statistics.median(r.down_s for r in rs)
        errs = sum(r.errors for r in rs)
        extra50 = h.percentile_us(50) - b50
        extra99 = h.percentile_us(99) - b99
        dead = sorted({d for r in rs for d in r.dead})
        n = int(rs[0].costs["proxies"] or 0)
        print(f"{mesh:<16}{mode:<21}{extra50:>9,.0f}{extra99:>10,.0f}{n:>8}{vcpu:>9.3f}"
              f"{per:>8.3f}{mb:>9.1f}"
              f"{up:>7.2f}{down:>7.2f}{errs:>7}" + (f"  DEAD: {dead}" if dead else ""))
    envoy = runs.get(("envoy", "both"), [])
    if envoy:
        print(f"envoy: {envoy[0].version} from {envoy[0].binary}")
    mtls = runs.get(("envoy+mtls", "both"), [])
    if mtls:
        up = max(r.up_s for r in mtls)
        down = max(r.down_s for r in mtls)
        print(f"two-sidecar mTLS topology: up in {up:.2f} s (target < 3), gone in {down:.2f} s "
              f"(target < 2): {'ok' if up < 3 and down < 2 else 'MISSED'}")
    sampling = max(r.sampling_pct for rs in runs.values() for r in rs)
    print(f"telemetry sampling: at most {sampling:.2f} % of one core (target < 2): "
          f"{'ok' if sampling < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
