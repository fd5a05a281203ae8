"""Experiment orchestration against the real echo server, the native runner and a DuckDB file."""

from __future__ import annotations

import _thread
import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import meshlab.experiment as experiment
from meshlab.environments.base import Deployment, DeploymentReport
from meshlab.environments.direct import DirectEnvironment
from meshlab.errors import MissingDependency, PlaygroundError, ProfileError, ToolFailed
from meshlab.experiment import (
    ExperimentStatus,
    arun_profile,
    run_profile,
    start_profile,
)
from meshlab.experiment._worker import LoadWorker
from meshlab.profile import Profile, RunSpec
from meshlab.progress import ExperimentSnapshot, ProgressCallback
from meshlab.results import RunResult, RunStatus, TelemetrySample
from meshlab.runners.native import NativeRunner
from meshlab.store import Store

SECRET = "Bearer s3cr3t-token-value"


def _profile(url: str, **loads: Any) -> Profile:
    load = {"rate_rps": [200, 300], "connections": 2, "duration_s": 0.5, "warmup_s": 0.0,
            "dataplane_warmup_s": 0.0}
    load.update(loads)
    return Profile.from_dict({"name": "exp-test", "target": url, "loads": load,
                              "request": {"headers": {"Authorization": SECRET}}})


# --- a recording environment (the real DirectEnvironment plus what the experiment told it) ---

class _RecordingDeployment(Deployment):
    def __init__(self, spec: RunSpec, env: _RecordingEnvironment) -> None:
        self.target_url = spec.target
        self.context = {"environment": "direct", "data_plane": "test-proxy"}
        self.env = env

    async def begin(self) -> None:
        self.env.events.append("begin")

    async def end(self) -> DeploymentReport:
        self.env.events.append("end")
        return DeploymentReport(
            telemetry=[TelemetrySample(t_s=0.1, source="test-proxy", metric="cpu_percent",
                                       value=12.5)],
            warnings=["sidecar test-proxy restarted once"],
            context={"proxy_version": "9.9"})


class _RecordingEnvironment(DirectEnvironment):
    instances: ClassVar[list[_RecordingEnvironment]] = []
    fail_rates: ClassVar[tuple[float, ...]] = ()

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.events: list[str] = []
        _RecordingEnvironment.instances.append(self)

    async def deploy(self, spec: RunSpec) -> Deployment:
        self.events.append("deploy")
        if spec.rate_rps in self.fail_rates:
            raise PlaygroundError(f"proxy for rate {spec.rate_rps:g} did not become ready")
        return _RecordingDeployment(spec, self)

    async def close(self) -> None:
        self.events.append("close")


@pytest.fixture
def recording_env(monkeypatch: pytest.MonkeyPatch) -> type[_RecordingEnvironment]:
    _RecordingEnvironment.instances = []
    _RecordingEnvironment.fail_rates = ()
    monkeypatch.setattr(experiment, "environment_for", _RecordingEnvironment)
    return _RecordingEnvironment


class _FlakyRunner(NativeRunner):
    """The native runner, except that a tool "fails" at one rate (loopback cannot fail it)."""

    async def run(self, spec: RunSpec, *, progress: ProgressCallback | None = None) -> RunResult:
        if spec.rate_rps == 300:
            raise ToolFailed(["wrk", "-H", f"Authorization: {SECRET}", spec.target], 1, "boom")
        return await super().run(spec, progress=progress)


class _MissingRunner(NativeRunner):
    def is_available(self) -> bool:
        return False


@pytest.fixture(scope="module")
def _module_worker() -> Iterator[LoadWorker]:
    worker = LoadWorker()
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture
def one_worker(_module_worker: LoadWorker) -> Iterator[LoadWorker]:
    """The experiments of a test that asks for it run in one load worker process kept for the
    whole module (the tests about storing, progress, order, warm-up and failures, not those
    about the worker itself): each would otherwise start its own, a Python start-up and
    meshlab's imports (~1 s, 2-3 s on a busy machine)."""
    with experiment.shared_load_worker(_module_worker) as worker:
        yield worker


# --- tests ----------------------------------------------------------------------------------

def test_runs_store_and_report_progress(echo_url: str, tmp_path: Path, one_worker: LoadWorker,
                                        recording_env: type[_RecordingEnvironment]) -> None:
    snaps: list[ExperimentSnapshot] = []
    seen: list[RunResult] = []
    db = tmp_path / "m.duckdb"
    out = run_profile(_profile(echo_url), store=db, progress=snaps.append,
                      on_result=seen.append)
    assert out.status == ExperimentStatus.COMPLETED and out.ok
    assert [r.status for r in out.results] == [RunStatus.COMPLETED] * 2
    assert [r.run_id for r in seen] == out.run_ids
    assert [r.requested_rate_rps for r in out.results] == [200.0, 300.0]
    for r in out.results:
        assert r.requests > 0 and r.errors == 0
        assert r.context["experiment_id"] == out.experiment_id
        assert r.context["data_plane"] == "test-proxy" and r.context["proxy_version"] == "9.9"
        assert "sidecar test-proxy restarted once" in r.warnings
        assert r.host is not None and r.spec["headers"]["Authorization"] == "<redacted>"

    env = recording_env.instances[0]
    assert env.events == ["deploy", "begin", "end"] * 2 + ["close"]

    events = [s.event for s in snaps]
    assert events[0] == "start" and events[-1] == "end"
    assert events.count("run_start") == 2 and events.count("run_end") == 2
    assert "progress" in events
    assert [s.finished_runs for s in snaps] == sorted(s.finished_runs for s in snaps)
    assert snaps[-1].status == "completed" and snaps[-1].fraction_done == 1.0
    assert all(s.experiment_id == out.experiment_id for s in snaps)

    store = Store(db, read_only=True)
    runs = store.runs(experiment_id=out.experiment_id)
    assert sorted(runs["run_id"]) == sorted(out.run_ids)
    assert set(runs["status"]) == {"completed"}
    exps = store.experiments()
    assert list(exps["status"]) == ["completed"]
    tel = store.telemetry(out.run_ids)
    assert set(tel["metric"]) == {"cpu_percent"} and len(tel) == 2
    assert SECRET not in "".join(runs["spec"]) + "".join(exps["profile"])


def test_bad_matrix_fails_before_the_first_run(echo_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    prof = _profile(echo_url, connections=[1, 2])
    with pytest.raises(ProfileError) as info:
        run_profile(prof, store=db, runner_override=NativeRunner(workers=3))
    assert len(info.value.problems) == 2          # one per bad connection count, one error
    assert all(p.startswith("connections:") for p in info.value.problems)
    assert not db.exists() or Store(db).runs().empty


def test_missing_runner_tool_is_reported_up_front(echo_url: str) -> None:
    with pytest.raises(MissingDependency, match="native"):
        run_profile(_profile(echo_url), store=None, runner_override=_MissingRunner())


def test_failed_run_is_stored_and_the_experiment_goes_on(echo_url: str, tmp_path: Path,
                                                         one_worker: LoadWorker) -> None:
    db = tmp_path / "m.duckdb"
    prof = _profile(echo_url, rate_rps=[300, 200])
    out = run_profile(prof, store=db, runner_override=_FlakyRunner(), stop_on_failure=False)
    assert out.status == ExperimentStatus.COMPLETED and not out.ok and out.reason == ""
    failed, done = out.results
    assert failed.status == RunStatus.FAILED and done.status == RunStatus.COMPLETED
    assert any("earlier run of this experiment is broken" in w for w in done.warnings)
    assert not any("earlier run" in w for w in failed.warnings)
    assert failed.error is not None and "ToolFailed" in failed.error and "boom" in failed.error
    assert SECRET not in failed.error and "<redacted>" in failed.error
    stored = Store(db).load(failed.run_id)
    assert stored.status == RunStatus.FAILED and stored.error == failed.error


def test_stop_on_failure_is_the_default(echo_url: str, one_worker: LoadWorker) -> None:
    prof = _profile(echo_url, rate_rps=[300, 200])
    out = run_profile(prof, store=None, runner_override=_FlakyRunner())
    assert out.status == ExperimentStatus.FAILED
    assert [r.status for r in out.results] == [RunStatus.FAILED]
    assert out.experiment_id.startswith("exp-")
    assert "run 1" in out.reason and "ToolFailed" in out.reason and SECRET not in out.reason


def _closed_port_url() -> str:
    with socket.socket() as s:        # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.mark.parametrize("on_failure", ["stop", "continue"])
def test_a_run_without_any_success_stops_the_experiment(on_failure: str, tmp_path: Path,
                                                        one_worker: LoadWorker) -> None:
    """Nothing listens: every request is refused. The run is stored, and then the experiment
    stops as failed (default) or goes on with a warning on every later run."""
    prof = Profile.from_dict({"name": "refused", "target": _closed_port_url(), "repeats": 2,
                              "on_failure": on_failure,
                              "loads": {"rate_rps": 100, "connections": 1, "duration_s": 0.3,
                                        "warmup_s": 0.0, "dataplane_warmup_s": 0.0}})
    snaps: list[ExperimentSnapshot] = []
    db = tmp_path / "m.duckdb"
    out = run_profile(prof, store=db, progress=snaps.append)
    first = out.results[0]
    assert first.requests > 0 and first.errors == first.requests
    if on_failure == "stop":
        assert out.status == ExperimentStatus.FAILED and len(out.results) == 1
        assert "no successful response" in out.reason and first.run_id in out.reason
        assert snaps[-1].event == "end" and snaps[-1].reason == out.reason
        assert list(Store(db, read_only=True).experiments()["status"]) == ["failed"]
    else:
        assert out.status == ExperimentStatus.COMPLETED and len(out.results) == 2
        assert any("no successful response" in w for w in out.results[1].warnings)
    assert len(Store(db, read_only=True).runs()) == len(out.results)


def test_load_runs_in_a_worker_process(echo_url: str) -> None:
    """Whichever face starts it, the load is generated by another process than the caller's
    (drawing in a notebook kernel cannot delay a send); one worker serves every run."""
    async def cell() -> experiment.ExperimentOutcome:       # a Jupyter cell: loop running
        return run_profile(_profile(echo_url, duration_s=0.3), store=None)

    for out in (run_profile(_profile(echo_url, duration_s=0.3), store=None), asyncio.run(cell())):
        assert out.ok
        pids = {r.context["load_worker_pid"] for r in out.results}
        assert len(pids) == 1 and os.getpid() not in pids
        assert all(r.context["load_worker_start_s"] > 0 for r in out.results)


def test_a_runner_that_cannot_travel_runs_in_process_with_a_warning(echo_url: str) -> None:
    class LocalRunner(NativeRunner):      # a local class cannot be pickled
        pass

    out = run_profile(_profile(echo_url, rate_rps=100, duration_s=0.3), store=None,
                      runner_override=LocalRunner())
    (r,) = out.results
    assert r.status == RunStatus.COMPLETED and "load_worker_pid" not in r.context
    assert any("cannot be sent to a worker process" in w for w in r.warnings)


def _order(out: experiment.ExperimentOutcome) -> list[tuple[int, str]]:
    return [(int(r.spec["repeat"]), str(r.spec["mesh"])) for r in out.results]


def test_interleaved_order_is_a_seeded_permutation_per_repeat(echo_url: str, one_worker: LoadWorker,
                                                              tmp_path: Path) -> None:
    meshes = ["a", "b", "c", "d"]
    prof = Profile.from_dict({"name": "order", "target": echo_url, "meshes": meshes,
                              "repeats": 3, "loads": {"rate_rps": 100, "connections": 1,
                                                      "duration_s": 0.1, "warmup_s": 0.0,
                                                      "dataplane_warmup_s": 0.0}})
    db = tmp_path / "m.duckdb"
    out = run_profile(prof, store=db)
    assert out.ok and out.seed is not None
    stored = json.loads(Store(db, read_only=True).experiments()["profile"][0])
    assert stored["seed"] == out.seed and stored["order"] == "interleaved"
    order = _order(out)
    for repeat in range(3):
        assert sorted(m for r, m in order if r == repeat) == meshes
    assert [r for r, _ in order] == sorted(r for r, _ in order)
    assert {r.context["order_seed"] for r in out.results} == {out.seed}
    assert all(r.context["order"] == "interleaved" for r in out.results)
    # the stored seed replays the same order, without running anything
    replay = prof.model_copy(update={"seed": out.seed})
    assert [(s.repeat, s.mesh) for s in replay.expand()] == order
    # sequential keeps the order written
    seq = Profile.from_dict({**prof.to_dict(redact=False), "order": "sequential"})
    assert [s.mesh for s in seq.expand()] == meshes * 3


def test_deploy_failure_is_a_failed_run(echo_url: str, one_worker: LoadWorker,
                                        recording_env: type[_RecordingEnvironment]) -> None:
    recording_env.fail_rates = (200.0,)
    out = run_profile(_profile(echo_url), store=None, stop_on_failure=False)
    assert [r.status for r in out.results] == [RunStatus.FAILED, RunStatus.COMPLETED]
    assert "deploying the run failed" in (out.results[0].error or "")
    assert "did not become ready" in (out.results[0].error or "")
    assert recording_env.instances[0].events[-1] == "close"


def _wait_measuring(handle: experiment.RunHandle, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snap = handle.progress
        if snap is not None and snap.phase == "measure" and snap.requests > 0:
            return
        assert not handle.done(), "the experiment ended before it measured anything"
        time.sleep(0.05)
    pytest.fail("no measured requests reported within 20 s")


def test_cancel_in_background_stores_an_aborted_run(
        echo_url: str, tmp_path: Path, recording_env: type[_RecordingEnvironment]) -> None:
    db = tmp_path / "m.duckdb"
    handle = start_profile(_profile(echo_url, duration_s=30), store=db)
    try:
        _wait_measuring(handle)
        assert handle.experiment_id is not None and not handle.done()
    finally:
        handle.cancel()
    out = handle.result(timeout=20)
    assert handle.done() and out.status == ExperimentStatus.ABORTED
    assert len(out.results) == 1
    partial = out.results[0]
    assert partial.status == RunStatus.ABORTED and partial.requests > 0
    assert partial.duration_s < 30
    # the partial result came back from the worker process that generated the load
    assert partial.context["load_worker_pid"] != os.getpid()
    store = Store(db, read_only=True)
    assert list(store.runs()["status"]) == ["aborted"]
    assert list(store.experiments()["status"]) == ["aborted"]
    assert recording_env.instances[0].events == ["deploy", "begin", "end", "close"]


def test_cancelling_the_task_returns_an_aborted_outcome(echo_url: str) -> None:
    async def main() -> experiment.ExperimentOutcome:
        snaps: list[ExperimentSnapshot] = []
        task = asyncio.create_task(arun_profile(_profile(echo_url, duration_s=30), store=None,
                                                progress=snaps.append))
        for _ in range(400):
            await asyncio.sleep(0.05)
            if snaps and snaps[-1].phase == "measure" and snaps[-1].requests > 0:
                break
        task.cancel()
        return await task

    out = asyncio.run(main())
    assert out.status == ExperimentStatus.ABORTED
    assert [r.status for r in out.results] == [RunStatus.ABORTED]


def test_run_profile_inside_a_running_loop(echo_url: str) -> None:
    """A Jupyter cell calls run_profile while the kernel's loop runs in the same thread."""
    async def cell() -> experiment.ExperimentOutcome:
        return run_profile(_profile(echo_url, rate_rps=100, duration_s=0.3), store=None)

    out = asyncio.run(cell())
    assert out.ok and len(out.results) == 1


def test_start_profile_reraises_errors(echo_url: str) -> None:
    handle = start_profile(_profile(echo_url, connections=[1]), store=None,
                           runner_override=NativeRunner(workers=2))
    with pytest.raises(ProfileError):
        handle.result(timeout=20)
    assert handle.done()


def test_kernel_interrupt_inside_a_running_loop(echo_url: str) -> None:
    """Jupyter's "interrupt kernel" raises KeyboardInterrupt in the thread blocked in
    run_profile: the run in flight is stored as aborted and the outcome returned."""
    snaps: list[ExperimentSnapshot] = []

    def interrupt_when_measuring() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if snaps and snaps[-1].phase == "measure" and snaps[-1].requests > 0:
                break
            time.sleep(0.05)
        _thread.interrupt_main()

    async def cell() -> experiment.ExperimentOutcome:
        return run_profile(_profile(echo_url, duration_s=30), store=None, progress=snaps.append)

    loop = asyncio.new_event_loop()      # a kernel's loop: no asyncio.Runner SIGINT handler
    timer = threading.Thread(target=interrupt_when_measuring, daemon=True)
    try:
        timer.start()
        out = loop.run_until_complete(cell())
    finally:
        loop.close()
        timer.join(30)
    assert out.status == ExperimentStatus.ABORTED
    assert [r.status for r in out.results] == [RunStatus.ABORTED]
    assert out.results[0].requests > 0


def test_outcome_repr_and_frame(echo_url: str, one_worker: LoadWorker) -> None:
    out = run_profile(_profile(echo_url, rate_rps=[100, 150], duration_s=0.3), store=None)
    assert repr(out).endswith("status='completed', runs=2 [completed=2])")
    assert {r.context["load_worker_pid"] for r in out.results} == {one_worker.pid}
    df = out.to_frame()
    assert list(df["run_id"]) == out.run_ids and set(df["mesh"]) == {"none"}
    line = json.loads(json.dumps(out.summaries()[0]))
    for key in ("run_id", "status", "requested_rate_rps", "achieved_rate_rps", "p99_us",
                "uncorrected_p99_us"):
        assert key in line


class _InClusterDeployment(_RecordingDeployment):
    async def run_load(self, spec: RunSpec, *,
                       progress: ProgressCallback | None = None) -> RunResult | None:
        self.env.events.append("run_load")
        result = await NativeRunner().run(spec, progress=progress)
        result.runner = "in-cluster"
        return result


class _InClusterEnvironment(_RecordingEnvironment):
    generates_load = True

    async def deploy(self, spec: RunSpec) -> Deployment:
        self.events.append("deploy")
        return _InClusterDeployment(spec, self)


def test_environment_that_generates_the_load(echo_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Like Kubernetes (fortio Jobs in the cluster): the local runner is neither checked nor
    used, so a runner whose tool is missing here does not matter."""
    _RecordingEnvironment.instances = []
    monkeypatch.setattr(experiment, "environment_for", _InClusterEnvironment)
    out = run_profile(_profile(echo_url, rate_rps=100, duration_s=0.3), store=None,
                      runner_override=_MissingRunner())
    assert out.ok and [r.runner for r in out.results] == ["in-cluster"]
    assert _RecordingEnvironment.instances[0].events == ["deploy", "begin", "run_load", "end",
                                                         "close"]


class _SlowEnvironment(_RecordingEnvironment):
    async def deploy(self, spec: RunSpec) -> Deployment:
        self.events.append("deploy")
        await asyncio.sleep(30)          # a playground that takes long to come up
        return _RecordingDeployment(spec, self)


def test_cancel_while_deploying_stores_no_run(echo_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _RecordingEnvironment.instances = []
    monkeypatch.setattr(experiment, "environment_for", _SlowEnvironment)
    db = tmp_path / "m.duckdb"
    handle = start_profile(_profile(echo_url), store=db)
    deadline = time.monotonic() + 20
    while (handle.progress is None or handle.progress.event != "run_start") and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    handle.cancel()
    out = handle.result(timeout=20)
    assert out.status == ExperimentStatus.ABORTED and out.results == []
    store = Store(db, read_only=True)
    assert store.runs().empty and list(store.experiments()["status"]) == ["aborted"]
    assert _RecordingEnvironment.instances[0].events == ["deploy", "close"]


class _RestartingDeployment(_RecordingDeployment):
    def __init__(self, spec: RunSpec, env: _RecordingEnvironment) -> None:
        super().__init__(spec, env)
        self.context = {**self.context, "reused": False}   # a playground started for this run


class _RestartingEnvironment(_RecordingEnvironment):
    async def deploy(self, spec: RunSpec) -> Deployment:
        self.events.append("deploy")
        return _RestartingDeployment(spec, self)


@pytest.mark.parametrize("restarts", [False, True])
def test_data_plane_warm_up_after_each_restart(echo_url: str, restarts: bool,
                                               monkeypatch: pytest.MonkeyPatch,
                                               one_worker: LoadWorker) -> None:
    """Discarded load precedes the first run of an experiment and every run whose data plane
    was (re)started; a reused one is not warmed again. The run's own numbers exclude it."""
    _RecordingEnvironment.instances = []
    monkeypatch.setattr(experiment, "environment_for",
                        _RestartingEnvironment if restarts else _RecordingEnvironment)
    out = run_profile(_profile(echo_url, rate_rps=[200, 300], duration_s=0.5,
                               dataplane_warmup_s=0.5), store=None)
    assert out.ok
    warmed = [r.context.get("dataplane_warmup") for r in out.results]
    assert warmed[0] is not None and warmed[0]["requests"] > 0 and warmed[0]["errors"] == 0
    assert (warmed[1] is not None) == restarts
    for r in out.results:                # 0.5 s at the run's rate, not 1 s
        assert r.requests <= r.requested_rate_rps * 0.5 * 1.2
