"""The echo server's deadline scheduler on real asyncio and uvloop loops: never early, in order,
one timerfd opened and closed, and the `call_later` fallback where there is no timerfd."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable

import pytest
import uvloop

from meshlab import _timerfd
from meshlab.playground._deadline import DeadlineScheduler

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
MS = 1_000_000


def _run_on(loop: str, main: Callable[[asyncio.AbstractEventLoop], DeadlineScheduler],
            *, wait_s: float) -> None:
    """Runs `main(loop)` on a fresh loop of kind `loop`, lets the loop run for `wait_s`, then
    closes the scheduler `main` returned."""
    async def go() -> None:
        sched = main(asyncio.get_running_loop())
        try:
            await asyncio.sleep(wait_s)
        finally:
            sched.close()
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(go())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(params=["timerfd", "call_later"])
def timer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # no platform here lacks timerfd: the fallback is reached by making it unavailable
    if request.param == "call_later":
        monkeypatch.setattr(_timerfd, "_libc", lambda: None)
    return str(request.param)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_no_callback_runs_before_its_deadline(loop: str, timer: str) -> None:
    rng = random.Random(3)
    due: dict[int, int] = {}
    ran: dict[int, int] = {}

    def main(lp: asyncio.AbstractEventLoop) -> DeadlineScheduler:
        sched = DeadlineScheduler(lp)
        assert sched.uses_timerfd is (timer == "timerfd")
        now = time.perf_counter_ns()
        for i in range(300):          # later and earlier deadlines interleaved, some equal
            due[i] = now + rng.choice((0, 1, 1, 2, 5, 8)) * MS + rng.randrange(0, MS, 50_000)
            sched.call_at_ns(due[i], lambda i: ran.__setitem__(i, time.perf_counter_ns()), i)
        return sched

    _run_on(loop, main, wait_s=0.1)
    assert sorted(ran) == sorted(due)
    assert all(ran[i] >= due[i] for i in due)
    order = sorted(ran, key=ran.__getitem__)
    assert [due[i] for i in order] == sorted(due[i] for i in order)   # equal ones by seq


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_callback_scheduling_a_later_one_does_not_hold_back_an_earlier(loop: str) -> None:
    ran: list[str] = []

    def main(lp: asyncio.AbstractEventLoop) -> DeadlineScheduler:
        sched = DeadlineScheduler(lp)
        t0 = time.perf_counter_ns()

        def first() -> None:
            ran.append("first")
            sched.call_at_ns(t0 + 40 * MS, ran.append, "third")

        sched.call_at_ns(t0 + 1 * MS, first)
        sched.call_at_ns(t0 + 3 * MS, ran.append, "second")
        lp.call_later(0.015, lambda: ran.append("15 ms"))
        return sched

    _run_on(loop, main, wait_s=0.08)
    assert ran == ["first", "second", "15 ms", "third"]


def test_a_failing_callback_is_reported_and_the_rest_still_run() -> None:
    ran: list[int] = []
    errors: list[BaseException] = []

    def boom() -> None:
        raise ValueError("boom")

    def main(lp: asyncio.AbstractEventLoop) -> DeadlineScheduler:
        lp.set_exception_handler(lambda lp, ctx: errors.append(ctx["exception"]))
        sched = DeadlineScheduler(lp)
        due = time.perf_counter_ns() + 2 * MS
        sched.call_at_ns(due, ran.append, 1)
        sched.call_at_ns(due, boom)
        sched.call_at_ns(due, ran.append, 2)
        sched.call_at_ns(due + 3 * MS, ran.append, 3)
        return sched

    _run_on("uvloop", main, wait_s=0.05)
    assert ran == [1, 2, 3]
    assert [str(e) for e in errors] == ["boom"]


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_close_releases_the_timerfd_and_drops_what_is_pending(loop: str) -> None:
    ran: list[str] = []
    fds: list[int] = []

    def main(lp: asyncio.AbstractEventLoop) -> DeadlineScheduler:
        before = _open_fds()
        sched = DeadlineScheduler(lp)
        fds.append(_open_fds() - before)
        sched.call_at_ns(time.perf_counter_ns() + 5 * MS, ran.append, "pending")
        sched.close()
        fds.append(_open_fds() - before)
        sched.call_at_ns(time.perf_counter_ns(), ran.append, "after close")
        return sched                                   # closed again: idempotent

    _run_on(loop, main, wait_s=0.03)
    assert fds == [1, 0]
    assert ran == []


def test_waiting_for_a_deadline_does_not_spin() -> None:
    cpu_s: list[float] = []

    def main(lp: asyncio.AbstractEventLoop) -> DeadlineScheduler:
        sched = DeadlineScheduler(lp)
        start = time.process_time()
        sched.call_at_ns(time.perf_counter_ns() + 300 * MS,
                         lambda: cpu_s.append(time.process_time() - start))
        return sched

    _run_on("uvloop", main, wait_s=0.35)
    assert len(cpu_s) == 1 and cpu_s[0] < 0.15       # a spinning wait burns ~0.3 s of CPU
