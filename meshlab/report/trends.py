"""The trend view the report, the workbench and `meshlab trend` share: a chart per metric with
the previous points' band and the regressions marked, and the table of the same rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from meshlab.analysis.trend import TREND_METRICS
from meshlab.report._style import LAYOUT, group_colors, latency_axis
from meshlab.report.tables import Table, cell_text, human_name, metric_name

_AXIS = {"p50_us": "p50 latency", "p99_us": "p99 latency", "error_rate": "error rate (%)",
         "throughput_rps": "throughput (req/s)"}


def _label(row: pd.Series, keys: Sequence[str]) -> str:
    return " ".join(str(row[k]) for k in keys) or "all runs"


def trend_chart(table: pd.DataFrame, *, metric: str = "p99_us",
                group_by: Sequence[str] = ("mesh",), title: str | None = None) -> go.Figure:
    """One line per group over the points (time order), its band from the previous points as
    a shaded area, and a red cross on every point that regressed in `metric`."""
    title = title or f"{metric_name(metric)} per run group over time"
    keys = [k for k in group_by if k in table.columns]
    if "protocol" in table.columns and "protocol" not in keys:   # trend() split by it
        keys.append("protocol")
    if table.empty:
        fig = go.Figure(layout={**LAYOUT, "title": title})
        fig.add_annotation(text="no runs to trend", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        return fig
    scale = 100.0 if metric == "error_rate" else 1.0
    df = table.assign(_group=table.apply(lambda r: _label(r, keys), axis=1))
    order = list(dict.fromkeys(df.sort_values("started_at")["point"].astype(str)))
    colours = group_colors(list(dict.fromkeys(df["_group"])))
    fig = go.Figure(layout={**LAYOUT, "title": title})
    values: list[float] = []
    for label, g in df.groupby("_group", sort=False):
        x = g["point"].astype(str).tolist()
        colour = colours[str(label)]
        lo, hi = g[f"{metric}_band_low"] * scale, g[f"{metric}_band_high"] * scale
        fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip", legendgroup=str(label)))
        fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=_faint(colour), name=f"{label} band (previous points)",
                                 hoverinfo="skip", legendgroup=str(label)))
        y = g[metric] * scale
        values += [*y.tolist(), *lo.tolist(), *hi.tolist()]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=str(label),
                                 line={"color": colour}, legendgroup=str(label),
                                 customdata=g["runs"],
                                 hovertemplate="%{x}: %{y:,.4g} (%{customdata} runs)"
                                 f"<extra>{label}</extra>"))
        bad = g["regressions"].str.contains(metric, regex=False)
        if bad.any():
            fig.add_trace(go.Scatter(
                x=g.loc[bad, "point"].astype(str), y=y[bad], mode="markers",
                name=f"{label} regression", legendgroup=str(label),
                marker={"symbol": "x", "size": 13, "color": "#d62728",
                        "line": {"width": 2, "color": "#d62728"}}))
    fig.update_xaxes(title="point (time order)", type="category", categoryorder="array",
                     categoryarray=order)
    if metric.endswith("_us"):
        latency_axis(fig, np.asarray(values, dtype=float), title=_AXIS.get(metric, metric))
    else:
        fig.update_yaxes(title=_AXIS.get(metric, metric), rangemode="tozero")
    return fig


def _faint(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},0.15)"


def trend_table(table: pd.DataFrame, *, group_by: Sequence[str] = ("mesh",),
                title: str = "") -> Table:
    """The trend rows for people: group, point, runs, the four metrics, what regressed."""
    keys = [k for k in group_by if k in table.columns]
    if "protocol" in table.columns and "protocol" not in keys:   # trend() split by it
        keys.append("protocol")
    rows = []
    for r in table.to_dict("records"):
        row = {human_name(k): cell_text(k, r[k]) for k in keys}
        row.update({"Point": str(r["point"]), "Started": cell_text("started_at", r["started_at"]),
                    "Runs": cell_text("runs", r["runs"])})
        row.update({human_name(m) if m != "error_rate" else "Error rate":
                    cell_text(m, r[m]) for m in TREND_METRICS})
        worse = [metric_name(m.strip()) for m in str(r["regressions"] or "").split(",")
                 if m.strip()]
        row["Status"] = f"regression: {', '.join(worse)}" if worse else "ok"
        rows.append(row)
    return Table(pd.DataFrame(rows), title=title, verdict_columns=("Status",))
