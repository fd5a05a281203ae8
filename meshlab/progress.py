"""Experiment progress: the `ExperimentSnapshot` every progress callback receives (widgets wire a
bar to it) and `TerminalProgress`, a rich progress display for terminals (rich imported lazily).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from meshlab.units import format_us


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report a runner sends about once a second while it runs."""

    phase: str                      # "warmup" | "measure" | "done"
    elapsed_s: float                # seconds since the phase started
    total_s: float                  # planned seconds of the phase
    requests: int                   # finished requests in the measured window so far
    errors: int
    last_p50_us: float = float("nan")
    last_p99_us: float = float("nan")
    last_rate_rps: float = 0.0


ProgressCallback = Callable[[Progress], None]


# Events, in the order an experiment emits them:
#   "start" once, then per run "run_start", "progress" (about once a second), "run_end",
#   and "end" once (also after a failure or a cancellation).
EVENTS = ("start", "run_start", "progress", "run_end", "end")


@dataclass(frozen=True, slots=True)
class ExperimentSnapshot:
    """Where an experiment stands; a new immutable snapshot is sent with every event."""

    event: str                          # one of EVENTS
    experiment_id: str
    profile: str
    status: str                         # running | completed | aborted | failed
    total_runs: int
    finished_runs: int = 0
    run_index: int = -1                 # the run in flight (or the last one), -1 before any
    run_label: str = ""                 # "mesh=none rate=1000 conns=16 repeat=0"
    phase: str = ""                     # warmup | measure | done ("" between runs)
    run_elapsed_s: float = 0.0          # warm-up + measured seconds elapsed in this run
    run_total_s: float = 0.0            # planned warm-up + measured seconds of this run
    requests: int = 0                   # measured requests so far in this run
    errors: int = 0
    rate_rps: float = 0.0               # achieved rate over the last second
    p50_us: float = math.nan            # over the last second
    p99_us: float = math.nan
    failed_runs: int = 0
    reason: str = ""                    # on "end": why the experiment stopped early, if it did
    last_result: dict[str, Any] | None = field(default=None)  # RunResult.summary() of last run

    @property
    def fraction_done(self) -> float:
        """Overall progress in 0..1, counting the run in flight by its elapsed time."""
        if self.total_runs <= 0:
            return 1.0
        part = 0.0
        if self.phase and self.run_total_s > 0:
            part = min(self.run_elapsed_s / self.run_total_s, 1.0)
        return min((self.finished_runs + part) / self.total_runs, 1.0)


ExperimentProgress = Callable[[ExperimentSnapshot], None]
"""A progress callback: called with each snapshot (from the thread running the experiment)."""


def _fmt_us(us: float) -> str:
    return format_us(us)


def describe_live(snap: ExperimentSnapshot) -> str:
    """One line of live numbers: `measure  1,002 req/s  p99 1.20 ms  errors 0`."""
    if not snap.phase:
        return ""
    return (f"{snap.phase}  {snap.rate_rps:,.0f} req/s  p99 {_fmt_us(snap.p99_us)}  "
            f"errors {snap.errors:,}")


class TerminalProgress:
    """A rich progress display: overall runs, and the current run's seconds with req/s and p99.

    Use as an `ExperimentProgress` callback; it starts on "start" and stops on "end". Writes to
    stderr by default so stdout stays clean for `--json` output.
    """

    def __init__(self, *, file: IO[str] | None = None, transient: bool = False) -> None:
        self._file = file
        self._transient = transient
        self._progress: Any = None
        self._overall: Any = None
        self._run: Any = None

    def __call__(self, snap: ExperimentSnapshot) -> None:
        if snap.event == "start":
            self._start(snap)
        if self._progress is None:
            return
        p = self._progress
        if snap.event == "run_start":
            if self._run is not None:
                p.remove_task(self._run)
            self._run = p.add_task(f"run {snap.run_index + 1}: {snap.run_label}",
                                   total=max(snap.run_total_s, 1e-9), live="")
        elif snap.event == "progress" and self._run is not None:
            p.update(self._run, completed=snap.run_elapsed_s, live=describe_live(snap))
        elif snap.event == "run_end":
            if self._run is not None:
                p.update(self._run, completed=snap.run_total_s, live="")
            p.update(self._overall, completed=snap.finished_runs)
            if snap.last_result is not None:
                p.console.print(_result_line(snap.run_index, snap.run_label, snap.last_result))
        if snap.event == "end":
            p.update(self._overall, completed=snap.finished_runs,
                     description=f"{snap.profile} ({snap.status})")
            p.stop()
            self._progress = None

    def _start(self, snap: ExperimentSnapshot) -> None:
        import sys

        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        console = Console(file=self._file or sys.stderr)
        # Rich would route stdout through this (stderr) console while live; with stdout
        # redirected (`meshlab run --json > runs.jsonl`) the JSON lines would then miss the file.
        redirect = _isatty(sys.stdout) and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[live]}"),
            console=console,
            transient=self._transient,
            redirect_stdout=redirect,
            redirect_stderr=redirect,
        )
        self._overall = self._progress.add_task(snap.profile, total=max(snap.total_runs, 1),
                                                live=f"{snap.total_runs} runs")
        self._run = None
        self._progress.start()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):   # replaced or closed streams (pytest capture)
        return False


def _result_line(index: int, label: str, s: dict[str, Any]) -> str:
    p99 = s.get("p99_us")
    p99_text = _fmt_us(float(p99)) if p99 is not None else "-"
    return (f"run {index + 1} {label}: {s.get('status')}  {s.get('requests', 0):,} requests  "
            f"{float(s.get('achieved_rate_rps') or 0):,.0f} req/s  p99 {p99_text}  "
            f"errors {s.get('errors', 0):,}")
