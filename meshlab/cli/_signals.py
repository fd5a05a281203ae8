"""SIGTERM and SIGHUP take the Ctrl-C path: what CI timeouts, `timeout`, `docker stop`, systemd
and Kubernetes send stores the run in flight as aborted and tears playgrounds down."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _as_ctrl_c(received: list[int]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        # Whatever Ctrl-C would do now: inside asyncio.Runner (run, crosscheck) its handler
        # cancels the main task; elsewhere the default handler raises KeyboardInterrupt. A
        # SIGINT ignored by the shell (a background job) still lets SIGTERM stop cleanly.
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not signal.default_int_handler:
            on_sigint(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt
    return handler


@contextlib.contextmanager
def terminate_like_ctrl_c() -> Iterator[list[int]]:
    """While the block runs, SIGTERM and SIGHUP act as Ctrl-C; yields the signals received
    (so the exit code can say which: 128 + the signal number)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received                 # signal handlers belong to the main thread
        return
    handler = _as_ctrl_c(received)
    previous = {sig: signal.signal(sig, handler) for sig in TERMINATING}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
