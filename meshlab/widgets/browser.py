"""Results browser and compare view: filter stored runs, pick a baseline and candidates, see the
overhead table and figures, export (fortio JSON, CSV, HTML report). Messages, not tracebacks."""

from __future__ import annotations

import html
import json
from collections.abc import Hashable, Mapping
from datetime import datetime
from pathlib import Path

import ipywidgets as W
import pandas as pd

from meshlab.errors import MeshlabError
from meshlab.units import format_rate_rps, format_us
from meshlab.widgets._show import show
from meshlab.widgets.run_view import run_href

_COLS = ["run_id", "profile", "mesh", "rate_rps", "connections", "status", "requests",
         "p50_us", "p99_us", "started_at"]
_SHOWN = 30          # rows of the runs table; the selection lists hold every run


BAD_STATUSES = ("failed", "degraded")


def run_problem(run: Mapping[Hashable, object]) -> str:
    """Why a stored run must not be compared ("" when it may): its status and its reason."""
    status = str(run.get("status") or "")
    if status not in BAD_STATUSES:
        return ""
    error, raw = run.get("error"), run.get("warnings")     # NaN / None when absent
    reason = error if isinstance(error, str) else ""
    if not reason:
        try:
            warnings = json.loads(raw) if isinstance(raw, str) and raw else []
        except ValueError:
            warnings = []
        reason = str(warnings[0]) if warnings else "no reason recorded"
    return f"{status}: {reason}"


def problems_html(problems: dict[str, str]) -> str:
    """Failed/degraded runs in red, each with its reason."""
    return "".join(f'<div style="color:#c00"><b>{html.escape(rid)}</b> '
                   f"{html.escape(why[:300])}</div>" for rid, why in problems.items())


def _cls(widget: W.Widget, name: str) -> W.Widget:
    widget.add_class(name)
    return widget


class ResultsBrowser:
    """Filter by profile, mesh, label (`key=value`) and start date; compare and export."""

    def __init__(self, store_path: str | Path, *, export_dir: str | Path = ".") -> None:
        self.store_path = Path(store_path)
        self.profile = W.Dropdown(options=["(any)"], description="profile")
        self.mesh = W.Dropdown(options=["(any)"], description="mesh")
        self.label = W.Text(description="label", placeholder="key=value")
        self.since = W.Text(description="since", placeholder="2026-01-31")
        self.runs = _cls(W.SelectMultiple(options=[], rows=8, description="runs",
                                          layout=W.Layout(width="60em")), "meshlab-runs")
        self.baseline = _cls(W.SelectMultiple(options=[], rows=6, description="baseline"),
                             "meshlab-baseline")
        self.candidate = _cls(W.SelectMultiple(options=[], rows=6, description="candidate"),
                              "meshlab-candidate")
        self.compare_button = _cls(W.Button(description="Compare"), "meshlab-compare")
        self.export_dir = W.Text(value=str(export_dir), description="export to")
        self.csv_button = W.Button(description="CSV")
        self.fortio_button = W.Button(description="fortio JSON")
        self.html_button = W.Button(description="HTML report")
        self.pages_button = W.Button(description="Run pages")
        self.message = _cls(W.HTML(value=""), "meshlab-browser-message")
        self.runs_view = _cls(W.HTML(value=""), "meshlab-runs-table")
        self.output = _cls(W.Output(), "meshlab-compare-output")
        self.table = pd.DataFrame(columns=_COLS)
        self.problems: dict[str, str] = {}     # run id -> "failed: reason" (not comparable)
        self.compare_table = pd.DataFrame()
        self.figures: dict[str, object] = {}        # the charts on show, for export
        for w in (self.profile, self.mesh, self.label, self.since):
            w.observe(lambda _: self.apply_filters(), names="value")
        self.compare_button.on_click(lambda _: self.compare())
        self.csv_button.on_click(lambda _: self.export("csv"))
        self.fortio_button.on_click(lambda _: self.export("fortio"))
        self.html_button.on_click(lambda _: self.export("html"))
        self.pages_button.on_click(lambda _: self.export("pages"))
        refresh = W.Button(description="Refresh")
        refresh.on_click(lambda _: self.refresh())
        self.widget = W.VBox([
            W.HBox([self.profile, self.mesh, self.label, self.since, refresh]), self.runs,
            W.HBox([self.baseline, self.candidate, self.compare_button]),
            W.HBox([self.export_dir, self.csv_button, self.fortio_button, self.html_button,
                    self.pages_button]),
            self.message, self.runs_view, self.output])
        self._all = pd.DataFrame(columns=_COLS)
        self.refresh()

    # data -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the store (say after a run) and re-apply the filters."""
        if not self.store_path.exists():
            self._all = pd.DataFrame(columns=_COLS)
            self.message.value = f"no store at {self.store_path} yet: run something first"
        else:
            try:
                from meshlab.store import Store

                self._all = Store(self.store_path, read_only=True).runs()
            except MeshlabError as exc:
                self._all = pd.DataFrame(columns=_COLS)
                self.message.value = f"cannot read the store: {exc}"
        for dd, col in ((self.profile, "profile"), (self.mesh, "mesh")):
            values = sorted(self._all[col].dropna().astype(str).unique()) if len(self._all) else []
            dd.options = ["(any)", *values]
        self.apply_filters()

    def apply_filters(self) -> None:
        df = self._all
        if df.empty:
            self.table = df
            self.runs.options = self.baseline.options = self.candidate.options = []
            self.runs_view.value = ""
            if not self.message.value:
                self.message.value = "the store holds no runs yet"
            return
        for dd, col in ((self.profile, "profile"), (self.mesh, "mesh")):
            if dd.value and dd.value != "(any)":
                df = df[df[col].astype(str) == dd.value]
        if "=" in self.label.value:
            from meshlab.analysis import select_runs

            try:
                ids = select_runs(df, f"label.{self.label.value.strip()}")
            except MeshlabError as exc:
                self.message.value = f"label: {exc}"
                return
            df = df[df["run_id"].isin(ids)]
        if self.since.value.strip():
            try:
                since = pd.Timestamp(datetime.fromisoformat(self.since.value.strip()))
                started = pd.to_datetime(df["started_at"], utc=True).dt.tz_localize(None)
                df = df[started >= since.tz_localize(None)]
            except ValueError:
                self.message.value = "since: use a date like 2026-01-31"
        self.table = df
        records = df.to_dict("records")
        self.problems = {str(r["run_id"]): p for r in records if (p := run_problem(r))}
        options = [(f"{self._mark(str(r['run_id']))}{r['run_id']}  {r['profile']}  {r['mesh']}  "
                    f"{format_rate_rps(r['rate_rps'])}  {r['status']}  "
                    f"p99 {format_us(r['p99_us'])}", str(r["run_id"]))
                   for r in records]
        self.runs.options = self.baseline.options = self.candidate.options = options
        self.message.value = f"{len(df)} of {len(self._all)} runs" + (
            f"; {len(self.problems)} failed or degraded (marked ✗):"
            + problems_html(self.problems) if self.problems else "")
        from meshlab.report.tables import runs_table

        latest = df.sort_values("started_at", ascending=False).head(_SHOWN)
        self.runs_view.value = runs_table(
            latest, title=f"latest {len(latest)} of {len(df)} runs (a run id opens its page)",
            link=run_href).html()

    def _mark(self, run_id: str) -> str:
        why = self.problems.get(run_id, "")
        return f"✗ {why.split(':', 1)[0].upper()}  " if why else ""

    # compare --------------------------------------------------------------------------------
    def compare(self) -> bool:
        """Overhead table and figures of candidate vs baseline; False with a message if the
        selection cannot be compared."""
        base, cand = list(self.baseline.value), list(self.candidate.value)
        if not base or not cand:
            self.message.value = "<b>pick at least one baseline and one candidate run</b>"
            return False
        bad = {rid: self.problems[rid] for rid in [*base, *cand] if rid in self.problems}
        if bad:
            self.message.value = ("<b style='color:#c00'>not compared: the selection holds "
                                  "failed or degraded runs</b> (their numbers describe the "
                                  "failure, not the mesh); remove them or re-run:"
                                  + problems_html(bad))
            return False
        from meshlab.report import figures
        from meshlab.report.sections import prepare, verdict_line

        ctx = prepare(self.store_path, baseline=base, candidate=cand, renderer=None, n_boot=300)
        if ctx.problem or ctx.verdict is None:
            self.message.value = f"<b>cannot compare:</b> {ctx.problem}"
            return False
        self.compare_table = ctx.overhead
        self.message.value = f"verdict: <b>{verdict_line(ctx)}</b>"
        lat = ctx.frames.buckets[ctx.frames.buckets["kind"] == "latency"]
        from meshlab.report.tables import comparison_table

        self.figures = {"overhead": figures.overhead_bars(ctx.overhead),
                        "spectrum": figures.ab_overlay(lat, baseline=base, candidate=cand)}
        from meshlab.report.tables import runs_table

        compared = self._all[self._all["run_id"].isin([*base, *cand])]
        show(self.output, [comparison_table(ctx.overhead), self.figures["spectrum"],
                           self.figures["overhead"],
                           runs_table(compared, title="the compared runs", link=run_href)])
        return True

    # export ---------------------------------------------------------------------------------
    def export(self, fmt: str) -> Path | None:
        """Write the selected runs (csv, fortio, pages: one HTML page per run) or a report of
        the compare selection (html)."""
        ids = list(self.runs.value) or list(self.table["run_id"])
        out_dir = Path(self.export_dir.value or ".")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            if fmt == "csv":
                path = out_dir / "meshlab-runs.csv"
                self.table[self.table["run_id"].isin(ids)].to_csv(path, index=False)
            elif fmt == "pages":
                from meshlab.report.run_page import write_run_page

                path = out_dir / "meshlab-runs"
                for rid in ids:
                    write_run_page(self.store_path, rid, path / f"run-{rid}.html")
            elif fmt == "fortio":
                from meshlab.formats import export_run
                from meshlab.store import Store

                store = Store(self.store_path, read_only=True)
                path = out_dir / "meshlab-fortio"
                path.mkdir(exist_ok=True)
                for rid in ids:
                    (path / f"{rid}.json").write_text(export_run(store.load(rid), "fortio"),
                                                      encoding="utf-8")
            else:
                from meshlab.report import build_report

                if not self.baseline.value or not self.candidate.value:
                    self.message.value = "<b>pick a baseline and a candidate for the report</b>"
                    return None
                path = out_dir / "meshlab-report.html"
                outcome = build_report(self.store_path, baseline=list(self.baseline.value),
                                       candidate=list(self.candidate.value), out=path)
                self.message.value = outcome.message()
                return path
        except (MeshlabError, OSError) as exc:
            self.message.value = f"<b>export failed:</b> {exc}"
            return None
        self.message.value = f"exported {len(ids)} run(s) to {path}"
        return path
