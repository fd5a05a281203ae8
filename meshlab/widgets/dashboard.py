"""`meshlab dashboard`: the workbench served by Voila, on 127.0.0.1 unless told otherwise;
any other address requires a token (Voila itself would serve anyone without one)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from meshlab.errors import MissingDependency, ProfileError

WORKBENCH_NOTEBOOK = Path(__file__).resolve().with_name("workbench.ipynb")
# Voila's "lab" template minus its Font Awesome CDN links (served with no network at all), and
# the JupyterLab settings that silence the news prompt: `jupyter lab
# --LabApp.app_settings_dir=$(python -c "import meshlab.widgets.dashboard as d;
# print(d.LAB_SETTINGS)")`
SHARE = Path(__file__).resolve().with_name("share")
VOILA_TEMPLATE = "meshlab"
LAB_SETTINGS = SHARE / "lab-settings"


def _is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def write_notebook(directory: Path, *, store: str | Path,
                   defaults: dict[str, Any] | None = None) -> Path:
    """A copy of the workbench notebook whose parameters cell names `store`."""
    nb = json.loads(WORKBENCH_NOTEBOOK.read_text(encoding="utf-8"))
    params = {"name": "workbench", "target": "http://127.0.0.1:8080/", **(defaults or {})}
    nb["cells"][0]["source"] = (f"store_path = {str(Path(store).resolve())!r}\n"
                                f"defaults = {params!r}")
    out = directory / "meshlab-workbench.ipynb"
    out.write_text(json.dumps(nb), encoding="utf-8")
    return out


def check_bind(*, ip: str, port: int, token: str | None) -> None:
    """ProfileError unless the address is loopback or a token is set, and the port valid."""
    if not _is_loopback(ip) and not token:
        raise ProfileError(f"--ip {ip}: serving beyond loopback needs --token SECRET (Voila "
                           "has no authentication otherwise)")
    if not 0 <= port <= 65535:
        raise ProfileError(f"--port {port}: must be within 0..65535")


def dashboard_argv(notebook: Path, *, port: int = 8866, ip: str = "127.0.0.1",
                   token: str | None = None, open_browser: bool = False) -> list[str]:
    """The Voila command line. Voila 0.5 ignores `--ip`: `--Voila.ip` is what binds."""
    check_bind(ip=ip, port=port, token=token)
    argv = [sys.executable, "-m", "voila", str(notebook), f"--Voila.ip={ip}", f"--port={port}",
            f"--template={VOILA_TEMPLATE}", "" if open_browser else "--no-browser"]
    if token:
        argv.append(f"--token={token}")
    return [a for a in argv if a]


def start_dashboard(*, store: str | Path = "data/meshlab.duckdb", port: int = 8866,
                    ip: str = "127.0.0.1", token: str | None = None,
                    defaults: dict[str, Any] | None = None,
                    workdir: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Voila on the workbench in the background (the caller stops the process)."""
    check_bind(ip=ip, port=port, token=token)       # before anything is written
    if shutil.which("voila") is None and not _has_voila():
        raise MissingDependency("voila", install="pip install 'meshlab[workbench]'")
    directory = workdir or Path(tempfile.mkdtemp(prefix="meshlab-dashboard-"))
    notebook = write_notebook(directory, store=store, defaults=defaults)
    argv = dashboard_argv(notebook, port=port, ip=ip, token=token)
    return subprocess.Popen(argv, cwd=directory, start_new_session=True, env=voila_env())


def voila_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Voila runs in: JUPYTER_PATH leads with meshlab's share folder, where
    Voila finds the `meshlab` template."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE), env.get("JUPYTER_PATH", ""))
                                          if p)
    return env


def _has_voila() -> bool:
    import importlib.util

    return importlib.util.find_spec("voila") is not None


def dashboard_main(*, port: int = 8866, ip: str = "127.0.0.1", token: str | None = None,
                   store: str | Path = "data/meshlab.duckdb") -> int:
    """`meshlab dashboard`: serve until Ctrl-C; the exit code (2 on bad options)."""
    try:
        proc = start_dashboard(store=store, port=port, ip=ip, token=token)
    except (ProfileError, MissingDependency) as exc:
        print(f"meshlab dashboard: {exc}", file=sys.stderr)
        return 2
    print(f"meshlab dashboard: serving the workbench on http://{ip}:{port}/", file=sys.stderr)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait(10)
