"""Helpers for the signal and reaping tests: `meshlab` as a real subprocess (this checkout on
PYTHONPATH), PID-file waits, process-group scans, and a teardown that reaps whatever is left."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]

# A small local profile: one nginx playground (a master and a worker per proxy), 100 req/s on
# two connections for 8 s; the tests interrupt it after about a second of load.
NGINX_PROFILE = """\
name: {name}
environment: local
target: http://playground/
meshes: [nginx]
loads: {{rate_rps: [100], connections: [2], duration_s: 8, warmup_s: 0, dataplane_warmup_s: 0}}
"""


def env(state_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MESHLAB_STATE_DIR": str(state_dir),
            "COLUMNS": "200", **extra}


class Spawner:
    """Starts `python -m meshlab ...` subprocesses (output to files: a grandchild holding a pipe
    open must not hang a test) and, at teardown, kills them and every process of the groups
    they are known to have started, whether or not the test passed."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.groups: list[int] = []        # process groups to empty at teardown

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        out = self.tmp_path / f"out-{len(self.procs)}"
        with open(f"{out}.stdout", "wb") as so, open(f"{out}.stderr", "wb") as se:
            p = subprocess.Popen([sys.executable, "-m", "meshlab", *args], cwd=self.tmp_path,
                                 env=env(self.state_dir, **extra_env), stdout=so, stderr=se,
                                 stdin=subprocess.DEVNULL)
        self.procs.append((p, out))
        return p

    def finish(self, p: subprocess.Popen[bytes], timeout_s: float = 60.0) -> tuple[str, str]:
        """Wait for `p`; its stdout and stderr."""
        p.wait(timeout_s)
        (out,) = [o for q, o in self.procs if q is p]
        return (Path(f"{out}.stdout").read_text(encoding="utf-8", errors="replace"),
                Path(f"{out}.stderr").read_text(encoding="utf-8", errors="replace"))

    def record(self, *, state: str = "ready", timeout_s: float = 60.0) -> dict[str, Any]:
        """The playground record once it reaches `state`; its groups are reaped at teardown."""
        rec = wait_for_record(self.state_dir, state=state, timeout_s=timeout_s)
        self.groups += [g for g, _ in groups_of(rec)]
        return rec

    def run_nginx(self, name: str, *flags: str) -> tuple[subprocess.Popen[bytes], Path,
                                                         dict[str, Any]]:
        """`meshlab run` of NGINX_PROFILE into a fresh store: the process, the store's path and
        the playground record once the playground is ready."""
        prof = self.tmp_path / f"{name}.yaml"
        prof.write_text(NGINX_PROFILE.format(name=name), encoding="utf-8")
        db = self.tmp_path / f"{name}.duckdb"
        p = self.start("run", str(prof), "--store", str(db), *flags)
        return p, db, self.record()

    def playground_up(self) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """`meshlab playground up --foreground` with nginx; the process and its ready record."""
        p = self.start("playground", "up", "--foreground", "--data-plane", "nginx")
        return p, self.record()

    def assert_nothing_left(self, record: dict[str, Any], timeout_s: float = 5.0) -> None:
        """No process of `record`'s groups (within `timeout_s`), no PID file, no work directory
        (configs, logs and mTLS keys)."""
        assert wait_empty(groups_of(record), timeout_s) == []
        assert records(self.state_dir) == []
        assert not Path(record["workdir"]).exists()

    def cleanup(self) -> None:
        for p, _ in self.procs:
            if p.poll() is None:
                p.kill()
        for rec in records(self.state_dir):
            self.groups += [g for g, _ in groups_of(rec)]
        groups = [(g, 0.0) for g in self.groups]
        deadline = time.monotonic() + 10
        while (left := members(groups)) and time.monotonic() < deadline:
            for pid, _ in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for p, _ in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)


def records(state_dir: Path) -> list[dict[str, Any]]:
    """The PID-file records in `state_dir` (read here, not through the code under test)."""
    out = []
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def wait_for_record(state_dir: Path, *, state: str = "ready",
                    timeout_s: float = 60.0) -> dict[str, Any]:
    """The PID-file record of the playground in `state_dir` once it reaches `state`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in records(state_dir):
            if record.get("state") == state:
                return record
        time.sleep(0.05)
    seen = sorted(os.listdir(state_dir)) if state_dir.exists() else "no such directory"
    raise AssertionError(f"no playground record in state {state!r} appeared in {state_dir} "
                         f"within {timeout_s:.0f} s: {seen}")


def groups_of(record: dict[str, Any]) -> list[tuple[int, float]]:
    return [(int(p.get("pgid", p["pid"])), float(p.get("create_time", 0)))
            for p in record.get("processes", [])]


def members(groups: list[tuple[int, float]]) -> list[tuple[int, str]]:
    """(pid, name) of every live process in the given process groups, zombies excluded, none
    started before the group's leader (a reused group id)."""
    out = []
    for p in psutil.process_iter(["pid", "name", "status", "create_time"]):
        try:
            pgid = os.getpgid(p.info["pid"])
        except OSError:
            continue
        for g, t in groups:
            if pgid == g and p.info["status"] != psutil.STATUS_ZOMBIE and \
                    p.info["create_time"] >= t - 1.0:
                out.append((p.info["pid"], p.info["name"]))
    return out


def wait_empty(groups: list[tuple[int, float]], timeout_s: float = 5.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    left = members(groups)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = members(groups)
    return left


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
