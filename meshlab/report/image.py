"""Charts as files: PNG, SVG or PDF through kaleido and a local Chromium (no network), for
slides and tickets; the report (`--figures DIR`) and the workbench's export button use it."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go


def export_image(fig: go.Figure, path: str | Path, *, width: int = 1200,
                 height: int | None = None) -> Path:
    """Write `fig` as PNG, SVG or PDF (by the suffix) through kaleido and a local Chromium.
    MissingDependency with the install line when kaleido is absent."""
    from meshlab.errors import MissingDependency

    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"{out}: export to .png, .svg or .pdf")
    if importlib.util.find_spec("kaleido") is None:
        raise MissingDependency("kaleido", install="pip install 'meshlab[workbench]' "
                                "(kaleido, plus a Chromium: apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.write_image(str(out), width=width, height=height or fig.layout.height or 440)
    return out


def export_images(figs: Mapping[str, go.Figure], directory: str | Path, *,
                  formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Every figure of `figs` (name -> figure) in every format, under `directory`."""
    return [export_image(fig, Path(directory) / f"{name}.{fmt}")
            for name, fig in figs.items() for fmt in formats]
