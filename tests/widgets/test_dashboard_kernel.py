"""The dashboard's kernel: the kernelspec hands the first kernel to the warm process (imports done,
the request's environment and directory applied, widgets registered), later ones start in their
launcher; shutting either down, or killing its launcher, leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from meshlab.widgets import _kernel

pytestmark = pytest.mark.timeout(120)

# importing ipywidgets in a kernel registers its comm targets; imported before (warm), it does not
PROBE = """
import json, os, sys
preloaded = "meshlab.widgets.workbench" in sys.modules
import ipywidgets
from IPython import get_ipython
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(),
                  "query": os.environ.get("QUERY_STRING"), "preloaded": preloaded,
                  "targets": sorted(get_ipython().kernel.comm_manager.targets)}))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:      # a zombie is not alive
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A dashboard directory with the kernelspec; yields (directory, warm kernel socket)."""
    yield tmp_path, _kernel.write_kernel_spec(tmp_path)


@pytest.fixture
def warm(spec_dir: tuple[Path, Path]) -> Iterator[subprocess.Popen[bytes]]:
    directory, sock = spec_dir
    proc = subprocess.Popen([sys.executable, "-m", _kernel.__name__, "warm", str(sock)],
                            cwd=directory, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        # listening within milliseconds, long before Voila asks for a kernel; a launcher that
        # came earlier would start an ordinary kernel (the last test)
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _start(directory: Path, **env: str) -> KernelManager:
    specs = KernelSpecManager(kernel_dirs=[str(directory / "kernels")])
    km = KernelManager(kernel_name=_kernel.KERNEL_NAME, kernel_spec_manager=specs)
    km.shutdown_wait_time = 60.0      # a loaded machine: a SIGTERM after 2.5 s would be no exit
    km.start_kernel(cwd=str(directory), env={**os.environ, **env})
    return km


def _probe(km: KernelManager) -> dict[str, object]:
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        lines: list[str] = []
        reply = kc.execute_interactive(
            PROBE, timeout=60, output_hook=lambda m: lines.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
    return dict(json.loads("".join(lines)))


def test_the_kernelspec_runs_this_module_with_this_python(tmp_path: Path) -> None:
    sock = _kernel.write_kernel_spec(tmp_path)
    spec = json.loads((tmp_path / "kernels" / _kernel.KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][:5] == [sys.executable, "-m", _kernel.__name__, "launch", str(sock)]
    assert "{connection_file}" in spec["argv"] and spec["language"] == "python"


def test_a_deep_directory_names_the_socket_relative_to_it(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)            # beyond AF_UNIX's 108 bytes
    deep.mkdir()
    sock = _kernel.write_kernel_spec(deep)
    assert sock == Path(_kernel.SOCKET_NAME)
    warm = subprocess.Popen([sys.executable, "-m", _kernel.__name__, "warm", str(sock)],
                            cwd=deep, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        while not (deep / sock).exists():
            assert warm.poll() is None
            time.sleep(0.01)
        km = _start(deep)                     # Voila starts kernels in the notebook's directory
        try:
            assert _probe(km)["pid"] == warm.pid
        finally:
            km.shutdown_kernel(now=False)
        assert warm.wait(20) == 0
    finally:
        if warm.poll() is None:
            os.killpg(warm.pid, signal.SIGKILL)
            warm.wait(10)


def test_first_kernel_is_the_warm_process_and_the_second_starts_in_its_launcher(
        spec_dir: tuple[Path, Path], warm: subprocess.Popen[bytes]) -> None:
    directory, sock = spec_dir
    first = _start(directory, QUERY_STRING="run=abc")
    second = None
    try:
        seen = _probe(first)
        assert seen["pid"] == warm.pid            # the kernel is the process started early
        assert seen["preloaded"] is True
        assert seen["query"] == "run=abc"         # the request's environment, not the warm one's
        assert seen["cwd"] == str(directory)
        assert "jupyter.widget" in seen["targets"]   # widgets imported early still register
        assert not sock.exists()                  # single use
        second = _start(directory, QUERY_STRING="run=def")
        again = _probe(second)
        assert again["pid"] == second.provisioner.pid != warm.pid
        assert again["query"] == "run=def" and again["preloaded"] is False
        assert "jupyter.widget" in again["targets"]
    finally:
        first.shutdown_kernel(now=False)
        if second is not None:
            second.shutdown_kernel(now=False)
    assert warm.wait(20) == 0                     # shut down through its launcher


def test_killing_the_launcher_ends_the_warm_kernel(spec_dir: tuple[Path, Path],
                                                   warm: subprocess.Popen[bytes]) -> None:
    directory, _ = spec_dir
    km = _start(directory)
    try:
        assert _probe(km)["pid"] == warm.pid
        launcher = km.provisioner.pid
    finally:
        km.shutdown_kernel(now=True)              # SIGKILL to the launcher, no shutdown message
    assert warm.wait(20) != 0
    _wait_gone(launcher)


def test_without_a_warm_process_the_launcher_is_the_kernel(
        spec_dir: tuple[Path, Path]) -> None:
    directory, sock = spec_dir
    km = _start(directory)
    try:
        launcher = km.provisioner.pid
        assert _probe(km)["pid"] == launcher
        assert not sock.exists()
    finally:
        km.shutdown_kernel(now=False)
    _wait_gone(launcher)
