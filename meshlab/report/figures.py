"""Plotly figures over the store's DataFrames: `fn(df, *, ...) -> go.Figure`, no I/O.

Every mesh keeps one colour across figures; every axis title carries its unit. Figures pool
and aggregate with numpy before plotting, so 1,000 runs still draw a handful of traces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from meshlab.analysis._counts import MIDS_US, count_matrix
from meshlab.analysis.answer import Answer
from meshlab.report._style import _PALETTE, LAYOUT, group_colors, latency_axis
from meshlab.report._style import mesh_color as mesh_color  # re-exported: charts' colours

_TICKS = [1, 2, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
_TICK_TEXT = ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]


def _group_of(runs: pd.DataFrame | None, group_by: str | Sequence[str]) -> dict[str, str]:
    if runs is None or runs.empty:
        return {}
    cols = [group_by] if isinstance(group_by, str) else list(group_by)
    label = runs[cols].astype(str).agg(" ".join, axis=1)
    return dict(zip(runs["run_id"].astype(str), label, strict=True))


def _groups(buckets: pd.DataFrame, runs: pd.DataFrame | None, group_by: str | Sequence[str],
            groups: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    if groups is not None:
        return {str(k): list(v) for k, v in groups.items()}
    ids = list(dict.fromkeys(buckets["run_id"].astype(str))) if not buckets.empty else []
    label = _group_of(runs, group_by)
    out: dict[str, list[str]] = {}
    for rid in ids:
        out.setdefault(label.get(rid, rid), []).append(rid)
    return out


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={**LAYOUT, "title": title})
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def _spectrum_xy(counts: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    total = counts.sum()
    max_x = max(float(total), 2.0)
    x = np.unique(np.logspace(0, math.log10(max_x), points))
    q = 1.0 - 1.0 / x
    rank = np.maximum(np.ceil(q * total), 1)
    idx = np.searchsorted(np.cumsum(counts), rank, side="left")
    return x, MIDS_US[np.minimum(idx, len(MIDS_US) - 1)]


def percentile_spectrum(
    buckets: pd.DataFrame,
    *,
    runs: pd.DataFrame | None = None,
    group_by: str | Sequence[str] = "mesh",
    groups: Mapping[str, Sequence[str]] | None = None,
    kind: str = "latency",
    log_y: bool = True,
    title: str = "Latency by percentile",
) -> go.Figure:
    """HDR-style percentile spectrum: latency against percentile on a 1/(1-p) log axis, one
    line per group, histograms pooled across the group's runs. `groups` maps a label to run
    ids explicitly; otherwise runs are grouped by the `group_by` columns of `runs`."""
    if buckets.empty:
        return _empty(title, "no runs selected")
    fig = go.Figure(layout={**LAYOUT, "title": title})
    grouped = _groups(buckets, runs, group_by, groups)
    colours = group_colors(list(grouped))
    ys: list[np.ndarray] = []
    for label, ids in grouped.items():
        counts = count_matrix(buckets, ids, kind=kind).sum(axis=0)
        if not counts.sum():
            continue
        x, y = _spectrum_xy(counts)
        ys.append(y)
        pct = (1.0 - 1.0 / x) * 100.0
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=f"{label} ({len(ids)} runs)",
            line={"color": colours[label], "shape": "hv"}, customdata=pct,
            hovertemplate="p%{customdata:.4f}: %{y:,.0f} us<extra>" + label + "</extra>"))
    fig.update_xaxes(type="log", tickvals=_TICKS, ticktext=_TICK_TEXT,
                     title="percentile (log scale of 1/(1-p))")
    if log_y:
        latency_axis(fig, np.concatenate(ys) if ys else [], title=kind.replace("_", " "))
    else:
        fig.update_yaxes(title=f"{kind.replace('_', ' ')} (us)", rangemode="tozero")
    return fig


def ab_overlay(buckets: pd.DataFrame, *, baseline: Sequence[str], candidate: Sequence[str],
               kind: str = "latency", title: str = "A/B: baseline vs candidate") -> go.Figure:
    """Percentile spectra of a baseline and a candidate run group on one chart."""
    return percentile_spectrum(buckets, groups={"baseline": baseline, "candidate": candidate},
                               kind=kind, title=title)


def corrected_vs_uncorrected(buckets: pd.DataFrame, *, run_ids: Sequence[str],
                             title: str = "Coordinated omission") -> go.Figure:
    """Spectrum of latency from the intended send (corrected) against service time from the
    actual send (what a closed-loop tool reports) for the same runs."""
    fig = percentile_spectrum(buckets, groups={"corrected latency": run_ids}, title=title)
    svc = percentile_spectrum(buckets, groups={"service time (uncorrected)": run_ids},
                              kind="service_time")
    for tr in svc.data:
        tr.line.color = "#ff7f0e"
        tr.line.dash = "dash"
        fig.add_trace(tr)
    latency_axis(fig, np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
                 if fig.data else [])
    return fig


def histogram_cdf(buckets: pd.DataFrame, *, runs: pd.DataFrame | None = None,
                  group_by: str | Sequence[str] = "mesh",
                  groups: Mapping[str, Sequence[str]] | None = None, kind: str = "latency",
                  title: str = "Latency histogram and CDF") -> go.Figure:
    """Share of requests per histogram bucket (bars) with the cumulative share (line, right)."""
    if buckets.empty:
        return _empty(title, "no runs selected")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(**LAYOUT, title=title, barmode="overlay")
    grouped = _groups(buckets, runs, group_by, groups)
    colours = group_colors(list(grouped))
    xs: list[np.ndarray] = []
    for label, ids in grouped.items():
        counts = count_matrix(buckets, ids, kind=kind).sum(axis=0)
        total = counts.sum()
        if not total:
            continue
        nz = np.flatnonzero(counts)
        xs.append(MIDS_US[nz])
        share = counts[nz] / total * 100.0
        colour = colours[label]
        # a filled step line, not bars: bars one bucket wide vanish on a log axis
        fig.add_trace(go.Scatter(x=MIDS_US[nz], y=share, name=f"{label} share",
                                 mode="lines", line={"color": colour, "shape": "hvh",
                                                     "width": 1},
                                 fill="tozeroy", opacity=0.45), secondary_y=False)
        fig.add_trace(go.Scatter(x=MIDS_US[nz], y=np.cumsum(share), name=f"{label} CDF",
                                 line={"color": colour}), secondary_y=True)
    latency_axis(fig, np.concatenate(xs) if xs else [], axis="x",
                 title=kind.replace("_", " "))
    fig.update_yaxes(title="requests per bucket (%)", secondary_y=False)
    fig.update_yaxes(title="cumulative requests (%)", range=[0, 100.5], dtick=25,
                     showgrid=False, secondary_y=True)
    return fig


def _mean_sd(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    g = df.groupby(keys, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.sort_values(keys)


def _versus(runs: pd.DataFrame, *, x: str, y: str, color: str, title: str, x_title: str,
            y_title: str) -> go.Figure:
    if runs.empty or y not in runs.columns:
        return _empty(title, "no runs selected")
    df = runs[[color, x, y]].dropna(subset=[x])
    xs = sorted(df[x].unique())
    if len(xs) < 2:
        what = x_title.split(" (")[0]
        return _empty(title, f"only one {what} ({', '.join(f'{v:g}' for v in xs) or 'none'}): "
                             f"this chart needs runs at two or more")
    agg = _mean_sd(df, [color, x], y)
    fig = go.Figure(layout={**LAYOUT, "title": title})
    colours = group_colors(sorted(agg[color].astype(str).unique()))
    for label, g in agg.groupby(color, dropna=False, sort=True):
        fig.add_trace(go.Scatter(
            x=g[x], y=g["mean"], mode="lines+markers", name=str(label),
            error_y={"type": "data", "array": g["std"], "visible": True},
            line={"color": colours[str(label)]}, customdata=g["count"],
            hovertemplate="%{x}: %{y:.1f} (n=%{customdata})<extra>" + str(label) + "</extra>"))
    fig.update_xaxes(title=x_title)
    if y.endswith("_us"):
        latency_axis(fig, pd.concat([agg["mean"] - agg["std"], agg["mean"] + agg["std"],
                                     agg["mean"]]).to_numpy(),
                     title=y_title.removesuffix(" (us)"))
        # the sd bars of a log axis cannot go below zero: clip them at the smallest value
        for tr in fig.data:
            m = np.asarray(tr.y, dtype=float)
            tr.error_y.symmetric = False
            tr.error_y.arrayminus = np.minimum(np.asarray(tr.error_y.array, dtype=float),
                                               m * 0.9)
    else:
        fig.update_yaxes(title=y_title, rangemode="tozero")
    return fig


def latency_vs_rate(runs: pd.DataFrame, *, percentile: str = "p99_us", color: str = "mesh",
                    x: str = "rate_rps") -> go.Figure:
    """A per-run percentile against the requested rate; mean +- sd over repeats per mesh."""
    return _versus(runs, x=x, y=percentile, color=color,
                   title=f"{percentile.removesuffix('_us')} latency vs rate",
                   x_title="requested rate (req/s)" if x == "rate_rps" else f"{x}",
                   y_title=f"{percentile.removesuffix('_us')} latency (us)")


def latency_vs_connections(runs: pd.DataFrame, *, percentile: str = "p99_us",
                           color: str = "mesh") -> go.Figure:
    """A per-run percentile against the number of connections, per mesh."""
    return _versus(runs, x="connections", y=percentile, color=color,
                   title=f"{percentile.removesuffix('_us')} latency vs connections",
                   x_title="connections (count)",
                   y_title=f"{percentile.removesuffix('_us')} latency (us)")


_RESOURCE_UNITS = {"cpu_percent": "CPU (% of one core)", "rss_bytes": "memory (MiB)"}


def resource_vs_rate(runs: pd.DataFrame, telemetry: pd.DataFrame, *,
                     metric: str = "cpu_percent", color: str = "mesh") -> go.Figure:
    """Mean proxy CPU (or memory) per run, summed over proxies, against the requested rate."""
    from meshlab.analysis.overhead import resource_per_run

    title = f"{_RESOURCE_UNITS.get(metric, metric)} vs rate"
    if runs.empty or telemetry.empty:
        return _empty(title, "no telemetry recorded for these runs")
    per_run = resource_per_run(telemetry, metric).rename("value")
    if metric == "rss_bytes":
        per_run = per_run / (1024 * 1024)
    df = runs.merge(per_run, left_on="run_id", right_index=True)
    return _versus(df, x="rate_rps", y="value", color=color, title=title,
                   x_title="requested rate (req/s)", y_title=_RESOURCE_UNITS.get(metric, metric))


def timeline(timeseries: pd.DataFrame, *, runs: pd.DataFrame | None = None,
             metric: str = "p99_us", color: str = "mesh",
             title: str | None = None, window_s: float = 0.0) -> go.Figure:
    """Per-second values of every run (one line per group, gaps between runs), with a legend.
    Latency metrics go on a log axis. `window_s` fixes the time axis to at least that many
    seconds (a live chart then starts from a sensible range, not from one autoscaled point)."""
    units = {"p50_us": "p50 latency (us)", "p99_us": "p99 latency (us)",
             "requests": "requests per second (req/s)", "errors": "errors per second (1/s)"}
    title = title or f"{units.get(metric, metric).split(' (')[0]} per second"
    if timeseries.empty:
        return _empty(title, "no per-second data yet")
    label = _group_of(runs, color)
    fig = go.Figure(layout={**LAYOUT, "title": title})
    ts = timeseries.sort_values(["run_id", "second"])
    ts = ts.assign(group=ts["run_id"].astype(str).map(lambda r: label.get(r, r)))
    colours = group_colors(sorted(ts["group"].astype(str).unique()))
    for group, g in ts.groupby("group", sort=True):
        # one trace per group with gaps between runs keeps 1,000 runs at a few traces
        xs: list[float | None] = []
        ys: list[float | None] = []
        for _, r in g.groupby("run_id", sort=False):
            xs.extend([*r["second"].tolist(), None])
            ys.extend([*r[metric].tolist(), None])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 40 else "lines",
                                 name=str(group), line={"color": colours[str(group)]},
                                 connectgaps=False))
    last_s = float(pd.to_numeric(ts["second"], errors="coerce").max())
    fig.update_xaxes(title="time since measuring started (s)",
                     range=[0, max(window_s, last_s + 1, 1.0)])
    if metric.endswith("_us"):
        latency_axis(fig, pd.to_numeric(ts[metric], errors="coerce").to_numpy(),
                     title=units.get(metric, metric).removesuffix(" (us)"))
    else:
        top = float(pd.to_numeric(ts[metric], errors="coerce").max())
        fig.update_yaxes(title=units.get(metric, metric),
                         range=[0, (top if math.isfinite(top) and top > 0 else 1.0) * 1.15])
    return fig


def overhead_bars(table: pd.DataFrame, *, metrics: Sequence[str] = ("p50_us", "p90_us",
                  "p99_us", "p999_us"), relative: bool = True,
                  title: str = "Overhead vs baseline") -> go.Figure:
    """Bars of each metric's change with its bootstrap interval as error bars. Accepts an
    `overhead()` table or an `overhead_by()` table (one bar group per candidate/config)."""
    if table.empty:
        return _empty(title, "nothing to compare")
    df = table[table["metric"].isin(list(metrics))].copy()
    val, lo, hi = (("delta_pct", "ci_low_pct", "ci_high_pct") if relative
                   else ("delta", "ci_low", "ci_high"))
    extra = [c for c in df.columns if c in ("candidate_group", "rate_rps", "connections")]
    df["series"] = (df[extra].astype(str).agg(" ".join, axis=1) if extra else "candidate")
    fig = go.Figure(layout={**LAYOUT, "title": title, "barmode": "group"})
    colours = group_colors(list(df["candidate_group"].astype(str)) if "candidate_group" in df
                           else ["candidate"])
    for series, g in df.groupby("series", sort=False):
        first = str(g["candidate_group"].iloc[0]) if "candidate_group" in g else "candidate"
        fig.add_trace(go.Bar(
            x=g["metric"].str.removesuffix("_us").str.replace("p999", "p99.9"), y=g[val],
            name=str(series),
            marker_color=colours[first],
            error_y={"type": "data", "symmetric": False, "array": g[hi] - g[val],
                     "arrayminus": g[val] - g[lo]}))
    fig.update_xaxes(title="metric (percentile of latency)")
    fig.update_yaxes(title="change vs baseline (%)" if relative else "change vs baseline (us)")
    return fig


def _code_color(code: int) -> str:
    if code < 300:
        return "#2ca02c"
    if code < 500:
        return "#ff7f0e" if code != 429 else "#e6a800"
    return {503: "#d62728", 504: "#9467bd", 502: "#8c564b"}.get(code, "#e377c2")


def status_mix(shares: pd.DataFrame, *, by: str = "policy",
               title: str = "Responses by HTTP status") -> go.Figure:
    """Stacked bars: each status code's share of a group's responses (a `status_shares()`
    table), with the counts in the hover text."""
    if shares.empty:
        return _empty(title, "no responses recorded")
    fig = go.Figure(layout={**LAYOUT, "title": title, "barmode": "stack"})
    groups = [str(g) for g in dict.fromkeys(shares[by])]
    for code, g in shares.groupby("code", sort=True):
        c = int(str(code))
        fig.add_trace(go.Bar(
            x=g[by].astype(str), y=g["share"] * 100.0, name=str(c), customdata=g["count"],
            marker_color=_code_color(c), text=(g["share"] * 100.0).round(1).astype(str) + "%",
            hovertemplate="%{x}: %{y:.2f}% (%{customdata} responses)<extra>" + str(c)
            + "</extra>"))
    fig.update_xaxes(title=by, categoryorder="array", categoryarray=groups)
    fig.update_yaxes(title="share of responses (%)", range=[0, 100.5])
    return fig


def counter_bars(table: pd.DataFrame, *, by: str = "policy", series: str = "metric",
                 value: str = "value", labels: Mapping[str, str] | None = None,
                 title: str = "Proxy counters", y_title: str = "count during the run") -> go.Figure:
    """Grouped bars of a `counters_by()` table: one bar group per `by` value, one bar per
    `series` value (each metric, or each source with `value="share"`). `labels` renames
    series in the legend (`{"envoy.upstream_rq_retry": "retries"}`) and orders them."""
    if table.empty:
        return _empty(title, "no proxy counters recorded for these runs")
    names = dict(labels or {})
    fig = go.Figure(layout={**LAYOUT, "title": title, "barmode": "group"})
    scale = 100.0 if value == "share" else 1.0
    keys = list(dict.fromkeys(table[series].astype(str)))
    keys.sort(key=lambda k: list(names).index(k) if k in names else len(names))
    groups = [str(g) for g in dict.fromkeys(table[by])]
    for i, key in enumerate(keys):
        g = table[table[series].astype(str) == key]
        label = names.get(key, key)
        fig.add_trace(go.Bar(x=g[by].astype(str), y=g[value] * scale, name=label,
                             marker_color=_PALETTE[i % len(_PALETTE)],
                             text=(g[value] * scale).round(1),
                             hovertemplate="%{x}: %{y:.1f}<extra>" + label + "</extra>"))
    fig.update_xaxes(categoryorder="array", categoryarray=groups)
    fig.update_xaxes(title=by)
    fig.update_yaxes(title=y_title)
    return fig


def crosscheck_bars(table: pd.DataFrame, *,
                    metrics: Sequence[str] = ("p50_us", "p90_us", "p99_us", "p999_us"),
                    title: str = "Every load generator on the same target") -> go.Figure:
    """Grouped bars of a `crosscheck()` table: one bar group per percentile (and load point,
    when there are several), one colour per runner; a runner whose tail coordinated omission
    distorted is hatched and says so in its legend entry. Skipped and failed rows are left out."""
    done = table[table["status"] == "completed"] if not table.empty else table
    if done.empty:
        return _empty(title, "no runner completed")
    keys = [k for k in ("protocol", "rate_rps", "connections") if k in done.columns]
    points = done[keys].drop_duplicates()
    several = len(points) > 1
    protocols = "protocol" in done.columns and done["protocol"].nunique() > 1
    fig = go.Figure(layout={**LAYOUT, "title": title, "barmode": "group"})
    colours = group_colors(list(dict.fromkeys(done["runner"].astype(str))))
    for runner, g in done.groupby("runner", sort=False):
        distorted = bool(g["co_distorted"].any())
        x: list[str] = []
        y: list[float] = []
        for _, row in g.iterrows():
            rate = float(row["rate_rps"])
            where = (f" @ {'closed' if rate <= 0 else f'{rate:g}/s'} x{int(row['connections'])}"
                     if several else "")
            if protocols:           # one load point per protocol: never side by side unlabelled
                where = f" {row['protocol']}{where}"
            for m in metrics:
                x.append(m.removesuffix("_us").replace("p999", "p99.9") + where)
                y.append(float(row[m]))
        fig.add_trace(go.Bar(
            x=x, y=y, name=f"{runner} (distorted by CO)" if distorted else str(runner),
            marker={"color": colours[str(runner)],
                    "pattern": {"shape": "/" if distorted else ""}}))
    fig.update_xaxes(title="percentile of latency (at each load point)" if several
                     else "percentile of latency (%)")
    latency_axis(fig, np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data]))
    return fig



def answer_bars(answers: Sequence[Answer], *, title: str, y_title: str) -> go.Figure:
    """A lab's closing answers as bars with their 95% intervals; an answer whose interval
    holds 0 is grey and labelled "not distinguishable here". Error rates in percentage points."""
    if not answers:
        return _empty(title, "nothing to answer")
    fig = go.Figure(layout={**LAYOUT, "title": title, "showlegend": False})
    for i, a in enumerate(answers):
        k = 100.0 if a.metric == "error_rate" else 1.0
        fig.add_trace(go.Bar(
            x=[a.subject], y=[a.estimate * k], text=[a.said],
            marker_color=_PALETTE[i % len(_PALETTE)] if a.distinguishable else "#9e9e9e",
            error_y={"type": "data", "symmetric": False, "array": [(a.ci_high - a.estimate) * k],
                     "arrayminus": [(a.estimate - a.ci_low) * k]}))
    fig.add_hline(y=0.0, line_color="#444", line_width=1)
    fig.update_yaxes(title=y_title)
    return fig
