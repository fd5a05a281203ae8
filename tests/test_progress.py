"""Progress snapshots and the terminal display fed with a scripted experiment."""

from __future__ import annotations

import io
import math
from dataclasses import replace

from meshlab.progress import ExperimentSnapshot, TerminalProgress, describe_live


def _script() -> list[ExperimentSnapshot]:
    s = ExperimentSnapshot(event="start", experiment_id="exp-1", profile="demo",
                           status="running", total_runs=2)
    out = [s]
    for i in range(2):
        s = replace(s, event="run_start", run_index=i, run_label=f"mesh=none rate={i}",
                    phase="warmup", run_elapsed_s=0.0, run_total_s=3.0)
        out.append(s)
        for t, phase in ((0.5, "warmup"), (1.5, "measure"), (2.5, "measure")):
            s = replace(s, event="progress", phase=phase, run_elapsed_s=t, requests=int(t * 100),
                        rate_rps=1000.0, p50_us=150.0, p99_us=1200.0)
            out.append(s)
        s = replace(s, event="run_end", finished_runs=i + 1, phase="",
                    last_result={"status": "completed", "requests": 250,
                                 "achieved_rate_rps": 999.0, "p99_us": 1234.0, "errors": 0})
        out.append(s)
    out.append(replace(s, event="end", status="completed"))
    return out


def test_fraction_done_counts_the_run_in_flight() -> None:
    snaps = _script()
    fractions = [s.fraction_done for s in snaps]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    mid = next(s for s in snaps if s.event == "progress" and s.run_index == 1)
    assert 0.5 < mid.fraction_done < 1.0


def test_describe_live() -> None:
    snap = replace(_script()[3], p99_us=1200.0)
    assert describe_live(snap) == "measure  1,000 req/s  p99 1.20 ms  errors 0"
    assert describe_live(replace(snap, phase="")) == ""
    assert "p99 -" in describe_live(replace(snap, p99_us=math.nan))


def test_terminal_progress_renders_and_stops() -> None:
    buf = io.StringIO()
    show = TerminalProgress(file=buf)
    for snap in _script():
        show(snap)
    text = buf.getvalue()
    assert text.count("completed  250 requests") == 2
    assert "p99 1.23 ms" in text and "demo (completed)" in text
    show(replace(_script()[3]))              # after "end": ignored, no error
