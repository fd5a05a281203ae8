"""Running an experiment off the caller's event loop: a fresh (uv)loop in this thread, or a
background thread behind a `RunHandle` (a Jupyter kernel stays responsive meanwhile)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from meshlab.progress import ExperimentProgress, ExperimentSnapshot

if TYPE_CHECKING:
    from meshlab.experiment.outcome import ExperimentOutcome

StartFn = Callable[[ExperimentProgress], Coroutine[Any, Any, "ExperimentOutcome"]]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_blocking(coro: Coroutine[Any, Any, ExperimentOutcome]) -> ExperimentOutcome:
    # asyncio.Runner turns Ctrl-C into a cancellation of the main task (main thread only), so
    # the run in flight is stored as aborted and the outcome comes back with status ABORTED.
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


_LIVE_HANDLES: weakref.WeakSet[RunHandle] = weakref.WeakSet()


class RunHandle:
    """A profile running in the background (own thread and event loop): poll `progress`,
    `done()`, wait with `result()`, stop with `cancel()`. Callbacks run on the worker thread."""

    def __init__(self, name: str, start: StartFn, *,
                 progress: ExperimentProgress | None = None) -> None:
        self.name = name
        self._start_fn = start
        self._user_progress = progress
        self._snapshot: ExperimentSnapshot | None = None
        self._outcome: ExperimentOutcome | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"meshlab:{name}",
                                        daemon=True)

    def start(self) -> None:
        """Start the worker thread; returns once its event loop runs the experiment."""
        self._thread.start()
        self._started.wait()
        _LIVE_HANDLES.add(self)

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                self._outcome = runner.run(self._amain())
        except BaseException as exc:  # handed to result()
            self._error = exc
        finally:
            self._started.set()
            self._finished.set()

    async def _amain(self) -> ExperimentOutcome:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._started.set()
        return await self._start_fn(self._on_progress)

    def _on_progress(self, snap: ExperimentSnapshot) -> None:
        self._snapshot = snap
        if self._user_progress is not None:
            self._user_progress(snap)

    @property
    def progress(self) -> ExperimentSnapshot | None:
        """The latest snapshot (None until the experiment has started)."""
        return self._snapshot

    @property
    def experiment_id(self) -> str | None:
        return self._snapshot.experiment_id if self._snapshot else None

    def done(self) -> bool:
        return self._finished.is_set()

    def __repr__(self) -> str:
        snap = self._snapshot
        state = ("failed" if self._error is not None else
                 str(self._outcome.status) if self._outcome is not None else "running")
        runs = f" {snap.finished_runs}/{snap.total_runs} runs" if snap else ""
        return f"<RunHandle {self.name!r} {state}{runs}>"

    def cancel(self) -> None:
        """Stop the experiment: the run in flight is stored as aborted. Returns at once."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not self.done():
            with contextlib.suppress(RuntimeError):   # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)

    def result(self, timeout: float | None = None) -> ExperimentOutcome:
        """Wait for the outcome (TimeoutError after `timeout` s); re-raises what the experiment
        raised (ProfileError, StoreError ...)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # Wait in short slices so Ctrl-C / a kernel interrupt reaches the waiting thread.
        while not self._finished.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"profile {self.name!r} still running after "
                                   f"{timeout} s")
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome


@atexit.register
def _cancel_live_handles() -> None:
    # Daemon worker threads would be frozen at exit with a playground still up: stop them.
    handles = list(_LIVE_HANDLES)
    for h in handles:
        h.cancel()
    for h in handles:
        h._finished.wait(30)
