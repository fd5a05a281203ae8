"""Traffic shapes of an open-loop load (`loads.shape`): constant, linear ramp, steps, Poisson
arrivals at a mean rate; the rate over time and the intended send times each shape implies.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Annotated, Literal

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


def send_times_s(shape: TrafficShape, *, rate_rps: float, duration_s: float,
                 seed: int | None = None) -> Iterator[float]:
    """The intended send time of every request in `[0, duration_s)`, in order: request k is due
    when the shape's rate integrated from 0 reaches k (Poisson: exponential gaps). What an
    open-loop generator schedules, and measures latency from, for this shape."""
    if rate_rps <= 0:
        return
    if isinstance(shape, PoissonShape):
        rng = random.Random(shape.seed if shape.seed is not None else seed)
        t = rng.expovariate(rate_rps)
        while t < duration_s:
            yield t
            t += rng.expovariate(rate_rps)
        return
    if isinstance(shape, StepsShape):
        span = duration_s / len(shape.levels)
        sent = 0.0                     # requests due so far (a fraction carries to the next step)
        for i, level in enumerate(shape.levels):
            r = rate_rps * level
            k = math.ceil(sent - 1e-9)
            while (t := i * span + (k - sent) / r) < (i + 1) * span:
                yield t
                k += 1
            sent += r * span
        return
    a = shape.start_rps if isinstance(shape, RampShape) else rate_rps
    slope = (rate_rps - a) / duration_s            # requests/s per second
    k = 0
    while True:                                    # solve a t + slope t^2 / 2 = k for t
        t = k / a if slope == 0 else (-a + math.sqrt(a * a + 2 * slope * k)) / slope
        if t >= duration_s:
            return
        yield t
        k += 1
