"""Browser-test helpers: free loopback ports, waiting for a server, stopping its process
group (the fixtures using them are in conftest.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
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
        time.sleep(0.05)
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


# Screenshots a person can look at after a run (git-ignored); failures also land in tmp_path.
SHOTS = Path(__file__).resolve().parent / "screenshots"
SCI = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")


def scientific(text: str) -> list[str]:
    """Numbers in scientific notation, token by token: `3.338200e+02` is one, a run id such
    as `20261203T100001-5e76fe` (hex) is not."""
    return [t for t in re.split(r"[\s,;]+", text) if SCI.fullmatch(t.strip("()%[]"))]


def screenshot(page: Any, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def visible_tables(page: Any, scope: str = "") -> list[dict[str, Any]]:
    """Every visible table under `scope`: its header cells and its body text."""
    return list(page.evaluate("""(scope) => {
        const out = [];
        for (const t of document.querySelectorAll((scope ? scope + ' ' : '') + 'table')) {
            if (!t.offsetParent) continue;
            out.push({heads: [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()),
                      text: t.innerText, pandas: t.classList.contains('dataframe')});
        }
        return out;
    }""", scope))


def plot_layouts(page: Any, scope: str = "") -> list[dict[str, Any]]:
    """Title, axis types and legend entries of every plotly chart under `scope`."""
    return list(page.evaluate("""(scope) => [...document.querySelectorAll(
            (scope ? scope + ' ' : '') + '.js-plotly-plot')].map(p => ({
        title: (p._fullLayout.title || {}).text || '',
        x: p._fullLayout.xaxis ? p._fullLayout.xaxis.type : null,
        y: p._fullLayout.yaxis ? p._fullLayout.yaxis.type : null,
        legend: p.querySelectorAll('.legend .traces').length}))""", scope))


def check_tables(tables: list[dict[str, Any]]) -> None:
    """What a reader minds: scientific notation, a pandas index, snake_case headers."""
    for t in tables:
        assert not t["pandas"], t["heads"]
        assert all(h for h in t["heads"][:1]) or not t["heads"], t["heads"]   # no index column
        assert not scientific(t["text"]), t["text"][:300]
        assert not any("_" in h for h in t["heads"]), t["heads"]
