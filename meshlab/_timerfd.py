"""A timer at `perf_counter_ns` deadlines for the runner's open-loop pacing and the echo server's
delays: a Linux timerfd (through ctypes) watched by the event loop, else `loop.call_later`."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import os
import sys
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p)
    except (OSError, AttributeError):
        return None
    return libc


def _ts(ns: int) -> _Timespec:
    return _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)


class MonotonicTimer:
    """Calls `callback()` on `loop` when `time.perf_counter_ns()` reaches the armed deadline.

    A timerfd (Linux) fires on the nanosecond clock; elsewhere, or if arming it fails, the timer
    falls back to `loop.call_later`, whose libuv clock is millisecond-grained and may fire early.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        self._due_ns = 0
        self._interval_ns = 0
        # perf_counter_ns and CLOCK_MONOTONIC are the same clock on Linux; keep any offset anyway.
        self._offset_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - time.perf_counter_ns()
        self._libc = _libc()
        if self._libc is not None:
            fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._on_fd)

    @property
    def uses_timerfd(self) -> bool:
        return self._fd >= 0

    def arm(self, due_ns: int, *, interval_ns: int = 0) -> None:
        """Fire at `due_ns` (at once if it has passed), then every `interval_ns` if > 0; missed
        periods coalesce into one call. Replaces any earlier arming."""
        self._due_ns, self._interval_ns = due_ns, interval_ns
        if self._fd >= 0 and self._libc is not None:
            # an it_value of 0 would disarm the timer: a deadline already passed becomes 1 ns
            spec = _Itimerspec(_ts(interval_ns), _ts(max(due_ns + self._offset_ns, 1)))
            if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec),
                                          None) == 0:
                return
            self._close_fd()
        self._schedule()

    def _on_fd(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        self._callback()

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        delay_s = max(self._due_ns - time.perf_counter_ns(), 0) / 1e9
        self._handle = self._loop.call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        self._callback()
        if self._interval_ns > 0 and self._handle is None:
            self._due_ns = max(self._due_ns + self._interval_ns, time.perf_counter_ns())
            self._schedule()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._interval_ns = 0        # a callback that closes the timer must not re-schedule it
        self._close_fd()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
