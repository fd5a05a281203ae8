"""SIGTERM and SIGHUP take the Ctrl-C path in every long-running command (run, crosscheck,
playground up, dashboard): the run in flight is stored as aborted, the experiment is marked
aborted, and no process of meshlab's process groups, state file or temporary directory is left."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from _signal_helpers import Spawner, groups_of, json_lines, members, wait_empty

from meshlab.store import Store

pytestmark = pytest.mark.timeout(150)

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGHUP, id="SIGHUP")]


@pytest.mark.parametrize("sig", SIGNALS)
def test_run_stores_the_aborted_run_and_tears_the_playground_down(spawner: Spawner,
                                                                 sig: int) -> None:
    # MESHLAB_STATE_DIR is honoured by `meshlab run`: its playground is recorded there
    p, db, record = spawner.run_nginx("sig", "--json", "--quiet")
    groups = groups_of(record)
    assert len(groups) == 3                        # echo + two nginx proxies
    assert len(members(groups)) > len(groups)      # nginx masters have workers
    time.sleep(1.5)                                # the load is running
    p.send_signal(sig)
    out, err = spawner.finish(p, 60)
    assert p.returncode == 128 + sig, err
    (line,) = json_lines(out)
    assert line["status"] == "aborted" and line["requests"] > 0
    store = Store(db, read_only=True)
    assert list(store.runs()["status"]) == ["aborted"]
    assert list(store.experiments()["status"]) == ["aborted"]
    spawner.assert_nothing_left(record)


def _children(pid: int, word: str, timeout_s: float = 60.0) -> list[psutil.Process]:
    """The descendants of `pid` with `word` in their command line, once there are any. Make
    `word` specific ("voila.app", not "voila"): a child forked but not yet exec'd shows its
    parent's command line, whose paths hold the test's name."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = []
        for c in psutil.Process(pid).children(recursive=True):
            try:
                if any(word in a for a in c.cmdline()):
                    found.append(c)
            except psutil.Error:
                continue
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {word} process started under pid {pid} in {timeout_s:.0f} s")


def test_crosscheck_stops_its_load_tool(spawner: Spawner, tmp_path: Path, echo_url: str) -> None:
    prof = tmp_path / "c.yaml"
    prof.write_text(f"name: cc\ntarget: {echo_url}\nloads: {{rate_rps: [50], connections: [1], "
                    f"duration_s: 8, warmup_s: 0}}\n", encoding="utf-8")
    p = spawner.start("crosscheck", str(prof), "--runners", "hey", "--json", "--quiet")
    (hey,) = _children(p.pid, "hey")
    spawner.groups.append(hey.pid)                 # hey runs in its own process group
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    _, err = spawner.finish(p, 60)
    assert p.returncode == 128 + signal.SIGTERM, err
    # hey would have run 7 s more on its own: it is stopped with meshlab, not orphaned
    assert wait_empty([(hey.pid, hey.create_time())], timeout_s=2.0) == []


@pytest.mark.parametrize("sig", SIGNALS)
def test_playground_up_in_the_foreground_tears_down(spawner: Spawner, sig: int) -> None:
    p, record = spawner.playground_up()
    p.send_signal(sig)
    _, err = spawner.finish(p, 60)
    assert p.returncode == 0, err
    spawner.assert_nothing_left(record)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, p: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert p.poll() is None, "meshlab dashboard exited during start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"Voila did not listen on {port} within {timeout_s:.0f} s")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("sig", [*SIGNALS, pytest.param(signal.SIGKILL, id="SIGKILL")])
def test_dashboard_leaves_no_voila_and_no_directory(spawner: Spawner, tmp_path: Path,
                                                    sig: int) -> None:
    pytest.importorskip("voila")
    port, tmp = _free_port(), tmp_path / "tmp"
    tmp.mkdir()
    p = spawner.start("dashboard", "--port", str(port), "--store", str(tmp_path / "s.duckdb"),
                      TMPDIR=str(tmp))
    (voila,) = _children(p.pid, "voila.app")
    (warm,) = _children(p.pid, "meshlab.widgets._kernel")     # the page's kernel, started early
    spawner.groups.extend([voila.pid, warm.pid])
    _wait_listening(port, p)
    (made,) = [d for d in tmp.iterdir() if d.name.startswith("meshlab-dashboard-")]
    assert made.stat().st_mode & 0o077 == 0
    p.send_signal(sig)
    _, err = spawner.finish(p, 60)
    assert wait_empty([(voila.pid, voila.create_time()), (warm.pid, warm.create_time())]) == []
    assert not _listening(port)
    assert p.returncode == (-sig if sig == signal.SIGKILL else 128 + sig), err
    if sig != signal.SIGKILL:                  # nothing runs after SIGKILL to remove it
        assert list(tmp.iterdir()) == []       # Voila's own temporary files went inside it


def test_dashboard_token_is_on_no_command_line(spawner: Spawner, tmp_path: Path) -> None:
    pytest.importorskip("voila")
    import httpx

    port, token = _free_port(), secrets.token_hex(16)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    p = spawner.start("dashboard", "--port", str(port), "--token-file", str(token_file),
                      "--store", str(tmp_path / "s.duckdb"), TMPDIR=str(tmp_path))
    (voila,) = _children(p.pid, "voila.app")
    spawner.groups.append(voila.pid)
    _wait_listening(port, p)
    leaked = [q.pid for q in psutil.process_iter(["cmdline"])
              if any(token in a for a in q.info["cmdline"] or [])]
    assert leaked == []
    # the token is still enforced: without it Voila sends the browser to its login page
    r = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False, timeout=30)
    assert r.status_code in (302, 403), r.status_code
    p.send_signal(signal.SIGTERM)
    spawner.finish(p, 60)
    assert wait_empty([(voila.pid, voila.create_time())]) == []
