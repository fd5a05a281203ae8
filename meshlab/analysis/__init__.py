"""Pure analysis over the store's DataFrames: overhead with bootstrap intervals, regression
verdicts, context diffs, proxy counters, run selection, and the max-rate-under-SLO search."""

from meshlab.analysis.context import context_diff, run_context
from meshlab.analysis.counters import (
    counter_increase,
    counter_ratio,
    counters_by,
    status_shares,
)
from meshlab.analysis.frames import Frames, frames_from_results, load_frames
from meshlab.analysis.overhead import overhead, overhead_by, resource_per_run
from meshlab.analysis.selection import missing_runs, parse_selector, select_runs
from meshlab.analysis.slo import RateSearch, Slo, SloSearchOutcome, search_max_rate
from meshlab.analysis.synthetic import synthetic_result
from meshlab.analysis.verdict import (
    DEFAULT_THRESHOLDS,
    RegressionVerdict,
    Threshold,
    Verdict,
    parse_threshold,
    parse_thresholds,
    regression_verdict,
)
from meshlab.run_schema import DEFAULT_PS

__all__ = [
    "DEFAULT_PS",
    "DEFAULT_THRESHOLDS",
    "Frames",
    "RateSearch",
    "RegressionVerdict",
    "Slo",
    "SloSearchOutcome",
    "Threshold",
    "Verdict",
    "context_diff",
    "counter_increase",
    "counter_ratio",
    "counters_by",
    "frames_from_results",
    "load_frames",
    "missing_runs",
    "overhead",
    "overhead_by",
    "parse_selector",
    "parse_threshold",
    "parse_thresholds",
    "regression_verdict",
    "resource_per_run",
    "run_context",
    "search_max_rate",
    "select_runs",
    "status_shares",
    "synthetic_result",
]
