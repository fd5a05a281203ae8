"""The native load runner: open-loop (coordinated-omission-free) or closed-loop HTTP/1.1 load
from Python, on its own uvloop event loop, optionally split across worker processes.

Cancelling `run()` (task.cancel(), Jupyter's "interrupt kernel", which cancels the cell's task)
returns the partial result marked ABORTED. Ctrl-C in a terminal: `asyncio.run(runner.run(spec))`
(or `uvloop.run`) turns the first Ctrl-C into that cancellation since Python 3.11; with a bare
loop, map it yourself:

    task = loop.create_task(runner.run(spec))
    try:
        result = loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        result = loop.run_until_complete(task)      # status == RunStatus.ABORTED
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from meshlab.errors import ProfileError, RunnerError
from meshlab.profile import RunSpec
from meshlab.progress import Progress, ProgressCallback
from meshlab.results import (
    Histogram,
    RunResult,
    RunStatus,
    TimeSeriesPoint,
    new_run_id,
)
from meshlab.runners._engines import make_engine
from meshlab.runners._http import target_address
from meshlab.runners._partial import Partial, Second
from meshlab.runners.base import Runner
from meshlab.shape import SHAPE_KINDS, mean_rate_rps, seeded, split_shape

_STOP_GRACE_S = 10.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's. Measured here against nginx,
    64 connections: 3.2 us of CPU per request on uvloop, 4.3 us on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class NativeRunner(Runner):
    """Built-in load generator (`runner="native"`).

    `workers=0` (default) runs the load on a dedicated thread with its own uvloop loop, so the
    caller's loop (Jupyter's, say) neither slows nor disturbs the pacing; `in_thread=False` runs
    it on the caller's loop instead. `workers=N` splits connections, rate and max_requests over N
    spawned processes with one loop each and merges their histograms and counters (they are
    started with multiprocessing's "spawn": a script using workers needs the usual
    `if __name__ == "__main__":` guard). On 2 cores one process is as fast as two.
    """

    name: ClassVar[str] = "native"
    protocols: ClassVar[tuple[str, ...]] = ("http1", "h2c", "h2", "grpc", "tcp")
    shapes: ClassVar[tuple[str, ...]] = SHAPE_KINDS

    def __init__(self, *, workers: int = 0, in_thread: bool = True) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.in_thread = in_thread

    def version(self) -> str:
        from meshlab._version import __version__

        return __version__

    def check(self, spec: RunSpec) -> None:
        super().check(spec)
        target_address(spec.target)
        from meshlab.profile import PROTOCOL_SCHEMES

        scheme = spec.target.partition("://")[0].lower()
        if scheme not in PROTOCOL_SCHEMES.get(spec.protocol, ()):
            raise ProfileError(f"target: {spec.protocol} cannot be sent to a {scheme}:// target "
                               f"({spec.target}); use "
                               f"{' or '.join(s + '://' for s in PROTOCOL_SCHEMES[spec.protocol])}")
        if self.workers > spec.connections:
            raise ProfileError(f"connections: {spec.connections} connections cannot be split "
                               f"over {self.workers} workers; use at least one per worker")

    async def run(self, spec: RunSpec, *, progress: ProgressCallback | None = None) -> RunResult:
        self.check(spec)
        # a Poisson shape without a seed gets one now; the result's spec records it
        spec = dataclasses.replace(spec, shape=seeded(spec.shape))
        if self.workers:
            partials = await _run_workers(spec, self.workers, progress)
        elif self.in_thread:
            partials = [await _run_in_thread(spec, progress)]
        else:
            partials = [await make_engine(spec, progress=progress).run()]
        return build_result(spec, partials, version=self.version())


# --- one engine on a private thread -----------------------------------------------------------

async def _run_in_thread(spec: RunSpec, progress: ProgressCallback | None) -> Partial:
    caller = asyncio.get_running_loop()
    cb: ProgressCallback | None = None
    if progress is not None:
        user = progress

        def cb(p: Progress) -> None:
            caller.call_soon_threadsafe(user, p)

    engine = make_engine(spec, progress=cb)
    fut: concurrent.futures.Future[Partial] = concurrent.futures.Future()
    started = threading.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []

    def main() -> None:
        _block_signals()
        loop = new_event_loop()
        loop_box.append(loop)
        started.set()
        try:
            fut.set_result(loop.run_until_complete(engine.run()))
        except BaseException as exc:  # handed to the awaiting caller
            fut.set_exception(exc)
        finally:
            drain_loop(loop)
            loop.close()

    thread = threading.Thread(target=main, name="meshlab-native", daemon=True)
    thread.start()
    started.wait()

    def stop() -> None:
        loop_box[0].call_soon_threadsafe(engine.stop)

    partial: Partial = await _await_stoppable(fut, stop)
    return partial


def _block_signals() -> None:
    """Leave SIGINT to the main thread: delivered to a helper thread, asyncio.run's handler
    would wait for the main thread's next wake-up (the end of the run) before cancelling."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


async def _await_stoppable(fut: concurrent.futures.Future[Any], stop: Callable[[], None]) -> Any:
    """Await `fut`; on cancellation call `stop()` and still wait for (and return) its result."""
    wrapped = asyncio.wrap_future(fut)
    try:
        return await asyncio.shield(wrapped)
    except asyncio.CancelledError:
        stop()
        deadline = time.monotonic() + _STOP_GRACE_S
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(wrapped),
                                              max(deadline - time.monotonic(), 0.01))
            except asyncio.CancelledError:   # a second cancel while stopping: keep stopping
                continue
            except TimeoutError as exc:
                raise RunnerError("native runner did not stop within "
                                  f"{_STOP_GRACE_S:.0f} s of cancellation") from exc


# --- worker processes -------------------------------------------------------------------------

def _share(total: int, n: int, i: int) -> int:
    return total // n + (1 if i < total % n else 0)


def drain_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let the tasks the engine cancelled at its end (a connect or TLS handshake in flight)
    finish cancelling before the loop closes, so no transport is left open (closing a loop
    with a handshake in flight fails with EBUSY)."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def worker_specs(spec: RunSpec, workers: int) -> list[RunSpec]:
    """Split connections, rate and max_requests of `spec` over `workers` processes."""
    out = []
    for i in range(workers):
        mr = None if spec.max_requests is None else max(_share(spec.max_requests, workers, i), 1)
        out.append(dataclasses.replace(
            spec, connections=_share(spec.connections, workers, i),
            rate_rps=spec.rate_rps / workers, max_requests=mr,
            shape=split_shape(spec.shape, workers, i)))
    return out


def _worker_main(spec: RunSpec, pipe: multiprocessing.connection.Connection) -> None:
    """Entry point of a worker process: connect, report ready, start at the parent's t0."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # the parent handles Ctrl-C
    loop = new_event_loop()

    async def gate() -> int:
        pipe.send("ready")
        msg = pipe.recv()                                 # ("start", t0_ns) or "stop"
        if msg == "stop":
            engine.stop()
            return time.perf_counter_ns()
        loop.add_reader(pipe.fileno(), _on_parent)
        return int(msg[1])

    def _on_parent() -> None:
        loop.remove_reader(pipe.fileno())
        with contextlib.suppress(EOFError, OSError):
            pipe.recv()
        engine.stop()

    def report(p: Progress) -> None:
        with contextlib.suppress(OSError, ValueError):
            pipe.send(("progress", p))

    engine = make_engine(spec, progress=report, keep_second_buckets=True, start_gate=gate)
    try:
        partial = loop.run_until_complete(engine.run())
        pipe.send(("ok", partial.to_dict()))
    except Exception as exc:  # reported to the parent, which raises
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        drain_loop(loop)
        loop.close()
        pipe.close()


async def _run_workers(spec: RunSpec, workers: int,
                       progress: ProgressCallback | None) -> list[Partial]:
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    pipes: list[multiprocessing.connection.Connection] = []
    loop = asyncio.get_running_loop()
    for sub in worker_specs(spec, workers):
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=_worker_main, args=(sub, child_end), daemon=True,
                        name="meshlab-native-worker")
        p.start()
        child_end.close()
        procs.append(p)
        pipes.append(parent_end)

    def stop_all() -> None:
        for pipe in pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send("stop")

    latest: dict[int, Progress] = {}

    def forward(i: int, p: Progress) -> None:
        """Worker 0 paces the reports; the others' latest numbers are added in."""
        latest[i] = p
        if progress is None or i != min(latest):
            return
        ps = list(latest.values())
        loop.call_soon_threadsafe(progress, Progress(
            p.phase, p.elapsed_s, p.total_s, sum(q.requests for q in ps),
            sum(q.errors for q in ps), p.last_p50_us, max(q.last_p99_us for q in ps),
            sum(q.last_rate_rps for q in ps)))

    def collect() -> list[Partial]:
        _block_signals()
        for pipe in pipes:                        # everyone connected: start together
            if pipe.recv() != "ready":
                raise RunnerError("native worker sent an unexpected message")
        t0 = time.perf_counter_ns() + 50_000_000  # CLOCK_MONOTONIC is shared by processes
        for pipe in pipes:
            with contextlib.suppress(OSError):    # a worker told to stop may be gone already
                pipe.send(("start", t0))
        out: dict[int, Partial] = {}
        while len(out) < len(pipes):
            waiting = [p for i, p in enumerate(pipes) if i not in out]
            for ready in multiprocessing.connection.wait(waiting):
                assert isinstance(ready, multiprocessing.connection.Connection)
                i = pipes.index(ready)
                kind, payload = ready.recv()
                if kind == "progress":
                    forward(i, payload)
                elif kind == "ok":
                    out[i] = Partial.from_dict(payload)
                    latest.pop(i, None)
                else:
                    raise RunnerError(f"native worker failed: {payload}")
        return [out[i] for i in range(len(pipes))]

    fut = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="meshlab-workers")
    try:
        cf = fut.submit(collect)
        try:
            result: list[Partial] = await _await_stoppable(cf, stop_all)
        except EOFError as exc:
            raise RunnerError("a native worker process died; see its stderr") from exc
        return result
    finally:
        stop_all()                                # no-op for workers that finished
        fut.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            await loop.run_in_executor(None, p.join, 5.0)
            if p.is_alive():
                p.kill()
        for pipe in pipes:
            pipe.close()


# --- the result -------------------------------------------------------------------------------

def build_result(spec: RunSpec, partials: list[Partial], *, version: str) -> RunResult:
    """Merge engine measurements (one per process) into the RunResult of `spec`."""
    from meshlab.host import host_snapshot

    latency = Histogram.merged(p.latency for p in partials)
    service = Histogram.merged(p.service_time for p in partials)
    codes: dict[int, int] = {}
    kinds: dict[str, int] = {}
    for p in partials:
        for c, n in p.status_codes.items():
            codes[c] = codes.get(c, 0) + n
        for k, n in p.error_kinds.items():
            kinds[k] = kinds.get(k, 0) + n
    if spec.protocol == "grpc":
        codes, kinds = grpc_statuses(codes, kinds)
    requests = sum(p.requests for p in partials)
    duration = max((p.duration_s for p in partials), default=0.0)
    aborted = any(p.aborted for p in partials)
    context: dict[str, Any] = {"workers": len(partials)} if len(partials) > 1 else {}
    if spec.shape.kind != "constant":   # where the window sat on the shape (it starts late
        # by the event loop's lateness: tens of ms on a loaded machine)
        context["shape_window_start_s"] = round(min(p.window_start_s for p in partials), 6)
    if duration > 0:    # the busiest sending thread's share of one core over the window
        context["sender_cpu_percent"] = round(
            100.0 * max(p.cpu_s / p.duration_s if p.duration_s > 0 else 0.0 for p in partials), 1)
    return RunResult(
        run_id=new_run_id(),
        spec=spec.to_dict(),
        status=RunStatus.ABORTED if aborted else RunStatus.COMPLETED,
        started_at=min(p.started_at for p in partials),
        ended_at=max(p.ended_at for p in partials),
        duration_s=duration,
        requested_rate_rps=mean_rate_rps(spec.shape, rate_rps=spec.rate_rps),
        achieved_rate_rps=requests / duration if duration > 0 else 0.0,
        requests=requests,
        errors=sum(p.errors for p in partials),
        status_codes=dict(sorted(codes.items())),
        error_kinds=dict(sorted(kinds.items())),
        latency=latency,
        service_time=service,
        timeseries=_timeseries(partials),
        host=host_snapshot(),
        runner="native",
        runner_version=version,
        warnings=[w for p in partials for w in p.warnings],
        bytes_received=sum(p.bytes_received for p in partials),
        context=context,
        unsent_requests=sum(p.unsent_requests for p in partials),
    )


def grpc_statuses(codes: dict[int, int],
                  kinds: dict[str, int]) -> tuple[dict[int, int], dict[str, int]]:
    """gRPC runs: codes other than OK (counted as status 600 + code, so they are errors with a
    latency like an HTTP 503) become error kinds `grpc_unavailable` ...; OK stays status 200."""
    from meshlab.wire import GRPC_CODES, GRPC_STATUS_BASE

    out_codes: dict[int, int] = {}
    out_kinds = dict(kinds)
    for code, n in codes.items():
        grpc = code - GRPC_STATUS_BASE
        if 0 < grpc < len(GRPC_CODES):
            key = f"grpc_{GRPC_CODES[grpc]}"
            out_kinds[key] = out_kinds.get(key, 0) + n
        else:
            out_codes[code] = n
    return out_codes, dict(sorted(out_kinds.items()))


def _timeseries(partials: list[Partial]) -> list[TimeSeriesPoint]:
    if len(partials) == 1:
        return [TimeSeriesPoint(i, s.requests, s.errors, s.p50_us, s.p99_us)
                for i, s in enumerate(partials[0].seconds)]
    out = []
    for i in range(max(len(p.seconds) for p in partials)):
        secs: list[Second] = [p.seconds[i] for p in partials if i < len(p.seconds)]
        h = Histogram.merged(Histogram.from_buckets(s.buckets or []) for s in secs)
        out.append(TimeSeriesPoint(i, sum(s.requests for s in secs), sum(s.errors for s in secs),
                                   h.percentile_us(50), h.percentile_us(99)))
    return out
