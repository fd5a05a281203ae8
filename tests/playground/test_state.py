"""Playgrounds recorded in a state directory: typed status and teardown (what `meshlab
playground status|down` print), over a real playground and a PID file left by a dead owner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _playground_helpers import assert_gone

from meshlab.playground.playground import Playground
from meshlab.playground.process import supervisor_record, write_pidfile
from meshlab.playground.state import (
    playground_statuses,
    running_playground,
    status_of,
    stop_playgrounds,
)

pytestmark = pytest.mark.timeout(60)


def _dead_owner_record(state_dir: Path) -> Path:
    """A PID file whose owner exited without tearing down (its processes died with it)."""
    proc = subprocess.run([sys.executable, "-c", "import json, psutil; p = psutil.Process(); "
                           "print(json.dumps({'pid': p.pid, 'create_time': p.create_time()}))"],
                          capture_output=True, text=True, timeout=30, check=True)
    path = state_dir / "gone.json"
    write_pidfile(path, {"name": "gone", "state": "ready", "url": "http://127.0.0.1:9/",
                         "data_plane": "envoy", "mode": "both",
                         "supervisor": json.loads(proc.stdout), "workdir": "",
                         "processes": []})
    return path


def test_status_and_teardown_leave_an_owned_playground_to_its_owner(state_dir: Path) -> None:
    pg = Playground(mesh="none", state_dir=state_dir, name="mine").start()
    pids = [p.pid for p in pg.processes]
    try:
        orphan = _dead_owner_record(state_dir)
        by_name = {s.name: s for s in playground_statuses(state_dir)}
        mine, gone = by_name["mine"], by_name["gone"]
        assert mine.owner_alive and not mine.orphaned and mine.state == "ready"
        assert mine.alive_count == len(mine.processes) == len(pids) > 0
        assert mine.owner_pid == supervisor_record()["pid"] and mine.url == pg.url
        assert gone.orphaned and gone.alive_count == 0
        assert mine.to_dict() == {**status_of(pg).to_dict(), "state": "ready"}
        assert running_playground(state_dir, "mine") == mine
        assert running_playground(state_dir, "gone") is None

        assert stop_playgrounds(state_dir) == ["gone"]         # the orphan only
        assert not orphan.exists() and pg.pidfile.exists()
        assert stop_playgrounds(state_dir, names=["mine"]) == ["mine"]
        assert_gone(pids)
        assert playground_statuses(state_dir) == []
        assert not pg.workdir.exists()
    finally:
        pg.stop()
