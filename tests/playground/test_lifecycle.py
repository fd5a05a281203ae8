"""Playground lifecycle: readiness, teardown on every path, PID files, dead sidecar detection."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _playground_helpers import assert_gone

from meshlab.errors import PlaygroundError
from meshlab.playground import process as proc
from meshlab.playground.playground import Playground

pytestmark = pytest.mark.timeout(60)


def test_exception_in_block_tears_down(state_dir):
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), \
            Playground(mesh="envoy+mtls", state_dir=state_dir) as pg:
        pids = [p.pid for p in pg.processes]
        assert pg.pidfile.exists()
        assert httpx.get(pg.url).status_code == 200
        raise RuntimeError("boom")
    assert len(pids) == 3
    assert_gone(pids)
    assert not list(state_dir.glob("*.json"))
    assert not (state_dir / pg.name).exists()


def test_async_context_manager(state_dir):
    async def main() -> list[int]:
        async with Playground(mesh="envoy", state_dir=state_dir) as pg:
            async with httpx.AsyncClient() as c:
                assert (await c.get(pg.url)).status_code == 200
            return [p.pid for p in pg.processes]
    assert_gone(asyncio.run(main()))


def test_killed_sidecar_is_reported(started, state_dir):
    pg = Playground(mesh="envoy", state_dir=state_dir)
    started.append(pg.start())
    assert pg.dead() == []
    pg.kill("backend-0-sidecar")
    deadline = time.monotonic() + 5
    while not pg.dead() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pg.dead() == ["backend-0-sidecar"]


def test_process_failing_at_startup_is_named(state_dir, monkeypatch):
    pg = Playground(mesh="envoy", state_dir=state_dir, ready_timeout_s=10)
    from meshlab.playground import envoy

    real = envoy.argv
    monkeypatch.setattr(envoy, "argv", lambda *a, **k: [*real(*a, **k), "--no-such-flag"])
    with pytest.raises(PlaygroundError, match="exited with code"):
        pg.start()
    assert_gone([p.pid for p in pg.processes])


def test_pidfile_lets_another_process_tear_down(state_dir):
    pg = Playground(mesh="envoy", state_dir=state_dir).start()
    try:
        ((_path, record),) = proc.read_pidfiles(state_dir)
        assert record["state"] == "ready" and len(record["processes"]) == 3
        assert sorted(proc.record_alive(record)) == sorted(p.name for p in pg.processes)
        # as `meshlab playground down` does it from another process (supervisor = us: skipped)
        assert proc.kill_record(record) == 3
        assert proc.record_alive(record) == []
    finally:
        pg.stop()


_ORPHAN_SCRIPT = """
import json, sys, time
from meshlab.playground.playground import Playground
pg = Playground(mesh="envoy", state_dir=sys.argv[1]).start()
print(json.dumps([p.pid for p in pg.processes]), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_no_orphans_when_the_owner_dies(state_dir, sig):
    """A kernel restart kills the owner: its children go with it (parent-death signal), and
    SIGINT (a kernel interrupt) runs the exit hook."""
    owner = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT, str(state_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pids = json.loads(owner.stdout.readline())
        assert len(pids) == 3
        os.kill(owner.pid, sig)
        owner.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                assert_gone(pids)
                break
            except AssertionError:
                time.sleep(0.05)
        assert_gone(pids)
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        for _, record in proc.read_pidfiles(state_dir):
            proc.kill_record(record)


def test_startup_and_teardown_leave_nothing(state_dir):
    # speed (3 s up, 2 s gone) is a target bench/playground_overhead.py checks, not a test
    pg = Playground(mesh="envoy+mtls", state_dir=state_dir).start()
    pids = [p.pid for p in pg.processes]
    assert pg.startup_s > 0 and pg.context()["startup_s"] == round(pg.startup_s, 3)
    pg.stop()
    assert_gone(pids)
    assert not pg.workdir.exists() and not pg.pidfile.exists()
    pg.stop()   # idempotent


def test_state_dir_default_is_per_user():
    d = proc.default_state_dir()
    assert d.name == "playground" and "meshlab" in str(d)


def test_stop_before_start_is_harmless(state_dir: Path):
    Playground(state_dir=state_dir).stop()
