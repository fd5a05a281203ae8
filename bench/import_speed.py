"""How fast meshlab imports fortio results: N distinct fortio JSON files (derived from the golden
fortio 1.57 result in tests/fixtures/fortio/) parsed and normalized, then written into a fresh
temporary Store with one `Store.save_many` call. Target: 1,000 files imported in under 10 s.

    .venv/bin/python bench/import_speed.py                 # 1000 files, parse + store
    .venv/bin/python bench/import_speed.py -n 100 --no-store
    .venv/bin/python bench/import_speed.py --single 20     # also time 20 one-by-one saves
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meshlab.formats import import_results

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fortio"
GOLDEN = REFERENCE / "iter8-metrics-server_test-fortioResultJSON.json"
TARGET_S_PER_1000 = 10.0


def variants(n: int) -> list[dict[str, Any]]:
    """n distinct fortio results: shifted start times, scaled latencies and counts."""
    base = next(iter(json.loads(GOLDEN.read_text()).values()))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        doc = copy.deepcopy(base)
        scale, mult = 1.0 + (i % 50) / 100.0, 1 + i % 7
        doc["StartTime"] = (t0 + timedelta(seconds=13 * i)).isoformat()
        dh = doc["DurationHistogram"]
        for key in ("Min", "Max", "Sum", "Avg", "StdDev"):
            dh[key] *= scale
        dh["Sum"] *= mult
        dh["Count"] *= mult
        for b in dh["Data"]:
            b["Start"] *= scale
            b["End"] *= scale
            b["Count"] *= mult
        for p in dh["Percentiles"]:
            p["Value"] *= scale
        doc["RetCodes"] = {"200": dh["Count"]}
        out.append(doc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="number of fortio files")
    ap.add_argument("--no-store", action="store_true", help="time parse+normalize only")
    ap.add_argument("--batch-size", type=int, default=200, help="runs per transaction")
    ap.add_argument("--single", type=int, default=0, metavar="K",
                    help="also time K one-by-one Store.save calls into another fresh store")
    args = ap.parse_args(argv)
    target_s = TARGET_S_PER_1000 * args.n / 1000
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, doc in enumerate(variants(args.n)):
            p = Path(tmp) / f"fortio-{i:05d}.json"
            p.write_text(json.dumps(doc))
            paths.append(p)
        t = time.perf_counter()
        runs = [r for p in paths for r in import_results(p)]
        parse_s = time.perf_counter() - t
        print(f"parse+normalize: {len(runs)} fortio files in {parse_s:.2f} s "
              f"({parse_s / len(runs) * 1e3:.2f} ms each)")
        if args.no_store:
            return _verdict(parse_s, target_s, args.n, "parse+normalize")

        from meshlab.store import Store

        t = time.perf_counter()
        store = Store(Path(tmp) / "bench.duckdb")           # a fresh store: schema included
        written = store.save_many(runs, batch_size=args.batch_size)
        store_s = time.perf_counter() - t
        stored = len(store.runs())
        if written != len(runs) or stored != len(runs):
            print(f"FAIL: wrote {written} and found {stored} of {len(runs)} runs")
            return 1
        if store.load(runs[-1].run_id) != runs[-1]:
            print("FAIL: the last run does not load back equal to what was saved")
            return 1
        print(f"store (save_many, batch_size={args.batch_size}): {stored} runs in "
              f"{store_s:.2f} s ({store_s / len(runs) * 1e3:.2f} ms each)")
        if args.single:
            single = Store(Path(tmp) / "single.duckdb")
            took = []
            for r in runs[:args.single]:
                t = time.perf_counter()
                single.save(r)
                took.append(time.perf_counter() - t)
            print(f"single Store.save: median {statistics.median(took) * 1e3:.1f} ms per run "
                  f"over {len(took)} runs (each call opens and closes the file)")
        return _verdict(parse_s + store_s, target_s, args.n, "total (parse + store)")


def _verdict(took_s: float, target_s: float, n: int, what: str) -> int:
    ok = took_s < target_s
    print(f"{what}: {took_s:.2f} s for {n} files; target < {target_s:g} s: "
          f"{'PASS' if ok else 'FAIL'} ({took_s / target_s:.0%} of the budget)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
