"""Runs of one test module started together: an open-loop run spends its wall time waiting for
its schedule (or a timeout), so overlapped runs take about as long as the longest one. Each test
still checks its own run; a run that raised re-raises in the test that takes it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


class Together:
    """Results of jobs run concurrently, by key: `take(key)` returns one or re-raises its error."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self._results = dict(results)

    def take(self, key: str) -> Any:
        value = self._results[key]
        if isinstance(value, BaseException):
            raise value
        return value


def job(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    """`fn(*args)` as a job for `run_together`: started only when the batch starts."""
    return lambda: fn(*args)


def run_together(jobs: Mapping[str, Callable[[], Awaitable[Any]]], *,
                 limit: int | None = None) -> Together:
    """Run every job (a coroutine factory: a native run on its own thread and loop, say) on one
    event loop, at most `limit` at a time (None: all at once), and wait for all of them. Runs
    whose per-second counts are checked need a limit: a dozen at a time on a busy 2-core
    machine starve each other and the server they share."""
    gate = asyncio.Semaphore(limit or len(jobs) or 1)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(one(job) for job in jobs.values()),
                                         return_exceptions=True))

    return Together(dict(zip(jobs, asyncio.run(main()), strict=True)))
