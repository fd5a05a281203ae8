"""The open-loop Ticker on a real uvloop loop, by timerfd and by the `call_later` fallback:
it ticks until closed, and is silent once closed, even when a tick closes it."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from meshlab import _timerfd
from meshlab.runners._pacing import Ticker

MS = 1_000_000


@pytest.mark.parametrize("timer", ["timerfd", "call_later"])
def test_ticker_ticks_and_stops_when_closed(timer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if timer == "call_later":           # no platform here lacks timerfd: make it unavailable
        monkeypatch.setattr(_timerfd, "_libc", lambda: None)
    ticks: list[int] = []
    after_close: list[int] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        ticker: Ticker | None = None

        def tick() -> None:
            ticks.append(time.perf_counter_ns())
            if len(ticks) == 5 and ticker is not None:
                ticker.close()                          # the engine closes it from a tick

        start_ns = time.perf_counter_ns() + 2 * MS
        ticker = Ticker(loop, tick, start_ns=start_ns, interval_ns=2 * MS)
        assert ticker.uses_timerfd is (timer == "timerfd")
        await asyncio.sleep(0.1)
        after_close.extend(ticks)
        await asyncio.sleep(0.03)
        ticker.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(go())
    assert len(ticks) == 5 and ticks == after_close
