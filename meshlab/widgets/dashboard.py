"""`meshlab dashboard`: the workbench served by Voila, on 127.0.0.1 unless told otherwise;
any other address requires a token (Voila itself would serve anyone without one). The token
travels in a 0600 config file, never on a command line; Voila's process group and the page's
warm kernel are stopped and its directory removed on every exit (Ctrl-C, SIGTERM, SIGHUP)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
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
# `python -m voila`, minus half of its start-up: jsonschema checks the "iri" string format with
# rfc3987_syntax when that is installed, and importing it builds a lark grammar, 2.8 s of
# Voila's 4.4 s import here (`python -X importtime -c "import voila.app"`). The only schemas
# Voila validates are Jupyter's event schemas, which have no "iri" field; a module marked absent
# is skipped by jsonschema as if it were not installed. `-c`, not a meshlab module: importing
# meshlab in the server would cost another 0.4 s and the server needs none of it.
VOILA_MAIN = ("import sys; sys.modules.setdefault('rfc3987_syntax', None); "
              "from voila.app import main; sys.exit(main())")
VOILA_OPTIONS: list[str] = []


def _is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def write_notebook(directory: Path, *, store: str | Path,
                   defaults: dict[str, Any] | None = None, kernel: str | None = None) -> Path:
    """A copy of the workbench notebook whose parameters cell names `store` (and whose
    kernelspec is `kernel`, if given)."""
    nb = json.loads(WORKBENCH_NOTEBOOK.read_text(encoding="utf-8"))
    params = {"name": "workbench", "target": "http://127.0.0.1:8080/", **(defaults or {})}
    nb["cells"][0]["source"] = (f"store_path = {str(Path(store).resolve())!r}\n"
                                f"defaults = {params!r}")
    if kernel is not None:
        nb["metadata"]["kernelspec"]["name"] = kernel
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
    """The Voila command line. Voila 0.5 ignores `--ip`: `--Voila.ip` is what binds. The token
    is not on it (`ps` shows every command line to every local user): `write_token_config`
    puts it in `voila.json` beside the notebook, which Voila reads from its working directory."""
    check_bind(ip=ip, port=port, token=token)
    argv = [sys.executable, "-c", VOILA_MAIN, str(notebook), f"--Voila.ip={ip}",
            f"--port={port}", f"--template={VOILA_TEMPLATE}", *VOILA_OPTIONS,
            "" if open_browser else "--no-browser"]
    return [a for a in argv if a]


def write_token_config(directory: Path, token: str) -> Path:
    """`voila.json` holding the token, readable by its owner only from its first byte."""
    path = directory / "voila.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        json.dump({"Voila": {"token": token}}, out)
    return path


def start_dashboard(*, store: str | Path = "data/meshlab.duckdb", port: int = 8866,
                    ip: str = "127.0.0.1", token: str | None = None,
                    defaults: dict[str, Any] | None = None,
                    workdir: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Voila on the workbench in the background, in its own process group that dies with
    this process (Linux); the caller stops it with `stop_dashboard`. Without `workdir` a private
    temporary directory is made (`stop_dashboard` removes it)."""
    check_bind(ip=ip, port=port, token=token)       # before anything is written
    if shutil.which("voila") is None and not _has_voila():
        raise MissingDependency("voila", install="pip install 'meshlab[workbench]'")
    directory = workdir or Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))     # 0700
    from meshlab.widgets import _kernel

    # the page's kernel starts now, beside Voila: see meshlab/widgets/_kernel.py
    sock = _kernel.write_kernel_spec(directory)
    notebook = write_notebook(directory, store=store, defaults=defaults,
                              kernel=_kernel.KERNEL_NAME)
    if token:
        write_token_config(directory, token)
    argv = dashboard_argv(notebook, port=port, ip=ip, token=token)
    from meshlab.playground.process import kill_with_parent

    # Voila's own temporary files go into the directory removed at the end, too; Voila finds
    # the dashboard's kernelspec there
    env = voila_env()
    env["JUPYTER_PATH"] = os.pathsep.join([env["JUPYTER_PATH"], str(directory)])
    env["TMPDIR"] = str(directory)
    linux = sys.platform == "linux"
    try:
        proc = subprocess.Popen(argv, cwd=directory, start_new_session=True, env=env,
                                preexec_fn=kill_with_parent if linux else None)
        # a session of its own, like every kernel: an interrupt signals its whole group
        _WARM[proc.pid] = subprocess.Popen(
            [sys.executable, "-m", _kernel.__name__, "warm", str(sock)], cwd=directory,
            env=env, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=kill_with_parent if linux else None)
    except BaseException:
        if workdir is None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    if workdir is None:
        _TEMP_DIRS[proc.pid] = directory
    return proc


_TEMP_PREFIX = "meshlab-dashboard-"
_TEMP_DIRS: dict[int, Path] = {}        # Voila pid -> the directory start_dashboard made
_WARM: dict[int, subprocess.Popen[bytes]] = {}     # Voila pid -> its warm kernel


def stop_dashboard(proc: subprocess.Popen[bytes], *, grace_s: float = 5.0) -> int:
    """SIGTERM Voila's process group (Voila and its kernels), SIGKILL it after `grace_s`,
    and remove the temporary directory `start_dashboard` made; returns Voila's exit code."""
    from meshlab.playground.process import kill_groups

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        code = None
    kill_groups([(proc.pid, 0.0)], grace_s=0.0)     # kernels Voila left behind, or Voila
    if code is None:
        code = proc.wait(5)
    warm = _WARM.pop(proc.pid, None)      # unused, or the kernel Voila has just shut down
    if warm is not None:
        kill_groups([(warm.pid, 0.0)], grace_s=0.0)
        warm.wait(5)
    made = _TEMP_DIRS.pop(proc.pid, None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
    return code


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
    """`meshlab dashboard`: serve until Ctrl-C, SIGTERM or SIGHUP (the CLI turns both into
    Ctrl-C); the exit code (2 on bad options). Voila's group and directory never outlive it."""
    directory = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))     # 0700
    try:
        try:
            proc = start_dashboard(store=store, port=port, ip=ip, token=token,
                                   workdir=directory)
        except (ProfileError, MissingDependency) as exc:
            print(f"meshlab dashboard: {exc}", file=sys.stderr)
            return 2
        print(f"meshlab dashboard: serving the workbench on http://{ip}:{port}/",
              file=sys.stderr)
        try:
            return proc.wait()
        finally:
            stop_dashboard(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
