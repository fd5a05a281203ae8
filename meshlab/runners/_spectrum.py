"""Rebuilding a latency `Histogram` from what external tools print: exact (value, count) pairs,
values rounded to a printed resolution, or a quantile function sampled at a few percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from meshlab.errors import OutputParseError
from meshlab.results import MAX_TRACKABLE_NS, Histogram, TimeSeriesPoint, bucket_index_ns
from meshlab.units import NS_PER_US

FloatArray = npt.NDArray[np.float64]

# Beyond this many synthesized values a quantile-built histogram is scaled instead of expanded:
# the shape is the same and memory stays bounded (ab can finish 10^7 requests in a long run).
_MAX_SYNTH = 2_000_000


def from_value_counts(values_us: npt.ArrayLike, counts: npt.ArrayLike) -> Histogram:
    """An exact histogram from distinct values (microseconds) and how often each occurred."""
    v = np.asarray(values_us, dtype=np.float64).ravel()
    c = np.asarray(counts, dtype=np.int64).ravel()
    if v.shape != c.shape:
        raise ValueError(f"{v.size} values but {c.size} counts")
    keep = c > 0
    v, c = v[keep], c[keep]
    h = Histogram()
    if v.size == 0:
        return h
    ns = np.maximum(np.rint(v * NS_PER_US), 0).astype(np.int64)
    np.add.at(h.counts, bucket_index_ns(ns), c)
    nsf = ns.astype(np.float64)
    cf = c.astype(np.float64)
    h.total = int(c.sum())
    h.min_ns = int(ns.min())
    h.max_ns = int(ns.max())
    h.sum_ns = float(np.dot(nsf, cf))
    h.sumsq_ns = float(np.dot(nsf * nsf, cf))
    h.overflow = int(c[ns > MAX_TRACKABLE_NS].sum())
    return h


def from_rounded(values_us: npt.ArrayLike, *, resolution_us: float) -> Histogram:
    """A histogram of values a tool printed rounded to `resolution_us` (hey prints 0.1 ms).

    The n values that share one printed value v are spread evenly over its rounding interval
    [v - r/2, v + r/2) (clipped at 0), deterministically; every percentile stays within r/2 of
    the truth, and a printed 0.0000 no longer reads as a zero-latency request.
    """
    v = np.asarray(values_us, dtype=np.float64).ravel()
    if v.size == 0:
        return Histogram()
    distinct, counts = np.unique(v, return_counts=True)
    half = resolution_us / 2.0
    parts = []
    for value, n in zip(distinct.tolist(), counts.tolist(), strict=True):
        lo = max(value - half, 0.0)
        hi = value + half
        parts.append(lo + (np.arange(n, dtype=np.float64) + 0.5) / n * (hi - lo))
    h = Histogram()
    h.record_us(np.concatenate(parts))
    return h


def from_quantiles(points: Sequence[tuple[float, float]], total: int, *,
                   top_us: Sequence[float] = (), top_resolution_us: float = 0.0) -> Histogram:
    """A histogram of `total` values whose quantile function passes through `points`
    ((percent 0..100, value_us) pairs, e.g. ab's `-e` table): value k of n sits at percent
    100 (k + 0.5) / n, linearly interpolated between the given points.

    `top_us`, the ascending values of the last len(top_us) ranks printed at a coarse
    `top_resolution_us` (ab's `-g` table, whole milliseconds), bounds each of those ranks to
    its rounding interval: between p99 and the max, ab's `-e` table alone says nothing.
    """
    if total <= 0 or not points:
        return Histogram()
    pts = sorted((float(p), float(v)) for p, v in points)
    ps = np.array([p for p, _ in pts])
    vs = np.maximum.accumulate(np.array([v for _, v in pts]))     # a quantile never decreases
    n = min(total, _MAX_SYNTH)
    ranks = (np.arange(n, dtype=np.float64) + 0.5) / n * 100.0
    synth = np.interp(ranks, ps, vs)
    k = min(len(top_us), total)
    if k:
        top = np.asarray(top_us, dtype=np.float64)[-k:]
        real = np.floor(ranks / 100.0 * total).astype(np.int64)      # real rank of each value
        in_top = real >= total - k
        bound = top[real[in_top] - (total - k)]
        half = top_resolution_us / 2.0
        lo, hi = np.maximum(bound - half, 0.0), bound + half
        vals = np.clip(synth[in_top], lo, hi)
        # Above the last anchor below 100 % (ab: p99) the interpolation towards the max means
        # nothing: spread each run of equal coarse values evenly over its rounding interval.
        gap = ranks[in_top] > ps[-2] if len(ps) > 1 else np.zeros(vals.shape, dtype=bool)
        if gap.any():
            b = bound[gap]
            edges = np.flatnonzero(np.diff(b)) + 1
            pos = np.concatenate([(np.arange(g.size) + 0.5) / g.size
                                  for g in np.split(b, edges)])
            spread = lo[gap] + pos * (hi[gap] - lo[gap])
            vals[gap] = np.clip(spread, vs[-2], vs[-1])
        synth[in_top] = vals
        synth = np.maximum.accumulate(synth)
    h = Histogram()
    h.record_us(synth)
    if n < total:                                   # scale counts up to the real total
        scale = total / n
        h.counts = np.floor(h.counts * scale + 0.5).astype(np.int64)
        h.sum_ns *= scale
        h.sumsq_ns *= scale
        h.total = int(h.counts.sum())
    h.min_ns = round(float(vs[0]) * NS_PER_US)
    h.max_ns = max(round(float(vs[-1]) * NS_PER_US), h.min_ns)
    return h


def per_second(offsets_s: FloatArray, latencies_us: FloatArray, failed: npt.NDArray[np.bool_],
               ) -> list[TimeSeriesPoint]:
    """One point per whole second of send offsets (second 0 = the first measured second)."""
    if offsets_s.size == 0:
        return []
    sec = np.floor(np.maximum(offsets_s, 0.0)).astype(np.int64)
    order = np.argsort(sec, kind="stable")
    sec, lat, bad = sec[order], latencies_us[order], failed[order]
    bounds = np.flatnonzero(np.diff(sec)) + 1
    out = []
    for s_idx, l_part, b_part in zip(np.split(sec, bounds), np.split(lat, bounds),
                                     np.split(bad, bounds), strict=True):
        p50, p99 = np.percentile(l_part, [50.0, 99.0]) if l_part.size else (math.nan, math.nan)
        out.append(TimeSeriesPoint(second=int(s_idx[0]), requests=int(l_part.size),
                                   errors=int(b_part.sum()), p50_us=float(p50),
                                   p99_us=float(p99)))
    return out


__all__ = ["as_dict", "from_quantiles", "from_rounded", "from_value_counts", "get_int", "get_num",
           "per_second"]


# --- defensive field access for tool documents ----------------------------------------------

def as_dict(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise OutputParseError(f"{path}: expected an object, got {type(value).__name__}",
                               excerpt=repr(value)[:300])
    return value


def get_num(m: dict[str, object], key: str, path: str, *, minimum: float = 0.0) -> float:
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or v < minimum:
        raise OutputParseError(f"{path}.{key}: expected a finite number >= {minimum:g}",
                               excerpt=repr(v)[:300])
    return float(v)


def get_int(m: dict[str, object], key: str, path: str) -> int:
    v = get_num(m, key, path)
    if v != math.floor(v) or v > 2**53:
        raise OutputParseError(f"{path}.{key}: expected a whole count", excerpt=repr(v))
    return int(v)
