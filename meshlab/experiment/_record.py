"""How one run's RunResult is completed: failed/aborted placeholders, deployment telemetry and
context merged in, secrets scrubbed, whether it is broken; plus teardown that finishes even when
cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from meshlab.environments.base import Deployment, DeploymentReport
from meshlab.errors import MeshlabError
from meshlab.profile import REDACTED, RunSpec, is_secret_name, redact_url
from meshlab.results import Histogram, HostSnapshot, RunResult, RunStatus, new_run_id
from meshlab.runners.base import Runner
from meshlab.shape import mean_rate_rps

_T = TypeVar("_T")


async def complete(aw: Awaitable[_T]) -> tuple[_T, bool]:
    """Await `aw` to the end even when the caller is cancelled meanwhile (teardown must finish);
    returns its value and whether a cancellation arrived."""
    fut = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(fut), cancelled
        except asyncio.CancelledError:
            if fut.cancelled():     # the teardown itself was cancelled (loop shutting down)
                raise
            cancelled = True


async def end_deployment(deployment: Deployment) -> DeploymentReport:
    try:
        return await deployment.end()
    except MeshlabError as exc:
        return DeploymentReport(warnings=[f"deployment end failed: {exc}"])


def run_label(spec: RunSpec) -> str:
    parts = [f"mesh={spec.mesh}"]
    for key in ("mode", "policy"):
        value = spec.dim(key)
        if value and not (key == "policy" and value == "none"):
            parts.append(f"{key}={value}")
    rate = "max" if spec.rate_rps <= 0 else f"{spec.rate_rps:g}"
    parts += [f"rate={rate}", f"conns={spec.connections}", f"repeat={spec.repeat}"]
    return " ".join(parts)


def empty_result(spec: RunSpec, runner: Runner, started: datetime, status: RunStatus,
                  error: str) -> RunResult:
    return RunResult(
        run_id=new_run_id(), spec=spec.to_dict(redact=True), status=status, started_at=started,
        ended_at=datetime.now(UTC), duration_s=0.0,
        requested_rate_rps=mean_rate_rps(spec.shape, rate_rps=spec.rate_rps),
        achieved_rate_rps=0.0, requests=0, errors=0, status_codes={}, error_kinds={},
        latency=Histogram(), service_time=Histogram(), runner=runner.name, error=error)


def scrub(text: str, spec: RunSpec) -> str:
    """Remove secret header values and URL credentials from free text (a tool's argv in an
    error message)."""
    for name, value in spec.headers:
        if value and is_secret_name(name):
            text = text.replace(value, REDACTED)
    return redact_url(text)


def merge_run(result: RunResult, spec: RunSpec, run_spec: RunSpec, deployment: Deployment | None,
           report: DeploymentReport | None, host: HostSnapshot, runner: Runner,
           exp_id: str) -> None:
    """Fold what the deployment observed into the result; make sure nothing secret is kept."""
    result.spec = {**result.spec, **run_spec.to_dict(redact=True)}
    context: dict[str, Any] = {"environment": spec.dim("environment", "direct")}
    if deployment is not None:
        context.update(deployment.context)
    if report is not None:
        context.update(report.context)
        result.telemetry.extend(report.telemetry)
        result.warnings.extend(report.warnings)
        if report.failure and result.status != RunStatus.ABORTED:
            # a backend or sidecar died: its answers (503s, resets) are not the mesh's cost
            result.status = RunStatus.FAILED
            result.error = result.error or report.failure
    context.update(result.context)
    context["experiment_id"] = exp_id
    if run_spec.target != spec.target:
        context["profile_target"] = redact_url(spec.target)
    result.context = context
    if deployment is not None:
        context.update(deployment.derive(result))     # needs telemetry + the achieved rate
    result.warnings = [scrub(w, spec) for w in result.warnings]
    if result.error:
        result.error = scrub(result.error, spec)
    if result.host is None:
        result.host = host
    if not result.runner_version and result.runner == runner.name:
        with contextlib.suppress(MeshlabError, OSError):
            result.runner_version = runner.version()


def broken_reason(result: RunResult) -> str:
    """Why a run must not be pooled with the others ("" when it may): it failed, got no
    successful response, or a process of its deployment died during it."""
    if result.status == RunStatus.ABORTED:
        return ""
    if result.status == RunStatus.FAILED:
        return f"failed: {result.error or 'no error text'}"
    dead = result.context.get("dead_processes") or []
    if dead:
        return f"lost {', '.join(map(str, dead))} (died during the run)"
    if result.requests == 0 or result.errors >= result.requests:
        return f"got no successful response ({result.errors:,} errors)"
    return ""


def warmup_summary(warm: RunResult) -> dict[str, Any]:
    """What a discarded warm-up saw, kept in the run's context (JSON-safe: no NaN)."""
    p50, p99 = (warm.latency.percentile_us(p) for p in (50, 99))
    return {"duration_s": round(warm.duration_s, 3), "requests": warm.requests,
            "errors": warm.errors, "p50_us": None if math.isnan(p50) else round(p50, 1),
            "p99_us": None if math.isnan(p99) else round(p99, 1)}
