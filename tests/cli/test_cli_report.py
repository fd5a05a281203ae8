"""`meshlab report` and `meshlab dashboard` as real subprocesses: the exit codes CI gates on
(0 / 1 / 2, `--no-fail`), negative selectors, and the token rule for a non-loopback dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshlab.analysis import synthetic_result
from meshlab.store import Store

pytestmark = pytest.mark.timeout(120)
SCRIPT = Path(sys.executable).parent / "meshlab"


def _argv(*args: str) -> list[str]:
    return [*([str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]), *args]


def meshlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(*args), capture_output=True, text=True, timeout=100, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("cli-report")) / "s.duckdb"
    s = Store(path)
    for i in range(2):
        s.save(synthetic_result(run_id=f"base-{i}", seed=i, requests=20_000))
        s.save(synthetic_result(run_id=f"slow-{i}", seed=10 + i, requests=20_000, slowdown=1.3,
                                mesh="envoy"))
    return path


@pytest.fixture(scope="module")
def reports(store: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """`meshlab report` gated, with `--no-fail`, and on bad input with `--no-fail`: three
    processes started together (each executes the report notebook in its own kernel, mostly
    CPU-bound start-up: side by side they use both cores). Each: its result and `--out`."""
    cwd = Path(tmp_path_factory.mktemp("cli-report-runs"))
    gate = ("report", "--store", str(store), "--baseline", "mesh=none", "--candidate",
            "mesh!=none", "--threshold", "p99=10%")
    cases = {
        "gated": gate,
        "relaxed": (*gate, "--no-fail"),
        "bad": ("report", "--store", str(store), "--baseline", "mesh=istio", "--candidate",
                "mesh=envoy", "--no-fail"),
    }
    procs = {name: (subprocess.Popen(_argv(*args, "--out", str(cwd / f"{name}.html")),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd, env={**os.environ, "COLUMNS": "200"}),
                    cwd / f"{name}.html") for name, args in cases.items()}
    out = {}
    try:
        for name, (proc, html) in procs.items():
            stdout, stderr = proc.communicate(timeout=100)
            out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
                         html)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def test_report_gates_and_no_fail_keeps_the_report(
        reports: dict[str, tuple[subprocess.CompletedProcess[str], Path]]) -> None:
    gated, out = reports["gated"]
    assert gated.returncode == 1, gated.stderr
    assert "OVERHEAD beyond thresholds" in gated.stderr and out.exists()   # envoy vs none
    relaxed, out = reports["relaxed"]
    assert relaxed.returncode == 0, relaxed.stderr
    assert "OVERHEAD beyond thresholds" in relaxed.stderr and out.exists()


def test_report_on_bad_input_exits_two_even_with_no_fail(
        reports: dict[str, tuple[subprocess.CompletedProcess[str], Path]]) -> None:
    r, _ = reports["bad"]
    assert r.returncode == 2
    assert "matched no runs" in r.stderr


def test_dashboard_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    r = meshlab("dashboard", "--ip", "0.0.0.0", "--store", str(tmp_path / "s.duckdb"),
                cwd=tmp_path)
    assert r.returncode == 2
    assert "--token" in r.stderr
