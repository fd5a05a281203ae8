"""Every process meshlab starts is reaped whatever happens to meshlab: after SIGKILL of
`meshlab run`, the nginx workers reparented to PID 1 are counted by `playground status` and
stopped by `playground down`, which keeps the record until its process groups are empty; the
experiment left `running` is marked aborted when the store is next opened."""

from __future__ import annotations

import json
import signal
import time

import pytest
from _signal_helpers import Spawner, groups_of, members

from meshlab.store import Store

pytestmark = pytest.mark.timeout(150)


def test_sigkill_of_run_leaves_nothing_after_playground_down(spawner: Spawner) -> None:
    p, db, record = spawner.run_nginx("kill", "--quiet")
    groups = groups_of(record)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    spawner.finish(p, 30)
    # the masters die with their parent; their workers do not (reparented to PID 1)
    time.sleep(0.5)
    orphans = members(groups)
    assert orphans and all(name == "nginx" for _, name in orphans)

    status = spawner.start("playground", "status", "--json")
    out, err = spawner.finish(status, 60)
    assert status.returncode == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["owner_alive"] is False
    alive = {q["name"]: q["alive"] for q in row["processes"]}
    assert alive == {q["name"]: q["kind"] == "nginx" for q in row["processes"]}

    down = spawner.start("playground", "down")
    _, err = spawner.finish(down, 60)
    assert down.returncode == 0, err
    spawner.assert_nothing_left(record, timeout_s=2.0)

    assert list(Store(db, read_only=True).experiments()["status"]) == ["running"]
    Store(db)                     # opened for writing: the owner process is gone
    assert list(Store(db, read_only=True).experiments()["status"]) == ["aborted"]


def test_sigkill_of_the_playground_supervisor_then_down(spawner: Spawner) -> None:
    p, record = spawner.playground_up()
    p.send_signal(signal.SIGKILL)
    spawner.finish(p, 30)
    down = spawner.start("playground", "down")
    _, err = spawner.finish(down, 60)
    assert down.returncode == 0, err
    spawner.assert_nothing_left(record, timeout_s=2.0)
