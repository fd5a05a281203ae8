"""Cross-check load generators: the same target at the same settings with every available runner,
side by side, flagging closed-loop tails that coordinated omission makes look better than they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import pandas as pd
from rich.table import Table

from meshlab.errors import MeshlabError, ProfileError, RunnerError, ToolNotFound
from meshlab.profile import Profile, RunSpec
from meshlab.results import RunResult
from meshlab.runners.base import Runner, get_runner, runner_names

COLUMNS = ["runner", "rate_rps", "connections", "status", "reason", "achieved_rate_rps",
           "requests", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "uncorrected_p50_us",
           "uncorrected_p90_us", "uncorrected_p99_us", "uncorrected_p999_us",
           "co_distorted", "note"]
# Distorted: a closed-loop percentile (p50 to p99.9) below 1/CO_FACTOR of native's open-loop
# corrected one, at a load point where the target stalled: native's corrected value exceeds its
# uncorrected one by the same factor at some percentile. p99 alone misses a 1 % stall: the stall
# is then the uncorrected p99 too, while the queue behind it moves the corrected p50 to 190 ms.
CO_FACTOR = 2.0
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
_OPEN_LOOP_TOOLS = {"native"}        # runners whose latency is measured from the intended send

CrosscheckProgress = Callable[[str], None]


def crosscheck_specs(profile: Profile) -> list[RunSpec]:
    """One spec per load point (rate x connections) of the first mesh and repeat."""
    first = profile.meshes[0]
    return [s for s in profile.expand() if s.repeat == 0 and s.mesh == first]


async def crosscheck_async(profile: Profile, *, runners: Sequence[str] | None = None,
                           progress: CrosscheckProgress | None = None,
                           co_factor: float = CO_FACTOR) -> pd.DataFrame:
    """Run every load point of `profile` with each runner in turn (never two at once: they
    would share the cores); a runner that is missing or cannot honour a spec is a `skipped` row
    with the reason, a tool that fails is a `failed` row. At a rate, hey runs as a closed loop
    limited by its `-q` (`HeyRunner(limit_rate=True)`), the tool users compare against.
    Cancelling the awaiting task stops the tool in flight and raises CancelledError."""
    names = list(runners) if runners is not None else runner_names()
    rows: list[dict[str, Any]] = []
    for spec in crosscheck_specs(profile):
        for name in names:
            rows.append(await _one(name, spec, progress))
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # a runner returns its partial result when cancelled (Ctrl-C, SIGTERM): stop
                # here instead of going on with the next runner
                raise asyncio.CancelledError
    df = pd.DataFrame(rows, columns=COLUMNS)
    df[["requests", "errors"]] = df[["requests", "errors"]].astype("Int64")
    return flag_coordinated_omission(df, factor=co_factor)


def crosscheck(profile: Profile, *, runners: Sequence[str] | None = None,
               progress: CrosscheckProgress | None = None,
               co_factor: float = CO_FACTOR) -> pd.DataFrame:
    """Synchronous `crosscheck_async`; inside a running event loop (Jupyter) it runs on a
    helper thread with its own loop."""
    coro = crosscheck_async(profile, runners=runners, progress=progress, co_factor=co_factor)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["df"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    t = threading.Thread(target=target, name="meshlab-crosscheck")
    t.start()
    t.join()
    if "exc" in box:
        raise box["exc"]
    df: pd.DataFrame = box["df"]
    return df


async def _one(name: str, spec: RunSpec, progress: CrosscheckProgress | None) -> dict[str, Any]:
    row: dict[str, Any] = {"runner": name, "rate_rps": spec.rate_rps,
                           "connections": spec.connections, "co_distorted": False, "note": ""}
    label = f"{name}: {spec.rate_rps:g} req/s x {spec.connections} connections"
    try:
        runner = _runner(name)
        runner.check(spec)
        if not runner.is_available():
            raise _unavailable(runner)
    except MeshlabError as exc:
        if progress:
            progress(f"{label}: skipped")
        return {**row, "status": "skipped", "reason": _reason(exc)}
    if progress:
        progress(f"{label}: running for {spec.warmup_s + spec.duration_s:g} s")
    try:
        result = await runner.run(dataclasses.replace(spec, runner=name))
    except MeshlabError as exc:
        if progress:
            progress(f"{label}: failed")
        return {**row, "status": "failed", "reason": _reason(exc)}
    if progress:
        progress(f"{label}: {result.achieved_rate_rps:,.0f} req/s")
    return {**row, **_numbers(result)}


def _runner(name: str) -> Runner:
    """The registered runner, except hey: it has no open loop, but its per-worker `-q` limiter
    at the same total rate is exactly the closed-loop comparison a cross-check is for (its
    result says so in its first warning)."""
    if name == "hey":
        from meshlab.runners.hey import HeyRunner

        return HeyRunner(limit_rate=True)
    return get_runner(name)


def _unavailable(runner: Runner) -> MeshlabError:
    binary = getattr(runner, "binary", None)
    if isinstance(binary, str):
        from meshlab.runners._tool import NATIVE_ALTERNATIVE

        return ToolNotFound(binary, install=runner.install_hint or f"install {binary}",
                            alternative=NATIVE_ALTERNATIVE)
    hint = f"; install it ({runner.install_hint})" if runner.install_hint else ""
    return RunnerError(f"runner {runner.name} is not available on this machine{hint}")


def _reason(exc: MeshlabError) -> str:
    if isinstance(exc, ProfileError):
        return "; ".join(exc.problems)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _numbers(r: RunResult) -> dict[str, Any]:
    """The run's own percentiles (fortio's interpolated values for a fortio run)."""
    p = r.headline_percentile_us
    return {
        "status": str(r.status), "reason": "",
        "achieved_rate_rps": r.achieved_rate_rps, "requests": r.requests, "errors": r.errors,
        **{f"{name}_us": p(q) for name, q in _PERCENTILES},
        **{f"uncorrected_{name}_us": p(q, kind="service_time") for name, q in _PERCENTILES},
    }


def flag_coordinated_omission(df: pd.DataFrame, *, factor: float = CO_FACTOR) -> pd.DataFrame:
    """Set `co_distorted` and `note` per row by comparing each closed-loop tool's p50 to p99.9
    with native's open-loop corrected ones at the same load point (pure: a copy is returned)."""
    out = df.copy()
    out["co_distorted"] = False
    out["note"] = out["note"].fillna("").astype(str)
    for key, group in out.groupby(["rate_rps", "connections"], sort=False):
        rate = float(cast(tuple[float, int], key)[0])
        ref = group[(group["runner"].isin(_OPEN_LOOP_TOOLS)) & (group["status"] == "completed")]
        if rate <= 0 or ref.empty:
            why = ("closed loop: no open-loop reference here; add a rate_rps to compare tails"
                   if rate <= 0 else
                   "no completed native open-loop run at this load point to compare against")
            for i in group.index:
                if out.at[i, "status"] == "completed" and out.at[i, "runner"] != "native":
                    out.at[i, "note"] = why
            continue
        ref_row = ref.iloc[0]
        corrected = {n: float(ref_row[f"{n}_us"]) for n, _ in _PERCENTILES}
        uncorrected = {n: float(ref_row[f"uncorrected_{n}_us"]) for n, _ in _PERCENTILES}
        queued = [n for n, _ in _PERCENTILES
                  if uncorrected[n] > 0 and corrected[n] >= factor * uncorrected[n]]
        stalled = bool(queued)
        out.at[ref_row.name, "note"] = (
            f"open loop: corrected p99 {corrected['p99']:,.0f} us vs uncorrected "
            f"{uncorrected['p99']:,.0f} us"
            + (f" (the target stalled: requests queued; corrected {_label(queued[0])} "
               f"{corrected[queued[0]]:,.0f} us vs {uncorrected[queued[0]]:,.0f} us)"
               if stalled else ""))
        for i in group.index:
            row = out.loc[i]
            if row["runner"] in _OPEN_LOOP_TOOLS or row["status"] != "completed":
                continue
            low = [f"{_label(n)} {float(row[f'{n}_us']):,.0f} us vs native corrected "
                   f"{corrected[n]:,.0f} us" for n, _ in _PERCENTILES
                   if math.isfinite(float(row[f"{n}_us"])) and math.isfinite(corrected[n])
                   and float(row[f"{n}_us"]) * factor < corrected[n]]
            if stalled and low:
                out.at[i, "co_distorted"] = True
                out.at[i, "note"] = ("; ".join(low) + ": a closed-loop tool waits out a stall "
                                     "and never sends the requests that would have queued")
            elif stalled:
                out.at[i, "note"] = f"p50 to p99.9 within {factor:g}x of native's corrected ones"
            else:
                out.at[i, "note"] = "the target did not stall: tails comparable"
    return out


def _label(name: str) -> str:
    return "p99.9" if name == "p999" else name


def render_crosscheck(df: pd.DataFrame) -> Table:
    """A rich Table of a crosscheck DataFrame (for the CLI)."""
    table = Table(title="load generator cross-check", show_lines=False)
    for col, justify in (("runner", "left"), ("rate", "right"), ("conns", "right"),
                         ("status", "left"), ("req/s", "right"), ("errors", "right"),
                         ("p50 us", "right"), ("p90 us", "right"), ("p99 us", "right"),
                         ("p99.9 us", "right"), ("CO", "center"), ("note", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for _, r in df.iterrows():
        done = r["status"] == "completed"
        table.add_row(
            str(r["runner"]), "closed" if float(r["rate_rps"]) <= 0 else f"{r['rate_rps']:g}",
            str(r["connections"]), str(r["status"]),
            _fmt(r["achieved_rate_rps"]) if done else "",
            _fmt(r["errors"]) if done else "",
            *(_fmt(r[c]) if done else "" for c in ("p50_us", "p90_us", "p99_us", "p999_us")),
            "[red]yes[/red]" if bool(r["co_distorted"]) else "",
            str(r["note"] or r["reason"] or ""),
        )
    return table


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(v) else f"{v:,.0f}"
