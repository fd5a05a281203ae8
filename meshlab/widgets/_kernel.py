"""The dashboard's kernel, started before Voila is ready: `warm` imports ipykernel and the
workbench while Voila imports itself; the kernelspec's `launch` hands the first kernel Voila asks
for to it (any later or failed hand-over starts an ordinary kernel in the launcher)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

KERNEL_NAME = "meshlab-dashboard"
SOCKET_NAME = "meshlab-kernel.sock"
# AF_UNIX paths are limited to 108 bytes (Linux), 104 (macOS): beyond, the socket is named
# relative to the dashboard's directory, where both the warm kernel and Voila's kernels start
MAX_SOCKET_PATH = 100
HANDOVER_TIMEOUT_S = 60.0
# What the first page's cell imports (meshlab/widgets/workbench.ipynb): done before it is asked
WARM_IMPORTS = ("ipykernel.kernelapp", "ipywidgets", "meshlab.widgets.run_view",
                "meshlab.widgets.workbench", "meshlab.runners.base",
                "meshlab.environments.base", "meshlab.meshes")      # the form's dropdowns
# A dashboard kernel is never debugged: ipykernel otherwise imports debugpy (pydevd) at start,
# and the history database is never read back
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)


def kernel_spec(socket_path: Path) -> dict[str, object]:
    """The kernel.json of the dashboard's kernel: this module's `launch`, with this Python."""
    return {"argv": [sys.executable, "-m", __name__, "launch", str(socket_path), "-f",
                     "{connection_file}", *KERNEL_OPTIONS],
            "display_name": "meshlab dashboard (Python 3)", "language": "python",
            "metadata": {"debugger": False}}


def write_kernel_spec(directory: Path) -> Path:
    """`directory/kernels/meshlab-dashboard/kernel.json` (Voila finds it with `directory` on
    JUPYTER_PATH); the warm kernel's socket path (relative to `directory` if it is deep)."""
    sock = directory / SOCKET_NAME
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        sock = Path(SOCKET_NAME)
    spec_dir = directory / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(kernel_spec(sock)), encoding="utf-8")
    return sock


def _run_kernel(argv: list[str]) -> None:
    sys.modules.setdefault("debugpy", None)     # type: ignore[arg-type]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)  # type: ignore[no-untyped-call]
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None:       # imported before there was a kernel to register with
        widgets.register_comm_target()
    app.start()  # type: ignore[no-untyped-call]


def warm(socket_path: str) -> int:
    """Listen on `socket_path` (at once, so an early launcher queues rather than misses it),
    import what the first page needs, then become the kernel of the first launcher."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    sys.modules.setdefault("debugpy", None)     # type: ignore[arg-type]
    import importlib

    for name in WARM_IMPORTS:
        importlib.import_module(name)
    while True:
        conn, _ = listener.accept()
        try:
            request = json.loads(conn.makefile("r", encoding="utf-8").readline())
            break
        except ValueError:                        # not a launcher: wait for the next one
            conn.close()
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(socket_path)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    conn.sendall(f"{os.getpid()}\n".encode())
    # the launcher is the process Voila watches: if it dies (SIGKILL), so does this kernel
    threading.Thread(target=_exit_on_close, args=(conn,), daemon=True).start()
    # ipykernel read $JPY_PARENT_PID when imported, before this kernel had its environment
    parent = os.environ.get("JPY_PARENT_PID", "")
    _run_kernel([*request["argv"], *([f"--IPKernelApp.parent_handle={parent}"]
                                     if parent.isdigit() else [])])
    return 0


def _exit_on_close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os._exit(1)


def _handover(socket_path: str, argv: list[str]) -> tuple[socket.socket, int] | None:
    """The warm kernel's socket and pid once it took `argv`, or None (gone, taken, failed)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(HANDOVER_TIMEOUT_S)
        sock.connect(socket_path)
        request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
        sock.sendall((json.dumps(request) + "\n").encode())
        reply = sock.makefile("r", encoding="utf-8").readline()
        pid = int(reply)
    except (OSError, ValueError):
        sock.close()
        return None
    sock.settimeout(None)
    return sock, pid


def launch(socket_path: str, argv: list[str]) -> int:
    """The kernelspec's command: hand `argv` to the warm kernel and stand for it (signals
    forwarded, exit when it exits), or run an ordinary kernel here if none takes it."""
    taken = _handover(socket_path, argv)
    if taken is None:
        _run_kernel(argv)
        return 0
    sock, pid = taken

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if signum != signal.SIGINT:
            raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    with contextlib.suppress(OSError):
        while sock.recv(1):
            pass
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "warm":
        return warm(argv[1])
    if len(argv) >= 2 and argv[0] == "launch":
        return launch(argv[1], argv[2:])
    print("usage: python -m meshlab.widgets._kernel warm SOCKET | launch SOCKET -f CONNECTION",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
