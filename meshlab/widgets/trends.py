"""The workbench's Trends tab: p50/p99/error rate/throughput per run group over experiments,
days or a label such as `label.build`, with the previous points' band and regressions marked."""

from __future__ import annotations

import json
from pathlib import Path

import ipywidgets as W
import pandas as pd

from meshlab.errors import MeshlabError
from meshlab.widgets._show import show

_METRICS = [("p99 latency", "p99_us"), ("p50 latency", "p50_us"), ("error rate", "error_rate"),
            ("throughput", "throughput_rps")]


class TrendView:
    """`TrendView(store_path).widget`; `.refresh()` re-reads the store, `.draw()` redraws."""

    def __init__(self, store_path: str | Path) -> None:
        self.store_path = Path(store_path)
        self.over = W.Dropdown(options=["experiment", "day"], value="experiment",
                               description="points", style={"description_width": "5em"})
        self.metric = W.Dropdown(options=_METRICS, value="p99_us", description="metric",
                                 style={"description_width": "5em"})
        self.group = W.Dropdown(options=["mesh", "profile", "runner"], value="mesh",
                                description="groups", style={"description_width": "5em"})
        refresh = W.Button(description="Refresh")
        refresh.on_click(lambda _: self.refresh())
        self.message = W.HTML("")
        self.output = W.Output()
        self.output.add_class("meshlab-trend-output")
        self.table = pd.DataFrame()
        self.figures: dict[str, object] = {}
        for w in (self.over, self.metric, self.group):
            w.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([W.HBox([self.over, self.metric, self.group, refresh]),
                              self.message, self.output])
        self.widget.add_class("meshlab-trends")
        self._runs = pd.DataFrame()
        self._buckets = pd.DataFrame()

    def refresh(self) -> None:
        """Re-read the store; offer every label key as a possible sequence of points."""
        if not self.store_path.exists():
            self.message.value = f"no store at {self.store_path} yet: run something first"
            return
        try:
            from meshlab.store import Store

            store = Store(self.store_path, read_only=True)
            self._runs = store.runs()
            self._buckets = store.buckets(list(self._runs["run_id"]))
        except MeshlabError as exc:
            self.message.value = f"cannot read the store: {exc}"
            return
        keys: set[str] = set()
        for text in self._runs.get("labels", pd.Series(dtype=str)):
            try:
                keys |= set(json.loads(text) if isinstance(text, str) else text or {})
            except ValueError:
                continue
        options = ["experiment", "day", *(f"label.{k}" for k in sorted(keys))]
        if list(self.over.options) != options:
            current = self.over.value
            self.over.options = options
            self.over.value = current if current in options else "experiment"
        self.draw()

    def draw(self) -> None:
        from meshlab.analysis.trend import trend
        from meshlab.report.trends import trend_chart, trend_table

        if self._runs.empty:
            self.message.value = self.message.value or "the store holds no runs yet"
            return
        try:
            self.table = trend(self._runs, self._buckets, over=str(self.over.value),
                               group_by=(str(self.group.value),))
        except MeshlabError as exc:
            self.message.value = f"<b>cannot draw the trend:</b> {exc}"
            return
        points = self.table["point"].nunique() if not self.table.empty else 0
        worse = int((self.table["regressions"] != "").sum()) if points else 0
        self.message.value = (f"{points} point(s) over {self.over.value}, "
                              f"{len(self._runs)} runs; {worse} regressed point(s)")
        fig = trend_chart(self.table, metric=str(self.metric.value),
                          group_by=(str(self.group.value),))
        self.figures = {f"trend-{self.metric.value}": fig}
        latest = self.table.groupby(str(self.group.value), sort=False).tail(10)
        show(self.output, [fig, trend_table(latest, group_by=(str(self.group.value),))])
