"""A snapshot of the machine a run executes on (stored with every run)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from functools import lru_cache

from meshlab.results import HostSnapshot


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=32)
def tool_version(tool: str) -> str:
    """First line of `tool --version` (or `-v`/`-V`), '' when the tool is absent."""
    path = shutil.which(tool)
    if not path:
        return ""
    for flag in ("--version", "-v", "-V", "version"):
        try:
            out = subprocess.run([path, flag], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (out.stdout or out.stderr).strip()
        if text and out.returncode in (0, 1):
            return text.splitlines()[0][:200]
    return ""


def host_snapshot(tools: Iterable[str] = ()) -> HostSnapshot:
    from meshlab._version import __version__

    return HostSnapshot(
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 0,
        kernel=platform.release(),
        python=platform.python_version(),
        meshlab_version=__version__,
        tools={t: tool_version(t) for t in tools},
    )
