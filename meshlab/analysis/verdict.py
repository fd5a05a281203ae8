"""Regression verdicts: a candidate's overhead rows judged against per-metric thresholds.

A metric regresses only when the whole confidence interval of its change lies beyond the
threshold; an interval that straddles the threshold is "no significant change".
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from meshlab.errors import ProfileError


class Verdict(enum.StrEnum):
    """The judgement of one metric or of a whole comparison."""

    REGRESSION = "regression"                   # interval entirely beyond the threshold
    NO_SIGNIFICANT_CHANGE = "no significant change"   # interval straddles the threshold
    WITHIN_THRESHOLD = "within threshold"       # interval entirely inside the threshold
    IMPROVEMENT = "improvement"                 # interval entirely beyond -threshold
    NO_DATA = "no data"                         # a side had no runs or the metric is missing


_ALIASES = {
    "p50": "p50_us", "p75": "p75_us", "p90": "p90_us", "p99": "p99_us", "p999": "p999_us",
    "p99.9": "p999_us", "throughput": "throughput_rps", "rps": "throughput_rps",
    "rate": "throughput_rps", "errors": "error_rate", "error": "error_rate", "cpu": "cpu_percent",
    "memory": "rss_bytes", "rss": "rss_bytes",
}


def metric_name(name: str) -> str:
    """Canonical overhead metric name for a short alias (`p99` -> `p99_us`)."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)


@dataclass(frozen=True, slots=True)
class Threshold:
    """How much worse a metric may get. `relative`: percent of the baseline; otherwise an
    absolute change in the metric's unit (for `error_rate`, a fraction: 0.01 = 1 point)."""

    metric: str
    limit: float
    relative: bool = True

    def __str__(self) -> str:
        if self.relative:
            return f"{self.metric}={self.limit:g}%"
        return f"{self.metric}={self.limit:g}"


DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("p50_us", 10.0),
    Threshold("p99_us", 10.0),
    Threshold("throughput_rps", 10.0),
    Threshold("error_rate", 0.01, relative=False),
)

_NUM = r"([0-9]*\.?[0-9]+)"


def parse_threshold(text: str) -> Threshold:
    """`p99=10%`, `p99=500us`, `p99=2ms`, `throughput=5%`, `error_rate=1%` (points) ..."""
    m = re.fullmatch(rf"\s*([A-Za-z0-9_.]+)\s*=\s*{_NUM}\s*(%|us|ms|s|)\s*", text)
    if not m:
        raise ProfileError(f"threshold {text!r}: expected METRIC=VALUE[%|us|ms], e.g. p99=10%")
    metric, value, unit = metric_name(m.group(1)), float(m.group(2)), m.group(3)
    if metric == "error_rate":
        return Threshold(metric, value / 100.0 if unit == "%" else value, relative=False)
    if unit == "%":
        return Threshold(metric, value)
    scale = {"": 1.0, "us": 1.0, "ms": 1_000.0, "s": 1_000_000.0}[unit]
    return Threshold(metric, value * scale, relative=False)


def parse_thresholds(items: Iterable[str] | Mapping[str, str | float] | None
                     ) -> tuple[Threshold, ...]:
    """Thresholds from CLI strings or a notebook dict (`{"p99": "10%"}`); None -> defaults.
    Given thresholds replace the default of the same metric and keep the others."""
    if items is None:
        return DEFAULT_THRESHOLDS
    texts = ([f"{k}={v}%" if isinstance(v, int | float) else f"{k}={v}" for k, v in items.items()]
             if isinstance(items, Mapping) else list(items))
    problems, given = [], {}
    for t in texts:
        try:
            th = parse_threshold(t)
            given[th.metric] = th
        except ProfileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ProfileError(problems)
    merged = {t.metric: t for t in DEFAULT_THRESHOLDS}
    merged.update(given)
    return tuple(merged.values())


@dataclass(frozen=True, slots=True)
class RegressionVerdict:
    """The verdict of a comparison plus one judged row per thresholded metric."""

    verdict: Verdict
    table: pd.DataFrame = field(repr=False)
    regressions: tuple[str, ...] = ()

    @property
    def is_regression(self) -> bool:
        return self.verdict is Verdict.REGRESSION

    def summary(self) -> str:
        if self.verdict is Verdict.REGRESSION:
            return "REGRESSION in " + ", ".join(self.regressions)
        return str(self.verdict)


def judge(row: Mapping[str, object], threshold: Threshold) -> Verdict:
    """The verdict of one overhead row under one threshold."""
    keys = ("ci_low_pct", "ci_high_pct") if threshold.relative else ("ci_low", "ci_high")
    lo, hi = (float(str(row.get(k, math.nan))) for k in keys)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Verdict.NO_DATA
    if bool(row.get("higher_is_better")):         # worse means lower: flip into "worse is up"
        lo, hi = -hi, -lo
    limit = threshold.limit
    if lo > limit:
        return Verdict.REGRESSION
    if hi < -limit:
        return Verdict.IMPROVEMENT
    if lo >= -limit and hi <= limit:
        return Verdict.WITHIN_THRESHOLD
    return Verdict.NO_SIGNIFICANT_CHANGE


def regression_verdict(overhead_table: pd.DataFrame,
                       thresholds: Iterable[Threshold] | None = None) -> RegressionVerdict:
    """Judge every thresholded metric of an `overhead()` table. The overall verdict is
    REGRESSION if any metric regressed, NO_DATA if the table is empty, else the mildest
    remaining (NO_SIGNIFICANT_CHANGE beats WITHIN_THRESHOLD beats IMPROVEMENT)."""
    ths = tuple(thresholds) if thresholds is not None else DEFAULT_THRESHOLDS
    cols = ["metric", "threshold", "delta_pct", "ci_low_pct", "ci_high_pct", "delta",
            "ci_low", "ci_high", "verdict"]
    if overhead_table.empty:
        return RegressionVerdict(Verdict.NO_DATA, pd.DataFrame(columns=cols))
    by_metric: dict[str, dict[str, object]] = {
        str(r["metric"]): {str(k): v for k, v in r.items()}
        for r in overhead_table.to_dict("records")}
    rows = []
    for th in ths:
        r = by_metric.get(th.metric)
        v = judge(r, th) if r is not None else Verdict.NO_DATA
        rows.append({"metric": th.metric, "threshold": str(th),
                     **{k: (r or {}).get(k, math.nan) for k in cols[2:8]}, "verdict": str(v)})
    table = pd.DataFrame(rows, columns=cols)
    regressions = tuple(table.loc[table["verdict"] == Verdict.REGRESSION, "metric"])
    if regressions:
        overall = Verdict.REGRESSION
    else:
        seen = set(table["verdict"])
        order = (Verdict.NO_SIGNIFICANT_CHANGE, Verdict.WITHIN_THRESHOLD, Verdict.IMPROVEMENT)
        overall = next((v for v in order if v in seen), Verdict.NO_DATA)
    return RegressionVerdict(overall, table, regressions)
