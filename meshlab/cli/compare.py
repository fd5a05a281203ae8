"""`meshlab compare`: a candidate run group against a baseline, or every group of `--by` columns
against it; each delta with its 95% bootstrap interval and a verdict (meshlab.analysis)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshlab.cli._common import add_store_option, console, fmt_us, open_store, print_json, table

if TYPE_CHECKING:
    import pandas as pd

    from meshlab.analysis import Comparison

_SELECTORS = ("Selectors: run ids (id1,id2) or comma-joined conditions that must all hold: "
              "mesh=none, 'mesh!=none', 'mesh=envoy|nginx', policy=retry3, label.build=v2, "
              "experiment=latest (or an experiment id).")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = subparsers.add_parser(
        "compare", help="baseline vs candidate: deltas with 95%% intervals, judged "
                        "faster / slower / indistinguishable",
        description="Compare run groups from their stored histograms (pooled over repeats). "
                    f"{_SELECTORS} With --by, every group of those columns is compared with "
                    "the baseline: meshlab compare --by mesh,policy --baseline "
                    "'mesh=none,experiment=latest'. Conditions of the baseline on other "
                    "columns narrow both sides. Runs that differ in anything but repeats are "
                    "refused unless grouped (--by) or pooled on purpose (--pool). Exit 2 when "
                    "a selector matches nothing.")
    c.add_argument("--baseline", required=True, metavar="SELECTOR",
                   help="the reference runs, e.g. mesh=none or 'mesh=none,experiment=latest'")
    c.add_argument("--candidate", metavar="SELECTOR",
                   help="required without --by; with --by it narrows the candidate groups")
    c.add_argument("--by", metavar="COLUMNS",
                   help="comma-separated run dimensions: one row per group (mesh, policy, "
                        "mode, rate_rps, connections ...)")
    c.add_argument("--where", metavar="SELECTOR",
                   help="conditions both sides must meet, e.g. experiment=latest")
    c.add_argument("--experiment", metavar="ID|latest", help=argparse.SUPPRESS)  # = --where
    c.add_argument("--pool", action="store_true",
                   help="pool runs that differ in more than repeats (the header says what)")
    c.add_argument("--fast", action="store_true",
                   help="no bootstrap: deltas without intervals, nothing judged")
    c.add_argument("--boot", type=int, default=1000, metavar="N",
                   help="bootstrap resamples (default 1000)")
    add_store_option(c)
    c.add_argument("--json", action="store_true",
                   help="one JSON object per metric (per group with --by)")
    c.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from meshlab.analysis import compare_by, compare_groups, parse_selector, select_runs
    from meshlab.analysis.selection import Selection
    from meshlab.errors import ProfileError

    where = parse_selector(args.where) if args.where else Selection()
    if args.experiment:                       # the old flag: an alias of experiment=ID
        where = where & parse_selector(f"experiment={args.experiment}")
    if not args.by and not args.candidate:
        raise ProfileError("--candidate: required without --by; give run ids or conditions "
                           "such as mesh=envoy, or compare every mesh with --by mesh")
    store = open_store(args, read_only=True)
    runs = store.runs()
    ids = select_runs(runs, where) if where.conditions else list(runs["run_id"])
    buckets = store.buckets(ids) if ids else store.buckets([])
    n_boot = 0 if args.fast else max(1, args.boot)
    if args.by:
        cmp = compare_by(runs, buckets, by=args.by.split(","), baseline=args.baseline,
                         candidate=args.candidate, where=where, pool=args.pool, n_boot=n_boot)
        _print_by(cmp, as_json=args.json)
    else:
        cmp = compare_groups(runs, buckets, baseline=args.baseline, candidate=args.candidate,
                             where=where, pool=args.pool, n_boot=n_boot)
        if cmp.by:          # split by protocol: one row per protocol and side
            _print_by(cmp, as_json=args.json)
        else:
            _print_pair(cmp, as_json=args.json)
    return 0


def _value(metric: str, value: Any, *, signed: bool = False) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(v):
        return "-"
    sign = "+" if signed and v > 0 else ("-" if signed and v < 0 else "")
    mag = abs(v) if signed else v
    if metric.endswith("_us"):
        return sign + fmt_us(mag)
    if metric == "error_rate":
        return f"{sign}{100 * mag:.2f} %"
    return f"{sign}{mag:,.4g}"


def _interval(metric: str, row: Mapping[Any, Any]) -> str:
    lo, hi = (_value(metric, row.get(k), signed=True) for k in ("ci_low", "ci_high"))
    return "-" if "-" in (lo, hi) else f"[{lo}, {hi}]"


def _compact_us(row: Mapping[Any, Any]) -> str:
    """`+227 ms [+147, +337]`: a delta and its interval in one unit (fits a table cell)."""
    vals = []
    for k in ("delta", "ci_low", "ci_high"):
        try:
            vals.append(float(row.get(k)))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            vals.append(math.nan)
    if math.isnan(vals[0]):
        return "-"
    top = max(abs(v) for v in vals if not math.isnan(v))
    scale, unit = (1e6, "s") if top >= 1e6 else (1e3, "ms") if top >= 1e3 else (1.0, "us")
    d, lo, hi = (v / scale for v in vals)
    digits = 0 if unit == "us" or top / scale >= 100 else 2
    text = f"{d:+.{digits}f} {unit}"
    if math.isnan(lo) or math.isnan(hi):
        return text
    return f"{text} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _print_pair(cmp: Comparison, *, as_json: bool) -> None:
    rows = cmp.table.to_dict(orient="records")
    if as_json:
        for row in rows:
            print_json({"baseline_selector": str(cmp.baseline),
                        "candidate_selector": str(cmp.candidate), **row})
        return
    out = console()
    out.print(cmp.header(), soft_wrap=True)    # one line: a script can grep it
    tab = table("")
    for col in ("metric", "baseline", "candidate", "delta", "95% interval", "delta %",
                "difference"):
        tab.add_column(col, justify="left" if col in ("metric", "difference") else "right",
                       no_wrap=True)
    for row in rows:
        m = str(row["metric"])
        pct = row.get("delta_pct")
        tab.add_row(m, _value(m, row["baseline"]), _value(m, row["candidate"]),
                    _value(m, row["delta"], signed=True), _interval(m, row),
                    "-" if pct is None or pct != pct else f"{pct:+.1f} %",
                    str(row["difference"]))
    out.print(tab)


def _deltas(cmp: Comparison, group: Mapping[Any, Any]) -> dict[str, Mapping[Any, Any]]:
    from meshlab.analysis.selection import value_text

    t = cmp.table
    mask = None
    for k in cmp.by:
        m = t[k].map(value_text) == value_text(group[k])
        mask = m if mask is None else mask & m
    sub: pd.DataFrame = t[mask] if mask is not None else t
    return {str(r["metric"]): r for r in sub.to_dict(orient="records")}


def _print_by(cmp: Comparison, *, as_json: bool) -> None:
    from meshlab.analysis.selection import value_text

    groups = cmp.groups.to_dict(orient="records")
    if as_json:
        for g in groups:
            doc = dict(g)
            if g["role"] == "candidate":
                for metric, r in _deltas(cmp, g).items():
                    doc.update({f"delta_{metric}": r.get("delta"),
                                f"ci_low_{metric}": r.get("ci_low"),
                                f"ci_high_{metric}": r.get("ci_high"),
                                f"difference_{metric}": r.get("difference")})
            print_json(doc)
        return
    out = console()
    out.print(cmp.header(), soft_wrap=True)    # one line: a script can grep it
    tab = table("")
    cols = [*cmp.by, "runs", "req/s", "p50", "p99", "+p50 [95% CI]", "p50 is",
            "+p99 [95% CI]", "p99 is", "errors"]
    for col in cols:
        left = col in cmp.by or col.endswith(" is")
        tab.add_column(col, justify="left" if left else "right", no_wrap=col in cmp.by)
    for g in groups:
        cells = [value_text(g[k]) for k in cmp.by]
        cells += [str(g["runs"]), _value("rate", g["achieved_rate_rps"]),
                  fmt_us(g["p50_us"]), fmt_us(g["p99_us"])]
        if g["role"] == "baseline":
            cells += ["baseline", "", "", ""]
        else:
            d = _deltas(cmp, g)
            for metric in ("p50_us", "p99_us"):
                r = d.get(metric, {})
                cells += [_compact_us(r), str(r.get("difference", "not judged"))]
        cells.append(_value("error_rate", g["error_rate"]))
        tab.add_row(*cells)
    out.print(tab)
