"""Service-level objectives: a profile's `slo:` block, and the verdict on one run (its status,
each criterion's limit, measured value and pass, and warnings that say why a run fell short).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshlab.results import RunResult, RunStatus

DEFAULT_ERROR_RATE = 0.01           # above: the run is degraded
DEFAULT_MIN_ACHIEVED_RATIO = 0.95   # below (open loop): the run is degraded
SLO_KEY = "slo"                     # the run's context key holding its check
_STALL_PREFIX = "target stalled"


class SloSpec(BaseModel):
    """What every run of a profile must hold; each limit is optional. `error_rate` and
    `min_achieved_ratio` replace the defaults (1 %, 95 %) that decide a degraded run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                 description="corrected p50 latency ceiling, milliseconds")
    p99_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                 description="corrected p99 latency ceiling, milliseconds")
    p999_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                  description="corrected p99.9 latency ceiling, milliseconds")
    error_rate: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False,
                                     description="highest share of failed requests (0..1)")
    min_achieved_ratio: float | None = Field(
        default=None, gt=0, le=1, allow_inf_nan=False,
        description="open loop: lowest achieved / requested rate (0..1]")

    def check(self, result: RunResult) -> tuple[bool, str]:
        """(holds, why) for one run: the shape `meshlab.analysis.search_max_rate` asks for."""
        verdict = check_run(result, self)
        return verdict.passed, verdict.reason


@dataclass(frozen=True, slots=True)
class Criterion:
    """One limit of a check: `passed` when `measured` is within `limit`."""

    name: str                       # p50_ms, p99_ms, p999_ms, error_rate, achieved_ratio
    limit: float
    measured: float | None          # None: nothing to measure (no response)
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "measured": self.measured, "pass": self.passed}


@dataclass(frozen=True, slots=True)
class RunCheck:
    """The verdict on one run: the status it earns and every criterion."""

    status: RunStatus
    criteria: tuple[Criterion, ...]
    source: str                     # "profile" (an slo: block) or "default"
    warnings: tuple[str, ...] = ()
    error: str | None = None        # why the run failed, when it did

    @property
    def passed(self) -> bool:
        return self.status not in (RunStatus.FAILED, RunStatus.ABORTED) and all(
            c.passed for c in self.criteria)

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        bad = [c for c in self.criteria if not c.passed]
        return "; ".join(_describe(c) for c in bad) if bad else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "pass": self.passed,
                "criteria": {c.name: c.to_dict() for c in self.criteria}}


def _describe(c: Criterion) -> str:
    if c.measured is None:
        return f"{c.name}: nothing measured (limit {c.limit:g})"
    op = ">=" if c.name == "achieved_ratio" else "<="
    return f"{c.name} {c.measured:.4g} (must be {op} {c.limit:g})"


def _ms(result: RunResult, p: float) -> float | None:
    v = result.headline_percentile_us(p)
    return None if math.isnan(v) else v / 1000.0


def check_run(result: RunResult, slo: SloSpec | None = None) -> RunCheck:
    """Judge one run. No successful response: FAILED. An error rate above the limit, or (open
    loop) an achieved rate below the limit of the requested one: DEGRADED. Latency limits
    decide only whether the SLO holds. An aborted or failed run keeps its status."""
    spec = slo or SloSpec()
    criteria: list[Criterion] = []
    for name, p in (("p50_ms", 50.0), ("p99_ms", 99.0), ("p999_ms", 99.9)):
        limit = getattr(spec, name)
        if limit is not None:
            got = _ms(result, p)
            criteria.append(Criterion(name, limit, got, got is not None and got <= limit))
    err_limit = DEFAULT_ERROR_RATE if spec.error_rate is None else spec.error_rate
    err = Criterion("error_rate", err_limit, round(result.error_rate, 6) if result.requests
                    else None, bool(result.requests) and result.error_rate <= err_limit)
    criteria.append(err)
    rate = _achieved(result, spec)
    if rate is not None:
        criteria.append(rate)
    warnings: list[str] = []
    if rate is not None and not rate.passed:
        warnings.append(shortfall_warning(result))
    stall = stall_warning(result)
    if stall:
        warnings.append(stall)
    status, error = result.status, None
    successes = result.requests - result.errors
    if status in (RunStatus.COMPLETED, RunStatus.DEGRADED) and successes <= 0:
        status = RunStatus.FAILED
        kinds = ", ".join(f"{k}: {n:,}" for k, n in sorted(result.error_kinds.items()))
        error = (f"no successful response: {result.errors:,} of {result.requests:,} requests "
                 f"failed" + (f" ({kinds})" if kinds else "") if result.requests else
                 "no successful response: no request finished in the measured window")
    elif status == RunStatus.COMPLETED and not (err.passed and (rate is None or rate.passed)):
        status = RunStatus.DEGRADED
    return RunCheck(status, tuple(criteria), "profile" if slo is not None else "default",
                    tuple(warnings), error)


def _achieved(result: RunResult, spec: SloSpec) -> Criterion | None:
    """Open loop: achieved / requested. Up to one request per connection may still be in
    flight when the window closes, so that many are allowed for (0.3 s at 100 req/s on two
    connections is 30 requests, of which two may be in flight: 93 % with nothing wrong)."""
    want = result.requested_rate_rps
    if want <= 0 or result.duration_s <= 0:
        return None
    limit = (DEFAULT_MIN_ACHIEVED_RATIO if spec.min_achieved_ratio is None
             else spec.min_achieved_ratio)
    ratio = result.achieved_rate_rps / want
    conns = result.spec.get("connections")
    in_flight = conns if isinstance(conns, int) and not isinstance(conns, bool) else 0
    due = want * result.duration_s
    passed = ratio >= limit or (result.requests + in_flight) >= limit * due
    return Criterion("achieved_ratio", limit, round(ratio, 4), passed)


def shortfall_warning(result: RunResult) -> str:
    """`achieved X of the requested Y req/s` and the likely cause: too few connections for the
    target's latency, the load generator's CPU, or the target."""
    want, got = result.requested_rate_rps, result.achieved_rate_rps
    head = (f"achieved {got:,.0f} req/s of the requested {want:,.0f} req/s "
            f"({got / want:.0%})")
    if result.unsent_requests:
        head += f"; {result.unsent_requests:,} requests came due and were never sent"
    conns = result.spec.get("connections")
    p50_us = result.service_time.percentile_us(50)
    cpu = result.context.get("sender_cpu_percent")
    if isinstance(conns, int) and conns > 0 and not math.isnan(p50_us) and p50_us > 0:
        carry = conns / (p50_us / 1e6)
        if carry < want:
            return (f"{head}. Likely cause: too few connections for the target's latency: "
                    f"{conns} connection(s) at a p50 service time of {p50_us / 1000:.3g} ms "
                    f"carry at most ~{carry:,.0f} req/s; add connections or lower the rate")
    if isinstance(cpu, int | float) and cpu >= 90:
        return (f"{head}. Likely cause: the client: the sending thread was busy {cpu:.0f} % of "
                f"the window; use NativeRunner(workers=N) or another machine for the load")
    if result.error_rate > DEFAULT_ERROR_RATE:
        return f"{head}. Likely cause: the target, failing {result.error_rate:.1%} of requests"
    return (f"{head}. Likely cause: the target: it did not keep up although the connections "
            f"could have carried the rate at its median latency")


def stall_warning(result: RunResult) -> str | None:
    """Closed loop, for runners that do not detect stalls themselves (wrk, hey, ab): requests
    that timed out with no response mean the target stalled (or answered slower than the
    timeout). None when a stall is already reported or nothing timed out."""
    if result.requested_rate_rps > 0 or any(w.startswith(_STALL_PREFIX)
                                            for w in result.warnings):
        return None
    timeouts = result.error_kinds.get("timeout", 0)
    if not timeouts and result.requests == 0 and result.duration_s > 0:
        return (f"{_STALL_PREFIX} (or never answered): no response and no error at all in the "
                f"{result.duration_s:.1f} s window")
    if not timeouts:
        return None
    timeout_s = result.spec.get("timeout_s")
    after = f" within the {timeout_s:g} s timeout" if isinstance(timeout_s, int | float) else ""
    return (f"{_STALL_PREFIX} (or answered slower than the timeout): {timeouts:,} requests got "
            f"no response{after} while they were outstanding")


def apply_check(result: RunResult, slo: SloSpec | None = None) -> RunCheck:
    """Judge `result` and record the verdict on it: status, `context["slo"]`, warnings and
    (for a failed run) the error."""
    verdict = check_run(result, slo)
    result.status = verdict.status
    result.context[SLO_KEY] = verdict.to_dict()
    for w in verdict.warnings:
        if w not in result.warnings:
            result.warnings.append(w)
    if verdict.error and not result.error:
        result.error = verdict.error
    return verdict


def breaches(result: RunResult) -> bool:
    """Whether a run's stored check says its SLO did not hold."""
    check = result.context.get(SLO_KEY)
    return isinstance(check, dict) and check.get("pass") is False
