"""Browser-test helpers: free loopback ports, waiting for a server, stopping its process
group (the fixtures using them are in conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout_s: float, proc: subprocess.Popen[Any] | None = None
                   ) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port (or the server exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the server's process group (it and its kernels), SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # kernels run in their own sessions: a SIGTERM'd server shuts them down itself
