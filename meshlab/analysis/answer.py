"""A lab's closing answer: one delta of a comparison in words, with its 95% interval, or "not
distinguishable here" when the interval holds 0 (never a number inside the noise)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from meshlab.analysis.comparison import Comparison, Difference
from meshlab.analysis.selection import value_text
from meshlab.errors import ProfileError

NOT_DISTINGUISHABLE = "not distinguishable here"
# a per-run mean (CPU, memory, throughput) from one run per side: nothing says how runs vary
NO_INTERVAL = "no interval: one run per side says nothing about run-to-run spread; use repeats >= 2"


@dataclass(frozen=True, slots=True)
class Answer:
    """One delta of a comparison, in words with its 95% interval: a lab's closing answer.
    When the interval holds 0 the text says NOT_DISTINGUISHABLE instead of a number."""

    subject: str                   # what the delta means, e.g. "what mTLS adds at p50"
    metric: str
    estimate: float
    ci_low: float
    ci_high: float
    difference: Difference

    @property
    def distinguishable(self) -> bool:
        return self.difference not in (Difference.INDISTINGUISHABLE, Difference.NOT_JUDGED)

    def _value(self, x: float) -> str:
        from meshlab.units import format_number, format_value

        if self.metric == "error_rate":     # a change of a share: percentage points
            return f"{format_number(x * 100.0, signed=True)} percentage points"
        return format_value(self.metric, x, signed=True)

    @property
    def interval(self) -> str:
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return NO_INTERVAL
        return f"95% interval {self._value(self.ci_low)} to {self._value(self.ci_high)}"

    @property
    def said(self) -> str:
        """The estimate as text, or NOT_DISTINGUISHABLE when its interval holds 0 or there is
        no interval."""
        return self._value(self.estimate) if self.distinguishable else NOT_DISTINGUISHABLE

    @property
    def text(self) -> str:
        return f"{self.subject}: {self.said} ({self.interval})"

    def __str__(self) -> str:
        return self.text

    def scaled(self, factor: float, *, metric: str, subject: str) -> Answer:
        """The same answer in another unit: estimate and interval times `factor` (> 0), e.g.
        a CPU share at a known rate as CPU microseconds per request."""
        if not factor > 0:
            raise ProfileError(f"scale factor must be > 0, got {factor}")
        return Answer(subject, metric, self.estimate * factor, self.ci_low * factor,
                      self.ci_high * factor, self.difference)


def answer(comparison: Comparison | pd.DataFrame, metric: str, *, subject: str,
           **group: object) -> Answer:
    """The `metric` delta of a comparison (or of its `table`) as an Answer; `group` picks the
    row of a `compare_by` table (`mesh="envoy+mtls"`). ProfileError when no row matches."""
    table = comparison.table if isinstance(comparison, Comparison) else comparison
    rows = table[table["metric"] == metric]
    for k, v in group.items():
        rows = rows[rows[k].map(value_text) == value_text(v)]
    if len(rows) != 1:
        where = ", ".join(f"{k}={v}" for k, v in group.items())
        raise ProfileError(f"no single {metric} row{' for ' + where if where else ''} in the "
                           f"comparison ({len(rows)} found); metrics: "
                           f"{', '.join(sorted(set(table['metric'].astype(str))))}")
    r = rows.iloc[0]
    return Answer(subject, metric, float(r["delta"]), float(r["ci_low"]), float(r["ci_high"]),
                  Difference(str(r["difference"])))
