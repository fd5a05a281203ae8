"""Traffic shapes of an open-loop load (`loads.shape`): constant, linear ramp, steps, Poisson
arrivals at a mean rate; the rate over time and the intended send times each shape implies.
"""

from __future__ import annotations

import bisect
import math
import secrets
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConstantShape(_Shape):
    """`rate_rps` for the whole run (the default)."""

    kind: Literal["constant"] = "constant"


class RampShape(_Shape):
    """Linear from `start_rps` to the load's `rate_rps` over `duration_s`."""

    kind: Literal["ramp"]
    start_rps: float = Field(default=0.0, ge=0, description="rate at the start of the run")


class StepsShape(_Shape):
    """`levels` (fractions of `rate_rps`), each held for `duration_s / len(levels)`."""

    kind: Literal["steps"]
    levels: list[float] = Field(min_length=1, max_length=1000,
                                description="fractions of rate_rps, in order")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        for x in v:
            if not 0 < x <= 100:
                raise ValueError(f"level {x} must be within (0, 100] (a fraction of rate_rps)")
        return v


class PoissonShape(_Shape):
    """Poisson arrivals: exponential gaps between sends at a mean of `rate_rps`."""

    kind: Literal["poisson"]
    seed: int | None = Field(default=None, description="fixes the arrival times (recorded)")


TrafficShape = Annotated[ConstantShape | RampShape | StepsShape | PoissonShape,
                         Field(discriminator="kind")]
SHAPE_KINDS = ("constant", "ramp", "steps", "poisson")


def rate_at_rps(shape: TrafficShape, t_s: float, *, rate_rps: float, duration_s: float) -> float:
    """The intended rate at `t_s` into the run (Poisson: its mean)."""
    if isinstance(shape, RampShape):
        frac = min(max(t_s / duration_s, 0.0), 1.0)
        return shape.start_rps + (rate_rps - shape.start_rps) * frac
    if isinstance(shape, StepsShape):
        i = min(int(t_s / (duration_s / len(shape.levels))), len(shape.levels) - 1)
        return rate_rps * shape.levels[max(i, 0)]
    return rate_rps


def mean_rate_rps(shape: TrafficShape, *, rate_rps: float) -> float:
    """The shape's mean rate over its duration: what a shaped run requests on average."""
    if isinstance(shape, RampShape):
        return (shape.start_rps + rate_rps) / 2
    if isinstance(shape, StepsShape):
        return rate_rps * sum(shape.levels) / len(shape.levels)
    return rate_rps


def start_rate_rps(shape: TrafficShape, *, rate_rps: float) -> float:
    """The rate the shape starts at: what a warm-up before it sends at."""
    if isinstance(shape, RampShape):
        return shape.start_rps
    if isinstance(shape, StepsShape):
        return rate_rps * shape.levels[0]
    return rate_rps


def seeded(shape: TrafficShape) -> TrafficShape:
    """`shape` with a concrete seed: a Poisson shape without one gets a random seed, so the run
    that records the returned shape can be reproduced."""
    if isinstance(shape, PoissonShape) and shape.seed is None:
        return PoissonShape(kind="poisson", seed=secrets.randbits(31))
    return shape


def split_shape(shape: TrafficShape, workers: int, index: int) -> TrafficShape:
    """The share of `shape` one of `workers` senders generates, each at `rate_rps / workers`:
    a ramp's start is split too; Poisson senders get seeds of their own (the superposition of
    independent Poisson processes is Poisson at the summed rate)."""
    if isinstance(shape, RampShape):
        return RampShape(kind="ramp", start_rps=shape.start_rps / workers)
    if isinstance(shape, PoissonShape) and workers > 1:
        base = shape.seed if shape.seed is not None else secrets.randbits(31)
        return PoissonShape(kind="poisson", seed=base * 1_000 + index)
    return shape


_POISSON_BLOCK = 4096       # Poisson arrivals are drawn in blocks, each from its own RNG stream


class SendSchedule:
    """The intended send times of one open-loop run, from its start (warm-up included): the
    warm-up at the shape's starting rate, then the shape over `duration_s`, then its final rate
    until the run is stopped. Request k (k = 0, 1, ...) is due at `time_s(k)`; `due(t_s)` is how
    many are due by `t_s`. Poisson arrivals run through warm-up and window alike.

    Deterministic shapes invert the integrated rate in closed form, so a day-long run holds no
    table; Poisson gaps come in blocks from `numpy` streams seeded by (seed, block), so any
    request's time can be recomputed from the seed, in any order, with bounded memory."""

    def __init__(self, shape: TrafficShape, *, rate_rps: float, duration_s: float,
                 warmup_s: float = 0.0, seed: int | None = None) -> None:
        if rate_rps <= 0:
            raise ValueError("a send schedule needs rate_rps > 0 (open loop)")
        self.rate_rps = rate_rps
        self.poisson = isinstance(shape, PoissonShape)
        if isinstance(shape, PoissonShape):
            s = shape.seed if shape.seed is not None else seed
            self.seed = s if s is not None else secrets.randbits(31)
            self._starts = [0.0]                  # the time before block k's first arrival
            self._blocks: dict[int, npt.NDArray[np.float64]] = {}
            self._block(0)          # now, not on the first send: the first draw is the slowest
            return
        # piecewise-linear rate: segment i starts at _t[i] with rate _r[i], slope _a[i] (req/s
        # per second) and _n[i] requests due before it
        segs: list[tuple[float, float, float]] = []            # (start_s, rate, slope)
        if isinstance(shape, RampShape):
            first = shape.start_rps
            body = [(warmup_s, first, (rate_rps - first) / duration_s)]
            last = rate_rps
        elif isinstance(shape, StepsShape):
            span = duration_s / len(shape.levels)
            first, last = rate_rps * shape.levels[0], rate_rps * shape.levels[-1]
            body = [(warmup_s + i * span, rate_rps * x, 0.0) for i, x in enumerate(shape.levels)]
        else:
            first = last = rate_rps
            body = [(warmup_s, rate_rps, 0.0)]
        if warmup_s > 0:
            segs.append((0.0, first, 0.0))
        segs += body
        segs.append((warmup_s + duration_s, last, 0.0))
        self._t = [t for t, _, _ in segs]
        self._r = [r for _, r, _ in segs]
        self._a = [a for _, _, a in segs]
        self._n = [0.0]
        for i in range(len(segs) - 1):
            u = self._t[i + 1] - self._t[i]
            self._n.append(self._n[i] + self._r[i] * u + self._a[i] * u * u / 2)
        # a ramp from 0 sends nothing before it starts: request 0 is due at its start
        self._t_first = next(t for t, r, a in segs if r > 0 or a > 0)
        self._tn = np.array(self._t)
        self._rn, self._an, self._nn = np.array(self._r), np.array(self._a), np.array(self._n)

    # Poisson ---------------------------------------------------------------------------------
    def _block(self, k: int) -> npt.NDArray[np.float64]:
        """The arrival times of block k (requests k*B .. k*B+B-1)."""
        got = self._blocks.get(k)
        if got is not None:
            return got
        while len(self._starts) <= k:            # chain the blocks before k to find k's start
            self._block(len(self._starts) - 1)
        rng = np.random.default_rng([self.seed, k])
        times = self._starts[k] + np.cumsum(rng.exponential(1 / self.rate_rps, _POISSON_BLOCK))
        if len(self._starts) == k + 1:
            self._starts.append(float(times[-1]))
        if len(self._blocks) >= 4:                # a few blocks around the sending edge
            self._blocks.pop(next(iter(self._blocks)))
        self._blocks[k] = times
        return times

    # both -------------------------------------------------------------------------------------
    def time_s(self, seq: int) -> float:
        """When request `seq` is due, in seconds from the run's start."""
        if self.poisson:
            return float(self._block(seq // _POISSON_BLOCK)[seq % _POISSON_BLOCK])
        i = bisect.bisect_right(self._n, seq) - 1
        m, r, a = seq - self._n[i], self._r[i], self._a[i]
        return self._t[i] + (2 * m / (r + math.sqrt(r * r + 2 * a * m)) if m > 0 else 0.0)

    def times_s(self, seqs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """`time_s` of many requests at once."""
        if seqs.size == 0:
            return np.zeros(0)
        if self.poisson:
            out = np.empty(seqs.size)
            blocks = seqs // _POISSON_BLOCK
            for k in np.unique(blocks):
                sel = blocks == k
                out[sel] = self._block(int(k))[seqs[sel] % _POISSON_BLOCK]
            return out
        i = np.searchsorted(self._nn, seqs, side="right") - 1
        m = seqs - self._nn[i]
        r, a = self._rn[i], self._an[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(m > 0, 2 * m / (r + np.sqrt(r * r + 2 * a * m)), 0.0)
        result: npt.NDArray[np.float64] = self._tn[i] + u
        return result

    def due(self, t_s: float) -> int:
        """How many requests are due by `t_s` (those with `time_s(k) <= t_s`)."""
        if self.poisson:
            while self._starts[-1] <= t_s:
                self._block(len(self._starts) - 1)
            k = bisect.bisect_right(self._starts, t_s) - 1
            return k * _POISSON_BLOCK + int(np.searchsorted(self._block(k), t_s, side="right"))
        if t_s < self._t_first:
            return 0
        i = bisect.bisect_right(self._t, t_s) - 1
        u = t_s - self._t[i]
        n = self._n[i] + self._r[i] * u + self._a[i] * u * u / 2
        return math.floor(n + 1e-9) + 1


def send_times_s(shape: TrafficShape, *, rate_rps: float, duration_s: float,
                 seed: int | None = None) -> Iterator[float]:
    """The intended send time of every request in `[0, duration_s)`, in order: request k is due
    when the shape's rate integrated from 0 reaches k (Poisson: exponential gaps). What an
    open-loop generator schedules, and measures latency from, for this shape."""
    if rate_rps <= 0:
        return
    sched = SendSchedule(shape, rate_rps=rate_rps, duration_s=duration_s, seed=seed)
    k = 0
    while (t := sched.time_s(k)) < duration_s:
        yield t
        k += 1
