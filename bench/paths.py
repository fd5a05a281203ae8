"""One measurement, three faces: the same open-loop load through `meshlab run`, through
`run_profile` in a Jupyter kernel and through the Workbench with its live chart drawing.

    .venv/bin/python bench/paths.py            # ~4 min: 3 interleaved rounds of 10 s runs
    .venv/bin/python bench/paths.py --quick    # ~2 min: 3 rounds of 3 s runs

Load: echo `?delay=1ms` (the project's echo server, own process), 500 req/s x 4 connections,
open loop. The notebooks run headless in a real kernel (nbclient, as papermill does); the
Workbench one draws one chart first (plotly's first figure in a kernel takes seconds), then
starts a run from the widget and awaits it while the widget's polling task redraws the plotly
timeline from progress events (twice a second). Rounds rotate the order of the paths. Printed:
each path's p99 per round and p99 / CLI p99 (median of the rounds); target <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from meshlab.playground.echo import start_echo_process

PATHS = ("cli", "kernel", "workbench")

KERNEL_CELL = """
import json
from meshlab.experiment import run_profile

out = run_profile({profile!r}, store={db!r})
json.dump({{"summaries": out.summaries()}}, open({out!r}, "w"))
"""

WORKBENCH_CELL = """
import asyncio, json
from meshlab.profile import Profile
from meshlab.widgets.workbench import Workbench

wb = Workbench({db!r}, defaults=Profile.load({profile!r}).to_dict(redact=False))
display(wb)
wb._live_rows = [{{"run_id": "-", "second": 0, "requests": 0.0, "errors": 0.0, "p50_us": 1.0,
                  "p99_us": 1.0}}]
wb._draw_live()               # plotly's first figure costs seconds: pay it before the run
assert wb.start(), wb.status.value
while wb._task is not None and not wb._task.done():   # the widget's poll task draws meanwhile
    await asyncio.sleep(0.1)
assert wb.outcome is not None, wb.status.value
json.dump({{"summaries": wb.outcome.summaries(), "live_points": len(wb._live_rows),
           "live_outputs": len(wb.live.outputs)}}, open({out!r}, "w"))
"""


def _profile(path: Path, url: str, duration_s: float) -> None:
    path.write_text(yaml.safe_dump({
        "name": "paths", "target": url + "?delay=1ms",
        "loads": {"rate_rps": 500, "connections": 4, "duration_s": duration_s}}))


def run_cli(profile: Path, work: Path, tag: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "meshlab", "run", str(profile), "--json", "--quiet",
         "--store", str(work / f"{tag}.duckdb")],
        capture_output=True, text=True, check=False, timeout=300)
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError(f"meshlab run printed no result: {out.stderr[-2000:]}")
    return {"summaries": lines}


def run_notebook(cell: str, profile: Path, work: Path, tag: str) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    out = work / f"{tag}.json"
    src = textwrap.dedent(cell).format(profile=str(profile), db=str(work / f"{tag}.duckdb"),
                                       out=str(out))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src)]
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={
        "metadata": {"path": str(work)}}).execute()
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def one(path: str, profile: Path, work: Path, tag: str) -> dict[str, Any]:
    if path == "cli":
        return run_cli(profile, work, tag)
    return run_notebook(KERNEL_CELL if path == "kernel" else WORKBENCH_CELL, profile, work, tag)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 s runs instead of 10 s")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    duration_s = 3.0 if args.quick else 10.0
    echo = start_echo_process(name="bench-paths")
    p99: dict[str, list[float]] = {p: [] for p in PATHS}
    try:
        with tempfile.TemporaryDirectory(prefix="meshlab-paths-") as tmp:
            work = Path(tmp)
            profile = work / "paths.yaml"
            _profile(profile, echo.url, duration_s)
            for rnd in range(args.rounds):
                order = PATHS[rnd % 3:] + PATHS[:rnd % 3]
                for path in order:
                    t0 = time.perf_counter()
                    data = one(path, profile, work, f"{path}-{rnd}")
                    (s,) = data["summaries"]
                    if s["status"] != "completed" or s["errors"]:
                        raise RuntimeError(f"{path}: run not clean: {s}")
                    p99[path].append(float(s["p99_us"]))
                    extra = (f"  live chart: {data['live_points']} points"
                             if path == "workbench" else "")
                    print(f"round {rnd + 1} {path:9s} p99 {s['p99_us'] / 1000:7.2f} ms  "
                          f"{s['achieved_rate_rps']:6.0f} req/s  ({time.perf_counter() - t0:.0f} s)"
                          f"{extra}", flush=True)
                    if path == "workbench" and not data["live_points"]:
                        raise RuntimeError("the workbench's live chart never updated")
    finally:
        echo.stop()
    cli = p99["cli"]
    print(f"\necho ?delay=1ms, 500 req/s x 4 connections, {duration_s:g} s, "
          f"{args.rounds} interleaved rounds, {os.cpu_count()} cores")
    print("| path | p99 per round (ms) | median p99 (ms) | p99 / CLI p99 (median of rounds) |")
    print("|---|---|---|---|")
    for path in PATHS:
        ratios = [a / b for a, b in zip(p99[path], cli, strict=True)]
        rounds = ", ".join(f"{v / 1000:.2f}" for v in p99[path])
        print(f"| {path} | {rounds} | {statistics.median(p99[path]) / 1000:.2f} | "
              f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
