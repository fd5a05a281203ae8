"""Playground processes: each in its own session and process group, killed with its parent
(Linux PR_SET_PDEATHSIG), recorded by process group in a PID file for `meshlab playground down`;
readiness probes; teardown by SIGTERM to every group, SIGKILL after a grace period, verified."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

from meshlab.errors import PlaygroundError
from meshlab.playground.ports import port_open

_PR_SET_PDEATHSIG = 1


# Linux sends the parent-death signal when the *thread* that forked exits: start playgrounds
# from a long-lived thread (the main thread, an event loop's), not a short-lived worker.
def kill_with_parent() -> None:    # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One child process (an app or a proxy) in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, kind: str,
                 role: str = "", ports: dict[str, int] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.kind = kind           # echo | relay | envoy | nginx | haproxy
        self.role = role           # app | sidecar | gateway | node-proxy | waypoint
        self.ports = dict(ports or {})
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.create_time = 0.0
        self.stopping = False

    def start(self, *, die_with_parent: bool = True) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.cwd, start_new_session=True,
                    preexec_fn=kill_with_parent if (die_with_parent and sys.platform == "linux")
                    else None)
            except OSError as exc:
                raise PlaygroundError(f"cannot start {self.name} ({self.argv[0]}): "
                                      f"{exc.strerror}") from exc
        with contextlib.suppress(psutil.Error):
            self.create_time = psutil.Process(self.proc.pid).create_time()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace").strip()

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "role": self.role, "pid": self.pid,
                "pgid": self.pid, "create_time": self.create_time, "ports": self.ports,
                "argv": self.argv}


def stop_processes(procs: Iterable[ManagedProcess], *, grace_s: float = 1.0) -> None:
    """SIGTERM every group, wait up to `grace_s`, SIGKILL the rest, reap them all, and wait
    until every group is empty (an nginx master that exited may leave workers behind)."""
    procs = [p for p in procs if p.proc is not None]
    for p in procs:
        p.stopping = True
        p.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.alive() for p in procs):
        time.sleep(0.01)
    for p in procs:
        p.signal_group(signal.SIGKILL)
    for p in procs:
        assert p.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.proc.wait(2.0)
    # an nginx master killed by SIGKILL leaves its workers: empty every group, leader or not
    kill_groups([(p.pid, p.create_time) for p in procs], grace_s=0.0)


# --- process groups ------------------------------------------------------------------------

def _pgids() -> dict[int, tuple[int, int]]:
    """pid -> (process group, session) of every process, from /proc (Linux) or psutil."""
    out: dict[int, tuple[int, int]] = {}
    proc = Path("/proc")
    if proc.is_dir() and sys.platform == "linux":
        for entry in os.scandir(proc):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "stat").read_bytes()
            except OSError:
                continue
            # `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses
            fields = raw[raw.rfind(b")") + 2:].split()
            if len(fields) > 3 and fields[0] != b"Z":
                out[int(entry.name)] = (int(fields[2]), int(fields[3]))
        return out
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            out[pid] = (os.getpgid(pid), os.getsid(pid))
    return out


def _group_gone(pgid: int) -> bool:
    """True when no process (not even a zombie) is in group `pgid`: one signal-0 syscall, where
    a scan of /proc reads every process's stat file (25-130 ms measured on a busy CI-sized
    machine, and a teardown used to scan a dozen times)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except OSError:          # EPERM: the group exists (another user's): look closer
        return False
    return False


def group_members(pgid: int, create_time: float = 0.0, *,
                  table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """Live processes of the playground group `pgid` whose leader started at `create_time`:
    members of that group and session (each playground process leads its own session), none
    older than the leader (the id of a group that ended can be reused). Zombies do not count."""
    if pgid <= 0 or _group_gone(pgid):
        return []
    members = []
    for pid, (group, session) in (table if table is not None else _pgids()).items():
        if group != pgid or session != pgid:
            continue
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE or (
                    create_time and p.create_time() < create_time - 1.0):
                continue
        except psutil.Error:
            continue
        members.append(pid)
    return sorted(members)


def record_members(record: dict[str, Any]) -> dict[str, list[int]]:
    """Name of each process of a PID-file record -> the live members of its process group
    (the leader may be gone while its children, nginx workers, still run)."""
    groups = [(p["name"], int(p.get("pgid", p["pid"])), float(p.get("create_time", 0)))
              for p in record.get("processes", [])]
    table = _pgids() if any(not _group_gone(g) for _, g, _ in groups) else {}
    return {name: group_members(g, t, table=table) for name, g, t in groups}


def kill_groups(groups: list[tuple[int, float]], *, grace_s: float) -> list[int]:
    """SIGTERM each group, SIGKILL what is left after `grace_s`, wait up to 2 s more; the pids
    still alive after that (none unless a group cannot be signalled)."""
    def members() -> dict[tuple[int, float], list[int]]:
        # one scan of /proc for all groups, and none once every group is gone
        present = [(g, t) for g, t in groups if not _group_gone(g)]
        table = _pgids() if present else {}
        return {(g, t): group_members(g, t, table=table) for g, t in present}

    def live() -> list[int]:
        return [pid for pids in members().values() for pid in pids]

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for (g, _), pids in members().items():
            if pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(g, sig)
        deadline = time.monotonic() + wait_s
        while live() and time.monotonic() < deadline:
            time.sleep(0.02)
    return live()


# --- readiness -----------------------------------------------------------------------------

Probe = Callable[[], bool]


def tcp_probe(port: int, host: str = "127.0.0.1") -> Probe:
    return lambda: port_open(host, port, timeout_s=0.1)


def http_probe(port: int, path: str = "/ready", host: str = "127.0.0.1") -> Probe:
    """A minimal HTTP GET that is ready on a 200 (Envoy admin /ready answers LIVE)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.2) as s:
                s.sendall(request)
                head = s.recv(64)
        except OSError:
            return False
        return head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    return probe


def wait_ready(checks: Sequence[tuple[ManagedProcess, Probe]], *, timeout_s: float) -> None:
    """Poll every probe until all pass; raise PlaygroundError naming a process that died or
    never became ready (with the tail of its log)."""
    pending = list(checks)
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while pending:
        for item in list(pending):
            proc, probe = item
            if not proc.alive():
                raise PlaygroundError(
                    f"{proc.name} ({proc.kind}) exited with code {proc.returncode} during "
                    f"start-up; its log ends with:\n{proc.log_tail()}")
            if probe():
                pending.remove(item)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(p.name for p, _ in pending)
            tail = pending[0][0].log_tail()
            raise PlaygroundError(f"not ready within {timeout_s:.1f} s: {names}; "
                                  f"the log of {pending[0][0].name} ends with:\n{tail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


# --- PID files and the exit hook -----------------------------------------------------------

_STATE_DIR: Path | None = None


def use_state_dir(path: str | Path | None) -> None:
    """Make `path` this process's default state directory (None: back to the default); the CLI
    passes $MESHLAB_STATE_DIR, so `meshlab run` and `meshlab playground` share one place."""
    global _STATE_DIR
    _STATE_DIR = Path(path) if path else None


def default_state_dir() -> Path:
    """The directory chosen with `use_state_dir`, else $XDG_RUNTIME_DIR/meshlab/playground,
    else <tmp>/meshlab-<uid>/playground (private_dir refuses one another user owns)."""
    if _STATE_DIR is not None:
        return _STATE_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "meshlab" if runtime else \
        Path(tempfile.gettempdir()) / f"meshlab-{os.getuid()}"
    return base / "playground"


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents with mode 0700; refuse a symlink or a directory
    another user owns (a predictable /tmp name someone else created first); close group and
    other access on the directories of ours. Returns `path`."""
    path = Path(os.path.abspath(path))
    # checked: `path`, every directory created here, and meshlab's own parents (/tmp/meshlab-0,
    # $XDG_RUNTIME_DIR/meshlab); /tmp itself and a home directory are left alone
    mine = [d for d in reversed([path, *path.parents])
            if d == path or d.name.startswith("meshlab") or not os.path.lexists(d)]
    for d in mine:
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PlaygroundError(f"cannot create directory {d}: {exc.strerror}") from exc
        st = os.lstat(d)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise PlaygroundError(f"{d} is not a directory (a symlink?); remove it or choose "
                                  f"another --state-dir / MESHLAB_STATE_DIR")
        if st.st_uid != os.getuid():
            raise PlaygroundError(f"{d} belongs to uid {st.st_uid}, not to you (uid "
                                  f"{os.getuid()}); remove it or choose another --state-dir / "
                                  f"MESHLAB_STATE_DIR")
        if st.st_mode & 0o077:
            os.chmod(d, 0o700)
    return path


def write_pidfile(path: Path, record: dict[str, Any]) -> None:
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(record, indent=1))
    tmp.replace(path)


def read_pidfiles(state_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(state_dir.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return out


def _same_process(pid: int, create_time: float) -> bool:
    """The pid still names the process we started (not a recycled pid)."""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 0.5 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def record_alive(record: dict[str, Any]) -> list[str]:
    """Names of the processes of a PID-file record whose process group still has members."""
    return [name for name, pids in record_members(record).items() if pids]


def kill_record(record: dict[str, Any], *, grace_s: float = 1.0) -> int:
    """Stop what a PID file describes: its supervisor first (it tears down cleanly), then every
    recorded process group that still has members, whether or not its leader lives. Returns how
    many groups had to be signalled; PlaygroundError when a member survives SIGKILL."""
    sup = record.get("supervisor") or {}
    sup_pid = int(sup.get("pid", 0))
    if sup_pid and sup_pid != os.getpid() and _same_process(sup_pid, float(sup["create_time"])):
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup_pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s + 1.0
        while time.monotonic() < deadline and psutil.pid_exists(sup_pid) and \
                _same_process(sup_pid, float(sup["create_time"])):
            time.sleep(0.02)
    groups = [(int(p.get("pgid", p["pid"])), float(p.get("create_time", 0)))
              for p in record.get("processes", [])]
    live = [(g, t) for g, t in groups if group_members(g, t)]
    left = kill_groups(live, grace_s=grace_s)
    if left:
        raise PlaygroundError(f"playground {record.get('name')}: processes {left} survived "
                              f"SIGKILL (owned by another user?); its record is kept")
    return len(live)


def supervisor_record() -> dict[str, Any]:
    me = psutil.Process()
    return {"pid": me.pid, "create_time": me.create_time(), "argv": sys.argv[:8]}


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()
_HOOKED = False


def register_for_exit(owner: Any) -> None:
    """Make sure `owner.stop()` runs at interpreter exit (a kernel restart, a script's end)."""
    global _HOOKED
    with _LOCK:
        _LIVE.add(owner)
        if not _HOOKED:
            atexit.register(_stop_all)
            _HOOKED = True


def unregister_for_exit(owner: Any) -> None:
    with _LOCK:
        _LIVE.discard(owner)


def _stop_all() -> None:
    for owner in list(_LIVE):
        with contextlib.suppress(Exception):
            owner.stop()
