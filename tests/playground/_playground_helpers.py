"""Helpers for playground tests: a small concurrent HTTP client and an orphan check."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import psutil


def fetch(url: str, n: int, *, concurrency: int = 8, timeout_s: float = 10.0,
          ) -> list[httpx.Response]:
    """`n` GETs of `url` with `concurrency` in flight; responses in completion order."""

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
            sem = asyncio.Semaphore(concurrency)

            async def one() -> httpx.Response:
                async with sem:
                    return await client.get(url)
            return list(await asyncio.gather(*(one() for _ in range(n))))
    return asyncio.run(main())


def codes(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def replicas(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.headers.get("x-meshlab-echo", "?") for r in responses)


def assert_gone(pids: list[int]) -> None:
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, p.name()))
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"processes survived: {alive}"


