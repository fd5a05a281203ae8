"""Tables for people: every table the report, the widgets and the notebooks show goes through
here. Units as text (`2.51 ms`, `1,234 req/s`, `163.3 MiB`), human column names, no index,
intervals as `+12% (+8% .. +15%)`, verdicts coloured, and a width that fits a 1280-px page."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd

from meshlab.units import format_number, format_percent, format_value

NAMES = {
    "run_id": "Run", "experiment_id": "Experiment", "profile": "Profile", "mesh": "Mesh",
    "runner": "Runner", "environment": "Environment", "policy": "Policy", "mode": "Mode",
    "rate_rps": "Rate", "requested_rate_rps": "Requested rate",
    "achieved_rate_rps": "Achieved rate", "throughput_rps": "Throughput",
    "connections": "Connections", "repeat": "Repeat", "status": "Status", "runs": "Runs",
    "requests": "Requests", "errors": "Errors", "error_rate": "Error rate",
    "duration_s": "Duration", "started_at": "Started", "p50_us": "p50", "p90_us": "p90",
    "p99_us": "p99", "p999_us": "p99.9", "max_us": "Max", "mean_us": "Mean",
    "uncorrected_p50_us": "p50 (uncorrected)", "uncorrected_p99_us": "p99 (uncorrected)",
    "metric": "Metric", "baseline": "Baseline", "candidate": "Candidate", "delta": "Change",
    "threshold": "Threshold", "verdict": "Verdict", "difference": "Verdict",
    "section": "Section", "key": "Setting", "role": "Role", "candidate_group": "Candidate",
    "status_codes": "Status codes", "error_kinds": "Errors by kind", "warnings": "Warnings",
    "cpu_percent": "Proxy CPU", "rss_bytes": "Proxy memory", "group": "Group",
}
METRICS = {"p50_us": "p50 latency", "p90_us": "p90 latency", "p99_us": "p99 latency",
           "p999_us": "p99.9 latency", "max_us": "max latency", "throughput_rps": "throughput",
           "error_rate": "error rate", "cpu_percent": "proxy CPU (% of a core)",
           "rss_bytes": "proxy memory"}
# verdict words of analysis.Difference and analysis.Verdict -> (background, text colour)
GOOD, BAD, NEUTRAL, NOTE = ("#d4edda", "#155724"), ("#f8d7da", "#721c24"), \
    ("#eceff1", "#37474f"), ("#fff3cd", "#856404")
VERDICT_COLOURS = {
    "faster": GOOD, "improvement": GOOD, "completed": GOOD, "ok": GOOD,
    "slower": BAD, "regression": BAD, "failed": BAD, "error": BAD,
    "indistinguishable": NEUTRAL, "no significant change": NEUTRAL, "within threshold": NEUTRAL,
    "not judged": NEUTRAL, "no data": NEUTRAL,
    "higher": NOTE, "lower": NOTE, "cancelled": NOTE, "partial": NOTE,
}
_VERDICT_COLUMNS = {"verdict", "difference", "status"}
_TABLE_STYLE = ("border-collapse:collapse;font-size:13px;max-width:1240px;margin:4px 0 12px 0;"
                "font-family:system-ui,-apple-system,'Segoe UI',sans-serif")
_TH = ("text-align:left;padding:4px 10px;border-bottom:2px solid #90a4ae;background:#f5f7f8;"
       "white-space:nowrap")
_TD = "padding:3px 10px;border-bottom:1px solid #e0e0e0;vertical-align:top"


def human_name(column: str) -> str:
    """`p99_us` -> `p99`, `achieved_rate_rps` -> `Achieved rate`, `label.build` -> `build`."""
    if column in NAMES:
        return NAMES[column]
    if column.startswith("label."):
        return column.removeprefix("label.")
    base = column
    for suffix in ("_us", "_rps", "_bytes", "_pct", "_percent", "_s"):
        if base.endswith(suffix) and base != suffix:
            base = base.removesuffix(suffix)
            break
    text = base.replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


def metric_name(metric: object) -> str:
    return METRICS.get(str(metric), human_name(str(metric)))


def cell_text(column: str, value: object) -> str:
    """One value as text by the unit its column name carries; dates, flags, lists and maps
    in plain words. Never scientific notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if type(value).__name__ in ("NAType", "NaTType"):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime | pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {cell_text('', v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(cell_text("", v) for v in value) or "-"
    if isinstance(value, str):
        return value
    item = getattr(value, "item", None)               # numpy scalar
    if callable(item):
        return cell_text(column, item())
    if isinstance(value, int | float):
        if column in ("connections", "repeat", "runs", "requests", "errors", "n_baseline",
                      "n_candidate"):
            return format_number(value)
        return format_value(column, value)
    return str(value)


def interval_text(delta_pct: object, low_pct: object, high_pct: object) -> str:
    """`+12% (+8% .. +15%)`; the bare change when there is no interval; `-` when missing."""
    d = format_percent(delta_pct, signed=True)
    if d == "-":
        return "-"
    lo, hi = (format_percent(v, signed=True) for v in (low_pct, high_pct))
    return d if "-" in (lo, hi) else f"{d} ({lo} .. {hi})"


def threshold_text(threshold: str) -> str:
    """`p99_us=10%` -> `10%`; an absolute limit in its metric's unit (`error_rate=0.01` ->
    `1.0%`, `p99_us=500` -> `500 us`)."""
    metric, _, limit = threshold.partition("=")
    if not limit or limit.endswith("%"):
        return limit or threshold
    return format_value(metric, limit)


@dataclass(frozen=True, slots=True)
class Table:
    """Formatted cells (all text) under human headers; shows as HTML in Jupyter, as aligned
    text elsewhere. `frame` is the plain DataFrame of the same cells."""

    frame: pd.DataFrame
    title: str = ""
    verdict_columns: tuple[str, ...] = ()
    links: Mapping[int, str] = field(default_factory=dict)   # row -> href of its first cell

    def html(self) -> str:
        head = "".join(f"<th style=\"{_TH}\">{html.escape(str(c))}</th>"
                       for c in self.frame.columns)
        rows = []
        for i, row in enumerate(self.frame.itertuples(index=False)):
            cells = []
            for j, (col, text) in enumerate(zip(self.frame.columns, row, strict=True)):
                style = _TD
                body = html.escape(str(text))
                if col in self.verdict_columns:
                    word = str(text).lower().split(":")[0]      # "regression: p99 latency"
                    bg, fg = VERDICT_COLOURS.get(word, NEUTRAL)
                    style += f";background:{bg};color:{fg};font-weight:600;white-space:nowrap"
                    cls = f" class=\"verdict verdict-{word.replace(' ', '-')}\""
                else:
                    style += (";max-width:30em;overflow-wrap:anywhere" if len(body) > 24
                              else ";white-space:nowrap")
                    cls = ""
                if j == 0 and i in self.links:
                    body = (f"<a class=\"meshlab-run-link\" target=\"_blank\" rel=\"noopener\" "
                            f"href=\"{html.escape(self.links[i])}\">{body}</a>")
                cells.append(f"<td style=\"{style}\"{cls}>{body}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        caption = (f"<caption style=\"text-align:left;font-weight:600;padding:2px 0\">"
                   f"{html.escape(self.title)}</caption>" if self.title else "")
        return (f"<table class=\"meshlab-table\" style=\"{_TABLE_STYLE}\">{caption}<thead><tr>"
                f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def _repr_html_(self) -> str:
        return self.html()

    def __str__(self) -> str:
        text = self.frame.to_string(index=False) if len(self.frame.columns) else "(empty)"
        return f"{self.title}\n{text}" if self.title else text

    def __len__(self) -> int:
        return len(self.frame)


def present(df: pd.DataFrame, *, columns: Sequence[str] | None = None,
            names: Mapping[str, str] | None = None, title: str = "",
            formatters: Mapping[str, Callable[[object], str]] | None = None) -> Table:
    """Any DataFrame as a Table: each column formatted by its unit suffix, renamed for people
    (`names` overrides), the index dropped."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    fmts = dict(formatters or {})
    out = pd.DataFrame({
        (dict(names or {}).get(str(c)) or human_name(str(c))):
            [fmts[str(c)](v) if str(c) in fmts else cell_text(str(c), v) for v in df[c]]
        for c in cols})
    verdicts = tuple(dict(names or {}).get(c) or human_name(c) for c in cols
                     if c in _VERDICT_COLUMNS)
    return Table(out.reset_index(drop=True), title=title, verdict_columns=verdicts)


def _metric_value(metric: str, value: object, *, signed: bool = False) -> str:
    return format_value(metric, value, signed=signed)


def comparison_table(table: pd.DataFrame, *, title: str = "",
                     metrics: Sequence[str] | None = None) -> Table:
    """An `overhead()` / `Comparison.table` / `overhead_by()` table: one row per metric (and
    per group of its leading columns), baseline, candidate, the change with its 95% interval,
    the absolute change, run spread and the verdict. Seven columns, not seventeen."""
    from meshlab.analysis.overhead import OVERHEAD_COLUMNS

    if table.empty:
        return Table(pd.DataFrame({"Metric": []}), title=title)
    df = table if metrics is None else table[table["metric"].isin(list(metrics))]
    lead = [c for c in df.columns if c not in OVERHEAD_COLUMNS and c != "difference"]
    rows: list[dict[str, str]] = []
    for r in df.to_dict("records"):
        m = str(r["metric"])
        row = {human_name(str(k)): cell_text(str(k), r[k]) for k in lead}
        row["Metric"] = metric_name(m)
        row["Baseline"] = _metric_value(m, r.get("baseline"))
        row["Candidate"] = _metric_value(m, r.get("candidate"))
        rel = interval_text(r.get("delta_pct"), r.get("ci_low_pct"), r.get("ci_high_pct"))
        row["Change (95% interval)"] = rel
        row["Absolute change"] = _metric_value(m, r.get("delta"), signed=True)
        row["Runs (baseline / candidate)"] = (
            f"{cell_text('runs', r.get('n_baseline'))} / {cell_text('runs', r.get('n_candidate'))}")
        if "difference" in r:
            row["Verdict"] = str(r["difference"])
        rows.append(row)
    return Table(pd.DataFrame(rows), title=title, verdict_columns=("Verdict",))


def verdict_table(table: pd.DataFrame, *, title: str = "") -> Table:
    """A `RegressionVerdict.table`: metric, threshold, the change with its interval, verdict."""
    rows = [{"Metric": metric_name(r["metric"]),
             "Threshold": threshold_text(str(r["threshold"])),
             "Change (95% interval)": interval_text(r["delta_pct"], r["ci_low_pct"],
                                                    r["ci_high_pct"]),
             "Absolute change": _metric_value(str(r["metric"]), r["delta"], signed=True),
             "Verdict": str(r["verdict"])}
            for r in table.to_dict("records")]
    frame = pd.DataFrame(rows, columns=["Metric", "Threshold", "Change (95% interval)",
                                        "Absolute change", "Verdict"])
    return Table(frame, title=title, verdict_columns=("Verdict",))


def context_table(diff: pd.DataFrame, *, title: str = "") -> Table:
    """A `context_diff()` table: latency rows with their units, then each differing setting."""
    rows = []
    for r in diff.to_dict("records"):
        key = str(r["key"])
        latency = r["section"] == "latency"
        rows.append({
            "Section": str(r["section"]),
            "Setting": metric_name(key) if latency else key,
            "Baseline": _metric_value(key, r["baseline"]) if latency else str(r["baseline"]),
            "Candidate": _metric_value(key, r["candidate"]) if latency else str(r["candidate"]),
            "Change": (f"{_metric_value(key, r['delta'], signed=True)} "
                       f"({format_percent(r['delta_pct'], signed=True)})") if latency else ""})
    return Table(pd.DataFrame(rows, columns=["Section", "Setting", "Baseline", "Candidate",
                                             "Change"]), title=title)


RUN_COLUMNS = ["run_id", "profile", "mesh", "rate_rps", "connections", "status", "requests",
               "error_rate", "p50_us", "p99_us", "started_at"]


def runs_table(runs: pd.DataFrame, *, title: str = "",
               link: Callable[[str], str] | None = None) -> Table:
    """Stored runs (`Store.runs()`), one line each; `error_rate` derived when missing;
    `link(run_id)` makes each run id a link (to its page)."""
    df = runs
    if "error_rate" not in df.columns and {"errors", "requests"} <= set(df.columns):
        df = df.assign(error_rate=df["errors"] / df["requests"].where(df["requests"] > 0))
    t = present(df, columns=[c for c in RUN_COLUMNS if c in df.columns], title=title)
    links = ({i: link(str(rid)) for i, rid in enumerate(df["run_id"])}
             if link is not None and "run_id" in df.columns else {})
    return Table(t.frame, title=title, verdict_columns=t.verdict_columns, links=links)


def summary_table(summary: Mapping[str, object], *, title: str = "") -> Table:
    """A run summary (`RunResult.summary()`, `outcome.summaries()[i]`) as a two-column table."""
    rows = [{"Measure": human_name(str(k)), "Value": cell_text(str(k), v)}
            for k, v in summary.items()]
    frame = pd.DataFrame(rows, columns=["Measure", "Value"])
    return Table(frame, title=title)


def summaries_table(summaries: Sequence[Mapping[str, object]], *, title: str = "") -> Table:
    """Several run summaries, one row each (the headline columns only)."""
    keep = ["run_id", "status", "runner", "requested_rate_rps", "achieved_rate_rps",
            "connections", "requests", "errors", "error_rate", "p50_us", "p99_us", "p999_us"]
    df = pd.DataFrame(list(summaries))
    return present(df, columns=[c for c in keep if c in df.columns], title=title)
