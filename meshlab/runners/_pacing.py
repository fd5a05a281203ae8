"""Open-loop pacing for the native runner: a periodic Linux timerfd watched by the event loop.

`asyncio.sleep`/`call_at` cannot pace sub-millisecond sends (libuv timers have 1 ms resolution:
a 1 ms tick adds ~0.75 ms to every latency, and shorter sleeps round to zero and spin a core).
A timerfd fires on the CLOCK_MONOTONIC nanosecond clock `time.perf_counter_ns` reads on Linux.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from meshlab._timerfd import MonotonicTimer


class Ticker:
    """Calls `callback()` every `interval_ns` from `start_ns` (perf_counter_ns clock) on `loop`.

    Uses a periodic timerfd when available (Linux); elsewhere falls back to `loop.call_at` at
    1 ms resolution. Missed ticks coalesce into one callback, which is why the sender must send
    every request whose intended time has passed, not one per tick.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *,
                 start_ns: int, interval_ns: int) -> None:
        self._timer = MonotonicTimer(loop, callback)
        self._timer.arm(start_ns, interval_ns=max(int(interval_ns), 1_000))
        self.uses_timerfd = self._timer.uses_timerfd

    def close(self) -> None:
        self._timer.close()


class ShapeTicker:
    """Calls `callback()` at deadlines the callback itself sets with `next_at` (a shaped load's
    next intended send time), never sooner than `min_gap_ns` after the previous call: a timer
    re-armed once per wake-up follows a ramp or Poisson arrivals as exactly as a periodic tick
    follows a constant rate."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *,
                 start_ns: int, first_ns: int, min_gap_ns: int) -> None:
        self._timer = MonotonicTimer(loop, self._fire)
        self._callback = callback
        self._min_gap_ns = min_gap_ns
        self._last_ns = start_ns
        self._closed = False
        self._timer.arm(max(first_ns, start_ns))
        self.uses_timerfd = self._timer.uses_timerfd

    def _fire(self) -> None:
        self._last_ns = time.perf_counter_ns()
        self._callback()

    def next_at(self, due_ns: int) -> None:
        """Fire next at `due_ns` (or `min_gap_ns` after the last call, whichever is later)."""
        if not self._closed:
            self._timer.arm(max(due_ns, self._last_ns + self._min_gap_ns))

    def close(self) -> None:
        self._closed = True
        self._timer.close()
