"""A traffic shape in the cluster as consecutive constant-rate fortio phases (steps: one phase per
level; ramp: a staircase of 1 s phases, each at the ramp's mean rate over its second), and the
per-second series and unsent requests rebuilt from the phases' fortio results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from meshlab.results import RunResult, TimeSeriesPoint
from meshlab.shape import RampShape, StepsShape, TrafficShape, rate_at_rps

CLUSTER_SHAPES = ("constant", "ramp", "steps")
"""The `loads.shape` kinds the in-cluster fortio load runs (fortio has no Poisson arrivals)."""
RAMP_STEP_S = 1.0                # the ramp's staircase: the per-second series' own resolution
MAX_PHASES = 300                 # one container per phase: a pod spec stays small


@dataclass(frozen=True, slots=True)
class Phase:
    """One constant-rate fortio run of a shaped load: where it sits in the window, how long it
    lasts, the total rate over all load pods."""

    offset_s: float
    duration_s: float
    rate_rps: float

    @property
    def due_requests(self) -> int:
        """The requests the shape makes due in this phase (what an open loop must send)."""
        return math.floor(self.rate_rps * self.duration_s + 1e-9)


def shape_phases(shape: TrafficShape, *, rate_rps: float,
                 duration_s: float) -> tuple[Phase, ...]:
    """The phases that send `shape` over `duration_s`: a ramp's staircase holds in step k the
    ramp's mean over [k, k+1) s (its rate at the middle: the ramp is linear), so each second
    sends exactly what the ramp makes due in it; steps hold each level for its share; every other
    shape is one phase."""
    if isinstance(shape, RampShape):
        out: list[Phase] = []
        t = 0.0
        while t < duration_s - 1e-9:
            d = min(RAMP_STEP_S, duration_s - t)
            out.append(Phase(t, d, rate_at_rps(shape, t + d / 2, rate_rps=rate_rps,
                                               duration_s=duration_s)))
            t += d
        return tuple(out)
    if isinstance(shape, StepsShape):
        span = duration_s / len(shape.levels)
        return tuple(Phase(i * span, span, rate_rps * x) for i, x in enumerate(shape.levels))
    return (Phase(0.0, duration_s, rate_rps),)


def shape_problems(shape: TrafficShape, *, rate_rps: float, duration_s: float, pods: int,
                   max_requests: int | None = None) -> list[str]:
    """Why the in-cluster fortio load cannot send `shape` over `pods` load pods, as profile
    problems naming the fix; [] when it can."""
    kind = shape.kind
    if kind == "constant":
        return []
    if kind not in CLUSTER_SHAPES:
        return [f"loads.shape: kind {kind!r}: the in-cluster fortio load cannot send it "
                f"(fortio has no Poisson arrivals; it runs {', '.join(CLUSTER_SHAPES)}); "
                f"use one of those in the cluster, or send Poisson from outside it: "
                f"environment direct with runner native aimed at the Service's address"]
    out = []
    if max_requests is not None:
        out.append(f"loads.max_requests: a {kind} shape runs for duration_s; drop "
                   f"max_requests or use shape kind constant")
    phases = shape_phases(shape, rate_rps=rate_rps, duration_s=duration_s)
    # fortio sends at least 2 calls per run and stretches its duration to do so
    thin = [i for i, p in enumerate(phases) if int(p.rate_rps / pods * p.duration_s) < 2]
    if thin:
        out.append(f"loads.shape: {kind} phase(s) {', '.join(map(str, thin[:5]))} would "
                   f"send under 2 requests per load pod, and fortio then sends 2 and runs "
                   f"longer, breaking the shape's timeline; raise the rate (or a ramp's "
                   f"start_rps) or lower topology.load_parallelism")
    if len(phases) > MAX_PHASES:
        out.append(f"loads.shape: a {kind} of {duration_s:g} s needs {len(phases)} fortio "
                   f"phases (one container each), more than {MAX_PHASES}; shorten duration_s")
    return out


def unsent_requests(phases: Sequence[Phase], sent: Sequence[int]) -> list[int]:
    """Per phase, the requests due that were never sent (due minus sent, never below 0): fortio
    -qps sends at most what its connections carry, and a saturated phase falls behind the shape
    without catching up in the next one (each phase is a fresh fortio run)."""
    return [max(p.due_requests - s, 0) for p, s in zip(phases, sent, strict=True)]


def phase_series(phases: Sequence[Phase], results: Sequence[RunResult]) -> list[TimeSeriesPoint]:
    """The per-second series of a phased run from each phase's merged result: a phase's
    requests and errors are spread over the seconds it covers in proportion to the overlap, and
    each second carries the percentiles of the phase that covers most of it (fortio reports one
    histogram per phase; a ramp's 1 s phases are exactly one second each)."""
    reqs: dict[int, float] = {}
    errs: dict[int, float] = {}
    best: dict[int, tuple[float, RunResult]] = {}
    for ph, res in zip(phases, results, strict=True):
        if ph.duration_s <= 0:
            continue
        end = ph.offset_s + ph.duration_s
        for s in range(math.floor(ph.offset_s + 1e-9), math.ceil(end - 1e-9)):
            share = (min(end, s + 1) - max(ph.offset_s, s)) / ph.duration_s
            reqs[s] = reqs.get(s, 0.0) + res.requests * share
            errs[s] = errs.get(s, 0.0) + res.errors * share
            if share > best.get(s, (-1.0, res))[0]:
                best[s] = (share, res)
    return [TimeSeriesPoint(second=s, requests=round(reqs[s]), errors=round(errs[s]),
                            p50_us=best[s][1].latency.percentile_us(50),
                            p99_us=best[s][1].latency.percentile_us(99))
            for s in sorted(reqs)]
