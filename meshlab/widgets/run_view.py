"""The dashboard's page of one run: Voila renders the workbench notebook for `?run=RUN_ID` in a
kernel of its own, which shows that run's page (`meshlab report --run`) instead of the form.
Every runs table of the dashboard links each row there, in a new browser tab."""

from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path
from typing import Any

import ipywidgets as W

from meshlab.errors import MeshlabError


def run_href(run_id: str) -> str:
    """The dashboard URL (relative to its page) of the page of `run_id`."""
    return "?" + urllib.parse.urlencode({"run": run_id})


def requested_run(query: str | None = None) -> str | None:
    """The run id asked for by the page's query string (Voila passes it to the kernel as
    $QUERY_STRING), or None for the workbench."""
    text = os.environ.get("QUERY_STRING", "") if query is None else query
    values = urllib.parse.parse_qs(text).get("run")
    return values[0] if values and values[0] else None


def run_view(store_path: str | Path, run_id: str) -> W.Output:
    """The page of one run as a widget: its tables as HTML, its charts as plotly figures (the
    page's status badge says failed or degraded); a message if the run is unknown."""
    from meshlab.widgets._show import bundle

    out = W.Output()
    out.add_class("meshlab-run-page")
    try:
        if not Path(store_path).exists():
            raise MeshlabError(f"no store at {store_path}")
        from meshlab.report.run_page import run_page_parts

        parts = run_page_parts(store_path, run_id)
    except MeshlabError as exc:
        parts = [f"<h1>Run {html.escape(run_id)}</h1><p><b>cannot show this run:</b> "
                 f"{html.escape(str(exc))}</p>"]
    out.outputs = tuple(
        {"output_type": "display_data", "metadata": {},
         "data": {"text/html": p, "text/plain": p}} if isinstance(p, str) else bundle(p)
        for p in parts)
    return out


def dashboard_page(store_path: str | Path, *, defaults: dict[str, Any] | None = None,
                   query: str | None = None) -> Any:
    """What the dashboard shows for this request: the page of the run its query string names,
    otherwise the workbench."""
    run_id = requested_run(query)
    if run_id is not None:
        return run_view(store_path, run_id)
    from meshlab.widgets.workbench import Workbench

    return Workbench(store_path, defaults=defaults)
