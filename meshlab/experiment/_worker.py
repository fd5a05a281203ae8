"""The load worker: one fresh Python process per experiment that runs `runner.run(spec)` and
sends progress and the result back over a socket, so nothing the parent draws delays a send."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from meshlab.errors import RunnerError
from meshlab.profile import RunSpec
from meshlab.progress import Progress, ProgressCallback
from meshlab.results import RunResult
from meshlab.runners.base import Runner

_STOP_GRACE_S = 15.0
_READY_TIMEOUT_S = 60.0

# The child is a fresh interpreter (no fork of a thread-using kernel, and unlike
# multiprocessing's "spawn" it never re-imports the caller's `__main__`, so a script without an
# `if __name__ == "__main__":` guard still works). It takes the parent's sys.path first, so a
# meshlab found through a notebook's sys.path tweak is found in the child too.
_BOOT = ("import sys\n"
         "from multiprocessing.connection import Connection\n"
         "conn = Connection(int(sys.argv[1]))\n"
         "sys.path[:] = conn.recv()\n"
         "from meshlab.experiment._worker import serve\n"
         "serve(conn)\n")


class Unsendable(Exception):
    """The runner cannot be pickled to (or unpickled in) the worker: run it in-process."""


class LoadWorker:
    """A worker process reused for every run of one experiment. `start()` returns at once (the
    child imports meshlab meanwhile); `run()` waits for it to be ready."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self.started_at_s = 0.0
        self.start_s: float | None = None      # launch to ready, measured at the first run

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        parent, child = socket.socketpair()
        try:
            self.started_at_s = time.perf_counter()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(child.fileno())], pass_fds=[child.fileno()],
                start_new_session=True)       # Ctrl-C reaches the parent, which stops the run
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self._conn.send(list(sys.path))
        self._ready = False

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def _recv(self) -> Any:
        """The next message, awaited without blocking the loop (EOF: the worker died)."""
        conn = self._conn
        assert conn is not None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(conn.fileno(), readable)
        os.set_blocking(conn.fileno(), True)    # uvloop's add_reader made it non-blocking
        try:
            await fut
        finally:
            loop.remove_reader(conn.fileno())
        try:
            return conn.recv()
        except (EOFError, OSError) as exc:
            code = self._proc.wait(5) if self._proc is not None else None
            self.close()
            raise RunnerError(f"the load worker process died (exit code {code}); see its "
                              "stderr") from exc

    async def _ensure_ready(self) -> None:
        if not self.alive():
            self.close()
            self.start()
        if self._ready:
            return
        try:
            msg = await asyncio.wait_for(self._recv(), _READY_TIMEOUT_S)
        except TimeoutError:
            self.close()
            raise RunnerError(f"the load worker process was not ready within "
                              f"{_READY_TIMEOUT_S:.0f} s") from None
        if msg != "ready":
            raise RunnerError(f"the load worker sent {msg!r} instead of 'ready'")
        self._ready = True
        if self.start_s is None:
            self.start_s = time.perf_counter() - self.started_at_s

    async def run(self, runner: Runner, spec: RunSpec, *,
                  progress: ProgressCallback | None = None) -> RunResult:
        """`runner.run(spec)` in the worker. Cancelling stops the load there and still returns
        its partial (aborted) result, as the native runner does in-process. Raises Unsendable
        when the runner cannot travel to the worker, and what the runner raised otherwise."""
        try:
            payload = pickle.dumps(runner)
        except Exception as exc:  # local classes, open handles ...
            raise Unsendable(f"{type(exc).__name__}: {exc}") from exc
        await self._ensure_ready()
        assert self._conn is not None
        self._conn.send(("run", payload, spec))
        stopping = False
        deadline = 0.0
        while True:
            try:
                if stopping:
                    msg = await asyncio.wait_for(self._recv(),
                                                 max(deadline - time.monotonic(), 0.01))
                else:
                    msg = await self._recv()
            except asyncio.CancelledError:
                if not stopping:
                    stopping = True
                    deadline = time.monotonic() + _STOP_GRACE_S
                    with contextlib.suppress(OSError):
                        self._conn.send(("stop",))
                continue          # keep waiting for the partial result
            except TimeoutError:
                self.close()
                raise RunnerError(f"the load worker did not return its partial result within "
                                  f"{_STOP_GRACE_S:.0f} s of cancellation") from None
            kind = msg[0]
            if kind == "progress":
                if progress is not None:
                    progress(msg[1])
            elif kind == "result":
                result: RunResult = msg[1]
                return result
            elif kind == "error":
                raise msg[1]
            elif kind == "unsendable":
                raise Unsendable(msg[1])

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._ready = None, None, False
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("exit",))
            conn.close()
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


_SHARED: contextvars.ContextVar[LoadWorker | None] = contextvars.ContextVar(
    "meshlab_shared_load_worker", default=None)


@contextlib.contextmanager
def shared_load_worker(worker: LoadWorker | None = None) -> Iterator[LoadWorker]:
    """Experiments started in this block (and in event loops it starts) reuse one worker process
    instead of starting one each: `meshlab search` runs an experiment per probe, and each
    worker costs a Python start-up and meshlab's imports (1-3 s on a busy 2-core machine).
    A new worker is closed at the end of the block; a `worker` passed in is left to its owner."""
    shared = worker or LoadWorker()
    token = _SHARED.set(shared)
    try:
        yield shared
    finally:
        _SHARED.reset(token)
        if worker is None:
            shared.close()


def experiment_worker() -> tuple[LoadWorker, bool]:
    """The worker a new experiment uses, and whether the experiment owns it (closes it at its
    end): the shared one inside `shared_load_worker()`, else a new one of its own."""
    shared = _SHARED.get()
    return (shared, False) if shared is not None else (LoadWorker(), True)


# --- the child --------------------------------------------------------------------------------

def serve(conn: Connection) -> None:
    """The worker's main: run each requested load on its own event loop until told to exit or
    the parent goes away (EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # the parent handles Ctrl-C
    from meshlab.runners.native import NativeRunner, drain_loop, new_event_loop

    NativeRunner()                                       # imported before "ready": runs start fast
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve(conn))
    finally:
        drain_loop(loop)
        loop.close()
        conn.close()


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    current: list[asyncio.Task[None]] = []

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):                       # the parent is gone: stop, exit
            msg = ("exit",)
        if msg[0] == "run":
            current[:] = [loop.create_task(_one(conn, msg[1], msg[2]))]
        elif msg[0] in ("stop", "exit"):
            for task in current:
                task.cancel()
            if msg[0] == "exit" and not done.done():
                loop.remove_reader(conn.fileno())
                done.set_result(None)

    conn.send("ready")
    loop.add_reader(conn.fileno(), on_message)
    # uvloop's add_reader makes the socket non-blocking; a large result sent on it would then
    # fail half-way. Readiness polling works the same on a blocking socket.
    os.set_blocking(conn.fileno(), True)
    await done
    for task in current:
        with contextlib.suppress(BaseException):
            await task


def _send(conn: Connection, msg: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):
        conn.send(msg)


async def _one(conn: Connection, payload: bytes, spec: RunSpec) -> None:
    try:
        runner = pickle.loads(payload)
    except Exception as exc:  # a class defined in the caller's __main__, say
        _send(conn, ("unsendable", f"{type(exc).__name__}: {exc}"))
        return

    def report(p: Progress) -> None:
        _send(conn, ("progress", p))

    try:
        result = await runner.run(spec, progress=report)
    except asyncio.CancelledError:
        # A runner that raises instead of returning its partial result: nothing to send back.
        _send(conn, ("error", RunnerError("the load was cancelled before it returned a "
                                          "result")))
        return
    except Exception as exc:  # handed to the parent, which raises it
        _send(conn, ("error", _portable(exc)))
        return
    result.context["load_worker_pid"] = os.getpid()
    _send(conn, ("result", result))


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling, else a RunnerError carrying its type and text."""
    try:
        back = pickle.loads(pickle.dumps(exc))
        if isinstance(back, Exception) and str(back) == str(exc):
            return exc
    except Exception:  # fall through to the text form
        pass
    return RunnerError(f"{type(exc).__name__}: {exc}")
