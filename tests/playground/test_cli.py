"""`meshlab playground up|status|down` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from _playground_helpers import assert_gone

pytestmark = pytest.mark.timeout(90)


def _cli(*args: str, state) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHLAB_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "meshlab.cli", "playground", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_up_status_down(tmp_path):
    topo = tmp_path / "topo.yaml"
    topo.write_text("services:\n  - {name: frontend, calls: backend}\n  - {name: backend}\n")
    state = tmp_path / "state"
    up = _cli("up", "--topology", str(topo), "--data-plane", "envoy", "--mtls", "strict",
              state=state)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "send requests to http://127.0.0.1:" in up.stdout
        again = _cli("up", state=state)
        assert again.returncode == 1 and "already up" in again.stderr
        st = _cli("status", "--json", state=state)
        (row,) = [json.loads(line) for line in st.stdout.splitlines()]
        assert row["state"] == "ready" and row["owner_alive"]
        assert row["data_plane"] == "envoy+mtls" and len(row["processes"]) == 5
        assert httpx.get(row["url"]).headers["x-meshlab-hop"] == "frontend-0"
        pids = [p["pid"] for p in row["processes"]] + [row["owner_pid"]]
    finally:
        down = _cli("down", state=state)
    assert down.returncode == 0 and "stopped 1 playground" in down.stdout
    assert_gone(pids)
    assert "no playground is up" in _cli("status", state=state).stdout


def test_up_rejects_a_bad_data_plane(tmp_path):
    r = _cli("up", "--data-plane", "nginx+mtls-permissive", state=tmp_path)
    assert r.returncode == 1 and "nginx cannot express mtls permissive" in r.stderr
    r = _cli("up", "--data-plane", "envoy+tls", state=tmp_path)
    assert r.returncode == 2 and "unknown option 'tls'" in r.stderr
