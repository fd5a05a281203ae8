"""Max-rate-under-SLO search: raise the open-loop rate until p99 or the error rate breaks the
SLO, then bisect (the shape of Nighthawk's adaptive load controller). Every probe is kept."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from meshlab.results import RunResult


class RunJudge(Protocol):
    """Anything that says whether one run holds: `Slo` here, or a profile's `slo:` block
    (`meshlab.slo.SloSpec`)."""

    def check(self, result: RunResult) -> tuple[bool, str]: ...


@dataclass(frozen=True, slots=True)
class Slo:
    """The service level a rate must hold: p99 latency and error rate ceilings."""

    p99_us: float
    error_rate: float = 0.01
    min_achieved_ratio: float = 0.95       # an open-loop rate the sender cannot hold fails too

    def check(self, result: RunResult) -> tuple[bool, str]:
        """(holds, why) for one probe run."""
        p99 = result.latency.percentile_us(99)
        if result.requests == 0 or math.isnan(p99):
            return False, "no requests completed"
        if p99 > self.p99_us:
            return False, f"p99 {p99:.0f} us > {self.p99_us:.0f} us"
        if result.error_rate > self.error_rate:
            return False, f"error rate {result.error_rate:.2%} > {self.error_rate:.2%}"
        want = result.requested_rate_rps
        if want > 0 and result.achieved_rate_rps < self.min_achieved_ratio * want:
            return False, f"achieved {result.achieved_rate_rps:.0f} of {want:.0f} req/s"
        return True, "ok"


@dataclass(frozen=True, slots=True)
class Probe:
    rate_rps: float
    run_id: str
    passed: bool
    reason: str


@dataclass(slots=True)
class RateSearch:
    """The pure controller: `next_rate()` until None, feeding each result to `observe()`.

    Doubles from `start_rps` while the SLO holds (up to `max_rps`), then bisects between the
    highest passing and the lowest failing rate until they are within `precision` of each other
    or `max_probes` probes ran."""

    start_rps: float
    max_rps: float
    precision: float = 0.05
    max_probes: int = 12
    probes: list[Probe] = field(default_factory=list)
    _lo: float = 0.0
    _hi: float = math.inf

    def next_rate(self) -> float | None:
        if len(self.probes) >= self.max_probes:
            return None
        if not self.probes:
            return min(self.start_rps, self.max_rps)
        if math.isinf(self._hi):
            if self._lo >= self.max_rps:
                return None
            return min(self._lo * 2.0, self.max_rps)
        if self._lo == 0.0:
            if self._hi <= self.start_rps / 64:
                return None
            return self._hi / 2.0
        if (self._hi - self._lo) <= self.precision * self._lo:
            return None
        return (self._lo + self._hi) / 2.0

    def observe(self, rate_rps: float, run_id: str, passed: bool, reason: str) -> None:
        self.probes.append(Probe(rate_rps, run_id, passed, reason))
        if passed:
            self._lo = max(self._lo, rate_rps)
        else:
            self._hi = min(self._hi, rate_rps)

    @property
    def max_rate_rps(self) -> float:
        """The highest rate that held the SLO (0 when none did)."""
        return self._lo


@dataclass(frozen=True, slots=True)
class SloSearchOutcome:
    max_rate_rps: float
    probes: tuple[Probe, ...]
    results: tuple[RunResult, ...] = field(repr=False)


async def search_max_rate(
    probe: Callable[[float], Awaitable[RunResult]],
    *,
    slo: Slo | RunJudge,
    start_rps: float,
    max_rps: float,
    precision: float = 0.05,
    max_probes: int = 12,
    save: Callable[[RunResult], None] | None = None,
) -> SloSearchOutcome:
    """Run `probe(rate)` as the controller asks; `save` (say `store.save`) gets every probe run."""
    search = RateSearch(start_rps, max_rps, precision=precision, max_probes=max_probes)
    results: list[RunResult] = []
    while (rate := search.next_rate()) is not None:
        result = await probe(rate)
        results.append(result)
        if save is not None:
            save(result)
        ok, why = slo.check(result)
        search.observe(rate, result.run_id, ok, why)
    return SloSearchOutcome(search.max_rate_rps, tuple(search.probes), tuple(results))
