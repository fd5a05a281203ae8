"""Every runner's throughput and client CPU per 100k requests against nginx on loopback, as
ratios to plain `wrk -t1` (no Lua script), and whether native's p50 agrees with wrk's and hey's
within 10 % (the issue's target), interleaved, medians over rounds.

    .venv/bin/python bench/runners.py            # ~4 min: 3 rounds x 5 s, both sections
    .venv/bin/python bench/runners.py --quick    # ~30 s smoke run: 1 round x 1 s
    .venv/bin/python bench/runners.py --section p50

p50 section: native vs wrk (meshlab's WrkRunner, exact microsecond spectrum) in closed loop at
equal connections, and native open loop at 1k req/s vs hey with `-q` splitting the same total
rate over its workers (a rate-limited closed loop; hey prints 0.1 ms steps). Native's open-loop
p50 is shown corrected (from the intended send: what meshlab reports) and uncorrected (from the
actual send: what hey measures); on a steady target the two differ by the send lag.

`wrk (meshlab)` is the WrkRunner with its Lua reporter (a response() hook counts every status,
which costs wrk some throughput; `wrk (no statuses)` drops that hook); the others are meshlab's
hey, ab, native and, when its binary is on PATH, fortio runners. CPU counts the tool process
plus meshlab's own parsing and bookkeeping. Run it on a quiet machine: on a 2-core box the
generator and nginx share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner_vs_wrk import start_nginx  # one nginx set-up for every bench

from meshlab.errors import MeshlabError
from meshlab.profile import RunSpec
from meshlab.runners.base import Runner, get_runner
from meshlab.runners.hey import HeyRunner
from meshlab.runners.native import NativeRunner
from meshlab.runners.wrk import WrkRunner

Sample = tuple[float, float]        # (requests per second, CPU seconds per 100k requests)
P50_TARGET = 0.10                   # native p50 within 10 % of the reference tool's
OPEN_RATE_RPS = 1000.0
OPEN_CONNECTIONS = 4


def cpu_s() -> float:
    """CPU of this process plus its waited-for children (the tools)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def plain_wrk(url: str, conns: int, dur: int) -> Sample:
    c0 = cpu_s()
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{dur}s", url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_s() - c0
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m_n = re.search(r"(\d+) requests in", out)
    if not m_rps or not m_n:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(m_rps.group(1)), cpu / max(int(m_n.group(1)), 1) * 1e5


def meshlab_runner(name: str, runner: Runner | None = None) -> Callable[[str, int, int], Sample]:
    def run(url: str, conns: int, dur: int) -> Sample:
        spec = RunSpec(target=url, connections=conns, duration_s=float(dur), runner=name)
        c0 = cpu_s()
        r = asyncio.run((runner or get_runner(name)).run(spec))
        cpu = cpu_s() - c0
        return r.achieved_rate_rps, cpu / max(r.requests, 1) * 1e5
    return run


@dataclass(frozen=True, slots=True)
class P50Pair:
    """One p50 comparison: the reference tool and native on the same spec."""

    label: str
    spec: RunSpec
    reference: Runner


def p50_pairs(url: str, dur: int, warmup_s: float, closed_connections: list[int]) -> list[P50Pair]:
    pairs = [P50Pair(f"closed loop, {c} conn: wrk",
                     RunSpec(target=url, connections=c, duration_s=float(dur), warmup_s=warmup_s),
                     WrkRunner()) for c in closed_connections]
    open_spec = RunSpec(target=url, rate_rps=OPEN_RATE_RPS, connections=OPEN_CONNECTIONS,
                        duration_s=float(dur), warmup_s=warmup_s)
    pairs.append(P50Pair(f"open {OPEN_RATE_RPS:g} req/s x {OPEN_CONNECTIONS}: hey -q",
                         open_spec, HeyRunner(limit_rate=True)))
    return pairs


def p50_round(pair: P50Pair, native_first: bool) -> tuple[float, float, float]:
    """(reference p50, native p50, native uncorrected p50) in us, the order alternating."""
    def ref() -> float:
        return asyncio.run(pair.reference.run(pair.spec)).headline_percentile_us(50)

    def nat() -> tuple[float, float]:
        r = asyncio.run(NativeRunner().run(pair.spec))
        return r.headline_percentile_us(50), r.headline_percentile_us(50, kind="service_time")

    if native_first:
        n, nu = nat()
        return ref(), n, nu
    rp = ref()
    n, nu = nat()
    return rp, n, nu


def verdict(ratio: float) -> str:
    return "PASS" if abs(ratio - 1.0) <= P50_TARGET else "MISSED"


def p50_section(url: str, rounds: int, dur: int, warmup_s: float,
                closed_connections: list[int]) -> int:
    """Print the p50 table; the number of comparisons that missed the target."""
    pairs = p50_pairs(url, dur, warmup_s, closed_connections)
    got: dict[str, list[tuple[float, float, float]]] = {p.label: [] for p in pairs}
    for k in range(rounds):                 # interleaved: every pair once per round
        for pair in pairs:
            got[pair.label].append(p50_round(pair, native_first=k % 2 == 1))
    print(f"\np50 agreement: native vs the reference tool, target within "
          f"{P50_TARGET:.0%} (medians of {rounds} x {dur} s, nginx `return 200`)")
    print(f"  {'comparison':34} {'ref p50':>9} {'native':>9} {'ratio':>6}  verdict")
    missed = 0
    for label, rows in got.items():
        ref_p50 = statistics.median(r[0] for r in rows)
        for col in (1, 2):
            if col == 2 and not label.startswith("open"):
                continue                    # closed loop: corrected == uncorrected
            mine = statistics.median(r[col] for r in rows)
            ratio = mine / ref_p50 if ref_p50 else float("nan")
            v = verdict(ratio)
            missed += v == "MISSED" and col == 1
            shown = label if col == 1 else "  native uncorrected (actual send)"
            print(f"  {shown:34} {ref_p50:9.0f} {mine:9.0f} {ratio:6.2f}  {v}")
    print("  (closed loop at many connections, p50 ~ connections / throughput: a slower client"
          "\n   shows a higher p50. hey prints latencies in 0.1 ms steps, coarse below ~1 ms; the"
          "\n   open-loop verdict uses native's corrected p50, what meshlab reports)")
    return missed


def throughput_section(url: str, rounds: int, dur: int, connections: int) -> None:
    tools: dict[str, Callable[[str, int, int], Sample]] = {"wrk -t1 (plain)": plain_wrk}
    for name in ("wrk", "hey", "ab", "native", "fortio"):
        try:
            available = get_runner(name).is_available()
        except MeshlabError:
            available = False
        if not available:
            print(f"skipping {name}: not available on this machine", file=sys.stderr)
            continue
        tools[f"{name} (meshlab)"] = meshlab_runner(name)
        if name == "wrk":
            tools["wrk (no statuses)"] = meshlab_runner(name, WrkRunner(count_statuses=False))

    samples: dict[str, list[Sample]] = {t: [] for t in tools}
    for _ in range(rounds):           # interleaved: every tool once per round
        for label, fn in tools.items():
            samples[label].append(fn(url, connections, dur))

    ref_rps = statistics.median(s[0] for s in samples["wrk -t1 (plain)"])
    ref_cpu = statistics.median(s[1] for s in samples["wrk -t1 (plain)"])
    print(f"\n{connections} connections, closed loop, {rounds} x {dur} s, nginx `return 200`"
          f" (medians; ratios to plain wrk)")
    print(f"  {'generator':18} {'req/s':>10} {'x wrk':>7} {'cpu s/100k':>11} {'x wrk':>7}")
    for label, rows in samples.items():
        rps = statistics.median(s[0] for s in rows)
        cpu = statistics.median(s[1] for s in rows)
        print(f"  {label:18} {rps:10.0f} {rps / ref_rps:7.2f} {cpu:11.3f} {cpu / ref_cpu:7.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s runs (smoke test)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--section", choices=("all", "throughput", "p50"), default="all")
    args = ap.parse_args()
    rounds, dur, warmup_s = (1, 1, 0.0) if args.quick else (3, 5, 1.0)
    missing = [t for t in ("wrk", "hey") if not get_runner(t).is_available()]
    if args.section != "throughput" and missing:
        print(f"p50 section needs {' and '.join(missing)} on PATH", file=sys.stderr)
        return 2

    missed = 0
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-") as tmp:
        nginx, url = start_nginx(Path(tmp))
        try:
            if args.section in ("all", "throughput"):
                throughput_section(url, rounds, dur, args.connections)
            if args.section in ("all", "p50"):
                missed = p50_section(url, rounds, dur, warmup_s,
                                     sorted({2, args.connections}))
        finally:
            nginx.terminate()
            nginx.wait(10)
    if args.section != "throughput":
        print(f"p50 target (native within {P50_TARGET:.0%}): "
              + ("PASS on every comparison" if not missed else f"MISSED on {missed}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
