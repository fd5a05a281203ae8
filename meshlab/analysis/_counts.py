"""Dense bucket-count matrices and vectorised percentiles over them (private to analysis).

A store's `buckets()` frame (run_id, bucket, count) becomes one row of 2,048 counts per run, so
pooling repeats is a sum and a bootstrap resample is a matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from meshlab.results import BUCKET_COUNT, bucket_bounds_ns
from meshlab.units import NS_PER_US

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_LO, _HI = bucket_bounds_ns(np.arange(BUCKET_COUNT))
MIDS_US: FloatArray = ((_LO.astype(np.float64) + _HI.astype(np.float64) - 1.0) / 2.0) / NS_PER_US


def count_matrix(buckets: pd.DataFrame, run_ids: Sequence[str], *,
                 kind: str = "latency") -> IntArray:
    """One row of bucket counts per run id (in the given order); unknown ids give zero rows."""
    out = np.zeros((len(run_ids), BUCKET_COUNT), dtype=np.int64)
    if buckets.empty or not run_ids:
        return out
    b = buckets
    if "kind" in b.columns:
        b = b[b["kind"] == kind]
    pos = {rid: i for i, rid in enumerate(run_ids)}
    rows = b["run_id"].map(pos)
    keep = rows.notna().to_numpy()
    r = rows.to_numpy()[keep].astype(np.int64)
    c = b["bucket"].to_numpy()[keep].astype(np.int64)
    n = b["count"].to_numpy()[keep].astype(np.int64)
    np.add.at(out, (r, c), n)
    return out


def percentiles_from_counts(counts: npt.ArrayLike, ps: Sequence[float], *,
                            mids_us: FloatArray | None = None) -> FloatArray:
    """Percentiles (rows x len(ps)) of each row of `counts`; NaN for empty rows.

    `mids_us` gives the value of each column (default: the midpoints of all 2,048 buckets)."""
    m = np.atleast_2d(np.asarray(counts))
    mids = MIDS_US if mids_us is None else mids_us
    cum = np.cumsum(m, axis=1)
    total = cum[:, -1] if m.shape[1] else np.zeros(m.shape[0])
    out = np.full((m.shape[0], len(ps)), np.nan)
    for j, p in enumerate(ps):
        rank = np.ceil(p / 100.0 * total)
        rank = np.maximum(rank, 1)
        idx = (cum < rank[:, None]).sum(axis=1)
        idx = np.minimum(idx, m.shape[1] - 1)
        vals = mids[idx]
        out[:, j] = np.where(total > 0, vals, np.nan)
    return out


def resample_runs(rng: np.random.Generator, n_runs: int, n_boot: int) -> FloatArray:
    """Bootstrap weights: how often each of `n_runs` runs is drawn in each of `n_boot` resamples."""
    if n_runs == 1:
        return np.ones((n_boot, 1))
    return rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=n_boot).astype(np.float64)


def bootstrap_pooled_percentiles(rng: np.random.Generator, counts: IntArray, ps: Sequence[float],
                                 *, n_boot: int, columns: IntArray) -> FloatArray:
    """Percentiles of `n_boot` hierarchical resamples of pooled runs: runs are drawn with
    replacement, then requests are redrawn from the pooled histogram (n_boot x len(ps))."""
    sub = counts[:, columns].astype(np.float64)
    w = resample_runs(rng, sub.shape[0], n_boot)
    pooled = w @ sub                                        # n_boot x K
    totals = pooled.sum(axis=1)
    safe = np.where(totals > 0, totals, 1.0)
    probs = pooled / safe[:, None]
    draws = rng.multinomial(totals.astype(np.int64), probs)
    return percentiles_from_counts(draws, ps, mids_us=MIDS_US[columns])
