"""A page per run (`meshlab report --run RUN_ID`): its status, summary, percentile spectrum,
histogram, per-second timeline, status codes, errors, warnings, SLO checks and full context,
as one standalone HTML file (plotly.js inlined once, no network)."""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from meshlab.errors import MeshlabError
from meshlab.report.tables import NEUTRAL, VERDICT_COLOURS, Table, present, summary_table

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1240px;
margin:16px auto;padding:0 16px;color:#263238}} h1{{font-size:22px}} h2{{font-size:17px;
margin-top:28px;border-bottom:1px solid #cfd8dc}} .status{{padding:2px 10px;border-radius:4px;
font-weight:600}} pre{{background:#f5f7f8;padding:8px;overflow-x:auto;font-size:12px}}
.grid{{display:grid;grid-template-columns:1fr 1fr;gap:12px}}</style></head><body>
{body}</body></html>"""


def _h(text: object) -> str:
    return html.escape(str(text))


def _status_badge(status: str) -> str:
    bg, fg = VERDICT_COLOURS.get(status.lower(), NEUTRAL)
    return (f'<span class="status meshlab-run-status status-{_h(status.lower())}" '
            f'style="background:{bg};color:{fg}">{_h(status)}</span>')


def _kv_table(values: Mapping[str, Any], title: str = "") -> Table:
    rows = [{"Setting": str(k), "Value": v if isinstance(v, str) else json.dumps(v, default=str)}
            for k, v in _flatten(values).items()]
    return Table(pd.DataFrame(rows, columns=["Setting", "Value"]), title=title)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _counts_table(counts: Mapping[str, Any], name: str, total: int) -> Table:
    rows = [{name: str(k), "Count": int(v), "share": int(v) / total if total else 0.0}
            for k, v in sorted(counts.items(), key=lambda kv: -int(kv[1]))]
    df = pd.DataFrame(rows, columns=[name, "Count", "share"])
    return present(df, names={"share": "Share of requests", "Count": "Count"},
                   formatters={"Count": lambda v: f"{int(str(v)):,}"})


def intended_per_second(spec: Mapping[str, Any], seconds: int, *,
                        window_start_s: float | None = None) -> list[int] | None:
    """How many requests a shaped run's schedule made due in each second of its window (from
    the stored spec, Poisson by its recorded seed; the window starting at `window_start_s` on
    the schedule, else after the warm-up); None for a constant or closed-loop run."""
    from pydantic import TypeAdapter, ValidationError

    from meshlab.shape import SendSchedule, TrafficShape

    rate, shape_doc = spec.get("rate_rps"), spec.get("shape")
    if not isinstance(rate, int | float) or rate <= 0 or not isinstance(shape_doc, Mapping) \
            or shape_doc.get("kind", "constant") == "constant":
        return None
    try:
        shape: TrafficShape = TypeAdapter(TrafficShape).validate_python(shape_doc)
        warm, dur = float(spec.get("warmup_s") or 0.0), float(spec.get("duration_s") or 0.0)
        sched = SendSchedule(shape, rate_rps=float(rate), duration_s=dur, warmup_s=warm)
    except (ValidationError, ValueError, TypeError):
        return None
    start = warm if window_start_s is None else window_start_s
    return [sched.due(start + i + 1) - sched.due(start + i) for i in range(seconds)]


def _add_intended_rate(fig: Any, spec: Mapping[str, Any], *, seconds: int,
                       window_start_s: object = None) -> None:
    """A shaped run's rate chart: the shape's intended requests per second, dashed, beside what
    was sent (the gap is what could not be sent)."""
    import plotly.graph_objects as go

    start = float(window_start_s) if isinstance(window_start_s, int | float) else None
    want = intended_per_second(spec, seconds, window_start_s=start)
    if not want:
        return
    fig.add_trace(go.Scatter(x=list(range(len(want))), y=want, mode="lines",
                             name=f"intended ({spec['shape'].get('kind')})",
                             line={"color": "#546e7a", "dash": "dash"}))
    fig.update_yaxes(range=[0, max(want) * 1.15])


def run_page_parts(store_path: str | Path, run_id: str) -> list[Any]:
    """The page of one stored run, in order: HTML fragments (str) and plotly figures. Raises
    StoreError for an unknown run id. `run_page_html` makes it one file; the dashboard shows
    the same parts in a widget."""
    from meshlab.analysis import load_frames
    from meshlab.report import figures
    from meshlab.store import Store

    store = Store(store_path, read_only=True)
    result = store.load(run_id)
    frames = load_frames(store, [run_id])
    doc = result.to_dict()
    summary = result.summary()
    status = str(summary["status"])
    lat = frames.buckets[frames.buckets["kind"] == "latency"] if not frames.buckets.empty \
        else frames.buckets
    spec = dict(doc.get("spec") or {})
    figs = {
        "spectrum": figures.percentile_spectrum(lat, groups={run_id: [run_id]},
                                                title="Latency by percentile"),
        "histogram": figures.histogram_cdf(lat, groups={run_id: [run_id]}),
        "timeline": figures.timeline(frames.timeseries, runs=frames.runs,
                                     title="p99 latency per second"),
        "rate": figures.timeline(frames.timeseries, runs=frames.runs, metric="requests",
                                 title="Requests per second"),
    }
    _add_intended_rate(figs["rate"], spec, seconds=len(result.timeseries),
                       window_start_s=result.context.get("shape_window_start_s"))
    head = [f"<h1>Run {_h(run_id)} {_status_badge(status)}</h1>",
             f"<p>{_h(spec.get('profile', ''))} &middot; mesh {_h(spec.get('mesh', '-'))} "
             f"&middot; protocol {_h(spec.get('protocol') or 'http1')} "
             f"&middot; runner {_h(doc.get('runner', ''))} &middot; started "
             f"{_h(str(doc.get('started_at', ''))[:19].replace('T', ' '))}</p>"]
    if doc.get("error"):
        head.append(f"<p><b>Failed:</b> {_h(doc['error'])}</p>")
    parts: list[Any] = [*head]
    parts.append("<h2>Summary</h2>")
    keep = {k: v for k, v in summary.items() if k not in ("status_codes", "error_kinds",
                                                           "warnings")}
    parts.append(summary_table(keep).html())
    for name in ("spectrum", "histogram", "timeline", "rate"):
        if name == "histogram":
            parts.append("<h2>Histogram</h2>")
        elif name == "timeline":
            parts.append("<h2>Per second</h2>")
        parts.append(figs[name])
    total = int(doc.get("requests") or 0)
    parts.append("<h2>Status codes and errors</h2><div class='grid'>")
    parts.append(_counts_table(doc.get("status_codes") or {}, "Status code", total).html()
                 if doc.get("status_codes") else "<p>no responses recorded</p>")
    parts.append(_counts_table(doc.get("error_kinds") or {}, "Error", total).html()
                 if doc.get("error_kinds") else "<p>no errors by kind</p>")
    parts.append("</div>")
    warnings: Sequence[str] = doc.get("warnings") or []
    parts.append("<h2>Warnings</h2>" + ("<ul>" + "".join(f"<li>{_h(w)}</li>" for w in warnings)
                                        + "</ul>" if warnings else "<p>none</p>"))
    slo = spec.get("slo") or (doc.get("context") or {}).get("slo")
    parts.append("<h2>SLO checks</h2>" + (_kv_table(slo).html() if isinstance(slo, Mapping)
                                           else "<p>no SLO recorded for this run</p>"))
    parts.append("<h2>Context</h2>")
    for title, values in (("Spec", spec), ("Environment and mesh", doc.get("context") or {}),
                          ("Host", doc.get("host") or {})):
        parts.append(_kv_table(values, title=title).html())
    return parts


def run_page_html(store_path: str | Path, run_id: str) -> str:
    """The page of one stored run as one standalone HTML text (plotly.js inlined once, a PNG /
    SVG link under each chart). Raises StoreError for an unknown run id."""
    from meshlab.report._style import EXPORT_SCRIPT, PLOT_CONFIG

    body, first = [], True
    for part in run_page_parts(store_path, run_id):
        if isinstance(part, str):
            body.append(part)
            continue
        body.append(part.to_html(full_html=False, include_plotlyjs="inline" if first else False,
                                 default_width="100%", config=PLOT_CONFIG,
                                 post_script=EXPORT_SCRIPT))
        first = False
    return _PAGE.format(title=_h(f"meshlab run {run_id}"), body="\n".join(body))


def write_run_page(store_path: str | Path, run_id: str, out: str | Path) -> Path:
    """Write the page of `run_id` to `out` (HTML)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_page_html(store_path, run_id), encoding="utf-8")
    return path


def run_page_main(*, run_id: str, store: str | Path, out: str | Path) -> int:
    """`meshlab report --run RUN_ID`: 0 written, 2 unknown run or store."""
    if not Path(store).exists():
        print(f"meshlab report: no store at {store}", file=sys.stderr)
        return 2
    try:
        path = write_run_page(store, run_id, out)
    except MeshlabError as exc:
        print(f"meshlab report: {exc}", file=sys.stderr)
        return 2
    print(f"run {run_id} written to {path}")
    return 0
