"""Every runner's throughput and client CPU per 100k requests against nginx on loopback, as
ratios to plain `wrk -t1` (no Lua script), and whether native's p50 agrees with wrk's and hey's
within 10 % (the issue's target) on steady targets at moderate rates, interleaved, medians.

    .venv/bin/python bench/runners.py            # ~14 min: 3 rounds x 5 s, both sections
    .venv/bin/python bench/runners.py --quick    # ~1 min smoke run: 1 round x 1 s
    .venv/bin/python bench/runners.py --section p50 [--delays 1ms,5ms]

p50 section, on three steady targets: nginx `return 200` (tens of microseconds: the floor,
where each client's own cost dominates) and meshlab's echo server at `?delay=1ms` and
`?delay=5ms` (a service-like latency). Per target: native vs wrk (meshlab's WrkRunner, exact
microsecond spectrum) in closed loop at equal connections, where a steady target sets a steady
rate (wrk has no fixed rate); native open loop vs hey with `-q` (a rate-limited closed loop;
hey prints 0.1 ms steps) at a moderate fixed rate (1k req/s, or half what one connection of
that target carries) on 1 connection, where both send evenly spaced requests, and on 16, where
hey's workers tick in lockstep; and hey vs wrk in closed loop, the spread between the two
reference tools themselves. Native's open-loop p50 is shown corrected (from the intended send:
what meshlab reports) and from the actual send (what hey measures); on a steady target the two
differ by native's send lag. At each fixed rate, both tools also run once under tcpdump
(bench/wire.py; needs tcpdump and root, else the column says so), which times each request on
the wire and so tells which tool's own cost a gap is.

`wrk (meshlab)` is the WrkRunner with its Lua reporter (a response() hook counts every status,
which costs wrk some throughput; `wrk (no statuses)` drops that hook); the others are meshlab's
hey, ab, native and, when its binary is on PATH, fortio runners. CPU counts the tool process
plus meshlab's own parsing and bookkeeping. Run it on a quiet machine: on a 2-core box the
generator and the target share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runner_vs_wrk import start_nginx  # one nginx set-up for every bench
from wire import WireCapture, wire_available

from meshlab.errors import MeshlabError
from meshlab.playground.echo import start_echo_process
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners.base import Runner, get_runner
from meshlab.runners.hey import HeyRunner
from meshlab.runners.native import NativeRunner
from meshlab.runners.wrk import WrkRunner
from meshlab.units import parse_duration_s

Sample = tuple[float, float]        # (requests per second, CPU seconds per 100k requests)
P50_TARGET = 0.10                   # native p50 within 10 % of the reference tool's
MAX_FIXED_RATE_RPS = 1000.0         # per target: this, or half what one connection can carry
LOCKSTEP_CONNECTIONS = 16
ECHO_DELAYS = "1ms,5ms"


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
class Target:
    """A steady target of the p50 section and the moderate fixed rate it is loaded at."""

    name: str
    url: str
    port: int
    fixed_rate_rps: float


@dataclass(frozen=True, slots=True)
class P50Pair:
    """One p50 comparison on one target: `first` (the reference tool) and `second` run the
    same spec. `kind` is "verdict" (native against a reference), "lockstep" (hey's workers
    all tick at once: shown with the wire's p50 under each load) or "spread" (hey vs wrk: how
    far the two reference tools are apart at the same settings)."""

    target: Target
    label: str
    spec: RunSpec
    first: Runner
    second: Runner
    kind: str = "verdict"


def p50_pairs(targets: list[Target], dur: int, warmup_s: float,
              closed_connections: list[int], lockstep_connections: int) -> list[P50Pair]:
    """Per target: native vs wrk in closed loop at equal connections (wrk has no fixed rate; on
    a steady target a few connections run at the steady rate the target sets); native open loop
    vs hey -q at the target's moderate fixed rate on one connection (both then send evenly
    spaced requests); the same rate on many connections, where hey's workers tick in lockstep;
    and hey vs wrk in closed loop."""
    pairs: list[P50Pair] = []
    for t in targets:
        def spec(connections: int, rate_rps: float = 0.0, url: str = t.url) -> RunSpec:
            return RunSpec(target=url, connections=connections, rate_rps=rate_rps,
                           duration_s=float(dur), warmup_s=warmup_s)
        pairs += [P50Pair(t, f"closed, {c} conn: native vs wrk", spec(c), WrkRunner(),
                          NativeRunner()) for c in closed_connections]
        for c, kind in ((1, "verdict"), (lockstep_connections, "lockstep")):
            pairs.append(P50Pair(t, f"{t.fixed_rate_rps:g} req/s x {c} conn: native vs hey -q",
                                 spec(c, t.fixed_rate_rps), HeyRunner(limit_rate=True),
                                 NativeRunner(), kind))
        c = closed_connections[0]
        pairs.append(P50Pair(t, f"closed, {c} conn: hey vs wrk", spec(c), WrkRunner(),
                             HeyRunner(), "spread"))
    return pairs


@dataclass(frozen=True, slots=True)
class P50Sample:
    """One round of one pair: p50s in us, the second runner's achieved rate, and the wire's p50
    under each side's load (nan when not captured)."""

    first_us: float
    second_us: float
    second_uncorrected_us: float
    rate_rps: float
    first_wire_us: float = math.nan
    second_wire_us: float = math.nan


def p50_round(pair: P50Pair, second_first: bool, wire: bool) -> P50Sample:
    """Run both sides of `pair` once, in alternating order across rounds. At a fixed rate and
    when `wire`, each side runs once more under tcpdump for the wire's p50 (separate runs:
    tcpdump's own CPU would shift the tools' numbers)."""
    def run(runner: Runner) -> RunResult:
        return asyncio.run(runner.run(pair.spec))

    def wire_p50(runner: Runner) -> float:
        if not (wire and pair.spec.open_loop):
            return math.nan
        with WireCapture(pair.target.port) as cap:
            run(runner)
        lat = cap.latencies_us()
        return statistics.median(lat) if lat else math.nan

    sides = (pair.second, pair.first) if second_first else (pair.first, pair.second)
    done = {r: run(r) for r in sides}           # runners hash by identity
    wires = {r: wire_p50(r) for r in sides}
    a, b = done[pair.first], done[pair.second]
    return P50Sample(a.headline_percentile_us(50), b.headline_percentile_us(50),
                     b.headline_percentile_us(50, kind="service_time"), b.achieved_rate_rps,
                     wires[pair.first], wires[pair.second])


def verdict(ratio: float) -> str:
    return "PASS" if abs(ratio - 1.0) <= P50_TARGET else "MISSED"


def p50_section(targets: list[Target], rounds: int, dur: int, warmup_s: float,
                closed_connections: list[int], lockstep_connections: int) -> dict[str, int]:
    """Print the p50 table; per target, how many native comparisons missed the target."""
    pairs = p50_pairs(targets, dur, warmup_s, closed_connections, lockstep_connections)
    wire = wire_available()
    got: list[list[P50Sample]] = [[] for _ in pairs]
    for k in range(rounds):                 # interleaved: every pair once per round
        for pair, rows in zip(pairs, got, strict=True):
            rows.append(p50_round(pair, second_first=k % 2 == 1, wire=wire))
    print(f"\np50 agreement, native within {P50_TARGET:.0%} of the reference tool "
          f"(medians of {rounds} x {dur} s, interleaved)")
    print(f"  {'target':17} {'comparison':37} {'req/s':>7} {'ref p50':>8} {'other':>8} "
          f"{'ratio':>6}  verdict")
    missed = {t.name: 0 for t in targets}
    for pair, rows in zip(pairs, got, strict=True):
        def med(attr: str, rows: list[P50Sample] = rows) -> float:
            return float(statistics.median(getattr(r, attr) for r in rows))
        ref_p50, rate = med("first_us"), med("rate_rps")
        cols = [("second_us", pair.label)]
        if pair.kind == "verdict" and pair.spec.open_loop:
            cols.append(("second_uncorrected_us", "  native from the actual send"))
        for attr, shown in cols:
            mine = med(attr)
            ratio = mine / ref_p50 if ref_p50 else math.nan
            wire_note = (f"wire {med('first_wire_us'):.0f} under hey, "
                         f"{med('second_wire_us'):.0f} under native"
                         if wire and pair.spec.open_loop else "")
            if pair.kind == "spread":
                v = "(reference spread)"
            elif pair.kind == "lockstep":
                v = f"(hey's workers in lockstep; {wire_note or 'wire: tcpdump as root'})"
            elif attr == "second_us":
                v = verdict(ratio) + (f"  ({wire_note})" if wire_note else "")
                missed[pair.target.name] += v.startswith("MISSED")
            else:
                v = "(native's send lag excluded)"
            print(f"  {pair.target.name:17} {shown:37} {rate:7.0f} {ref_p50:8.0f} {mine:8.0f} "
                  f"{ratio:6.2f}  {v}")
    print(f"""  A steady target's p50 is its service time plus each client's own cost to send,
  receive and timestamp: on nginx `return 200` (tens of us) that cost is most of what any tool
  measures. "wire" is the p50 from the request segment to the response segment on loopback
  (tcpdump, bench/wire.py; separate runs under capture): what the target did, with neither
  client's own cost in it. At a fixed rate on one connection, hey and native both send evenly
  spaced requests. On {lockstep_connections} connections hey's workers all tick at once: a bursty
  load the target serves differently, so that row compares two loads, not two measurements.
  hey prints 0.1 ms steps. A verdict uses native's corrected p50 (from the intended send),
  what meshlab reports.""")
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
    ap.add_argument("--delays", default=ECHO_DELAYS,
                    help="echo ?delay= values for the p50 section's steady targets")
    args = ap.parse_args()
    rounds, dur, warmup_s = (1, 1, 0.0) if args.quick else (3, 5, 1.0)
    missing = [t for t in ("wrk", "hey") if not get_runner(t).is_available()]
    if args.section != "throughput" and missing:
        print(f"p50 section needs {' and '.join(missing)} on PATH", file=sys.stderr)
        return 2

    missed: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-") as tmp:
        nginx, url = start_nginx(Path(tmp))
        echo = start_echo_process(name="bench-echo")
        try:
            if args.section in ("all", "throughput"):
                throughput_section(url, rounds, dur, args.connections)
            if args.section in ("all", "p50"):
                port = urlsplit(url).port or 80
                targets = [Target("nginx return 200", url, port, MAX_FIXED_RATE_RPS)]
                for d in filter(None, args.delays.split(",")):
                    rate = min(MAX_FIXED_RATE_RPS, 0.5 / parse_duration_s(d))
                    targets.append(Target(f"echo ?delay={d}", f"{echo.url}?delay={d}",
                                          echo.port, rate))
                missed = p50_section(targets, rounds, dur, warmup_s,
                                     sorted({2, args.connections}), LOCKSTEP_CONNECTIONS)
        finally:
            echo.stop()
            nginx.terminate()
            nginx.wait(10)
    for target, n in missed.items():
        print(f"p50 target (native within {P50_TARGET:.0%}) on {target}: "
              + ("PASS on every comparison" if not n else f"MISSED on {n}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
