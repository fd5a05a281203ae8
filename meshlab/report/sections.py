"""What the report notebook's cells call: one prepared comparison and one function per section.

Bad input (no store, an empty store, unknown run ids, a group matching no runs) becomes
`ReportContext.problem`, and every section then shows that message instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from meshlab.analysis import (
    Frames,
    RegressionVerdict,
    Threshold,
    Verdict,
    context_diff,
    judged,
    load_frames,
    no_match_problem,
    overhead,
    parse_thresholds,
    regression_verdict,
    select_runs,
)
from meshlab.analysis.comparison import PROTOCOL, mixes_protocols
from meshlab.analysis.selection import Selector
from meshlab.errors import MeshlabError

if TYPE_CHECKING:
    from meshlab.store import Store


@dataclass(slots=True)
class ReportContext:
    """A prepared comparison: frames, the two run groups, overhead table and verdict."""

    store_path: str
    baseline: list[str] = field(default_factory=list)
    candidate: list[str] = field(default_factory=list)
    frames: Frames = field(default_factory=Frames.empty, repr=False)
    thresholds: tuple[Threshold, ...] = ()
    overhead: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    verdict: RegressionVerdict | None = None
    problem: str | None = None
    title: str = "meshlab report"
    figures_dir: str = ""            # also write each figure there as PNG and SVG (kaleido)
    trend_over: str = "experiment"   # the trend section's points: experiment, day, label.NAME
    trend: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    word: str = "regression"     # "overhead" when the candidate is another mesh or policy
    groups: list[GroupComparison] = field(default_factory=list)


# What makes runs "a different thing" from the baseline: comparing those is an overhead; only a
# candidate of the same mesh and policy (a new build, another label) can be a regression.
GROUP_KEYS = ("mesh", "policy")


@dataclass(slots=True)
class GroupComparison:
    """One candidate group (one mesh, one policy) against the baseline, in its own section."""

    name: str                    # "mesh=envoy, policy=retry" (", protocol=grpc" when mixed)
    word: str                    # "regression" (same mesh and policy) or "overhead"
    candidate: list[str]
    table: pd.DataFrame          # judged overhead rows: delta, interval, difference
    baseline: list[str] = field(default_factory=list)   # its baseline runs (same protocol)


def candidate_groups(runs: pd.DataFrame, baseline: Sequence[str],
                     candidate: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(name, word, run ids) per candidate group: split by each of GROUP_KEYS the candidate
    runs vary in, and by protocol whenever either side mixes protocols (never pooled);
    "regression" for a group with the baseline's own mesh and policy."""
    keys = [k for k in GROUP_KEYS if k in runs.columns]
    base = runs[runs["run_id"].isin(baseline)]
    cand = runs[runs["run_id"].isin(candidate)]
    split = [k for k in keys if cand[k].astype(str).nunique() > 1]
    by_protocol = mixes_protocols(base, cand)
    if by_protocol:
        split.append(PROTOCOL)
    out: list[tuple[str, str, list[str]]] = []
    parts = cand.groupby([cand[k].astype(str) for k in split], sort=True) if split \
        else [((), cand)]
    for key, g in parts:
        values = dict(zip(split, key if isinstance(key, tuple) else (key,), strict=True))
        name = ", ".join(f"{k}={v}" for k, v in values.items()) or "candidate"
        b = base[base["run_id"].isin(group_baseline(runs, baseline, list(g["run_id"]),
                                                    split=by_protocol))]
        same = all(set(b[k].astype(str)) == set(g[k].astype(str)) for k in keys)
        out.append((name, "regression" if same else "overhead", list(g["run_id"])))
    return out


def group_baseline(runs: pd.DataFrame, baseline: Sequence[str], candidate: Sequence[str], *,
                   split: bool) -> list[str]:
    """The baseline runs a candidate group is compared with: all of them, or when either side
    mixes protocols (`split`), those of the group's own protocol only (possibly none: nothing
    is then judged). One protocol against another (http1 vs grpc) is compared as asked."""
    base = runs[runs["run_id"].isin(baseline)]
    if not split or PROTOCOL not in runs.columns:
        return list(base["run_id"])
    protocols = set(runs[runs["run_id"].isin(candidate)][PROTOCOL].astype(str))
    return list(base[base[PROTOCOL].astype(str).isin(protocols)]["run_id"])


def resolve_groups(runs: pd.DataFrame, *, baseline: Selector, candidate: Selector
                   ) -> tuple[list[str], list[str], str | None]:
    """(baseline ids, candidate ids, problem message or None) for two selectors."""
    if runs.empty:
        return [], [], ("The store holds no runs yet. Record some first, e.g. "
                        "`meshlab run profile.yaml`, then build the report again.")
    problems = [p for name, sel in (("baseline", baseline), ("candidate", candidate))
                if (p := no_match_problem(runs, name, sel))]
    return (select_runs(runs, baseline), select_runs(runs, candidate),
            "; ".join(problems) if problems else None)


def prepare(
    store_path: str | Path,
    *,
    baseline: Selector,
    candidate: Selector,
    thresholds: Sequence[str] | Mapping[str, str] | None = None,
    title: str = "meshlab report",
    renderer: str | None = "notebook",
    n_boot: int = 1000,
    figures_dir: str | Path = "",
    trend_over: str = "experiment",
) -> ReportContext:
    """Open the store read-only, resolve both groups and compute overhead and verdict.
    Never raises for bad input: the message lands in `.problem`."""
    if renderer:
        import plotly.io as pio

        pio.renderers.default = renderer
        from meshlab.report._style import EXPORT_SCRIPT, PLOT_CONFIG

        html_renderer = pio.renderers[renderer]
        if hasattr(html_renderer, "post_script"):   # the HTML renderers: PNG / SVG links
            html_renderer.post_script = [EXPORT_SCRIPT]
            html_renderer.config = {**(getattr(html_renderer, "config", None) or {}),
                                    **PLOT_CONFIG}
    ctx = ReportContext(store_path=str(store_path), title=title,
                        figures_dir=str(figures_dir or ""), trend_over=trend_over)
    try:
        ctx.thresholds = parse_thresholds(thresholds if thresholds else None)
        if not Path(store_path).exists():
            raise FileNotFoundError
        from meshlab.store import Store

        store = Store(store_path, read_only=True)
        runs = store.runs()
        ctx.baseline, ctx.candidate, ctx.problem = resolve_groups(
            runs, baseline=baseline, candidate=candidate)
        if ctx.problem:
            return ctx
        ctx.frames = load_frames(store, [*ctx.baseline, *ctx.candidate])
        ctx.trend = _trend(store, runs, ctx)
    except FileNotFoundError:
        ctx.problem = f"No store at {store_path}: check --store (default data/meshlab.duckdb)."
        return ctx
    except MeshlabError as exc:
        ctx.problem = f"{type(exc).__name__}: {exc}"
        return ctx
    f = ctx.frames
    lat = f.buckets[f.buckets["kind"] == "latency"] if not f.buckets.empty else f.buckets
    ctx.overhead = judged(overhead(f.runs, lat, baseline=ctx.baseline,
                                   candidate=ctx.candidate, telemetry=f.telemetry,
                                   n_boot=n_boot))
    ctx.verdict = regression_verdict(ctx.overhead, ctx.thresholds)
    groups = candidate_groups(f.runs, ctx.baseline, ctx.candidate)
    ctx.word = "regression" if all(w == "regression" for _, w, _ in groups) else "overhead"
    mixed = mixes_protocols(f.runs[f.runs["run_id"].isin(ctx.baseline)],
                            f.runs[f.runs["run_id"].isin(ctx.candidate)])
    for name, word, ids in groups:
        base = group_baseline(f.runs, ctx.baseline, ids, split=mixed)
        table = ctx.overhead if len(groups) == 1 and not mixed else judged(overhead(
            f.runs, lat, baseline=base, candidate=ids, n_boot=n_boot))
        ctx.groups.append(GroupComparison(name, word, ids, table, base))
    if mixed:                # one table over both sides would pool protocols: per group
        ctx.overhead = pd.concat([g.table.assign(candidate_group=g.name) for g in ctx.groups],
                                 ignore_index=True)
        ctx.overhead = ctx.overhead[["candidate_group", *(
            c for c in ctx.overhead.columns if c != "candidate_group")]]
        ctx.verdict = regression_verdict(ctx.groups[0].table, ctx.thresholds)
    if len(groups) > 1:      # the verdict is each group's, never the pooled candidate's
        ctx.verdict = _group_verdict(ctx)
    return ctx


def _trend(store: Store, runs: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    """Every stored run of the compared groups' profiles, as a trend over `ctx.trend_over`."""
    from meshlab.analysis.trend import trend

    chosen = runs[runs["run_id"].isin([*ctx.baseline, *ctx.candidate])]
    same = runs[runs["profile"].isin(set(chosen["profile"]))]
    ids = list(same["run_id"])
    return trend(same, store.buckets(ids), over=ctx.trend_over, group_by=("mesh",))


def _group_verdict(ctx: ReportContext) -> RegressionVerdict:
    """One verdict over several candidate groups: a threshold exceeded in any group (named as
    `mesh=envoy: p99_us`), else the mildest verdict any group got."""
    verdicts = [(g.name, regression_verdict(g.table, ctx.thresholds)) for g in ctx.groups]
    table = pd.concat([v.table.assign(group=name) for name, v in verdicts], ignore_index=True)
    table = table[["group", *(c for c in table.columns if c != "group")]]
    exceeded = tuple(f"{name}: {m}" for name, v in verdicts for m in v.regressions)
    if exceeded:
        return RegressionVerdict(Verdict.REGRESSION, table, exceeded)
    order = (Verdict.NO_SIGNIFICANT_CHANGE, Verdict.WITHIN_THRESHOLD, Verdict.IMPROVEMENT,
             Verdict.NO_DATA)
    seen = {v.verdict for _, v in verdicts}
    return RegressionVerdict(next((o for o in order if o in seen), Verdict.NO_DATA), table)


def verdict_line(ctx: ReportContext) -> str:
    """The verdict line: "REGRESSION in p99" only for a candidate of the baseline's own mesh
    and policy; against another mesh or policy the same finding is an overhead."""
    v = ctx.verdict
    if v is None:
        return "no verdict"
    if v.is_regression and ctx.word == "overhead":
        return "OVERHEAD beyond thresholds in " + ", ".join(v.regressions)
    return v.summary()


def exit_code(ctx: ReportContext) -> int:
    """0 no regression, 1 regression, 2 the comparison could not be made (bad input)."""
    if ctx.problem or ctx.verdict is None or ctx.verdict.verdict is Verdict.NO_DATA:
        return 2
    return 1 if ctx.verdict.is_regression else 0


def verdict_document(ctx: ReportContext) -> dict[str, object]:
    v = ctx.verdict
    return {
        "verdict": str(v.verdict) if v else "error",
        "comparison": ctx.word,
        "regressions": list(v.regressions) if v else [],
        "problem": ctx.problem,
        "exit_code": exit_code(ctx),
        "baseline": ctx.baseline,
        "candidate": ctx.candidate,
    }


def write_verdict(ctx: ReportContext, path: str | Path | None) -> None:
    """Write the verdict JSON the `build_report` caller reads (no-op without a path)."""
    if path:
        Path(path).write_text(json.dumps(verdict_document(ctx), indent=2), encoding="utf-8")


# --- sections: each returns something Jupyter displays --------------------------------------

def _md(text: str) -> object:
    from IPython.display import Markdown

    return Markdown(text)  # type: ignore[no-untyped-call]


def _problem(ctx: ReportContext) -> object:
    return _md(f"> **Cannot compare:** {ctx.problem}")


def header(ctx: ReportContext) -> object:
    if ctx.problem:
        return _md(f"# {ctx.title}\n\n> **Cannot compare:** {ctx.problem}")
    from meshlab.report.tables import metric_name, threshold_text

    status = verdict_line(ctx)
    return _md(f"# {ctx.title}\n\n**Verdict: {status}**\n\n"
               f"Store `{ctx.store_path}` · baseline {len(ctx.baseline)} runs · candidate "
               f"{len(ctx.candidate)} runs · thresholds "
               + ", ".join(f"{metric_name(t.metric)} {threshold_text(str(t))}"
                           for t in ctx.thresholds))


def verdict_table(ctx: ReportContext) -> object:
    if ctx.problem or ctx.verdict is None:
        return _problem(ctx)
    from meshlab.report.tables import verdict_table as table

    return table(ctx.verdict.table)


def overhead_table(ctx: ReportContext) -> object:
    if ctx.problem:
        return _problem(ctx)
    from meshlab.report.tables import comparison_table

    return comparison_table(ctx.overhead)


GROUP_COLUMNS = ["metric", "unit", "baseline", "candidate", "delta", "ci_low", "ci_high",
                 "delta_pct", "difference"]


def group_frames(ctx: ReportContext) -> list[tuple[str, pd.DataFrame]]:
    """(heading, table) per candidate group: each delta against the baseline with its 95%
    interval and faster / slower / indistinguishable."""
    out = []
    for g in ctx.groups:
        what = "Regression check" if g.word == "regression" else "Overhead"
        heading = f"{what}: {g.name} vs baseline ({len(g.candidate)} runs"
        heading += (f" against {len(g.baseline)} baseline runs)" if g.baseline
                    and len(g.baseline) != len(ctx.baseline) else ")")
        cols = [c for c in GROUP_COLUMNS if c in g.table.columns]
        out.append((heading, g.table[cols].round(2)))
    return out


def group_sections(ctx: ReportContext) -> None:
    """Display one section per candidate group (never one pooled "candidate")."""
    from IPython.display import display

    if ctx.problem:
        display(_problem(ctx))   # type: ignore[no-untyped-call]
        return
    from meshlab.report.tables import comparison_table

    for heading, table in group_frames(ctx):
        display(_md(f"### {heading}"))   # type: ignore[no-untyped-call]
        display(comparison_table(table))   # type: ignore[no-untyped-call]


def context_table(ctx: ReportContext) -> object:
    if ctx.problem:
        return _problem(ctx)
    f = ctx.frames
    lat = f.buckets[f.buckets["kind"] == "latency"]
    diff = context_diff(f.runs, baseline=ctx.baseline, candidate=ctx.candidate, buckets=lat)
    from meshlab.report.tables import context_table as table

    return table(diff)


def figure(ctx: ReportContext, name: str) -> object:
    """One of: spectrum, overhead, histogram, rate, timeline, resources (also written as
    PNG and SVG under `ctx.figures_dir` when set)."""
    if ctx.problem:
        return _problem(ctx)
    out = _figure(ctx, name)
    if ctx.figures_dir and hasattr(out, "to_plotly_json"):
        from meshlab.report.image import export_images

        export_images({name: out}, ctx.figures_dir)
    return out


def _figure(ctx: ReportContext, name: str) -> object:
    from meshlab.report import figures

    f = ctx.frames
    lat = f.buckets[f.buckets["kind"] == "latency"]
    if name == "spectrum":
        return figures.percentile_spectrum(lat, groups=_role_groups(ctx),
                                           title="A/B: baseline vs candidate")
    if name == "overhead":
        return figures.overhead_bars(ctx.overhead)
    if name == "histogram":
        return figures.histogram_cdf(lat, groups=_role_groups(ctx))
    group = pd.Series("candidate", index=f.runs.index).where(
        ~f.runs["run_id"].isin(ctx.baseline), "baseline")
    runs = f.runs.assign(group=group)
    rates = sorted(f.runs["rate_rps"].dropna().unique()) if "rate_rps" in f.runs else []
    if name in ("rate", "resources") and len(rates) < 2:
        from meshlab.units import format_rate_rps

        return _md(f"_Latency against rate needs runs at two or more rates; these all ran at "
                   f"{', '.join(format_rate_rps(r) for r in rates) or 'no stated rate'}._")
    if name == "rate":
        return figures.latency_vs_rate(runs, color="group")
    if name == "timeline":
        return figures.timeline(f.timeseries, runs=runs, color="group")
    if name == "resources":
        return figures.resource_vs_rate(runs, f.telemetry, color="group")
    raise ValueError(f"unknown report figure {name!r}")


def _role_groups(ctx: ReportContext) -> dict[str, list[str]]:
    """{"baseline": ids, "candidate": ids}, or per protocol ("candidate grpc") when the runs
    mix protocols: one curve never pools two protocols."""
    runs = ctx.frames.runs
    if not mixes_protocols(runs[runs["run_id"].isin(ctx.baseline)],
                           runs[runs["run_id"].isin(ctx.candidate)]):
        return {"baseline": list(ctx.baseline), "candidate": list(ctx.candidate)}
    out: dict[str, list[str]] = {}
    for role, ids in (("baseline", ctx.baseline), ("candidate", ctx.candidate)):
        side = runs[runs["run_id"].isin(ids)]
        for proto, g in side.groupby(side[PROTOCOL].astype(str), sort=True):
            out[f"{role} {proto}"] = list(g["run_id"])
    return out


def trend_section(ctx: ReportContext, metric: str = "p99_us") -> object:
    """The trend of every stored run of these profiles: a chart (band and regressions marked)
    and, with `metric="table"`, the rows; a note while there are fewer than two points."""
    if ctx.problem:
        return _problem(ctx)
    from meshlab.report.trends import trend_chart, trend_table

    points = ctx.trend["point"].nunique() if not ctx.trend.empty else 0
    if points < 2:
        return _md(f"_A trend needs runs at two or more points ({ctx.trend_over}); the store "
                   f"holds {points} for these profiles. Append each build's runs to the same "
                   f"store (see docs/ci-example.md)._")
    if metric == "table":
        return trend_table(ctx.trend.groupby("mesh", sort=False).tail(12))
    return trend_chart(ctx.trend, metric=metric)
