"""The one place meshlab drives an external load tool: subprocess in its own process group,
deadline (duration + grace), cancellation (SIGINT so the tool prints what it has, then SIGTERM,
then SIGKILL), and mapping every failure onto the error tree. Runners only build argv and parse.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import io
import math
import os
import shutil
import signal
import tempfile
import time
import warnings as _warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from meshlab.errors import OutputParseError, ProfileError, ToolFailed, ToolNotFound
from meshlab.profile import REDACTED, RunSpec, is_secret_name, redact_url
from meshlab.progress import Progress, ProgressCallback
from meshlab.results import Histogram, RunResult, RunStatus, new_run_id
from meshlab.runners.base import Runner, protocol_problem, shape_problem
from meshlab.shape import ConstantShape, mean_rate_rps, start_rate_rps

NATIVE_ALTERNATIVE = 'runner="native"'
BODY_FILE = "body.bin"            # input file name, relative to the tool's working directory
FILE_MARKER = "### meshlab-output-file: "
_STDERR_TAIL = 2000


# --- output documents -------------------------------------------------------------------------

def join_output(stdout: str, files: Mapping[str, str]) -> str:
    """stdout followed by each output file under a marker line: one text a parser takes whole
    (and a golden file stores whole)."""
    parts = [stdout]
    for name, text in files.items():
        parts.append(f"\n{FILE_MARKER}{name}\n{text}")
    return "".join(parts)


def split_output(document: str) -> tuple[str, dict[str, str]]:
    """Inverse of `join_output`: (stdout, {file name: text})."""
    chunks = document.split("\n" + FILE_MARKER)
    files: dict[str, str] = {}
    for chunk in chunks[1:]:
        name, _, text = chunk.partition("\n")
        files[name.strip()] = text
    return chunks[0], files


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret-bearing headers (`-H "Authorization: ..."`) and URL
    credentials (userinfo, `?access_token=`) redacted, for error messages and stored results."""
    out = []
    for arg in argv:
        name, sep, _ = arg.partition(":")
        if sep and name and " " not in name.strip() and is_secret_name(name.strip()):
            out.append(f"{name}: {REDACTED}")
        else:
            out.append(redact_url(arg))
    return out


def header_args(spec: RunSpec, flag: str = "-H", *, skip: Sequence[str] = ()) -> list[str]:
    """`-H "Name: value"` pairs for every header of the spec except those named in `skip`."""
    low = {s.lower() for s in skip}
    out: list[str] = []
    for name, value in spec.headers:
        if name.lower() not in low:
            out += [flag, f"{name}: {value}"]
    return out


def header_value(spec: RunSpec, name: str) -> str | None:
    for k, v in spec.headers:
        if k.lower() == name.lower():
            return v
    return None


def whole_seconds_problem(spec: RunSpec, tool: str) -> str | None:
    if spec.duration_s < 1 or spec.duration_s != math.floor(spec.duration_s):
        return (f"loads.duration_s: {tool} runs for whole seconds only, got {spec.duration_s:g}; "
                f"use 1, 2, 3 ... or {NATIVE_ALTERNATIVE}")
    return None


def whole_timeout_problem(spec: RunSpec, tool: str) -> str | None:
    """wrk's --timeout, hey's -t and ab's -s take whole seconds (hey: 0 means none)."""
    if spec.timeout_s < 1 or spec.timeout_s != math.floor(spec.timeout_s):
        return (f"request.timeout_s: {tool} takes a whole number of seconds, got "
                f"{spec.timeout_s:g}; use {max(1, math.ceil(spec.timeout_s))} or "
                f"{NATIVE_ALTERNATIVE}")
    return None


def spread_problem(spec: RunSpec, tool: str) -> str | None:
    """`spread_connections: false` (send on whichever connection is free) is an open-loop
    option; a tool pacing each connection at rate/connections cannot honour it."""
    if spec.rate_rps > 0 and not spec.spread_connections:
        return (f"loads.spread_connections: {tool} paces each connection at rate/connections "
                f"and cannot send on whichever connection is free; set spread_connections: "
                f"true or use {NATIVE_ALTERNATIVE}")
    return None


def request_log_rows(text: str, *, what: str, delimiter: str, columns: int,
                     usecols: Sequence[int] | None = None, time_columns: Sequence[int],
                     status_column: int) -> npt.NDArray[np.float64]:
    """The rows of a per-request log (hey's `-o csv`, h2load's `--log-file`) as floats, one
    row per request and `columns` columns (of `usecols` when given). Truncated or garbage
    text, a negative or non-finite time in `time_columns`, or a status outside 100..999 in
    `status_column` raises OutputParseError naming `what` ("hey CSV", "h2load log")."""
    lines = text.strip("\r\n")
    if not lines:
        return np.zeros((0, columns), dtype=np.float64)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            rows = np.loadtxt(io.StringIO(lines), delimiter=delimiter, dtype=np.float64, ndmin=2,
                              usecols=usecols, comments=None)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise OutputParseError(f"{what} is malformed or truncated: {exc}",
                               excerpt=lines[-300:]) from None
    if rows.shape[1] != columns:
        raise OutputParseError(f"{what} rows have {rows.shape[1]} columns, expected {columns}",
                               excerpt=lines[:300])
    if not np.isfinite(rows).all() or (rows[:, list(time_columns)] < 0).any():
        raise OutputParseError(f"{what} holds negative or non-finite times", excerpt=lines[:300])
    codes = rows[:, status_column]
    if ((codes < 100) | (codes > 999) | (codes != np.floor(codes))).any():
        raise OutputParseError(f"{what} holds a status code outside 100..999",
                               excerpt=lines[:300])
    return rows


# --- running a tool ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What one tool invocation produced. `stdout` already carries any output files."""

    argv: tuple[str, ...]
    stdout: str
    stderr: str
    returncode: int | None
    started_at: datetime
    ended_at: datetime
    interrupted: bool = False     # meshlab sent SIGINT (soft stop, deadline or cancellation)
    aborted: bool = False         # cancelled by the caller: the output is partial
    timed_out: bool = False       # still running at duration + grace

    @property
    def stderr_tail(self) -> str:
        return self.stderr[-_STDERR_TAIL:]


async def run_tool(
    argv: Sequence[str],
    *,
    tool: str,
    install: str = "",
    deadline_s: float,
    stop_after_s: float | None = None,
    input_files: Mapping[str, bytes] | None = None,
    output_files: Sequence[str] = (),
    output_tail_lines: Mapping[str, int] | None = None,
    interrupt_grace_s: float = 3.0,
) -> ToolOutput:
    """Run `argv` in a fresh temporary working directory holding `input_files`.

    `stop_after_s` sends SIGINT then (wrk, hey, ab and fortio print their report on SIGINT);
    past `deadline_s` the tool is interrupted, terminated, then killed and the output is marked
    timed out. Cancelling the awaiting task does the same and returns the partial output marked
    aborted instead of raising. A missing binary raises ToolNotFound with `install` (the
    runner's `install_hint`) as the hint. An output file named in
    `output_tail_lines` keeps its first line and its last N lines (ab's sorted `-g` table).
    """
    with tempfile.TemporaryDirectory(prefix=f"meshlab-{tool}-") as tmp:
        workdir = Path(tmp)
        for name, data in (input_files or {}).items():
            (workdir / name).write_bytes(data)
        started = datetime.now(UTC)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)        # own process group: signals reach only the tool
        except FileNotFoundError as exc:
            raise ToolNotFound(tool, install=install or f"install {tool}",
                               alternative=NATIVE_ALTERNATIVE) from exc
        except OSError as exc:
            raise ToolFailed(redact_argv(argv), -1, f"cannot start {tool}: {exc}") from exc
        comm = asyncio.ensure_future(proc.communicate())
        interrupted = aborted = timed_out = False
        t0 = time.monotonic()
        try:
            if stop_after_s is not None and stop_after_s < deadline_s:
                done, _ = await asyncio.wait({comm}, timeout=stop_after_s)
                if not done:
                    interrupted = True
                    _signal(proc, signal.SIGINT)
            remaining = max(deadline_s - (time.monotonic() - t0), 0.0)
            done, _ = await asyncio.wait({comm}, timeout=remaining)
            if not done:
                interrupted = timed_out = True
                await _stop(proc, comm, interrupt_grace_s)
        except asyncio.CancelledError:
            # The Runner contract: cancellation returns a partial result instead of raising.
            interrupted = aborted = True
            await _stop(proc, comm, interrupt_grace_s)
        finally:
            if proc.returncode is None:          # a second cancellation during _stop
                _signal(proc, signal.SIGKILL)
        out_b, err_b = comm.result() if comm.done() and not comm.cancelled() else (b"", b"")
        files = {}
        for name in output_files:
            path = workdir / name
            if path.is_file():
                limit = (output_tail_lines or {}).get(name)
                files[name] = _read_text(path, limit)
        return ToolOutput(
            argv=tuple(argv), stdout=join_output(out_b.decode("utf-8", "replace"), files),
            stderr=err_b.decode("utf-8", "replace"), returncode=proc.returncode,
            started_at=started, ended_at=datetime.now(UTC), interrupted=interrupted,
            aborted=aborted, timed_out=timed_out)


def _read_text(path: Path, tail_lines: int | None) -> str:
    data = path.read_bytes()
    if tail_lines is not None:
        head_end = data.find(b"\n") + 1
        cut = len(data.rstrip(b"\n"))
        for _ in range(tail_lines):
            cut = data.rfind(b"\n", head_end, cut)
            if cut < 0:
                cut = head_end - 1
                break
        if cut >= head_end:
            data = data[:head_end] + data[cut + 1:]
    return data.decode("utf-8", "replace")


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process, comm: asyncio.Future[tuple[bytes, bytes]],
                grace_s: float) -> None:
    """SIGINT (the tool prints its report), then SIGTERM, then SIGKILL to the process group."""
    steps = ((signal.SIGINT, grace_s), (signal.SIGTERM, min(grace_s, 2.0)), (signal.SIGKILL, 5.0))
    for sig, wait_s in steps:
        _signal(proc, sig)
        done, _ = await asyncio.wait({comm}, timeout=wait_s)
        if done:
            return


# --- the base class of external-tool runners --------------------------------------------------

class ToolRunner(Runner):
    """An external load tool: subclasses supply `binary`, `problems(spec)`, a pure
    `build_argv(spec)` and a pure `parse_output(stdout, *, spec)`; `run` is shared.

    `parse_output` returns run-independent fields only: run_id is "" and the timestamps are
    derived from the output (or the epoch); `run` fills them in from the actual invocation.
    """

    binary: ClassVar[str]
    output_files: ClassVar[tuple[str, ...]] = ()
    output_tail_lines: ClassVar[dict[str, int]] = {}
    warmup_whole_seconds: ClassVar[bool] = False
    warmup_min_s: ClassVar[float] = 0.0     # the tool's shortest run (k6 refuses < 1 s)
    interrupt_grace_s: float = 3.0     # after SIGINT, time to print the report before SIGTERM

    def is_available(self) -> bool:
        return shutil.which(self.binary) is not None

    def version(self) -> str:
        from meshlab.host import tool_version

        return tool_version(self.binary)

    def problems(self, spec: RunSpec) -> list[str]:
        """Every option of `spec` this tool cannot honour, as `path: what to do` lines."""
        return []

    def check(self, spec: RunSpec) -> None:
        unspoken = protocol_problem(self, spec)
        problems = [unspoken] if unspoken else self.problems(spec)
        unshaped = shape_problem(self, spec)
        if unshaped:
            problems = [unshaped, *problems]
        if problems:
            raise ProfileError(problems, source=f"runner {self.name}")

    @abc.abstractmethod
    def build_argv(self, spec: RunSpec) -> list[str]:
        """The full command line (pure). Input files are relative to the working directory."""

    @abc.abstractmethod
    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        """A RunResult from the tool's output (pure); raises OutputParseError only."""

    def input_files(self, spec: RunSpec) -> dict[str, bytes]:
        return {BODY_FILE: spec.body} if spec.body else {}

    def stop_after_s(self, spec: RunSpec) -> float | None:
        """When to send SIGINT for a graceful early stop (tools without a duration+count mode)."""
        return None

    def deadline_s(self, spec: RunSpec) -> float:
        """Kill the tool past this: the run plus in-flight requests timing out plus start-up."""
        return spec.duration_s + spec.timeout_s + 10.0

    def warmup_spec(self, spec: RunSpec) -> RunSpec | None:
        """The separate warm-up invocation: a shaped load warms up at the shape's starting
        rate, as the native runner does (None: a ramp from 0 sends nothing to warm up with)."""
        seconds = max(spec.warmup_s, self.warmup_min_s)
        if self.warmup_whole_seconds:
            seconds = float(max(1, math.ceil(seconds)))
        rate = spec.rate_rps
        if spec.shape.kind != "constant":
            rate = start_rate_rps(spec.shape, rate_rps=spec.rate_rps)
            if rate <= 0:
                return None
        return dataclasses.replace(spec, duration_s=seconds, warmup_s=0.0, max_requests=None,
                                   rate_rps=rate, shape=ConstantShape())

    async def run(self, spec: RunSpec, *, progress: ProgressCallback | None = None) -> RunResult:
        self.check(spec)
        if not self.is_available():
            raise ToolNotFound(self.binary, install=self.install_hint or f"install {self.binary}",
                               alternative=NATIVE_ALTERNATIVE)
        version = self.version()
        wspec = self.warmup_spec(spec) if spec.warmup_s > 0 else None
        if wspec is not None:
            # A separate invocation whose output is dropped: these tools cannot exclude a
            # warm-up window from one run's statistics.
            wout = await self._invoke(wspec, "warmup", progress)
            if wout.aborted:
                return self._aborted(spec, wout, version, "cancelled during warm-up")
            self._raise_for(wout, wspec)
        out = await self._invoke(spec, "measure", progress)
        if out.aborted:
            try:
                result = self.parse_output(out.stdout, spec=spec)
            except OutputParseError:
                return self._aborted(spec, out, version, "cancelled; the tool printed no report")
            result.status = RunStatus.ABORTED
            result.warnings.append("cancelled: partial data up to the cancellation")
        else:
            self._raise_for(out, spec)
            result = self.parse_output(out.stdout, spec=spec)
            if out.interrupted:
                result.warnings.append(f"{self.binary} was stopped with SIGINT at "
                                       f"{spec.duration_s:g} s (duration reached before "
                                       f"max_requests)")
        self._stamp(result, out, version)
        if progress:
            progress(Progress("done", result.duration_s, spec.duration_s, result.requests,
                              result.errors, result.service_time.percentile_us(50),
                              result.service_time.percentile_us(99), result.achieved_rate_rps))
        return result

    # internals --------------------------------------------------------------------------
    async def _invoke(self, spec: RunSpec, phase: str,
                      progress: ProgressCallback | None) -> ToolOutput:
        argv = self.build_argv(spec)
        argv[0] = shutil.which(argv[0]) or argv[0]
        ticker = None
        if progress is not None:
            ticker = asyncio.ensure_future(_tick(progress, phase, spec.duration_s))
        try:
            return await run_tool(argv, tool=self.binary, install=self.install_hint,
                                  deadline_s=self.deadline_s(spec),
                                  stop_after_s=self.stop_after_s(spec),
                                  input_files=self.input_files(spec),
                                  output_files=self.output_files,
                                  output_tail_lines=self.output_tail_lines,
                                  interrupt_grace_s=self.interrupt_grace_s)
        finally:
            if ticker is not None:
                ticker.cancel()

    def _raise_for(self, out: ToolOutput, spec: RunSpec) -> None:
        argv = redact_argv(out.argv)
        if out.timed_out:
            raise ToolFailed(argv, out.returncode if out.returncode is not None else -1,
                             out.stderr_tail + f"\n{self.binary} did not finish within "
                             f"{self.deadline_s(spec):g} s (duration + grace); it was stopped")
        # After our SIGINT a tool may exit non-zero (ab exits 1) with a complete report.
        if out.returncode != 0 and not out.interrupted:
            raise ToolFailed(argv, out.returncode if out.returncode is not None else -1,
                             out.stderr_tail or out.stdout[-_STDERR_TAIL:])

    def _stamp(self, result: RunResult, out: ToolOutput, version: str) -> None:
        result.run_id = result.run_id or new_run_id()
        result.ended_at = out.ended_at
        result.started_at = out.ended_at - timedelta(seconds=result.duration_s)
        result.runner = self.name
        result.spec["runner"] = self.name
        result.runner_version = version
        result.context.setdefault("tool_argv", redact_argv(out.argv))

    def _aborted(self, spec: RunSpec, out: ToolOutput, version: str, why: str) -> RunResult:
        result = RunResult(
            run_id=new_run_id(), spec=spec.to_dict(), status=RunStatus.ABORTED,
            started_at=out.started_at, ended_at=out.ended_at,
            duration_s=(out.ended_at - out.started_at).total_seconds(),
            requested_rate_rps=mean_rate_rps(spec.shape, rate_rps=spec.rate_rps),
            achieved_rate_rps=0.0, requests=0, errors=0,
            status_codes={}, error_kinds={}, latency=Histogram(), service_time=Histogram(),
            runner=self.name, runner_version=version, warnings=[why])
        result.context["tool_argv"] = redact_argv(out.argv)
        return result


async def _tick(progress: ProgressCallback, phase: str, total_s: float) -> None:
    """About once a second: the tools report nothing until they finish, so only time moves."""
    t0 = time.monotonic()
    while True:
        progress(Progress(phase, time.monotonic() - t0, total_s, 0, 0))
        await asyncio.sleep(1.0)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def base_result(spec: RunSpec, *, runner: str, duration_s: float, requests: int, errors: int,
                status_codes: dict[int, int], error_kinds: dict[str, int], latency: Histogram,
                started_at: datetime = EPOCH, warnings: list[str] | None = None) -> RunResult:
    """A closed-loop RunResult as the parsers build it (latency == service time)."""
    return RunResult(
        run_id="", spec=spec.to_dict(), status=RunStatus.COMPLETED, started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration_s), duration_s=duration_s,
        requested_rate_rps=mean_rate_rps(spec.shape, rate_rps=spec.rate_rps),
        achieved_rate_rps=requests / duration_s if duration_s > 0 else 0.0,
        requests=requests, errors=errors, status_codes=status_codes, error_kinds=error_kinds,
        latency=latency, service_time=latency.copy(), runner=runner,
        warnings=list(warnings or []))
