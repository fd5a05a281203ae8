"""fortio's exported histogram (`HistogramData`: seconds, fixed buckets, cumulative percents) and
its conversion to and from meshlab's log-linear `Histogram`, with fortio's own percentile rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from meshlab.formats._doc import as_map, count, fail, num, opt_list
from meshlab.results import (
    BUCKET_COUNT,
    HEADLINE_COUNT_KEY,
    HEADLINE_PERCENTILES_KEY,
    MAX_TRACKABLE_NS,
    SUMMARY_PERCENTILES,
    Histogram,
    bucket_bounds_ns,
    bucket_index_ns,
)
from meshlab.units import NS_PER_S

FORTIO_PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)   # fortio's default -p list


@dataclass(frozen=True, slots=True)
class FortioBucket:
    """One `Data` entry: values in [start_s, end_s], `percent` cumulative, `count` in it."""

    start_s: float
    end_s: float
    percent: float
    count: int


@dataclass(frozen=True, slots=True)
class FortioHistogramData:
    """fortio's `stats.HistogramData`, typed. Times are in seconds (sizes in bytes)."""

    count: int
    min: float
    max: float
    sum: float
    avg: float
    stddev: float
    data: tuple[FortioBucket, ...]
    percentiles: tuple[tuple[float, float], ...]     # (percentile, value) as fortio reported

    def calc_percentile(self, percentile: float) -> float:
        """fortio's `HistogramData.CalcPercentile`: linear interpolation inside the bucket that
        reaches `percentile`, starting from the previous bucket's cumulative percent; the first
        100/Count percent is the exact Min and >= 100 is the exact Max."""
        if not self.data or self.count <= 0:
            return 0.0
        if percentile >= 100:
            return self.max
        pp = 100.0 / float(self.count)      # Min covers at least one point
        if percentile <= pp:
            return self.min
        for cur in self.data:
            if percentile <= cur.percent:
                return cur.start_s + (percentile - pp) / (cur.percent - pp) * (
                    cur.end_s - cur.start_s)
            pp = cur.percent
        return self.max

    @property
    def bucket_total(self) -> int:
        return sum(b.count for b in self.data)

    def to_histogram(self) -> Histogram:
        """A meshlab Histogram: each fortio bucket's count is spread uniformly over
        [Start, End) into meshlab's buckets (the same assumption fortio's percentile
        interpolation makes); Min, Max, Sum and the sum of squares (from Avg and StdDev) are
        kept exactly."""
        h = Histogram()
        for b in self.data:
            _spread(h.counts, b.start_s * NS_PER_S, b.end_s * NS_PER_S, b.count)
        h.total = int(h.counts.sum())
        if h.total == 0:
            return h
        h.overflow = sum(b.count for b in self.data if b.start_s * NS_PER_S > MAX_TRACKABLE_NS)
        h.min_ns = max(round(self.min * NS_PER_S), 0)
        h.max_ns = max(round(self.max * NS_PER_S), h.min_ns)
        _pin_extremes(h)
        n = self.count if self.count > 0 else h.total
        mean_ns = self.sum / n * NS_PER_S
        sd_ns = self.stddev * NS_PER_S
        h.sum_ns = self.sum * NS_PER_S
        h.sumsq_ns = h.total * (sd_ns * sd_ns + mean_ns * mean_ns)
        return h

    @classmethod
    def from_histogram(
        cls, h: Histogram, *, percentiles: Sequence[float] = FORTIO_PERCENTILES
    ) -> FortioHistogramData:
        """fortio-shaped data from a meshlab Histogram: one Data entry per non-empty meshlab
        bucket (first Start = Min, last End = Max, as fortio exports), and the percentiles
        meshlab itself computes."""
        if h.total == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, (), ())
        nz = np.flatnonzero(h.counts)
        lo, hi = bucket_bounds_ns(nz)
        cum = np.cumsum(h.counts[nz])
        data = []
        last = len(nz) - 1
        for k, i in enumerate(nz):
            start = h.min_ns if k == 0 else int(lo[k])
            end = h.max_ns if k == last else int(hi[k])
            data.append(FortioBucket(start_s=start / NS_PER_S, end_s=end / NS_PER_S,
                                     percent=100.0 * float(cum[k]) / h.total,
                                     count=int(h.counts[i])))
        ps = tuple((float(p), h.percentile_us(p) / 1e6) for p in percentiles)
        return cls(count=h.total, min=h.min_ns / NS_PER_S, max=h.max_ns / NS_PER_S,
                   sum=h.sum_ns / NS_PER_S, avg=h.mean_us / 1e6, stddev=h.stdev_us / 1e6,
                   data=tuple(data), percentiles=ps)

    def to_json(self) -> dict[str, Any]:
        """The JSON object fortio writes (`Percentiles` omitted when empty, as fortio does)."""
        out: dict[str, Any] = {
            "Count": self.count, "Min": self.min, "Max": self.max, "Sum": self.sum,
            "Avg": self.avg, "StdDev": self.stddev,
            "Data": [{"Start": b.start_s, "End": b.end_s, "Percent": b.percent,
                      "Count": b.count} for b in self.data] or None,
        }
        if self.percentiles:
            out["Percentiles"] = [{"Percentile": p, "Value": v} for p, v in self.percentiles]
        return out


def parse_histogram_data(value: object, path: str) -> FortioHistogramData:
    """Validate a fortio `HistogramData` object (counts may be strings: Nighthawk's quirk)."""
    m = as_map(value, path)

    def field(key: str, default: float = 0.0) -> float:
        v = m.get(key)
        return default if v is None else num(v, f"{path}.{key}")

    n = count(m["Count"], f"{path}.Count") if m.get("Count") is not None else 0
    data = []
    for i, raw in enumerate(opt_list(m.get("Data"), f"{path}.Data")):
        bpath = f"{path}.Data[{i}]"
        b = as_map(raw, bpath)
        for key in ("Start", "End", "Count"):
            if key not in b:
                fail(bpath, f"missing {key}", b)
        start, end = num(b["Start"], f"{bpath}.Start"), num(b["End"], f"{bpath}.End")
        if end < start:
            fail(bpath, f"End {end:g} is below Start {start:g}", b)
        pct = num(b.get("Percent", 0.0), f"{bpath}.Percent")
        data.append(FortioBucket(start, end, pct, count(b["Count"], f"{bpath}.Count")))
    ps = []
    for i, raw in enumerate(opt_list(m.get("Percentiles"), f"{path}.Percentiles")):
        p = as_map(raw, f"{path}.Percentiles[{i}]")
        ps.append((num(p.get("Percentile"), f"{path}.Percentiles[{i}].Percentile"),
                   num(p.get("Value"), f"{path}.Percentiles[{i}].Value")))
    mn, mx = field("Min"), field("Max")
    if data and mx < mn:
        fail(path, f"Max {mx:g} is below Min {mn:g}", m)
    total = n or sum(b.count for b in data)
    sm = field("Sum")
    return FortioHistogramData(count=n, min=mn, max=mx, sum=sm,
                               avg=field("Avg", sm / total if total else 0.0),
                               stddev=field("StdDev"), data=tuple(data), percentiles=tuple(ps))


def percentile_key(p: float) -> str:
    """`50` / `99.9`: the JSON-safe key of a percentile in context dicts."""
    return f"{p:g}"


def reported_percentiles_us(hd: FortioHistogramData) -> dict[str, float]:
    return {percentile_key(p): v * 1e6 for p, v in hd.percentiles}


def set_headline_percentiles(ctx: dict[str, Any], hd: FortioHistogramData, latency: Histogram,
                             *, rule: str, reported: Mapping[str, float] | None = None) -> None:
    """Record in a run's context the percentiles its tool gives (`RunResult.
    headline_percentile_us`, hence the store's p50_us.. columns): each reported value as
    reported, the other summary percentiles by fortio's rule on `hd`'s buckets. The histogram
    cannot hold them exactly (its rule is the midpoint of the bucket at rank ceil(p*N): with 4
    values p90, p99 and p99.9 are one value, fortio interpolates three), so merged and pooled
    percentiles, which come from the histograms, are within a fortio bucket of these."""
    if hd.count <= 0 or not hd.data or latency.total == 0:
        return
    table = {percentile_key(p): hd.calc_percentile(p) * 1e6 for p in SUMMARY_PERCENTILES}
    table.update(reported_percentiles_us(hd) if reported is None else reported)
    ctx["percentile_rule"] = rule
    ctx[HEADLINE_PERCENTILES_KEY] = dict(sorted(table.items(), key=lambda kv: float(kv[0])))
    ctx[HEADLINE_COUNT_KEY] = latency.total


def _spread(counts: np.ndarray[Any, Any], s_ns: float, e_ns: float, c: int) -> None:
    """Add `c` values spread uniformly over [s_ns, e_ns) into the meshlab bucket counts, with
    integer counts by rounding the cumulative share at each bucket's upper bound."""
    if c <= 0:
        return
    top = float(MAX_TRACKABLE_NS)
    s = min(max(s_ns, 0.0), top)
    e = min(max(e_ns, 0.0), top + 1.0)
    if e - s < 1.0:
        counts[int(bucket_index_ns(int(s)))] += c
        return
    i0, i1 = (int(x) for x in bucket_index_ns([math.floor(s), math.ceil(e) - 1]))
    idx = np.arange(i0, min(i1, BUCKET_COUNT - 1) + 1)
    _, upper = bucket_bounds_ns(idx)
    frac = np.clip((upper.astype(np.float64) - s) / (e - s), 0.0, 1.0)
    frac[-1] = 1.0
    cum = np.floor(frac * c + 0.5).astype(np.int64)
    counts[idx] += np.diff(cum, prepend=0)


def _pin_extremes(h: Histogram) -> None:
    """Min and Max are real values, but a uniform spread can leave their buckets empty (one
    value spread over [0.27 ms, 0.93 ms] lands mid-range): move one count from the first
    (last) non-empty bucket into the bucket of Min (Max), so the histogram stays consistent
    with its own min/max and exports back to the same buckets."""
    nz = np.flatnonzero(h.counts)
    i_min = int(bucket_index_ns(h.min_ns))
    if h.counts[i_min] == 0 and nz.size:
        h.counts[nz[0]] -= 1
        h.counts[i_min] += 1
        nz = np.flatnonzero(h.counts)
    i_max = int(bucket_index_ns(h.max_ns))
    if h.total >= 2 and h.counts[i_max] == 0 and nz.size and h.counts[nz[-1]] > (
            1 if nz[-1] == i_min else 0):
        h.counts[nz[-1]] -= 1
        h.counts[i_max] += 1


def histogram_data_of(doc: Mapping[str, Any], key: str, path: str) -> FortioHistogramData | None:
    """`doc[key]` parsed, or None when absent/null (older fortio has no ErrorsDurationHistogram)."""
    v = doc.get(key)
    return None if v is None else parse_histogram_data(v, f"{path}{key}")
