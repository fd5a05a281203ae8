"""The verdict on one run: failed without a successful response, degraded on errors or a rate
not held (with the likely cause), SLO criteria stored with limit, measured value and pass."""

from __future__ import annotations

import asyncio

import pytest

from meshlab.analysis import search_max_rate
from meshlab.analysis.synthetic import synthetic_result
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.slo import SloSpec, apply_check, check_run


def _run(**kw: object) -> RunResult:
    kw.setdefault("duration_s", 5.0)
    return synthetic_result(run_id="r", seed=1, **kw)  # type: ignore[arg-type]


def test_a_healthy_run_completes_and_holds_the_default_slo() -> None:
    r = _run(rate_rps=1000, p50_us=500)
    check = apply_check(r)
    assert r.status is RunStatus.COMPLETED and check.passed and r.warnings == []
    assert r.context["slo"] == {"source": "default", "pass": True, "criteria": {
        "error_rate": {"limit": 0.01, "measured": 0.0, "pass": True},
        "achieved_ratio": {"limit": 0.95, "measured": 1.0, "pass": True}}}


def test_no_successful_response_is_failed() -> None:
    r = _run(rate_rps=300, duration_s=1.0)
    r.errors, r.status_codes, r.error_kinds = r.requests, {}, {"connect_refused": r.requests}
    r.latency, r.service_time = Histogram(), Histogram()
    check = apply_check(r)
    assert r.status is RunStatus.FAILED and not check.passed
    assert r.error == "no successful response: 300 of 300 requests failed (connect_refused: 300)"


def test_errors_above_one_percent_degrade_unless_the_slo_allows_them() -> None:
    r = _run(error_rate=0.05)
    assert check_run(r).status is RunStatus.DEGRADED
    assert check_run(r, SloSpec(error_rate=0.1)).status is RunStatus.COMPLETED
    assert check_run(_run(error_rate=0.005)).status is RunStatus.COMPLETED


def test_a_rate_not_held_degrades_and_names_rates_and_cause() -> None:
    # 2 connections at a 10 ms service time carry ~200 req/s of the 600 asked for
    r = _run(rate_rps=600, requests=1000, p50_us=10_000, connections=2)
    r.unsent_requests = 2000
    apply_check(r)
    assert r.status is RunStatus.DEGRADED
    (w,) = r.warnings
    assert "achieved 200 req/s of the requested 600 req/s" in w
    assert "2,000 requests came due and were never sent" in w
    assert "too few connections for the target's latency" in w and "carry at most ~" in w
    # enough connections, a busy sending thread: the client
    cpu = _run(rate_rps=600, requests=1000, p50_us=100, context={"sender_cpu_percent": 99.0})
    assert "Likely cause: the client" in check_run(cpu).warnings[0]
    # enough connections, an idle client: the target
    slow = _run(rate_rps=600, requests=1000, p50_us=100, context={"sender_cpu_percent": 5.0})
    assert "Likely cause: the target" in check_run(slow).warnings[0]


def test_one_request_per_connection_may_be_in_flight_at_the_end() -> None:
    # 0.3 s at 100 req/s over 2 connections: 30 due, 28 answered, 2 still in flight
    r = synthetic_result(run_id="r", rate_rps=100, duration_s=0.3, requests=28, connections=2)
    assert check_run(r).status is RunStatus.COMPLETED
    short = synthetic_result(run_id="r", rate_rps=100, duration_s=0.3, requests=25,
                             connections=2)
    assert check_run(short).status is RunStatus.DEGRADED


def test_latency_limits_decide_the_slo_not_the_status() -> None:
    r = _run(p50_us=2_000)
    check = apply_check(r, SloSpec(p50_ms=1.0, p99_ms=100.0))
    assert r.status is RunStatus.COMPLETED and not check.passed
    crit = r.context["slo"]["criteria"]
    assert crit["p50_ms"]["pass"] is False and crit["p50_ms"]["limit"] == 1.0
    assert crit["p50_ms"]["measured"] == pytest.approx(2.0, rel=0.05)
    assert crit["p99_ms"]["pass"] is True and r.context["slo"]["source"] == "profile"
    assert "p50_ms" in check.reason


def test_aborted_runs_keep_their_status() -> None:
    r = _run(error_rate=0.5)
    r.status = RunStatus.ABORTED
    assert apply_check(r).status is RunStatus.ABORTED


def test_closed_loop_timeouts_say_the_target_stalled() -> None:
    """A tool that does not watch for stalls itself (wrk): its timeouts are reported."""
    r = _run(rate_rps=0.0)
    r.spec["timeout_s"] = 2.0
    r.error_kinds, r.errors = {"timeout": 12}, 12
    (w,) = check_run(r).warnings
    assert w.startswith("target stalled") and "12 requests" in w and "2 s timeout" in w
    r.warnings.append("target stalled: no response for 2.10 s")     # the native runner's own
    assert check_run(r).warnings == ()


def test_search_with_a_profile_slo() -> None:
    capacity_rps = 1_500.0

    async def probe(rate: float) -> RunResult:
        got = min(rate, capacity_rps)
        return synthetic_result(run_id=f"p{rate:g}", rate_rps=rate, duration_s=1.0,
                                requests=int(got), p50_us=500)

    outcome = asyncio.run(search_max_rate(probe, slo=SloSpec(p99_ms=50), start_rps=200,
                                          max_rps=10_000, precision=0.05))
    assert capacity_rps * 0.9 <= outcome.max_rate_rps <= capacity_rps / 0.95 * 1.05
    assert any(not p.passed and "achieved_ratio" in p.reason for p in outcome.probes)


def test_an_outcome_with_a_breached_slo_is_not_ok() -> None:
    from meshlab.experiment import ExperimentOutcome, ExperimentStatus

    held, breached = _run(p50_us=500), _run(p50_us=500)
    apply_check(held, SloSpec(p99_ms=100))
    apply_check(breached, SloSpec(p99_ms=0.1))
    assert breached.status is RunStatus.COMPLETED
    assert ExperimentOutcome("e", [held], ExperimentStatus.COMPLETED).ok
    assert not ExperimentOutcome("e", [held, breached], ExperimentStatus.COMPLETED).ok
