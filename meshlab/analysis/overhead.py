"""Overhead of a candidate run group against a baseline group, with bootstrap intervals.

Latency percentiles are reported twice: from the histogram pooled across repeats (the headline
number) and as mean +- sd of per-run percentiles (how much repeats disagree). Intervals come from
a hierarchical bootstrap: repeats are resampled, then requests within the pooled histogram.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from meshlab.analysis._counts import (
    FloatArray,
    bootstrap_pooled_percentiles,
    count_matrix,
    percentiles_from_counts,
    resample_runs,
)
from meshlab.run_schema import DEFAULT_PS, percentile_column

RESOURCE_METRICS = {"cpu_percent": "%", "rss_bytes": "bytes"}

OVERHEAD_COLUMNS = [
    "metric", "unit", "higher_is_better", "baseline", "candidate", "delta", "delta_pct",
    "ci_low", "ci_high", "ci_low_pct", "ci_high_pct", "baseline_run_mean", "baseline_run_sd",
    "candidate_run_mean", "candidate_run_sd", "n_baseline", "n_candidate",
]


@dataclass(frozen=True, slots=True)
class _Side:
    ids: list[str]
    runs: pd.DataFrame


def _side(runs: pd.DataFrame, ids: Sequence[str]) -> _Side:
    wanted = list(dict.fromkeys(ids))
    sub = runs[runs["run_id"].isin(wanted)] if not runs.empty else runs
    known = [r for r in wanted if r in set(sub["run_id"])] if not sub.empty else []
    return _Side(known, sub.set_index("run_id").loc[known].reset_index() if known else sub)


def _interval(samples_b: FloatArray, samples_c: FloatArray, confidence: float
              ) -> tuple[float, float, float, float]:
    alpha = (1.0 - confidence) / 2.0
    delta = samples_c - samples_b
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(samples_b != 0, delta / samples_b * 100.0, np.nan)
    ok = np.isfinite(delta)
    okp = np.isfinite(pct)
    lo, hi = (np.quantile(delta[ok], [alpha, 1 - alpha]) if ok.any() else (math.nan, math.nan))
    plo, phi = (np.quantile(pct[okp], [alpha, 1 - alpha]) if okp.any() else (math.nan, math.nan))
    return float(lo), float(hi), float(plo), float(phi)


def _row(metric: str, unit: str, hib: bool, base: float, cand: float,
         ci: tuple[float, float, float, float], per_run_b: FloatArray, per_run_c: FloatArray,
         ) -> dict[str, object]:
    delta = cand - base
    pct = delta / base * 100.0 if base and math.isfinite(base) else math.nan
    return {
        "metric": metric, "unit": unit, "higher_is_better": hib,
        "baseline": base, "candidate": cand, "delta": delta, "delta_pct": pct,
        "ci_low": ci[0], "ci_high": ci[1], "ci_low_pct": ci[2], "ci_high_pct": ci[3],
        "baseline_run_mean": _mean(per_run_b), "baseline_run_sd": _sd(per_run_b),
        "candidate_run_mean": _mean(per_run_c), "candidate_run_sd": _sd(per_run_c),
        "n_baseline": len(per_run_b), "n_candidate": len(per_run_c),
    }


def _mean(x: FloatArray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _sd(x: FloatArray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if x.size > 1 else (0.0 if x.size else math.nan)


def overhead(
    runs: pd.DataFrame,
    buckets: pd.DataFrame,
    *,
    baseline: Sequence[str],
    candidate: Sequence[str],
    telemetry: pd.DataFrame | None = None,
    ps: Sequence[float] = DEFAULT_PS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per metric comparing `candidate` run ids with `baseline` run ids.

    `runs` is shaped like `Store.runs()`, `buckets` like `Store.buckets()` (latency kind) and
    `telemetry` like `Store.telemetry()` (adds `cpu_percent` / `rss_bytes` rows when present).
    Columns: OVERHEAD_COLUMNS; `ci_*` bound the delta at `confidence`. Empty when either side
    has no known run (see `analysis.check_groups` for the message to show)."""
    b, c = _side(runs, baseline), _side(runs, candidate)
    if not b.ids or not c.ids:
        return pd.DataFrame(columns=OVERHEAD_COLUMNS)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    cb, cc = count_matrix(buckets, b.ids), count_matrix(buckets, c.ids)
    if cb.sum() and cc.sum():
        cols = np.flatnonzero(cb.sum(axis=0) + cc.sum(axis=0))
        pooled_b = percentiles_from_counts(cb.sum(axis=0), ps)[0]
        pooled_c = percentiles_from_counts(cc.sum(axis=0), ps)[0]
        run_b, run_c = percentiles_from_counts(cb, ps), percentiles_from_counts(cc, ps)
        boot_b = bootstrap_pooled_percentiles(rng, cb, ps, n_boot=n_boot, columns=cols)
        boot_c = bootstrap_pooled_percentiles(rng, cc, ps, n_boot=n_boot, columns=cols)
        for j, p in enumerate(ps):
            ci = _interval(boot_b[:, j], boot_c[:, j], confidence)
            rows.append(_row(percentile_column(p), "us", False, float(pooled_b[j]),
                             float(pooled_c[j]), ci, run_b[:, j], run_c[:, j]))
    rows.append(_throughput(rng, b, c, n_boot, confidence))
    rows.append(_error_rate(rng, b, c, n_boot, confidence))
    if telemetry is not None and not telemetry.empty:
        for metric, unit in RESOURCE_METRICS.items():
            row = _resource(rng, telemetry, metric, unit, b, c, n_boot, confidence)
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows, columns=OVERHEAD_COLUMNS)


def _boot_mean(rng: np.random.Generator, x: FloatArray, n_boot: int,
               confidence: float) -> FloatArray:
    """Bootstrap means of per-run values, expanded for a small number of runs (Hesterberg's
    expanded percentile interval): resampling 3 runs spreads the mean by sqrt(2/3) of its
    standard error and the normal quantile is too small for 2 degrees of freedom, so the plain
    percentile interval covers far less than it claims, and three executions of one lab gave
    CPU intervals that excluded each other. The resampled means are stretched about the sample
    mean by sqrt(n/(n-1)) * t(n-1)/z. One run says nothing about run-to-run spread: NaN."""
    n = len(x)
    if n < 2:
        return np.full(n_boot, np.nan)
    w = resample_runs(rng, n, n_boot)
    means = np.asarray((w @ x) / n, dtype=np.float64)
    centre = float(x.mean())
    return centre + expansion(n, confidence) * (means - centre)


@functools.cache
def expansion(n: int, confidence: float) -> float:
    """How far the bootstrap spread of a mean of `n` runs is stretched: sqrt(n/(n-1)) times
    Student's t quantile with n-1 degrees of freedom over the normal one."""
    q = 1.0 - (1.0 - confidence) / 2.0
    return math.sqrt(n / (n - 1)) * t_quantile(q, n - 1) / NormalDist().inv_cdf(q)


def t_quantile(q: float, df: int) -> float:
    """Student's t quantile (0.5 < q < 1) by integrating the density (no SciPy here)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    hi = 1.0
    while _t_cdf(hi, df, c) < q:
        hi *= 2.0
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _t_cdf(mid, df, c) < q else (lo, mid)
    return (lo + hi) / 2.0


def _t_cdf(x: float, df: int, c: float) -> float:
    t = np.linspace(0.0, x, 4001)                      # Simpson's rule on [0, x]
    f = c * (1.0 + t * t / df) ** (-(df + 1) / 2.0)
    h = x / 4000
    return 0.5 + float(h / 3.0 * (f[0] + f[-1] + 4.0 * f[1:-1:2].sum() + 2.0 * f[2:-1:2].sum()))


def _throughput(rng: np.random.Generator, b: _Side, c: _Side, n_boot: int,
                confidence: float) -> dict[str, object]:
    xb = b.runs["achieved_rate_rps"].to_numpy(dtype=np.float64)
    xc = c.runs["achieved_rate_rps"].to_numpy(dtype=np.float64)
    ci = _interval(_boot_mean(rng, xb, n_boot, confidence),
                   _boot_mean(rng, xc, n_boot, confidence), confidence)
    return _row("throughput_rps", "req/s", True, _mean(xb), _mean(xc), ci, xb, xc)


def _boot_rate(rng: np.random.Generator, req: FloatArray, err: FloatArray,
               n_boot: int) -> FloatArray:
    w = resample_runs(rng, len(req), n_boot)
    tot, bad = w @ req, w @ err
    p = np.where(tot > 0, bad / np.where(tot > 0, tot, 1), 0.0)
    draws = rng.binomial(tot.astype(np.int64), np.clip(p, 0, 1))
    return np.asarray(np.where(tot > 0, draws / np.where(tot > 0, tot, 1), np.nan))


def _error_rate(rng: np.random.Generator, b: _Side, c: _Side, n_boot: int,
                confidence: float) -> dict[str, object]:
    def arrays(s: _Side) -> tuple[FloatArray, FloatArray]:
        return (s.runs["requests"].to_numpy(dtype=np.float64),
                s.runs["errors"].to_numpy(dtype=np.float64))

    rb, eb = arrays(b)
    rc, ec = arrays(c)
    base = eb.sum() / rb.sum() if rb.sum() else 0.0
    cand = ec.sum() / rc.sum() if rc.sum() else 0.0
    ci = _interval(_boot_rate(rng, rb, eb, n_boot), _boot_rate(rng, rc, ec, n_boot), confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_b, per_c = np.where(rb > 0, eb / rb, 0.0), np.where(rc > 0, ec / rc, 0.0)
    return _row("error_rate", "fraction", False, float(base), float(cand), ci, per_b, per_c)


def resource_per_run(telemetry: pd.DataFrame, metric: str) -> pd.Series:
    """Per run: the mean over time of `metric`, summed over sources (every proxy of the run)."""
    t = telemetry[telemetry["metric"] == metric]
    if t.empty:
        return pd.Series(dtype=np.float64)
    per_source = t.groupby(["run_id", "source"])["value"].mean()
    return per_source.groupby(level="run_id").sum()


def _resource(rng: np.random.Generator, telemetry: pd.DataFrame, metric: str, unit: str,
              b: _Side, c: _Side, n_boot: int, confidence: float) -> dict[str, object] | None:
    per_run = resource_per_run(telemetry, metric)
    xb = per_run.reindex(b.ids).dropna().to_numpy(dtype=np.float64)
    xc = per_run.reindex(c.ids).dropna().to_numpy(dtype=np.float64)
    if not xb.size or not xc.size:
        return None
    ci = _interval(_boot_mean(rng, xb, n_boot, confidence),
                   _boot_mean(rng, xc, n_boot, confidence), confidence)
    return _row(metric, unit, False, _mean(xb), _mean(xc), ci, xb, xc)


def overhead_by(
    runs: pd.DataFrame,
    buckets: pd.DataFrame,
    *,
    against: str = "mesh",
    baseline: str = "none",
    by: Sequence[str] = ("rate_rps", "connections"),
    telemetry: pd.DataFrame | None = None,
    ps: Sequence[float] = DEFAULT_PS,
    n_boot: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """`overhead` of every other value of `against` (say each mesh) versus `baseline` (say
    "none"), within each `by` group (say each rate and connection count). Long format: the `by`
    columns, `candidate_group` and the OVERHEAD_COLUMNS. Runs of different protocols are never
    pooled: when they mix, `protocol` joins the `by` columns."""
    out: list[pd.DataFrame] = []
    if runs.empty:
        return pd.DataFrame(columns=[*by, "candidate_group", *OVERHEAD_COLUMNS])
    keys = list(by)
    if ("protocol" in runs.columns and "protocol" not in keys and against != "protocol"
            and runs["protocol"].astype(str).nunique() > 1):
        keys.append("protocol")
    by = keys
    groups = runs.groupby(keys, dropna=False) if keys else [((), runs)]
    for key, g in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        base_ids = g.loc[g[against].astype(str) == baseline, "run_id"].tolist()
        if not base_ids:
            continue
        for value, cg in g[g[against].astype(str) != baseline].groupby(against):
            df = overhead(runs, buckets, baseline=base_ids, candidate=cg["run_id"].tolist(),
                          telemetry=telemetry, ps=ps, n_boot=n_boot, seed=seed)
            for k, v in zip(keys, key_t, strict=False):
                df.insert(0, str(k), v)  # type: ignore[arg-type]
            df.insert(len(keys), "candidate_group", str(value))
            out.append(df)
    if not out:
        return pd.DataFrame(columns=[*by, "candidate_group", *OVERHEAD_COLUMNS])
    return pd.concat(out, ignore_index=True)
