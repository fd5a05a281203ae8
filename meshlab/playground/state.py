"""Playgrounds recorded in a state directory (one PID file each): their typed status, and
teardown of those whose owner is gone (or of all of them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshlab.errors import PlaygroundError
from meshlab.playground.process import _same_process, kill_record, read_pidfiles, record_members

if TYPE_CHECKING:
    from meshlab.playground.playground import Playground


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """One process of a recorded playground."""

    name: str
    kind: str                      # echo | relay | envoy | nginx | haproxy
    pid: int
    alive: bool                    # its process group still has members (nginx workers outlive
    ports: dict[str, int]          # a killed master)
    pgid: int = 0
    members: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PlaygroundStatus:
    """What a playground's PID file says, checked against the running processes."""

    name: str
    state: str                     # starting | ready
    url: str
    data_plane: str                # the mesh string, e.g. envoy+mtls
    mode: str
    owner_pid: int | None          # the process that started it and tears it down
    owner_alive: bool
    processes: tuple[ProcessStatus, ...]
    pidfile: Path
    workdir: str = ""

    @property
    def alive_count(self) -> int:
        return sum(p.alive for p in self.processes)

    @property
    def member_count(self) -> int:
        """Live processes in the recorded process groups (leaders and their children)."""
        return sum(len(p.members) for p in self.processes)

    @property
    def orphaned(self) -> bool:
        """Its owner is gone: nobody will tear it down but `stop_playgrounds`."""
        return not self.owner_alive

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `meshlab playground status --json` (one object per playground)."""
        return {
            "name": self.name, "state": self.state, "url": self.url,
            "data_plane": self.data_plane, "mode": self.mode, "owner_pid": self.owner_pid,
            "owner_alive": self.owner_alive,
            "processes": [{"name": p.name, "kind": p.kind, "pid": p.pid, "pgid": p.pgid,
                           "alive": p.alive, "members": list(p.members),
                           "ports": dict(p.ports)} for p in self.processes],
        }


def status_from_record(path: Path, record: dict[str, Any]) -> PlaygroundStatus:
    """The status of one PID-file record (as `read_pidfiles` returns it)."""
    members = record_members(record)
    sup = record.get("supervisor") or {}
    owner_pid = int(sup["pid"]) if "pid" in sup else None
    owner_alive = owner_pid is not None and _same_process(owner_pid,
                                                          float(sup.get("create_time", 0)))
    return PlaygroundStatus(
        name=str(record.get("name", path.stem)), state=str(record.get("state", "")),
        url=str(record.get("url", "")), data_plane=str(record.get("data_plane", "")),
        mode=str(record.get("mode", "")), owner_pid=owner_pid, owner_alive=owner_alive,
        processes=tuple(ProcessStatus(str(p["name"]), str(p["kind"]), int(p["pid"]),
                                      bool(members.get(p["name"])),
                                      {str(k): int(v) for k, v in p.get("ports", {}).items()},
                                      pgid=int(p.get("pgid", p["pid"])),
                                      members=tuple(members.get(p["name"], ())))
                        for p in record.get("processes", [])),
        pidfile=path, workdir=str(record.get("workdir", "")))


def status_of(playground: Playground) -> PlaygroundStatus:
    """The status of a playground this process runs (and owns)."""
    members = record_members({"processes": [p.record() for p in playground.processes]})
    return PlaygroundStatus(
        name=playground.name, state="ready" if playground.processes else "stopped",
        url=playground.url, data_plane=playground.data_plane.label,
        mode=str(playground.data_plane.mode), owner_pid=os.getpid(), owner_alive=True,
        processes=tuple(ProcessStatus(i.name, i.kind, i.pid, bool(members.get(i.name)),
                                      dict(i.ports), pgid=i.pid,
                                      members=tuple(members.get(i.name, ())))
                        for i in playground.info()),
        pidfile=playground.pidfile, workdir=str(playground.workdir))


def playground_statuses(state_dir: Path) -> list[PlaygroundStatus]:
    """Every playground recorded in `state_dir`, by PID file name."""
    return [status_from_record(path, record) for path, record in read_pidfiles(state_dir)]


def running_playground(state_dir: Path, name: str) -> PlaygroundStatus | None:
    """The playground recorded as `name` when any of its processes still runs."""
    for status in playground_statuses(state_dir):
        if status.pidfile.stem == name and status.alive_count:
            return status
    return None


def stop_playgrounds(state_dir: Path, *, names: Collection[str] = (),
                     include_owned: bool = False) -> list[str]:
    """Stop orphaned playgrounds, the ones recorded under `names` whatever their owner, and
    with `include_owned` every one; remove their PID files and work directories. A playground
    whose owner (a notebook, a script) is alive is otherwise left to that owner. Returns the
    names stopped. A record is removed only once its process groups are empty: when a member
    survives SIGKILL (another user's process?), the others are still stopped, its record is
    kept for a later call, and PlaygroundError names it at the end."""
    stopped: list[str] = []
    failed: list[str] = []
    for path, record in read_pidfiles(state_dir):
        status = status_from_record(path, record)
        if path.stem not in names and status.owner_alive and not include_owned:
            continue
        try:
            kill_record(record)
        except PlaygroundError as exc:
            failed.append(str(exc))
            continue
        path.unlink(missing_ok=True)
        if status.workdir:
            shutil.rmtree(status.workdir, ignore_errors=True)
        stopped.append(status.name)
    if failed:
        raise PlaygroundError(f"stopped {len(stopped)} playground(s); kept the record of "
                              f"what survived: {'; '.join(failed)}")
    return stopped


__all__ = ["PlaygroundStatus", "ProcessStatus", "playground_statuses", "running_playground",
           "status_from_record", "status_of", "stop_playgrounds"]
