"""Shared by the reliability tests: stored runs with chosen strings, the CLI in-process and as a
real process, and a loopback HTTP server that records the request lines it receives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _store_data import make_result

from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.store import Store

SCRIPT = Path(sys.executable).parent / "meshlab"


def stored_run(db: Path, run_id: str = "20261122T100000-aaaaaa", *,
               target: str = "http://127.0.0.1:8080/", profile: str = "smoke",
               mesh: str = "none", redact: bool = True) -> RunResult:
    """Save one complete run into the store `db`; `redact=False` keeps the spec as given (a run
    stored by an older meshlab, before targets were redacted)."""
    result = make_result(run_id, n=500, telemetry_n=2)
    spec = RunSpec(target=target, profile=profile, mesh=mesh, rate_rps=1000.0, connections=16)
    result.spec = {**result.spec, **spec.to_dict()}
    if not redact:
        result.spec["target"] = target
    Store(db).save(result)
    return result


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`meshlab ARGS` in-process: (exit code, stdout, stderr). An exception escaping `main` (a
    traceback for a user) fails the test."""
    from meshlab.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def meshlab_argv() -> list[str]:
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshlab"]


def meshlab(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """`meshlab ARGS` as a real process (what a user's shell runs)."""
    return subprocess.run([*meshlab_argv(), *args], capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, "COLUMNS": "200"}, check=False)


def one_error_line(err: str) -> str:
    """The stderr of a refused command: exactly one `error: ...` line, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@contextmanager
def recording_server() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server on 127.0.0.1 answering `200` to every request (keep-alive) and
    recording each request head as it arrived on the wire: (base URL, heads)."""
    heads: list[bytes] = []
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    lsock.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    heads.append(head)
                    try:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    except OSError:
                        return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=serve, args=(conn,), daemon=True)
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}", heads
    finally:
        stop.set()
        acceptor.join(5)
        for t in threads:
            t.join(5)
        lsock.close()
