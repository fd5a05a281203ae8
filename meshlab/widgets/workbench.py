"""The workbench widget: profile form, Run/Cancel with a progress bar and a live latency
timeline (the kernel stays free: the run is on a background thread, a kernel task polls it),
a results browser, a compare view and exports. Bad input becomes a message, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from meshlab.errors import MeshlabError
from meshlab.widgets.form import ProfileForm

if TYPE_CHECKING:
    from meshlab.widgets.browser import ResultsBrowser
    from meshlab.widgets.trends import TrendView

POLL_S = 0.5


def _cls(widget: W.Widget, name: str) -> W.Widget:
    widget.add_class(name)
    return widget


class Workbench:
    """`Workbench(store_path, defaults={...}).widget` in a notebook cell (or `display(wb)`)."""

    def __init__(self, store_path: str | Path = "data/meshlab.duckdb", *,
                 defaults: dict[str, Any] | None = None) -> None:
        self.store_path = Path(store_path)
        self.form = ProfileForm(defaults)
        self.run_button = _cls(W.Button(description="Run", button_style="primary"), "meshlab-run")
        self.cancel_button = _cls(W.Button(description="Cancel", disabled=True), "meshlab-cancel")
        self.progress = _cls(W.FloatProgress(value=0.0, min=0.0, max=1.0, description="idle"),
                             "meshlab-progress")
        self.status = _cls(W.HTML(value=""), "meshlab-status")
        self.live = _cls(W.Output(), "meshlab-live")
        self.figures: dict[str, Any] = {}
        self.export_button = _cls(W.Button(description="Save charts (PNG+SVG)",
                                           layout=W.Layout(width="14em")), "meshlab-export")
        self.export_button.on_click(lambda _: self.export_charts())
        self.handle: Any = None
        self.outcome: Any = None
        self._live_rows: list[dict[str, float | str]] = []
        self._task: asyncio.Task[None] | None = None
        self.run_button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self.cancel())
        run_tab = W.VBox([self.form.widget, W.HBox([self.run_button, self.cancel_button,
                                                    self.progress, self.export_button]),
                          self.status, self.live])
        # The Results and Trends tabs are built when first opened (or used): reading the
        # store needs pandas and DuckDB, 0.5-1 s of a dashboard start that shows the form first
        self._browser: ResultsBrowser | None = None
        self._trends: TrendView | None = None
        self._results_tab, self._trends_tab = W.VBox([]), W.VBox([])
        self.tabs = W.Tab(children=[run_tab, self._results_tab, self._trends_tab])
        self.tabs.set_title(0, "Run")
        self.tabs.set_title(1, "Results")
        self.tabs.set_title(2, "Trends")
        self.tabs.observe(self._opened, names="selected_index")
        self.widget = _cls(self.tabs, "meshlab-workbench")

    @property
    def browser(self) -> ResultsBrowser:
        """The Results tab (built, and the store read, on first use)."""
        if self._browser is None:
            from meshlab.widgets.browser import ResultsBrowser

            self._browser = ResultsBrowser(self.store_path)
            self._results_tab.children = (self._browser.widget,)
        return self._browser

    @property
    def trends(self) -> TrendView:
        """The Trends tab (built on first use; it reads every run on `refresh`)."""
        if self._trends is None:
            from meshlab.widgets.trends import TrendView

            self._trends = TrendView(self.store_path)
            self._trends_tab.children = (self._trends.widget,)
        return self._trends

    def _opened(self, change: dict[str, Any]) -> None:
        if change["new"] == 1:
            self.browser  # noqa: B018  (built on first opening)
        elif change["new"] == 2:
            self.trends.refresh()

    def export_charts(self, directory: str | Path | None = None) -> list[Path]:
        """The charts on show (live run, or the browser's compare) as PNG and SVG under
        `directory` (default: the browser's export folder); the paths, or [] with a message."""
        from meshlab.report.image import export_images

        figs = {**self.figures, **(self._browser.figures if self._browser else {}),
                **(self._trends.figures if self._trends else {})}
        if not figs:
            self.status.value = "no chart to save yet: run or compare first"
            return []
        out = Path(directory or (self._browser.export_dir.value if self._browser else "")
                   or ".")
        try:
            paths = export_images(figs, out)
        except (MeshlabError, OSError, RuntimeError, ValueError) as exc:
            self.status.value = f"<b>cannot save charts:</b> {exc}"
            return []
        self.status.value = f"saved {len(paths)} file(s) under {out}"
        return paths

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]

    # running --------------------------------------------------------------------------------
    def start(self) -> bool:
        """Validate the form and start the run in the background; False on bad input."""
        if self.handle is not None and not self.handle.done():
            self.status.value = "a run is already in flight; cancel it first"
            return False
        profile = self.form.profile()
        if profile is None:
            self.status.value = "<b>fix the highlighted fields</b>"
            return False
        from meshlab.experiment import start_profile

        self._live_rows = []
        self.outcome = None
        try:
            self.handle = start_profile(profile, store=self.store_path)
        except MeshlabError as exc:
            self.status.value = f"<b>cannot start:</b> {exc}"
            return False
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self.progress.value, self.progress.bar_style = 0.0, ""
        self.progress.description = "running"
        self.status.value = f"running {profile.run_count()} run(s) of {profile.name}"
        with contextlib.suppress(RuntimeError):             # no loop: the caller polls
            self._task = asyncio.get_running_loop().create_task(self._watch())
        return True

    def cancel(self) -> None:
        if self.handle is not None and not self.handle.done():
            self.handle.cancel()
            self.status.value = "cancelling..."

    async def _watch(self) -> None:
        while not self.poll():
            await asyncio.sleep(POLL_S)

    def poll(self) -> bool:
        """Update bar, status and live chart from the run; True once the run has ended."""
        if self.handle is None:
            return True
        snap = self.handle.progress
        if snap is not None:
            self.progress.value = snap.fraction_done
            if snap.run_label and not self.handle.done():
                self.status.value = status_line(snap)
            if snap.event == "progress" and not math.isnan(snap.p99_us):
                self._live_rows.append({
                    "run_id": snap.run_label or str(snap.run_index),
                    "second": len([r for r in self._live_rows
                                   if r["run_id"] == (snap.run_label or str(snap.run_index))]),
                    "requests": snap.rate_rps, "errors": snap.errors,
                    "p50_us": snap.p50_us, "p99_us": snap.p99_us})
                self._draw_live()
        if not self.handle.done():
            return False
        try:
            self.outcome = self.handle.result()
        except MeshlabError as exc:
            self._finish(f"<b>failed:</b> {exc}", "danger")
            return True
        from meshlab.widgets.browser import problems_html, run_problem

        o = self.outcome
        why = f"<br><b>{html.escape(o.reason)}</b>" if o.reason else ""
        bad = {r.run_id: p for r in o.results
               if (p := run_problem({"status": str(r.status), "error": r.error,
                                     "warnings": json.dumps(r.warnings)}))}
        style = "danger" if bad else "success" if o.ok else "warning"
        self._finish(f"{o.status}: {len(o.results)} run(s) stored in experiment "
                     f"{o.experiment_id}{why}" + problems_html(bad), style)
        self._draw_results(o.run_ids)
        if self._browser is not None:     # else its first use reads the store, run included
            self._browser.refresh()
        return True

    def _finish(self, message: str, style: str) -> None:
        self.progress.value = 1.0 if style == "success" else self.progress.value
        self.progress.bar_style = style
        self.progress.description = "done" if style == "success" else style
        self.status.value = message
        self.run_button.disabled, self.cancel_button.disabled = False, True

    def _draw_live(self) -> None:
        import pandas as pd

        from meshlab.report import figures
        from meshlab.widgets._show import show

        snap = self.handle.progress if self.handle is not None else None
        window_s = max(float(getattr(snap, "run_total_s", 0.0) or 0.0), 10.0)
        fig = figures.timeline(pd.DataFrame(self._live_rows), title="live p99 latency",
                               window_s=window_s)
        self.figures = {"live-p99": fig}
        show(self.live, [fig])

    def _draw_results(self, run_ids: list[str]) -> None:
        from meshlab.analysis import load_frames
        from meshlab.report import figures
        from meshlab.report.tables import runs_table
        from meshlab.store import Store
        from meshlab.widgets._show import show

        frames = load_frames(Store(self.store_path, read_only=True), run_ids)
        from meshlab.widgets.run_view import run_href

        items: list[Any] = [runs_table(frames.runs, title="this experiment's runs",
                                       link=run_href)]
        if not frames.timeseries.empty:
            self.figures = {"timeline-p99": figures.timeline(frames.timeseries, runs=frames.runs)}
            items.append(self.figures["timeline-p99"])
        show(self.live, items)


def status_line(snap: Any) -> str:
    """`run 2 of 6 - mesh=envoy rate=500 conns=4 repeat=0 - measure 498 req/s p99 1.20 ms`."""
    import html

    from meshlab.progress import describe_live

    return (f"<b>run {snap.run_index + 1} of {snap.total_runs}</b> &middot; "
            f"{html.escape(snap.run_label)} &middot; {html.escape(describe_live(snap))}")
