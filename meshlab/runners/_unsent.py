"""Open-loop requests that came due and were never sent: counted, and binned into a histogram at
their age at the end of the measured window (a lower bound on the latency they would have had).

Their ages form an arithmetic progression, so they are binned in closed form, bucket by bucket:
an hour at 1M req/s against a stalled target (3.6e9 unsent requests) costs no more than ten.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from meshlab.results import BUCKET_COUNT, MAX_TRACKABLE_NS, Histogram, bucket_bounds_ns
from meshlab.shape import SendSchedule

_LOWER, _UPPER = (b.astype(np.float64) for b in bucket_bounds_ns(np.arange(BUCKET_COUNT)))
_LOWER[0] = -math.inf                 # negative ages count as 0, as in Histogram.record_ns
_UPPER[-1] = math.inf                 # ages beyond the trackable range sit in the top bucket


def progression_histogram(first_ns: float, step_ns: float, count: int) -> Histogram:
    """The histogram of `count` values `first_ns + k * step_ns` (k = 0 .. count-1)."""
    h = Histogram()
    if count <= 0:
        return h
    a, d, m = float(first_ns), max(float(step_ns), 1e-9), int(count)

    def terms_below(bound: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """How many terms are < bound (elementwise)."""
        with np.errstate(invalid="ignore"):
            k = np.ceil((bound - a) / d)
        out: npt.NDArray[np.float64] = np.clip(
            np.nan_to_num(k, nan=0.0, posinf=m, neginf=0.0), 0, m)
        return out

    h.counts = (terms_below(_UPPER) - terms_below(_LOWER)).astype(np.int64)
    h.total = m
    h.min_ns = max(int(a), 0)
    h.max_ns = max(int(a + (m - 1) * d), 0)
    pairs = m * (m - 1) / 2.0
    h.sum_ns = m * a + d * pairs
    h.sumsq_ns = m * a * a + 2.0 * a * d * pairs + d * d * (m - 1) * m * (2 * m - 1) / 6.0
    h.overflow = m - int(terms_below(np.array([MAX_TRACKABLE_NS + 1.0]))[0])
    return h


def unsent_ages(*, end_ns: int, t0_ns: int, period_ns: float, first_seq: int, stop_seq: int,
                stride: int = 1) -> Histogram:
    """The ages at `end_ns` of sequence numbers `first_seq, first_seq + stride, ...` below
    `stop_seq`, request `seq` being due at `t0_ns + seq * period_ns`."""
    if stop_seq <= first_seq:
        return Histogram()
    count = (stop_seq - first_seq + stride - 1) // stride
    last = first_seq + (count - 1) * stride
    return progression_histogram(end_ns - t0_ns - last * period_ns, stride * period_ns, count)


def first_in_window(seq: int, window_seq: int, stride: int) -> int:
    """The first sequence number >= window_seq of the series seq, seq + stride, ..."""
    if seq >= window_seq:
        return seq
    return seq + -(-(window_seq - seq) // stride) * stride


def unsent_histogram(*, end_ns: int, t0_ns: int, period_ns: float, window_start_ns: int,
                     owed: list[int], stop_seq: int, spread: bool) -> Histogram:
    """Every request due (sequence number < stop_seq, as the pacer last saw) from the window's
    start and never sent, at its age at `end_ns`. `owed` holds the oldest unsent sequence
    number: one per connection when sends are spread round-robin, else one for all."""
    window_seq = math.ceil((window_start_ns - t0_ns) / period_ns)
    stride = len(owed) if spread else 1
    return Histogram.merged(
        unsent_ages(end_ns=end_ns, t0_ns=t0_ns, period_ns=period_ns, stride=stride,
                    first_seq=first_in_window(seq, window_seq, stride), stop_seq=stop_seq)
        for seq in owed)


_CHUNK = 1 << 20          # requests per numpy batch: bounded memory for any number unsent


def schedule_unsent_histogram(sched: SendSchedule, *, age_at_s: float, window_seq: int,
                              owed: list[int], stop_seq: int, spread: bool) -> Histogram:
    """`unsent_histogram` for a shaped load: the requests never sent are those of
    `unsent_histogram`, their intended times from the shape's schedule (no longer a progression),
    binned a batch at a time. `age_at_s` is the window's end, from the run's start."""
    stride = len(owed) if spread else 1
    parts = []
    for seq in owed:
        first = first_in_window(seq, window_seq, stride)
        for lo in range(first, stop_seq, _CHUNK * stride):
            seqs = np.arange(lo, min(lo + _CHUNK * stride, stop_seq), stride, dtype=np.int64)
            h = Histogram()
            ages_ns = np.rint((age_at_s - sched.times_s(seqs)) * 1e9).astype(np.int64)
            h.record_ns(ages_ns)
            parts.append(h)
    return Histogram.merged(parts)
