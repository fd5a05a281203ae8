"""Open-loop pacing for the native runner: a periodic Linux timerfd watched by the event loop.

`asyncio.sleep`/`call_at` cannot pace sub-millisecond sends (libuv timers have 1 ms resolution:
a 1 ms tick adds ~0.75 ms to every latency, and shorter sleeps round to zero and spin a core).
A timerfd fires on the CLOCK_MONOTONIC nanosecond clock `time.perf_counter_ns` reads on Linux.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
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


class Ticker:
    """Calls `callback()` every `interval_ns` from `start_ns` (perf_counter_ns clock) on `loop`.

    Uses a periodic timerfd when available (Linux); elsewhere falls back to `loop.call_at` at
    1 ms resolution. Missed ticks coalesce into one callback, which is why the sender must send
    every request whose intended time has passed, not one per tick.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *,
                 start_ns: int, interval_ns: int) -> None:
        self._loop = loop
        self._callback = callback
        self._interval_ns = max(int(interval_ns), 1_000)
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        self._next_ns = start_ns
        self.uses_timerfd = False
        libc = _libc()
        # perf_counter_ns and CLOCK_MONOTONIC are the same clock on Linux; keep any offset anyway.
        offset = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - time.perf_counter_ns()
        if libc is not None:
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                spec = _Itimerspec(_ts(self._interval_ns), _ts(max(start_ns + offset, 1)))
                if libc.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) == 0:
                    self._fd = fd
                    self.uses_timerfd = True
                    loop.add_reader(fd, self._on_fd)
                    return
                os.close(fd)
        self._schedule()

    def _on_fd(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        self._callback()

    def _schedule(self) -> None:
        delay_s = max(self._next_ns - time.perf_counter_ns(), 0) / 1e9
        self._handle = self._loop.call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._callback()
        self._next_ns = max(self._next_ns + self._interval_ns, time.perf_counter_ns())
        self._schedule()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
