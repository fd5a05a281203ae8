"""Do the labs' closing answers hold? Each lab executed N times in a row with its DEFAULT
parameters (papermill, headless, a fresh temporary store each time), then `make demo`'s commands
N times; prints markdown tables.

    .venv/bin/python bench/lab_agreement.py                       # every lab x3, then demo x3
    .venv/bin/python bench/lab_agreement.py --labs lab-retries --no-demo
    .venv/bin/python bench/lab_agreement.py --labs '' --demo-runs 3

Labs: per execution, each printed answer (the cell tagged `answer`) as estimate [95% interval].
Two executions agree when they agree in sign (or both say "not distinguishable here") and each
estimate lies inside the other's interval. Demo: the verdict of every mesh x metric in
`meshlab compare --by mesh`; a pair fails when one run calls it faster and another slower.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABS = ["lab-sidecar-overhead-mtls", "lab-retries", "lab-timeouts-faults",
        "lab-circuit-breaking", "lab-load-balancing", "compare-meshes"]
_VALUE = r"([+-]?[\d,]*\.?\d+) ?(us|ms|s|percentage points|%)"
_LINE = re.compile(r"^(?P<subject>.*?): (?P<said>.*?) \(95% interval " + _VALUE + " to "
                   + _VALUE + r"\)$")
_SCALE = {"us": 1.0, "ms": 1e3, "s": 1e6, "percentage points": 1.0, "%": 1.0}


@dataclass(frozen=True)
class Said:
    subject: str
    estimate: float | None          # None: "not distinguishable here"
    low: float
    high: float
    text: str


def _num(value: str, unit: str) -> float:
    return float(value.replace(",", "")) * _SCALE[unit]


def parse_answers(text: str) -> list[Said]:
    """The answer lines a lab printed (Answer.text), in microseconds or percentage points."""
    out: list[Said] = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        lo, hi = _num(m.group(3), m.group(4)), _num(m.group(5), m.group(6))
        said = m.group("said")
        est = None
        if said != "not distinguishable here":
            v = re.fullmatch(_VALUE, said)
            if v is None:
                continue
            est = _num(v.group(1), v.group(2))
        out.append(Said(m.group("subject"), est, lo, hi, line.strip()))
    return out


def answer_text(notebook: Path) -> str:
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")


def run_lab(name: str, workdir: Path) -> tuple[list[Said], float]:
    import papermill as pm

    from meshlab.report.build import ipc_kernel_manager

    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / f"{name}.duckdb"
    out = workdir / f"{name}.ipynb"
    t0 = time.monotonic()
    pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out),
                        parameters={"store_path": str(store), "renderer": "plotly_mimetype"},
                        kernel_name="python3", progress_bar=False, cwd=str(workdir),
                        kernel_manager_class=ipc_kernel_manager())
    return parse_answers(answer_text(out)), time.monotonic() - t0


def _fmt(x: float) -> str:
    return f"{x:+,.1f}"


def _cell(s: Said) -> str:
    est = "not distinguishable here" if s.estimate is None else _fmt(s.estimate)
    return f"{est} [{_fmt(s.low)}, {_fmt(s.high)}]"


def agree(a: Said, b: Said) -> bool:
    if a.estimate is None or b.estimate is None:
        return a.estimate is None and b.estimate is None
    same_sign = (a.estimate > 0) == (b.estimate > 0)
    return same_sign and a.low <= b.estimate <= a.high and b.low <= a.estimate <= b.high


def overlap(a: Said, b: Said) -> bool:
    return a.low <= b.high and b.low <= a.high


def labs(names: list[str], runs: int, workdir: Path) -> bool:
    print("| lab | answer | " + " | ".join(f"execution {i + 1}" for i in range(runs))
          + " | estimates inside each other's intervals | intervals overlap |")
    print("|---|---|" + "---|" * runs + "---|---|")
    ok = True
    for name in names:
        execs = []
        for i in range(runs):
            said, took_s = run_lab(name, workdir / f"{name}-{i}")
            print(f"<!-- {name} execution {i + 1}: {took_s:.0f} s, load {os.getloadavg()[0]:.1f}"
                  " -->", flush=True)
            execs.append(said)
        for j, first in enumerate(execs[0]):
            row = [e[j] for e in execs if j < len(e)]
            inside = all(agree(a, b) for a, b in itertools.combinations(row, 2))
            over = all(overlap(a, b) for a, b in itertools.combinations(row, 2))
            ok &= inside
            print(f"| {name} | {first.subject} | " + " | ".join(_cell(s) for s in row)
                  + f" | {'yes' if inside else 'NO'} | {'yes' if over else 'NO'} |", flush=True)
    return ok


def demo(runs: int, workdir: Path) -> bool:
    py = [sys.executable, "-m", "meshlab"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = workdir / "demo.duckdb"
    verdicts: list[dict[tuple[str, str], str]] = []
    base = "mesh=none,experiment=latest"
    for i in range(runs):
        subprocess.run([*py, "run", "data/profiles/quickstart.yaml", "--store", str(store)],
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        shown = subprocess.run([*py, "compare", "--store", str(store), "--by", "mesh",
                                "--baseline", base], cwd=ROOT, env=env, check=False,
                               capture_output=True, text=True)
        (workdir / f"demo-compare-{i + 1}.txt").write_text(shown.stdout + shown.stderr)
        subprocess.run([*py, "report", "--store", str(store), "--baseline", base,
                        "--candidate", "mesh!=none,experiment=latest",
                        "--out", str(workdir / f"quickstart-{i + 1}.html"), "--no-fail"],
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        data = subprocess.run([*py, "compare", "--store", str(store), "--by", "mesh",
                               "--baseline", base, "--json"], cwd=ROOT, env=env, check=False,
                              capture_output=True, text=True)
        verdicts.append(_demo_verdicts(data.stdout))
        print(f"<!-- demo run {i + 1}: load {os.getloadavg()[0]:.1f} -->", flush=True)
    keys = sorted({k for v in verdicts for k in v})
    print("\n| data plane vs none | metric | " + " | ".join(f"run {i + 1}" for i in range(runs))
          + " | opposite calls |")
    print("|---|---|" + "---|" * runs + "---|")
    ok = True
    for k in keys:
        row = [v.get(k, "-") for v in verdicts]
        bad = "faster" in row and "slower" in row
        ok &= not bad
        print(f"| {k[0]} | {k[1]} | " + " | ".join(row) + f" | {'YES' if bad else 'no'} |")
    return ok


def _demo_verdicts(json_lines: str) -> dict[tuple[str, str], str]:
    """(mesh, metric) -> verdict from `meshlab compare --by mesh --json`."""
    import json

    out: dict[tuple[str, str], str] = {}
    for line in json_lines.splitlines():
        doc = json.loads(line)
        for key, verdict in doc.items():
            if key.startswith("difference_") and verdict:
                out[(str(doc["mesh"]), key.removeprefix("difference_"))] = str(verdict)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labs", default=",".join(LABS), help="comma-separated notebook names")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--demo-runs", type=int, default=3)
    ap.add_argument("--keep", help="directory for the executed notebooks and stores")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lab-agreement-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"<!-- load average {os.getloadavg()}; files under {work} -->")
    ok = True
    names = [n for n in args.labs.split(",") if n]
    if names:
        ok &= labs(names, args.runs, work)
    if not args.no_demo:
        ok &= demo(args.demo_runs, work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
