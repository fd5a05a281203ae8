"""The process that runs an experiment (pid, host, process start time), and the check that
marks an experiment `aborted` when that process is gone (killed by SIGKILL, the machine reset)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import duckdb
import psutil


def current_owner() -> dict[str, Any]:
    """This process as an experiment's owner."""
    return {"pid": psutil.Process().pid, "host": socket.gethostname(),
            "process_started_s": psutil.Process().create_time()}


def owner_gone(pid: int, host: str, process_started_s: float) -> bool:
    """True when the owner process is known to be gone: on this host, its pid names no process
    or one started at another time (a recycled pid). Another host's owner cannot be checked."""
    if host != socket.gethostname():
        return False
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:          # no permission to look: it exists
        return False
    return abs(started - process_started_s) > 1.0


def insert_owner(con: duckdb.DuckDBPyConnection, experiment_id: str,
                 owner: dict[str, Any]) -> None:
    con.execute("INSERT OR REPLACE INTO experiment_owners VALUES (?, ?, ?, ?)",
                [experiment_id, int(owner["pid"]), str(owner["host"]),
                 float(owner["process_started_s"])])


def abort_orphaned(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Mark `running` experiments whose owner process is gone as `aborted`; returns their ids."""
    rows = con.execute(
        "SELECT e.experiment_id, o.pid, o.host, o.process_started_s FROM experiments e "
        "JOIN experiment_owners o USING (experiment_id) WHERE e.status = 'running'").fetchall()
    gone = [str(eid) for eid, pid, host, started in rows
            if owner_gone(int(pid), str(host), float(started))]
    now = datetime.now(UTC).replace(tzinfo=None)
    for eid in gone:
        con.execute("UPDATE experiments SET status = 'aborted', finished_at = ? "
                    "WHERE experiment_id = ? AND status = 'running'", [now, eid])
    return gone
