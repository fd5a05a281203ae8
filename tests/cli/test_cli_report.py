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


def meshlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=100, cwd=cwd,
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


def test_report_gates_and_no_fail_keeps_the_report(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    common = ("report", "--store", str(store), "--baseline", "mesh=none", "--candidate",
              "mesh!=none", "--threshold", "p99=10%", "--out", str(out))
    gated = meshlab(*common, cwd=tmp_path)
    assert gated.returncode == 1, gated.stderr
    assert "OVERHEAD beyond thresholds" in gated.stderr and out.exists()   # envoy vs none
    relaxed = meshlab(*common, "--no-fail", cwd=tmp_path)
    assert relaxed.returncode == 0, relaxed.stderr
    assert "OVERHEAD beyond thresholds" in relaxed.stderr


def test_report_on_bad_input_exits_two_even_with_no_fail(store: Path, tmp_path: Path) -> None:
    r = meshlab("report", "--store", str(store), "--baseline", "mesh=istio", "--candidate",
                "mesh=envoy", "--out", str(tmp_path / "r.html"), "--no-fail", cwd=tmp_path)
    assert r.returncode == 2
    assert "matched no runs" in r.stderr


def test_dashboard_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    r = meshlab("dashboard", "--ip", "0.0.0.0", "--store", str(tmp_path / "s.duckdb"),
                cwd=tmp_path)
    assert r.returncode == 2
    assert "--token" in r.stderr
