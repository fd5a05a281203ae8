"""Comparisons of run groups over the store's frames: pooled percentiles per group, and every
delta against a baseline with its 95% bootstrap interval judged faster, slower or
indistinguishable (a difference inside the noise is never ranked)."""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from meshlab.analysis._counts import count_matrix, percentiles_from_counts
from meshlab.analysis.overhead import OVERHEAD_COLUMNS, overhead
from meshlab.analysis.selection import (
    DIMENSIONS,
    Selection,
    Selector,
    no_match_problem,
    parse_selector,
    select_runs,
    store_summary,
    value_text,
    varying,
)
from meshlab.errors import ProfileError
from meshlab.run_schema import DEFAULT_PS, percentile_column

POOLED_COLUMNS = ["runs", "requests", "errors", "error_rate", "achieved_rate_rps"]
# Never pooled, not even with pool=True: a gRPC call and an HTTP/1.1 request are different
# things, so a selection that mixes protocols is split by them.
PROTOCOL = "protocol"


def mixes_protocols(*frames: pd.DataFrame) -> bool:
    """Whether the runs of any of `frames` hold more than one protocol."""
    return any(PROTOCOL in f.columns and f[PROTOCOL].map(value_text).nunique() > 1
               for f in frames)


class Difference(enum.StrEnum):
    """What the 95% interval of a delta says."""

    FASTER = "faster"                       # latency down or throughput up, interval clear of 0
    SLOWER = "slower"
    INDISTINGUISHABLE = "indistinguishable"  # the interval holds 0: inside the noise
    HIGHER = "higher"                       # a metric that is not a speed (errors, CPU, memory)
    LOWER = "lower"
    NOT_JUDGED = "not judged"               # no interval (fast path, or a side without data)


def difference(metric: str, ci_low: float, ci_high: float, *,
               higher_is_better: bool = False) -> Difference:
    """The judgement of one delta from its interval."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return Difference.NOT_JUDGED
    if ci_low <= 0.0 <= ci_high:
        return Difference.INDISTINGUISHABLE
    up = ci_low > 0.0
    if metric.endswith("_us") or metric == "throughput_rps":
        return Difference.FASTER if up == higher_is_better else Difference.SLOWER
    return Difference.HIGHER if up else Difference.LOWER


def judged(table: pd.DataFrame) -> pd.DataFrame:
    """An `overhead()` table with a `difference` column (see `Difference`)."""
    out = table.copy()
    out["difference"] = [
        str(difference(str(r["metric"]), float(r["ci_low"]), float(r["ci_high"]),
                       higher_is_better=bool(r["higher_is_better"])))
        for r in table.to_dict("records")]
    return out


def pooled_percentiles(runs: pd.DataFrame, buckets: pd.DataFrame, *,
                       group_by: Sequence[str] = ("mesh", "rate_rps", "connections"),
                       ps: Sequence[float] = DEFAULT_PS, kind: str = "latency") -> pd.DataFrame:
    """One row per group of `runs`: the group columns, runs, requests, errors, error_rate,
    achieved_rate_rps (mean over runs) and the percentiles of the histogram merged across the
    group's runs (never averaged percentiles). `buckets` is shaped like `Store.buckets()`.
    Runs of different protocols are never pooled: `protocol` joins the groups when they mix."""
    keys = list(group_by)
    if PROTOCOL not in keys and mixes_protocols(runs):
        keys.append(PROTOCOL)
    bad = [g for g in keys if g not in runs.columns]
    if bad:
        raise ProfileError(f"cannot group by {bad[0]!r}: not a runs column; use "
                           f"{', '.join(d for d in DIMENSIONS if d in runs.columns)}")
    cols = [*keys, *POOLED_COLUMNS, *(percentile_column(p) for p in ps)]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    groups = ([((), runs)] if not keys else
              [(k if isinstance(k, tuple) else (k,), g)
               for k, g in runs.groupby(keys, dropna=False, sort=True)])
    data: list[dict[str, object]] = []
    for key, g in groups:
        counts = count_matrix(buckets, [str(r) for r in g["run_id"]], kind=kind).sum(axis=0)
        requests, errors = int(g["requests"].sum()), int(g["errors"].sum())
        pct = percentiles_from_counts(counts, ps)[0]
        data.append({**dict(zip(keys, key, strict=True)), "runs": len(g), "requests": requests,
                     "errors": errors, "error_rate": errors / requests if requests else 0.0,
                     "achieved_rate_rps": float(g["achieved_rate_rps"].mean()),
                     **{percentile_column(p): float(v) for p, v in zip(ps, pct, strict=True)}})
    return pd.DataFrame(data, columns=cols)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Baseline vs candidate: `table` has OVERHEAD_COLUMNS plus `difference`; with `by`, one
    block of rows per candidate group (the `by` columns first) and `groups` holds the pooled
    percentiles of every group, baseline groups first (column `role`)."""

    baseline: Selection
    candidate: Selection
    baseline_ids: tuple[str, ...]
    candidate_ids: tuple[str, ...]
    table: pd.DataFrame = field(repr=False)
    by: tuple[str, ...] = ()
    scope: Selection = field(default_factory=Selection)    # conditions both sides met (--by)
    groups: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    pooled: dict[str, list[str]] = field(default_factory=dict)   # mixed beyond repeats (--pool)
    shared: dict[str, str] = field(default_factory=dict)   # by-dims one baseline value serves
    intervals: bool = True
    split: tuple[str, ...] = ()     # by-columns added because the selection mixed them
    protocols: tuple[str, str] = ("", "")   # baseline's and candidate's, when each has one

    def header(self) -> str:
        """One honest line: what is compared, what is pooled, and whether deltas are judged."""
        n_b, n_c = len(self.baseline_ids), len(self.candidate_ids)
        shown = [k for k in self.by if k not in self.split] if self.split else list(self.by)
        if shown:
            what = f"each {','.join(shown)} group against baseline {self.baseline}"
            if self.scope.conditions:
                what += f" within {self.scope}"
            if self.candidate.conditions or self.candidate.run_ids:
                what += f" (candidates {self.candidate})"
        else:
            what = f"candidate {self.candidate} against baseline {self.baseline}"
        pooled = "histograms pooled over repeats only"
        if self.pooled:
            mixed = "; ".join(f"{k} ({', '.join(v)})" for k, v in self.pooled.items())
            pooled = f"histograms pooled over repeats AND over {mixed} (--pool)"
        shared = "".join(f"; baseline {k}={v} serves every row" for k, v in self.shared.items())
        if self.split:
            shared += (f"; split by {','.join(self.split)} (runs of different protocols are "
                       f"never pooled; each is compared with baseline runs of its own)")
        b_proto, c_proto = self.protocols
        if b_proto and c_proto and b_proto != c_proto:
            shared += f"; protocols differ: baseline {b_proto}, candidate {c_proto}"
        judged_ = ("95% bootstrap intervals; a delta whose interval holds 0 is indistinguishable"
                   if self.intervals else "no intervals (fast path): deltas are not judged")
        if self.intervals and min(n_b, n_c) == 1:
            judged_ += ("; one run on a side: throughput, CPU and memory are not judged (one "
                        "run says nothing about run-to-run spread; use repeats >= 2)")
        return f"{what}: {n_b} baseline and {n_c} candidate run(s), {pooled}{shared}; {judged_}"


def _pooled_problem(side: str, mixed: dict[str, list[str]], sel: Selection,
                    by: Sequence[str]) -> str:
    dim, values = next(iter(mixed.items()))
    fix = f"{sel},{dim}={values[0]}" if sel.conditions else f"{dim}={values[0]}"
    return (f"{side} runs differ in {dim} ({', '.join(values)}), not only in repeats: group "
            f"by it (--by {','.join([*by, dim])}), narrow the {side} (e.g. '{fix}'), or pool "
            f"them on purpose with --pool (pool=True)")


def compare_groups(runs: pd.DataFrame, buckets: pd.DataFrame, *, baseline: Selector | Selection,
                   candidate: Selector | Selection, where: Selector | Selection | None = None,
                   pool: bool = False, telemetry: pd.DataFrame | None = None,
                   ps: Sequence[float] = DEFAULT_PS, n_boot: int = 1000,
                   seed: int = 0) -> Comparison:
    """One candidate group against one baseline group (`where` narrows both). ProfileError
    when a side selects nothing (saying what the store holds) or mixes more than repeats
    (unless `pool`). `n_boot=0` is the fast path: no intervals, nothing judged."""
    scope = parse_selector(where) if where is not None else Selection()
    sels = [parse_selector(baseline) & scope, parse_selector(candidate) & scope]
    ids: list[list[str]] = []
    for name, sel in zip(("baseline", "candidate"), sels, strict=True):
        problem = no_match_problem(runs, name, sel)
        if problem:
            raise ProfileError(problem)
        ids.append(select_runs(runs, sel))
    mixed: dict[str, list[str]] = {}
    sides = [runs[runs["run_id"].isin(side)] for side in ids]
    split = mixes_protocols(*sides)
    for name, sel, frame in zip(("baseline", "candidate"), sels, sides, strict=True):
        m = varying(frame, ignore=(PROTOCOL,) if split else ())
        if m and not pool:
            raise ProfileError(_pooled_problem(name, m, sel, ()))
        for k, v in m.items():
            mixed[k] = sorted({*mixed.get(k, []), *v})
    if split:
        return _split_by_protocol(runs, buckets, sels, ids, sides, mixed=mixed, ps=ps,
                                  n_boot=n_boot, seed=seed)
    table = judged(overhead(runs, buckets, baseline=ids[0], candidate=ids[1],
                            telemetry=telemetry, ps=ps, n_boot=n_boot, seed=seed))
    return Comparison(sels[0], sels[1], tuple(ids[0]), tuple(ids[1]), table, pooled=mixed,
                      intervals=n_boot > 0, protocols=_single_protocols(sides))


def _single_protocols(sides: Sequence[pd.DataFrame]) -> tuple[str, str]:
    one = [sorted({value_text(v) for v in f[PROTOCOL]}) if PROTOCOL in f.columns else []
           for f in sides]
    return (one[0][0] if len(one[0]) == 1 else "", one[1][0] if len(one[1]) == 1 else "")


def _not_judged(ps: Sequence[float]) -> pd.DataFrame:
    return pd.DataFrame([{"metric": percentile_column(p), "difference": str(Difference.NOT_JUDGED)}
                         for p in ps], columns=[*OVERHEAD_COLUMNS, "difference"])


def _judged_groups(runs: pd.DataFrame, buckets: pd.DataFrame, base: pd.DataFrame,
                   cand: pd.DataFrame, keys: list[str], paired: list[str], *,
                   ps: Sequence[float], n_boot: int, seed: int) -> pd.DataFrame:
    """Each candidate group of `keys` judged against the baseline runs that share its `paired`
    values (not judged when there are none), the group's values in leading columns."""
    blocks: list[pd.DataFrame] = []
    for key, g in cand.groupby(keys, dropna=False, sort=True):
        values: dict[str, object] = dict(zip(keys, key if isinstance(key, tuple) else (key,),
                                             strict=True))
        b = base
        for k in paired:
            b = b[b[k].map(value_text) == value_text(values[k])]
        t = judged(overhead(runs, buckets, baseline=list(b["run_id"]),
                            candidate=list(g["run_id"]), ps=ps, n_boot=n_boot, seed=seed))
        if t.empty:
            t = _not_judged(ps)
        for k in reversed(keys):
            t.insert(0, k, [values[k]] * len(t))
        blocks.append(t)
    return pd.concat(blocks, ignore_index=True)


def _split_by_protocol(runs: pd.DataFrame, buckets: pd.DataFrame, sels: list[Selection],
                       ids: list[list[str]], sides: list[pd.DataFrame], *,
                       mixed: dict[str, list[str]], ps: Sequence[float], n_boot: int,
                       seed: int) -> Comparison:
    """compare_groups for sides that mix protocols: each candidate protocol against the
    baseline runs of the same protocol (not judged when the baseline has none)."""
    base, cand = sides
    table = _judged_groups(runs, buckets, base, cand.assign(**{PROTOCOL: cand[PROTOCOL].map(
        value_text)}), [PROTOCOL], [PROTOCOL], ps=ps, n_boot=n_boot, seed=seed)
    groups = pd.concat([pooled_percentiles(f, buckets, group_by=[PROTOCOL], ps=ps)
                        .assign(role=role) for f, role in ((base, "baseline"),
                                                           (cand, "candidate"))],
                       ignore_index=True)
    groups = groups[[PROTOCOL, "role", *(c for c in groups.columns
                                         if c not in (PROTOCOL, "role"))]]
    return Comparison(sels[0], sels[1], tuple(ids[0]), tuple(ids[1]), table,
                      by=(PROTOCOL,), groups=groups,
                      pooled=mixed, intervals=n_boot > 0, split=(PROTOCOL,))


def compare_by(runs: pd.DataFrame, buckets: pd.DataFrame, *, by: Sequence[str],
               baseline: Selector | Selection, candidate: Selector | Selection | None = None,
               where: Selector | Selection | None = None, pool: bool = False,
               ps: Sequence[float] = DEFAULT_PS, n_boot: int = 1000,
               seed: int = 0) -> Comparison:
    """Every group of the `by` columns (say each mesh and policy) against the baseline.

    The baseline's conditions on `by` columns name the baseline group (`mesh=none`); its other
    conditions (`policy=retry3`, `experiment=latest`) and `where` narrow both sides. A `by`
    column the baseline varies in pairs each group with the baseline runs of its own value;
    one the baseline holds a single value of shares that baseline across rows (said in the
    header). Any other dimension that varies inside a group is refused unless `pool`."""
    keys = list(dict.fromkeys(k.strip() for k in by if k.strip()))
    bad = [k for k in keys if k not in runs.columns]
    split: tuple[str, ...] = ()
    if not keys or bad:
        known = ", ".join(d for d in DIMENSIONS if d in runs.columns)
        raise ProfileError(f"--by {','.join(by)}: {bad[0] + ' is ' if bad else ''}not a run "
                           f"dimension; use one or more of {known} (e.g. --by mesh,policy)")
    sel = parse_selector(baseline)
    if sel.run_ids:
        raise ProfileError(f"--baseline {sel}: with --by, name the baseline by a condition on "
                           f"a --by column, e.g. --baseline {keys[0]}=none")
    base_sel, rest = sel.split(keys)
    if not base_sel.conditions:
        raise ProfileError(f"--baseline {sel}: name the baseline value of a --by column, "
                           f"e.g. --baseline {keys[0]}=none{',' + str(rest) if rest.keys else ''}")
    scope = rest & (parse_selector(where) if where is not None else Selection())
    scope_runs = runs
    if scope.conditions:
        problem = no_match_problem(runs, "selection", scope)
        if problem:
            raise ProfileError(problem)
        scope_runs = runs[runs["run_id"].isin(select_runs(runs, scope))]
    b_ids = select_runs(scope_runs, base_sel)
    if not b_ids:
        raise ProfileError(f"baseline: no runs with {base_sel} among the {len(scope_runs)} "
                           f"selected run(s) ({store_summary(scope_runs)})")
    others = scope_runs[~scope_runs["run_id"].isin(b_ids)]
    cand_sel = parse_selector(candidate) if candidate is not None else Selection()
    if candidate is not None:
        others = others[others["run_id"].isin(select_runs(others, cand_sel))]
    if others.empty:
        raise ProfileError(f"candidate: no runs besides the baseline {base_sel} among the "
                           f"{len(scope_runs)} selected run(s) ({store_summary(scope_runs)})")
    base = scope_runs[scope_runs["run_id"].isin(b_ids)]
    if PROTOCOL not in keys and mixes_protocols(pd.concat([base, others])):
        keys.append(PROTOCOL)            # never pooled: each protocol against its own baseline
        split = (PROTOCOL,)
    paired = [k for k in keys if k not in base_sel.keys
              and (base[k].nunique(dropna=False) > 1 or k in split)]
    shared = {k: value_text(base[k].iloc[0]) for k in keys
              if k not in base_sel.keys and k not in paired}
    mixed: dict[str, list[str]] = {}
    for side, frame in (("baseline", base), ("candidate", others)):
        for _, g in frame.groupby(keys, dropna=False, sort=True):
            m = varying(g, ignore=keys)
            if m and not pool:
                raise ProfileError(_pooled_problem(side, m, base_sel if side == "baseline"
                                                   else cand_sel, keys))
            for k, v in m.items():
                mixed[k] = sorted({*mixed.get(k, []), *v})
    table = _judged_groups(runs, buckets, base, others, keys, paired, ps=ps, n_boot=n_boot,
                           seed=seed)
    groups = pooled_percentiles(pd.concat([base, others]), buckets, group_by=keys, ps=ps)
    groups.insert(len(keys), "role", ["baseline" if _all_in(g, keys, base) else "candidate"
                                      for g in groups.to_dict("records")])
    groups = groups.sort_values("role", kind="stable").reset_index(drop=True)
    return Comparison(base_sel, cand_sel, tuple(b_ids), tuple(others["run_id"]), table,
                      by=tuple(keys), scope=scope,
                      groups=groups, pooled=mixed, shared=shared, intervals=n_boot > 0,
                      split=split)


def _all_in(row: Mapping[Hashable, object], keys: list[str], base: pd.DataFrame) -> bool:
    mask = np.ones(len(base), dtype=bool)
    for k in keys:
        mask &= (base[k].map(value_text) == value_text(row[k])).to_numpy()
    return bool(mask.any())
