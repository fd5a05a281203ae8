"""Run a profile's matrix against its environment run by run, storing each result as it ends.

`arun_profile` is the asyncio core, `run_profile` the blocking wrapper (it also works inside
Jupyter's running event loop) and `start_profile` runs in the background behind a `RunHandle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshlab.environments.base import Deployment, DeploymentReport, Environment, environment_for
from meshlab.errors import MeshError, MeshlabError, MissingDependency, ProfileError
from meshlab.experiment._background import RunHandle, run_blocking
from meshlab.experiment._record import (
    broken_reason,
    complete,
    empty_result,
    end_deployment,
    merge_run,
    run_label,
    warmup_summary,
)
from meshlab.experiment._worker import Unsendable, experiment_worker, shared_load_worker
from meshlab.experiment.outcome import ExperimentOutcome, ExperimentStatus
from meshlab.profile import Profile, RunSpec
from meshlab.progress import ExperimentProgress, ExperimentSnapshot, Progress, TerminalProgress
from meshlab.results import HostSnapshot, RunResult, RunStatus, new_run_id
from meshlab.runners.base import Runner, get_runner
from meshlab.slo import apply_check

if TYPE_CHECKING:
    from meshlab.store import Store

__all__ = [
    "ExperimentOutcome",
    "ExperimentProgress",
    "ExperimentSnapshot",
    "ExperimentStatus",
    "RunHandle",
    "TerminalProgress",
    "arun_profile",
    "run_profile",
    "shared_load_worker",
    "start_profile",
]

log = logging.getLogger("meshlab.experiment")

ResultCallback = Callable[[RunResult], None]

# --- the experiment --------------------------------------------------------------------------

class _Experiment:
    """One execution of a profile; holds the state progress snapshots are built from."""

    def __init__(self, profile: Profile, *, store: Store | str | Path | None,
                 progress: ExperimentProgress | None, runner: str | Runner | None,
                 on_result: ResultCallback | None, stop_on_failure: bool | None) -> None:
        if profile.order == "interleaved" and profile.seed is None:
            # Drawn here and stored with the experiment's profile (and every run's context), so
            # the order can be replayed: Profile.expand() shuffles with it.
            profile = profile.model_copy(update={"seed": secrets.randbelow(2**31)})
        self.profile = profile
        self.store_arg = store
        self.progress = progress
        self.runner_arg = runner
        self.on_result = on_result
        self.stop_on_failure = (profile.on_failure == "stop" if stop_on_failure is None
                                else stop_on_failure)
        self.broken = ""                 # why an earlier run is broken ("" while none is)
        self.deployed = False            # a deployment has been measured in this experiment
        self.results: list[RunResult] = []
        self.snap = ExperimentSnapshot(event="start", experiment_id="", profile=profile.name,
                                       status=str(ExperimentStatus.RUNNING),
                                       total_runs=profile.run_count())
        self._progress_failed = False
        self.worker, self.owns_worker = experiment_worker()

    # progress -------------------------------------------------------------------------------
    def emit(self, event: str, **changes: Any) -> None:
        self.snap = replace(self.snap, event=event, **changes)
        if self.progress is None:
            return
        try:
            self.progress(self.snap)
        except Exception:  # a broken progress display must not stop a measurement
            if not self._progress_failed:
                log.exception("progress callback failed; further failures are not logged")
            self._progress_failed = True

    def _runner_progress(self, spec: RunSpec) -> Callable[[Progress], None]:
        def update(p: Progress) -> None:
            elapsed = p.elapsed_s if p.phase == "warmup" else spec.warmup_s + p.elapsed_s
            self.emit("progress", phase=p.phase, run_elapsed_s=min(elapsed, self.snap.run_total_s),
                      requests=p.requests, errors=p.errors, rate_rps=p.last_rate_rps,
                      p50_us=p.last_p50_us, p99_us=p.last_p99_us)
        return update

    # setup ------------------------------------------------------------------------------------
    def _runner(self, env: Environment) -> Runner:
        arg = self.runner_arg
        runner = arg if isinstance(arg, Runner) else get_runner(arg or self.profile.runner)
        if not env.generates_load and not runner.is_available():
            raise MissingDependency(
                f"the {runner.name!r} load generator",
                install=(runner.install_hint or f"see the {runner.name} runner's documentation")
                + f"; or substitute meshlab's own runner, which needs nothing installed: "
                f"meshlab run --runner native (runner_override='native' from Python; the runs "
                f"record runner_substituted_for={runner.name})")
        return runner

    def _validate(self, specs: list[RunSpec], runner: Runner, env: Environment) -> None:
        """Check every spec before the first run, so a bad matrix fails at once, in one error."""
        problems: list[str] = []
        checks = [env.check] if env.generates_load else [runner.check, env.check]
        for spec in specs:
            for check in checks:
                try:
                    check(spec)
                except ProfileError as exc:
                    problems.extend(exc.problems)
                except MeshError as exc:
                    problems.append(f"meshes: {spec.mesh}: {exc}")
        unique = list(dict.fromkeys(problems))
        if unique:
            raise ProfileError(unique, source=f"profile {self.profile.name!r}")

    # run ----------------------------------------------------------------------------------------
    async def run(self) -> ExperimentOutcome:
        env = _environment(self.profile)
        try:
            runner = self._runner(env)
            specs = [s if s.runner == runner.name else replace(s, runner=runner.name)
                     for s in self.profile.expand()]
            self._validate(specs, runner, env)
            if not env.generates_load and not self.worker.alive():
                self.worker.start()         # imports meshlab while the first run deploys
            with contextlib.ExitStack() as stack:
                store = _open_store(self.store_arg, stack)
                return await self._run_all(specs, runner, env, store)
        finally:
            if self.owns_worker:
                self.worker.close()
            await complete(env.close())

    async def _run_all(self, specs: list[RunSpec], runner: Runner, env: Environment,
                       store: Store | None) -> ExperimentOutcome:
        from meshlab.host import host_snapshot

        if store is not None:
            exp_id = store.new_experiment(name=self.profile.name,
                                          profile=self.profile.to_dict(redact=True),
                                          description=self.profile.description,
                                          labels=dict(self.profile.labels))
        else:
            exp_id = "exp-" + new_run_id()
        host = host_snapshot(tools=[] if runner.name == "native" else [runner.name])
        self.emit("start", experiment_id=exp_id)
        status = ExperimentStatus.COMPLETED
        reason = ""
        try:
            for i, spec in enumerate(specs):
                if _cancel_requested():
                    # Ctrl-C arrived between runs (while saving): stop before the next deploy.
                    status = ExperimentStatus.ABORTED
                    break
                self.emit("run_start", run_index=i, run_label=run_label(spec), phase="warmup"
                          if spec.warmup_s else "measure", run_elapsed_s=0.0,
                          run_total_s=spec.warmup_s + spec.duration_s, requests=0, errors=0,
                          rate_rps=0.0, p50_us=math.nan, p99_us=math.nan)
                result, cancelled = await self._one(spec, runner, env, host, exp_id)
                if result is None:          # cancelled before any load: nothing to store
                    status = ExperimentStatus.ABORTED
                    break
                broken = broken_reason(result)
                if self.broken:
                    result.warnings.append(f"an earlier run of this experiment is broken "
                                           f"({self.broken}); this run may be affected too")
                if runner.name != self.profile.runner:    # --runner instead of the profile's
                    result.context["runner_substituted_for"] = self.profile.runner
                if store is not None:
                    store.save(result, experiment_id=exp_id)
                self.results.append(result)
                failed = result.status == RunStatus.FAILED
                self.emit("run_end", finished_runs=i + 1, phase="", last_result=result.summary(),
                          failed_runs=self.snap.failed_runs + int(failed))
                if self.on_result is not None:
                    self.on_result(result)
                if cancelled or result.status == RunStatus.ABORTED:
                    status = ExperimentStatus.ABORTED
                    break
                if broken:
                    why = f"run {i + 1} ({run_label(spec)}, {result.run_id}) {broken}"
                    self.broken = self.broken or why
                    if self.stop_on_failure:
                        status, reason = ExperimentStatus.FAILED, f"stopped: {why}"
                        log.warning("experiment %s %s", exp_id, reason)
                        break
        except asyncio.CancelledError:
            # Cancelled outside a run's measurement (saving, a callback): stop as aborted.
            status = ExperimentStatus.ABORTED
        except BaseException:
            status = ExperimentStatus.FAILED
            raise
        finally:
            if store is not None:
                store.finish_experiment(exp_id, status=str(status))
            self.emit("end", status=str(status), phase="", reason=reason)
        return ExperimentOutcome(experiment_id=exp_id, results=list(self.results), status=status,
                                 profile=self.profile.name, reason=reason,
                                 seed=self.profile.seed if self.profile.shuffled else None)

    async def _one(self, spec: RunSpec, runner: Runner, env: Environment, host: HostSnapshot,
                   exp_id: str) -> tuple[RunResult | None, bool]:
        """Deploy, measure and tear down one run. Returns the result (None when cancelled before
        the load started) and whether the experiment was cancelled meanwhile. Failures of
        meshlab or its tools become a FAILED result."""
        started = datetime.now(UTC)
        deployment: Deployment | None = None
        report: DeploymentReport | None = None
        result: RunResult | None = None
        settle: dict[str, Any] | None = None
        run_spec = spec
        cancelled = False
        error = ""
        stage = "deploying the run"
        try:
            deployment = await env.deploy(spec)
            run_spec = replace(spec, target=deployment.target_url)
            if self._fresh(deployment, env):
                stage = "warming up the data plane"
                settle = await self._warm_up(runner, run_spec)
            self.deployed = True
            stage = "starting the deployment"
            await deployment.begin()
            stage = "running the load"
            # An environment may generate the load itself (fortio Jobs inside a cluster).
            result = await deployment.run_load(run_spec, progress=self._runner_progress(spec))
            if result is None:
                result = await self._load(runner, run_spec, self._runner_progress(spec))
        except asyncio.CancelledError:
            # Only a runner that raises instead of returning its partial result gets here.
            cancelled = True
            error = f"cancelled while {stage}"
        except MeshlabError as exc:
            error = f"{stage} failed: {type(exc).__name__}: {exc}"
        finally:
            if deployment is not None:
                report, again = await complete(end_deployment(deployment))
                cancelled = cancelled or again
        if result is None and cancelled and stage != "running the load":
            return None, True
        if result is None:
            status = RunStatus.ABORTED if cancelled else RunStatus.FAILED
            result = empty_result(run_spec, runner, started, status, error)
        # The native runner swallows the cancellation and returns its partial result.
        cancelled = cancelled or _cancel_requested()
        merge_run(result, spec, run_spec, deployment, report, host, runner, exp_id)
        result.context["order"] = self.profile.order
        if settle is not None:
            result.context["dataplane_warmup"] = settle
        if self.profile.shuffled:
            result.context["order_seed"] = self.profile.seed
        apply_check(result, self.profile.slo)
        return result, cancelled

    def _fresh(self, deployment: Deployment, env: Environment) -> bool:
        """Whether the data plane is new to this experiment: its first deployment, or one
        the environment (re)started rather than reused (a playground for another mesh)."""
        if env.generates_load or self.profile.loads.dataplane_warmup_s <= 0:
            return False
        return not self.deployed or deployment.context.get("reused") is False

    async def _warm_up(self, runner: Runner, spec: RunSpec) -> dict[str, Any]:
        """Discarded load at the run's rate and connections right after the data plane came
        up: a fresh Envoy/nginx/haproxy (and its backend) answers its first seconds slower,
        which made the first repeat of each mesh look slower than the others."""
        seconds = self.profile.loads.dataplane_warmup_s
        self.emit("progress", phase="warmup", run_elapsed_s=0.0)
        warm = await self._load(runner, replace(spec, duration_s=seconds, warmup_s=0.0,
                                                max_requests=None), None)
        if _cancel_requested():
            raise asyncio.CancelledError
        return warmup_summary(warm)

    async def _load(self, runner: Runner, spec: RunSpec,
                    progress: Callable[[Progress], None] | None) -> RunResult:
        """`runner.run(spec)` in the experiment's worker process; in this process (with a
        warning) only when the runner cannot be sent there (a class defined in a notebook)."""
        try:
            result = await self.worker.run(runner, spec, progress=progress)
        except Unsendable as exc:
            result = await runner.run(spec, progress=progress)
            result.warnings.append(
                f"the load ran in the experiment's own process (drawing or storing there can "
                f"delay sends): runner {runner.name!r} cannot be sent to a worker process "
                f"({exc}); define it in an importable module")
        if self.worker.start_s is not None:
            result.context.setdefault("load_worker_start_s", round(self.worker.start_s, 3))
        return result


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())


def _environment(profile: Profile) -> Environment:
    # a package the environment needs and that is missing raises MissingDependency naming
    # the meshlab extra (meshlab.registry.ENVIRONMENTS)
    return environment_for(profile)


def _open_store(arg: Store | str | Path | None, stack: contextlib.ExitStack) -> Store | None:
    if arg is None:
        return None
    if isinstance(arg, str | Path):
        from meshlab.store import Store

        return stack.enter_context(Store(arg))
    return arg


def _as_profile(profile: Profile | str | Path) -> Profile:
    return profile if isinstance(profile, Profile) else Profile.load(profile)


async def arun_profile(
    profile: Profile | str | Path,
    *,
    store: Store | str | Path | None,
    progress: ExperimentProgress | None = None,
    runner_override: str | Runner | None = None,
    on_result: ResultCallback | None = None,
    stop_on_failure: bool | None = None,
) -> ExperimentOutcome:
    """Run every run of `profile` in order against its environment, storing each as it ends.

    Before the first run every spec is checked by the runner and the environment: a bad matrix
    raises one ProfileError; an uninstalled runner tool raises MissingDependency. The load runs
    in a worker process of the experiment's own. A run whose runner or deployment fails is
    stored as FAILED with the error text. After a broken run (failed, no successful response,
    or a deployment process died) the experiment stops with status FAILED and the outcome's
    `reason` says why; with `stop_on_failure=False` (default: the profile's `on_failure`) it
    goes on and every later run carries a warning. Cancelling the awaiting task stops
    the experiment: the partial run in flight is stored as ABORTED and an outcome with status
    ABORTED is returned, not raised. Any other exception (a bug, a store failure) marks the
    experiment FAILED and propagates. The environment is always closed. `store=None` keeps the
    results in memory only. `runner_override` is a runner name or instance used instead of the
    profile's. `progress` gets an ExperimentSnapshot per event; `on_result` each RunResult
    once it is stored.
    """
    exp = _Experiment(_as_profile(profile), store=store, progress=progress,
                      runner=runner_override, on_result=on_result,
                      stop_on_failure=stop_on_failure)
    return await exp.run()


# --- sync and background wrappers ----------------------------------------------------------

def run_profile(
    profile: Profile | str | Path,
    *,
    store: Store | str | Path | None,
    progress: ExperimentProgress | None = None,
    runner_override: str | Runner | None = None,
    on_result: ResultCallback | None = None,
    stop_on_failure: bool | None = None,
) -> ExperimentOutcome:
    """Blocking `arun_profile`. Inside a running event loop (a Jupyter cell) the experiment runs
    on a worker thread with its own loop; Ctrl-C or a kernel interrupt stops it, stores the
    partial run as aborted and returns the outcome with status ABORTED."""
    kwargs: dict[str, Any] = dict(store=store, progress=progress, runner_override=runner_override,
                                  on_result=on_result, stop_on_failure=stop_on_failure)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_blocking(arun_profile(profile, **kwargs))
    handle = start_profile(profile, **kwargs)
    try:
        return handle.result()
    except KeyboardInterrupt:
        handle.cancel()
        return handle.result()


def start_profile(
    profile: Profile | str | Path,
    *,
    store: Store | str | Path | None,
    progress: ExperimentProgress | None = None,
    runner_override: str | Runner | None = None,
    on_result: ResultCallback | None = None,
    stop_on_failure: bool | None = None,
) -> RunHandle:
    """Start `arun_profile` on a background thread and return its handle at once (a notebook
    kernel stays responsive; a widget polls `handle.progress` or passes `progress`)."""
    prof = _as_profile(profile)

    def start(progress_cb: ExperimentProgress) -> Coroutine[Any, Any, ExperimentOutcome]:
        return arun_profile(prof, store=store, progress=progress_cb,
                            runner_override=runner_override, on_result=on_result,
                            stop_on_failure=stop_on_failure)

    handle = RunHandle(prof.name, start, progress=progress)
    handle.start()
    return handle


