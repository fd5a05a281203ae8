"""Does the data-plane warm-up remove the slow first repeat? Repeat 1 vs repeats 2-3, with and
without `loads.dataplane_warmup_s`.

    .venv/bin/python bench/first_repeat.py            # ~4 min: 3 rounds of each, 3 s runs
    .venv/bin/python bench/first_repeat.py --quick    # ~1.5 min: 2 rounds, 2 s runs

Each experiment starts a fresh playground (one Envoy hop, echo `?delay=1ms` behind it) and runs
three repeats of the same open-loop load; the playground is reused after the first, so repeat 1
is the only one measured on a data plane that just came up. The runner's own `warmup_s` (1 s,
the profile default) applies to every run in both arms. Arms alternate round by round so drift
of a noisy machine spreads over both. Printed: repeat-1 / median(repeats 2-3) for p50 and p99,
median over rounds (1.0 = the first repeat is like the others).
"""

from __future__ import annotations

import argparse
import statistics

from meshlab.experiment import run_profile
from meshlab.profile import Profile


def ratios(dataplane_warmup_s: float, *, mesh: str, duration_s: float) -> tuple[float, float]:
    prof = Profile.from_dict({
        "name": "first-repeat", "environment": "local", "target": "http://playground/?delay=1ms",
        "meshes": [mesh], "repeats": 3, "order": "sequential", "on_failure": "continue",
        "loads": {"rate_rps": 500, "connections": 4, "duration_s": duration_s,
                  "dataplane_warmup_s": dataplane_warmup_s}})
    out = run_profile(prof, store=None)
    p50 = [r.latency.percentile_us(50) for r in out.results]
    p99 = [r.latency.percentile_us(99) for r in out.results]
    return p50[0] / statistics.median(p50[1:]), p99[0] / statistics.median(p99[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0, help="rounds per arm (default 3, quick 2)")
    ap.add_argument("--mesh", default="envoy")
    ap.add_argument("--warmup-s", type=float, default=2.0, help="dataplane_warmup_s of the arm")
    args = ap.parse_args()
    rounds, duration_s = (2, 2.0) if args.quick else (3, 3.0)
    rounds = args.rounds or rounds
    arms: dict[float, list[tuple[float, float]]] = {0.0: [], args.warmup_s: []}
    for i in range(rounds):
        order = list(arms) if i % 2 == 0 else list(reversed(arms))
        for w in order:
            r = ratios(w, mesh=args.mesh, duration_s=duration_s)
            arms[w].append(r)
            print(f"round {i + 1} dataplane_warmup_s={w:g}: repeat1/rest p50 {r[0]:.2f} "
                  f"p99 {r[1]:.2f}", flush=True)
    print(f"\n{args.mesh}, 500 req/s x 4 connections, {duration_s:g} s runs, "
          f"median of {rounds} rounds")
    print("| dataplane_warmup_s | repeat 1 / repeats 2-3, p50 | p99 |")
    print("|---|---|---|")
    for w, rs in arms.items():
        print(f"| {w:g} | {statistics.median(r[0] for r in rs):.2f} | "
              f"{statistics.median(r[1] for r in rs):.2f} |")


if __name__ == "__main__":
    main()
