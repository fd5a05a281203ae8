"""Cross-check load generators: the same target at the same settings with every available runner,
side by side, flagging closed-loop tails that coordinated omission makes look better than they are.
Per protocol: each load point of each protocol with every runner that speaks it (native against
h2load for h2c, against k6 for gRPC); the others are skipped rows saying why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd
from rich.table import Table

from meshlab.dimensions import DEFAULT_PROTOCOL
from meshlab.errors import MeshlabError, ProfileError, RunnerError, StoreError, ToolNotFound
from meshlab.profile import Profile, RunSpec
from meshlab.results import Histogram, RunResult, RunStatus, new_run_id
from meshlab.runners.base import Runner, get_runner, runner_names
from meshlab.store import Store

COLUMNS = ["runner", "protocol", "rate_rps", "connections", "status", "reason", "achieved_rate_rps",
           "requests", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "uncorrected_p50_us",
           "uncorrected_p90_us", "uncorrected_p99_us", "uncorrected_p999_us",
           "co_distorted", "note", "run_id"]
# The label of a stored cross-check's experiment (and so of its runs: label.crosscheck=true)
# and the key of its plan (every runner x load point, skipped ones with their reason) in the
# experiment's profile record: what `crosscheck_from_store` rebuilds the table from.
CROSSCHECK_LABEL = "crosscheck"
PLAN_KEY = "crosscheck_plan"
# Distorted: a closed-loop percentile (p50 to p99.9) below 1/CO_FACTOR of native's open-loop
# corrected one, at a load point where the target stalled: native's corrected value exceeds its
# uncorrected one by the same factor at some percentile. p99 alone misses a 1 % stall: the stall
# is then the uncorrected p99 too, while the queue behind it moves the corrected p50 to 190 ms.
CO_FACTOR = 2.0
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
_OPEN_LOOP_TOOLS = {"native"}        # runners whose latency is measured from the intended send

CrosscheckProgress = Callable[[str], None]


def crosscheck_specs(profile: Profile) -> list[RunSpec]:
    """One spec per load point (protocol x rate x connections) of the first mesh and repeat."""
    first = profile.meshes[0]
    return [s for s in profile.expand() if s.repeat == 0 and s.mesh == first]


async def crosscheck_async(profile: Profile, *, runners: Sequence[str] | None = None,
                           progress: CrosscheckProgress | None = None,
                           co_factor: float = CO_FACTOR,
                           store: Store | str | Path | None = None) -> pd.DataFrame:
    """Run every load point of `profile` with each runner in turn (never two at once: they
    would share the cores); a runner that is missing or cannot honour a spec is a `skipped` row
    with the reason, a tool that fails is a `failed` row. At a rate, hey runs as a closed loop
    limited by its `-q` (`HeyRunner(limit_rate=True)`), the tool users compare against.
    Cancelling the awaiting task stops the tool in flight and raises CancelledError.

    With `store`, the runs are stored as they end in one experiment labelled
    `crosscheck=true` (its id in `df.attrs["experiment_id"]`, each row's run in `run_id`), so
    `crosscheck_from_store` rebuilds the same table later."""
    names = list(runners) if runners is not None else runner_names()
    plan = [(spec, name, _skip_reason(name, spec)) for spec in crosscheck_specs(profile)
            for name in names]
    db = Store(store) if isinstance(store, str | Path) else store
    exp_id = None
    if db is not None:
        doc = {**profile.to_dict(redact=True), PLAN_KEY: [
            {"runner": name, "run_index": spec.index, "protocol": spec.protocol,
             "rate_rps": spec.rate_rps, "connections": spec.connections, "skipped": reason}
            for spec, name, reason in plan]}
        exp_id = db.new_experiment(name=f"{profile.name} crosscheck", profile=doc,
                                   description=f"load generators cross-checked: "
                                               f"{', '.join(names)}",
                                   labels={**profile.labels, CROSSCHECK_LABEL: "true"})
    rows: list[dict[str, Any]] = []
    status = "failed"
    try:
        for spec, name, reason in plan:
            row, result = await _one(name, spec, reason, progress, exp_id)
            if db is not None and result is not None:
                db.save(result, experiment_id=exp_id)
            rows.append(row)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # a runner returns its partial result when cancelled (Ctrl-C, SIGTERM): it is
                # stored above; stop here instead of going on with the next runner
                status = "aborted"
                raise asyncio.CancelledError
        status = "completed"
    finally:
        if db is not None and exp_id is not None:
            db.finish_experiment(exp_id, status=status)
    df = _frame(rows, co_factor)
    df.attrs["experiment_id"] = exp_id
    return df


def _frame(rows: list[dict[str, Any]], co_factor: float) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    df[["requests", "errors"]] = df[["requests", "errors"]].astype("Int64")
    return flag_coordinated_omission(df, factor=co_factor)


def crosscheck(profile: Profile, *, runners: Sequence[str] | None = None,
               progress: CrosscheckProgress | None = None,
               co_factor: float = CO_FACTOR,
               store: Store | str | Path | None = None) -> pd.DataFrame:
    """Synchronous `crosscheck_async`; inside a running event loop (Jupyter) it runs on a
    helper thread with its own loop."""
    coro = crosscheck_async(profile, runners=runners, progress=progress, co_factor=co_factor,
                            store=store)
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


def _skip_reason(name: str, spec: RunSpec) -> str | None:
    """Why `name` cannot run `spec` here (missing tool, an option it cannot honour), or None."""
    try:
        runner = _runner(name)
        runner.check(spec)
        if not runner.is_available():
            raise _unavailable(runner)
    except MeshlabError as exc:
        return _reason(exc)
    return None


def _base_row(name: str, spec: RunSpec) -> dict[str, Any]:
    return {"runner": name, "protocol": spec.protocol, "rate_rps": spec.rate_rps,
            "connections": spec.connections, "co_distorted": False, "note": "", "run_id": None}


async def _one(name: str, spec: RunSpec, skipped: str | None,
               progress: CrosscheckProgress | None,
               experiment_id: str | None) -> tuple[dict[str, Any], RunResult | None]:
    row = _base_row(name, spec)
    label = f"{name}: {spec.rate_rps:g} req/s x {spec.connections} connections"
    if spec.protocol != DEFAULT_PROTOCOL:
        label = f"{name} ({spec.protocol}){label[len(name):]}"
    if skipped is not None:
        if progress:
            progress(f"{label}: skipped")
        return {**row, "status": "skipped", "reason": skipped}, None
    if progress:
        progress(f"{label}: running for {spec.warmup_s + spec.duration_s:g} s")
    spec = dataclasses.replace(spec, runner=name)
    started = datetime.now(UTC)
    try:
        result = await _runner(name).run(spec)
    except MeshlabError as exc:
        if progress:
            progress(f"{label}: failed")
        failed = _failed_result(spec, name, started, _reason(exc))
        return {**row, "status": "failed", "reason": _reason(exc),
                "run_id": failed.run_id if experiment_id else None}, failed
    if progress:
        progress(f"{label}: {result.achieved_rate_rps:,.0f} req/s")
    if experiment_id is not None:
        result = dataclasses.replace(result, context={
            **result.context, "experiment_id": experiment_id, CROSSCHECK_LABEL: True})
        row["run_id"] = result.run_id
    return {**row, **_numbers(result)}, result


def _failed_result(spec: RunSpec, name: str, started: datetime, error: str) -> RunResult:
    """A failed runner as a stored run (status failed, its error), as `meshlab run` stores one."""
    return RunResult(
        run_id=new_run_id(), spec=spec.to_dict(redact=True), status=RunStatus.FAILED,
        started_at=started, ended_at=datetime.now(UTC), duration_s=0.0,
        requested_rate_rps=spec.rate_rps, achieved_rate_rps=0.0, requests=0, errors=0,
        status_codes={}, error_kinds={}, latency=Histogram(), service_time=Histogram(),
        runner=name, error=error)


def latest_crosscheck(store: Store) -> str:
    """The id of the newest stored cross-check experiment (StoreError when there is none)."""
    exps = store.experiments()
    mine = [str(e) for e, labels in zip(exps["experiment_id"], exps["labels"], strict=True)
            if _labels(labels).get(CROSSCHECK_LABEL) == "true"]
    if not mine:
        raise StoreError(f"no cross-check stored in {store.path}; run one with "
                         f"meshlab crosscheck PROFILE --store {store.path}")
    return mine[-1]


def crosscheck_from_store(store: Store | str | Path, experiment_id: str = "latest", *,
                          co_factor: float = CO_FACTOR) -> pd.DataFrame:
    """The table of a stored cross-check, rebuilt from its stored runs (the same numbers
    `crosscheck` printed: each run's own percentiles) and its plan (skipped runners with their
    reasons). `experiment_id` may be `latest`."""
    db = store if isinstance(store, Store) else Store(store, read_only=True)
    exp_id = latest_crosscheck(db) if experiment_id == "latest" else experiment_id
    exps = db.experiments()
    match = exps[exps["experiment_id"] == exp_id]
    doc = _labels(match["profile"].iloc[0]) if len(match) else {}
    plan = doc.get(PLAN_KEY)
    if not isinstance(plan, list):
        raise StoreError(f"experiment {exp_id!r} in {db.path} is not a stored cross-check; "
                         f"list them with meshlab runs label.{CROSSCHECK_LABEL}=true")
    runs = db.runs(experiment_id=exp_id)
    by_key = {(str(r), int(i)): str(rid) for r, i, rid in
              zip(runs["runner"], runs["run_index"], runs["run_id"], strict=True)}
    rows: list[dict[str, Any]] = []
    for entry in plan:
        row = {"runner": entry["runner"],
               "protocol": str(entry.get("protocol") or DEFAULT_PROTOCOL),
               "rate_rps": float(entry["rate_rps"]),
               "connections": int(entry["connections"]), "co_distorted": False, "note": "",
               "run_id": None}
        run_id = by_key.get((str(entry["runner"]), int(entry["run_index"])))
        if entry.get("skipped") is not None:
            rows.append({**row, "status": "skipped", "reason": entry["skipped"]})
        elif run_id is None:
            rows.append({**row, "status": "missing", "reason": "not stored (interrupted?)"})
        else:
            result = db.load(run_id)
            row["run_id"] = run_id
            rows.append({**row, "status": "failed", "reason": result.error or ""}
                        if result.status == RunStatus.FAILED else {**row, **_numbers(result)})
    df = _frame(rows, co_factor)
    df.attrs["experiment_id"] = exp_id
    return df


def _labels(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


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
    # a load point is one protocol's: native gRPC is never the reference of an HTTP/1.1 tool
    out["protocol"] = ([DEFAULT_PROTOCOL if not isinstance(v, str) else v
                        for v in out["protocol"]] if "protocol" in out else DEFAULT_PROTOCOL)
    for key, group in out.groupby(["protocol", "rate_rps", "connections"], sort=False):
        rate = float(cast(tuple[str, float, int], key)[1])
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
    protocols = ({v for v in df["protocol"] if isinstance(v, str)} if "protocol" in df
                 else set())
    by_protocol = bool(protocols - {DEFAULT_PROTOCOL})
    if by_protocol:
        table.add_column("protocol", justify="left")
    for col, justify in (("runner", "left"), ("rate", "right"), ("conns", "right"),
                         ("status", "left"), ("req/s", "right"), ("errors", "right"),
                         ("p50 us", "right"), ("p90 us", "right"), ("p99 us", "right"),
                         ("p99.9 us", "right"), ("CO", "center"), ("note", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for _, r in df.iterrows():
        done = r["status"] == "completed"
        table.add_row(
            *([str(r["protocol"])] if by_protocol else []),
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
