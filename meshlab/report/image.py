"""Charts as files: PNG, SVG or PDF through kaleido and a local Chromium (no network), for
slides and tickets; the report (`--figures DIR`) and the workbench's export button use it."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go


def _target(path: str | Path) -> Path:
    """`path` once its suffix is checked, kaleido found and its folder made."""
    from meshlab.errors import MissingDependency

    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"{out}: export to .png, .svg or .pdf")
    if importlib.util.find_spec("kaleido") is None:
        raise MissingDependency("kaleido", install="pip install 'meshlab[workbench]' "
                                "(kaleido, plus a Chromium: apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def export_image(fig: go.Figure, path: str | Path, *, width: int = 1200,
                 height: int | None = None) -> Path:
    """Write `fig` as PNG, SVG or PDF (by the suffix) through kaleido and a local Chromium.
    MissingDependency with the install line when kaleido is absent."""
    out = _target(path)
    fig.write_image(str(out), width=width, height=height or fig.layout.height or 440)
    return out


def export_images(figs: Mapping[str, go.Figure], directory: str | Path, *,
                  formats: Sequence[str] = ("png", "svg"), width: int = 1200) -> list[Path]:
    """Every figure of `figs` (name -> figure) in every format, under `directory`. All files
    come from one Chromium (each `export_image` starts its own: ~3.5 s a file)."""
    import plotly.io as pio

    jobs = [(fig, _target(Path(directory) / f"{name}.{fmt}")) for name, fig in figs.items()
            for fmt in formats]
    if jobs:
        pio.write_images([fig for fig, _ in jobs], [path for _, path in jobs], width=width,
                         height=[fig.layout.height or 440 for fig, _ in jobs])
    return [path for _, path in jobs]
