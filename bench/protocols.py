"""HTTP/2, gRPC and TCP: the native runner next to h2load -t1 and k6 against the echo workload.

    .venv/bin/python bench/protocols.py            # 3 interleaved rounds of 4 s
    .venv/bin/python bench/protocols.py --quick    # 1 round of 2 s
    .venv/bin/python bench/protocols.py --planes   # + added p50 per data plane at 1k req/s

Closed loop, 16 connections x 8 streams for the HTTP/2 tools (k6: 16 VUs, one request each at
a time; k6 speaks HTTP/2 only over TLS, so its HTTP row is HTTP/1.1). Also: the echo workload's
CPU per request (from /proc, while h2load loads it), open-loop gRPC achieved/requested, and TCP
echo next to the HTTP/1.1 path with the client's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from meshlab.playground.echo import EchoProcess, start_echo_process
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners.base import Runner
from meshlab.runners.h2load import H2loadRunner
from meshlab.runners.k6 import K6Runner
from meshlab.runners.native import NativeRunner

TICKS_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_S


def run(runner: Runner, spec: RunSpec) -> RunResult:
    return asyncio.run(runner.run(spec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--planes", action="store_true",
                    help="also: p50 added by each data plane (sidecars on both ends) at 1k req/s")
    args = ap.parse_args()
    rounds, dur = (1, 2.0) if args.quick else (3, 4.0)
    echo: EchoProcess = start_echo_process(name="bench", tcp_port=0)
    try:
        url, tcp = echo.url, f"tcp://127.0.0.1:{echo.tcp_port}"

        def spec(protocol: str, *, streams: int = 8, target: str = url, **kw: object) -> RunSpec:
            base: dict[str, object] = {"duration_s": dur, **kw}
            return RunSpec(target=target, protocol=protocol, connections=16,
                           streams_per_connection=streams, **base)  # type: ignore[arg-type]

        native, h2load, k6 = NativeRunner(), H2loadRunner(), K6Runner()
        run(native, spec("h2c", duration_s=1.0))                  # warm the target up
        rows: dict[str, list[float]] = {}
        server: dict[str, list[float]] = {"h2c": [], "grpc": []}
        cpu_per_req: dict[str, list[float]] = {"native http1": [], "native tcp": []}

        def add(name: str, result: RunResult) -> None:
            if result.errors:
                print(f"  {name}: {result.errors} errors {result.error_kinds}")
            rows.setdefault(name, []).append(result.achieved_rate_rps)

        for _ in range(rounds):
            add("native h2c 16x8", run(native, spec("h2c")))
            before = cpu_s(echo.pid)
            r = run(h2load, spec("h2c"))
            server["h2c"].append(r.requests / max(cpu_s(echo.pid) - before, 1e-9))
            add("h2load -t1 h2c 16x8", r)
            if k6.is_available():
                add("k6 http1 16 VUs", run(k6, spec("http1", streams=1)))
            add("native grpc 16x8", run(native, spec("grpc")))
            if k6.is_available():
                add("k6 grpc 16 VUs", run(k6, spec("grpc", streams=1)))
            before = cpu_s(echo.pid)
            r = run(native, spec("grpc"))
            server["grpc"].append(r.requests / max(cpu_s(echo.pid) - before, 1e-9))
            for name, proto, target in (("native http1", "http1", url),
                                        ("native tcp", "tcp", tcp)):
                t0 = time.process_time()
                r = run(native, spec(proto, streams=1, target=target))
                cpu_per_req[name].append((time.process_time() - t0) / max(r.requests, 1) * 1e6)
                add(f"{name} 16 conns", r)
        print(f"{'load':<24}{'median req/s':>14}   ({rounds}x{dur:g} s, closed loop)")
        for name, values in rows.items():
            print(f"{name:<24}{statistics.median(values):>14,.0f}")
        ratio = [("native h2c / h2load", "native h2c 16x8", "h2load -t1 h2c 16x8"),
                 ("native h2c / k6 http1", "native h2c 16x8", "k6 http1 16 VUs"),
                 ("native grpc / k6 grpc", "native grpc 16x8", "k6 grpc 16 VUs")]
        for label, a, b in ratio:
            if a in rows and b in rows:
                value = statistics.median(rows[a]) / statistics.median(rows[b])
                print(f"{label:<24}{value:>13.2f}x")
        for name, values in cpu_per_req.items():
            print(f"{name + ' client CPU':<24}{statistics.median(values):>11.1f} us/req")
        for proto, values in server.items():
            print(f"{'echo ' + proto + ' per core':<24}{statistics.median(values):>14,.0f} "
                  f"req/CPU-s")
        print("open-loop gRPC (16x8): requested -> achieved")
        for rate in (1_000.0, 5_000.0) if args.quick else (1_000.0, 5_000.0, 10_000.0):
            r = run(native, spec("grpc", rate_rps=rate, warmup_s=0.5))
            print(f"  {rate:>8,.0f} -> {r.achieved_rate_rps:>8,.0f} "
                  f"({r.achieved_rate_rps / rate:.3f}), p99 {r.latency.percentile_us(99):,.0f} us")
    finally:
        echo.stop()
    if args.planes:
        planes(rounds, dur)


def planes(rounds: int, dur: float) -> None:
    """p50 at 1k req/s (open loop) through each data plane, minus the direct path's, per
    protocol: the HTTP/1.1 table's shape, for h2c and gRPC too."""
    from meshlab.playground.playground import Playground

    protocols = ("http1", "h2c", "grpc")
    p50: dict[tuple[str, str], list[float]] = {}
    for mesh in ("none", "envoy", "nginx", "haproxy"):
        for proto in protocols:
            with Playground(mesh=mesh, protocol=proto) as pg:
                for _ in range(rounds):
                    r = run(NativeRunner(), RunSpec(
                        target=pg.url, protocol=proto, rate_rps=1000.0, connections=16,
                        streams_per_connection=1 if proto == "http1" else 8, duration_s=dur,
                        warmup_s=0.5))
                    p50.setdefault((mesh, proto), []).append(r.latency.percentile_us(50))
    print(f"{'data plane':<12}" + "".join(f"{p + ' added p50':>18}" for p in protocols)
          + "   (1k req/s, both sidecars)")
    for mesh in ("envoy", "nginx", "haproxy"):
        cells = [statistics.median(p50[(mesh, p)]) - statistics.median(p50[("none", p)])
                 for p in protocols]
        print(f"{mesh:<12}" + "".join(f"{c:>15,.0f} us" for c in cells))


if __name__ == "__main__":
    main()
