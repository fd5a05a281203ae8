"""Put figures and tables into Output widgets from any task, even outside a cell's context
(a kernel task polling a run, a test): mime bundles are built here, not by IPython's hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import pandas as pd


def bundle(obj: Any) -> dict[str, Any]:
    """A display_data output of a plotly figure (plotly mimetype), a DataFrame or text."""
    if isinstance(obj, pd.DataFrame):
        from meshlab.report.tables import present

        table = present(obj)
        data = {"text/html": table.html(), "text/plain": str(table)}
    elif hasattr(obj, "_repr_html_") and not hasattr(obj, "to_plotly_json"):
        data = {"text/html": obj._repr_html_(), "text/plain": str(obj)}
    elif hasattr(obj, "to_plotly_json"):
        import plotly.io as pio

        data = {**pio.renderers["plotly_mimetype"].to_mimebundle(obj.to_dict()),
                "text/plain": f"<figure: {obj.layout.title.text}>"}
    else:
        data = {"text/plain": str(obj)}
    return {"output_type": "display_data", "data": data, "metadata": {}}


def show(output: W.Output, items: Sequence[Any]) -> None:
    """Replace the content of `output` with `items`."""
    output.outputs = tuple(bundle(i) for i in items)
