"""Pure analysis over the store's DataFrames: overhead with bootstrap intervals, comparisons
judged faster/slower/indistinguishable, regression verdicts, context diffs, proxy counters, the
run-selector grammar, and the max-rate-under-SLO search."""

from meshlab.analysis.answer import NO_INTERVAL, NOT_DISTINGUISHABLE, Answer, answer
from meshlab.analysis.comparison import (
    Comparison,
    Difference,
    compare_by,
    compare_groups,
    difference,
    judged,
    pooled_percentiles,
)
from meshlab.analysis.context import context_diff, run_context
from meshlab.analysis.counters import (
    counter_increase,
    counter_ratio,
    counters_by,
    status_shares,
)
from meshlab.analysis.frames import Frames, frames_from_results, load_frames
from meshlab.analysis.overhead import overhead, overhead_by, resource_per_run
from meshlab.analysis.selection import (
    Selection,
    missing_runs,
    no_match_problem,
    parse_selector,
    select_runs,
)
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
    "NOT_DISTINGUISHABLE",
    "NO_INTERVAL",
    "Answer",
    "Comparison",
    "Difference",
    "Frames",
    "RateSearch",
    "RegressionVerdict",
    "Selection",
    "Slo",
    "SloSearchOutcome",
    "Threshold",
    "Verdict",
    "answer",
    "compare_by",
    "compare_groups",
    "context_diff",
    "counter_increase",
    "counter_ratio",
    "counters_by",
    "difference",
    "frames_from_results",
    "judged",
    "load_frames",
    "missing_runs",
    "no_match_problem",
    "overhead",
    "overhead_by",
    "parse_selector",
    "parse_threshold",
    "parse_thresholds",
    "pooled_percentiles",
    "regression_verdict",
    "resource_per_run",
    "run_context",
    "search_max_rate",
    "select_runs",
    "status_shares",
    "synthetic_result",
]
