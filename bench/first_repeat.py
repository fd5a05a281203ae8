"""Does the data-plane warm-up remove the slow first repeat? Repeat 1 vs repeats 2-3, with and
without `loads.dataplane_warmup_s`.

    .venv/bin/python bench/first_repeat.py            # ~4 min: 3 rounds of each, 3 s runs
    .venv/bin/python bench/first_repeat.py --quick    # ~1.5 min: 2 rounds, 2 s runs

Each experiment runs three repeats of the same open-loop load (echo `?delay=1ms` behind one
Envoy hop by default). With one mesh the playground is reused after the first repeat, so repeat 1
is the only one measured on a data plane that just came up; with several (`--meshes
none,envoy,envoy+mtls`, sequential order, as the labs ran) every run restarts its playground
and repeat 1 is the first start of each configuration. The runs' own `warmup_s` (1 s, the
profile default; `--runner-warmup-s`) applies in both arms. Arms alternate round by round so
drift of a noisy machine spreads over both. Printed: repeat-1 / median(repeats 2-3) for p50 and p99,
median over rounds (1.0 = the first repeat is like the others).
"""

from __future__ import annotations

import argparse
import statistics

from meshlab.experiment import run_profile
from meshlab.profile import Profile


def ratios(dataplane_warmup_s: float, *, meshes: list[str], duration_s: float,
           warmup_s: float) -> tuple[float, float]:
    """repeat 1 / median(repeats 2-3) of p50 and p99, the median over `meshes`."""
    prof = Profile.from_dict({
        "name": "first-repeat", "environment": "local", "target": "http://playground/?delay=1ms",
        "meshes": meshes, "repeats": 3, "order": "sequential", "on_failure": "continue",
        "loads": {"rate_rps": 500, "connections": 4, "duration_s": duration_s,
                  "warmup_s": warmup_s, "dataplane_warmup_s": dataplane_warmup_s}})
    out = run_profile(prof, store=None)
    r50, r99 = [], []
    for mesh in meshes:
        runs = sorted((r for r in out.results if r.spec["mesh"] == mesh),
                      key=lambda r: int(r.spec["repeat"]))
        p50 = [r.latency.percentile_us(50) for r in runs]
        p99 = [r.latency.percentile_us(99) for r in runs]
        r50.append(p50[0] / statistics.median(p50[1:]))
        r99.append(p99[0] / statistics.median(p99[1:]))
    return statistics.median(r50), statistics.median(r99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0, help="rounds per arm (default 3, quick 2)")
    ap.add_argument("--meshes", default="envoy",
                    help="comma-separated; several meshes alternate, so every run restarts "
                         "its playground (as a lab does)")
    ap.add_argument("--warmup-s", type=float, default=2.0, help="dataplane_warmup_s of the arm")
    ap.add_argument("--runner-warmup-s", type=float, default=1.0,
                    help="the runs' own warmup_s, in both arms (profile default 1)")
    args = ap.parse_args()
    rounds, duration_s = (2, 2.0) if args.quick else (3, 3.0)
    rounds = args.rounds or rounds
    arms: dict[float, list[tuple[float, float]]] = {0.0: [], args.warmup_s: []}
    for i in range(rounds):
        order = list(arms) if i % 2 == 0 else list(reversed(arms))
        for w in order:
            r = ratios(w, meshes=args.meshes.split(","), duration_s=duration_s,
                       warmup_s=args.runner_warmup_s)
            arms[w].append(r)
            print(f"round {i + 1} dataplane_warmup_s={w:g}: repeat1/rest p50 {r[0]:.2f} "
                  f"p99 {r[1]:.2f}", flush=True)
    print(f"\n{args.meshes}, 500 req/s x 4 connections, {duration_s:g} s runs, "
          f"warmup_s {args.runner_warmup_s:g}, median of {rounds} rounds")
    print("| dataplane_warmup_s | repeat 1 / repeats 2-3, p50 | p99 |")
    print("|---|---|---|")
    for w, rs in arms.items():
        print(f"| {w:g} | {statistics.median(r[0] for r in rs):.2f} | "
              f"{statistics.median(r[1] for r in rs):.2f} |")


if __name__ == "__main__":
    main()
