"""One-shot deadlines for the echo server's `?delay=`: never early, late by microseconds.

uvloop's `call_later` rounds to libuv's cached millisecond clock, so a 1 ms delay could go out
after 20 us; one timerfd armed at the earliest deadline fires on the nanosecond clock instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVarTuple

from meshlab._timerfd import MonotonicTimer

_Ts = TypeVarTuple("_Ts")
_Entry = tuple[int, int, Callable[..., object], tuple[Any, ...]]   # (due_ns, seq, callback, args)


class DeadlineScheduler:
    """Runs `callback(*args)` on `loop` once `perf_counter_ns()` has reached each deadline.

    One timerfd (Linux) is armed at the earliest pending deadline; elsewhere `loop.call_later`
    does, and a callback it fires early waits again for the remainder. Equal deadlines run in
    the order they were scheduled.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._armed_ns: int | None = None          # the deadline the timer is set for, if any
        self._closed = False
        self._timer = MonotonicTimer(loop, self._run_due)

    @property
    def uses_timerfd(self) -> bool:
        return self._timer.uses_timerfd

    def call_at_ns(self, due_ns: int, callback: Callable[[*_Ts], object],
                   *args: *_Ts) -> None:
        """Schedule `callback(*args)` for when `time.perf_counter_ns()` reaches `due_ns`; once
        closed, drops it (a request that races the echo server's close goes unanswered)."""
        if self._closed:
            return
        heapq.heappush(self._heap, (due_ns, next(self._seq), callback, args))
        if self._armed_ns is None or due_ns < self._armed_ns:
            self._arm(due_ns)

    def _arm(self, due_ns: int) -> None:
        self._armed_ns = due_ns
        self._timer.arm(due_ns)

    def _run_due(self) -> None:
        self._armed_ns = None
        heap = self._heap
        # perf_counter_ns is checked, not the timer trusted: an early wake-up runs nothing
        now = time.perf_counter_ns()
        while heap and heap[0][0] <= now and not self._closed:
            _, _, callback, args = heapq.heappop(heap)
            try:
                callback(*args)
            except Exception as exc:    # one bad callback must not strand the others
                self._loop.call_exception_handler({
                    "message": f"deadline callback {callback!r} failed", "exception": exc})
            if heap and heap[0][0] > now:
                now = time.perf_counter_ns()
        # a callback may have armed for a later deadline of its own: the earliest one wins
        if heap and not self._closed and (self._armed_ns is None or heap[0][0] < self._armed_ns):
            self._arm(heap[0][0])

    def close(self) -> None:
        """Drop what is pending, stop watching the timerfd and close it."""
        self._closed = True
        self._heap.clear()
        self._timer.close()
        self._armed_ns = None
