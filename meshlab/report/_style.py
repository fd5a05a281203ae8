"""The look every chart shares: one colour per mesh (or group) on every chart and page, the
layout with its legend, and log latency axes whose ticks carry units (`1 ms`, `10 ms`)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from meshlab.meshes import mesh_names

_FIXED = {"none": "#4d4d4d", "baseline": "#4d4d4d", "direct": "#4d4d4d", "candidate": "#d62728"}
# handed to the registered meshes in mesh_names() order; ordered so that the seven meshes
# registered when this was written keep the colours earlier reports gave them
_MESH_PALETTE = ["#d62728", "#1f77b4", "#8c564b", "#466bb0", "#9467bd", "#2ca02c", "#17becf",
                 "#e6a800", "#ff7f0e", "#e377c2", "#bcbd22"]
_PALETTE = ["#ff7f0e", "#e377c2", "#bcbd22", "#7f7f7f", "#8c564b", "#17becf", "#9467bd",
            "#2ca02c", "#1f77b4", "#d62728"]
LAYOUT = {"template": "plotly_white", "height": 440, "showlegend": True,
          "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
          "margin": {"t": 60, "l": 80, "r": 30, "b": 110}}

# Every chart of the HTML report and the run page gets "Save chart: PNG / SVG" links under it.
# plotly.js draws the image in the browser (Plotly.downloadImage), so they work offline and need
# no kaleido; the modebar's camera button saves a PNG too. `{plot_id}` is filled in by plotly.
PLOT_CONFIG = {"displaylogo": False,
               "toImageButtonOptions": {"format": "png", "scale": 2}}
EXPORT_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var title = gd.layout && gd.layout.title;
var name = String((title && (title.text || title)) || 'chart')
    .replace(/<[^>]*>/g, '').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')
    .toLowerCase() || 'chart';
var bar = document.createElement('div');
bar.className = 'meshlab-export';
bar.style.cssText = 'font-size:12px;text-align:right;margin:0 12px 8px';
bar.appendChild(document.createTextNode('Save chart: '));
['png', 'svg'].forEach(function (format, i) {
  var a = document.createElement('a');
  a.href = '#';
  a.textContent = format.toUpperCase();
  a.className = 'meshlab-export-' + format;
  a.onclick = function (event) {
    event.preventDefault();
    Plotly.downloadImage(gd, {format: format, filename: name,
                              width: gd._fullLayout.width, height: gd._fullLayout.height});
  };
  if (i) bar.appendChild(document.createTextNode(' / '));
  bar.appendChild(a);
});
gd.parentNode.insertBefore(bar, gd.nextSibling);
"""


def _tick_us(us: float) -> str:
    """`100 us`, `2 ms`, `1 s`: a tick label with its unit (no `.00`)."""
    for scale, unit in ((1e6, "s"), (1e3, "ms"), (1.0, "us")):
        if us >= scale:
            return f"{us / scale:g} {unit}"
    return f"{us:g} us"


def latency_axis(fig: go.Figure, values_us: Sequence[float] | np.ndarray, *, axis: str = "y",
                 title: str = "latency", **kwargs: object) -> None:
    """A log latency axis with major ticks only, labelled with units (`1 ms`, `10 ms`): one
    tick per decade (plotly's dtick=1 on a log axis), plus 2 and 5 when the data spans less
    than two decades so a narrow range still has labelled ticks."""
    v = np.asarray([x for x in np.asarray(values_us, dtype=float).ravel()
                    if math.isfinite(x) and x > 0])
    lo, hi = (float(v.min()), float(v.max())) if v.size else (100.0, 10_000.0)
    d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if d1 <= d0:
        d1 = d0 + 1
    steps = (1, 2, 5) if d1 - d0 < 2 else (1,)
    ticks = [m * 10.0 ** d for d in range(d0, d1 + 1) for m in steps]
    if sum(lo <= t <= hi for t in ticks) < 2:
        # a narrow range (1.1-2.2 ms) would show one tick or none: widen it to the labelled
        # ticks either side, so every chart has at least two values to read against
        lo = max([t for t in ticks if t <= lo] or [lo])
        hi = min([t for t in ticks if t >= hi] or [hi])
    pad = 0.05 * max(math.log10(hi) - math.log10(lo), 0.3)
    update = {"type": "log", "tickvals": ticks, "ticktext": [_tick_us(t) for t in ticks],
              "range": [math.log10(lo) - pad, math.log10(hi) + pad],
              "title": f"{title} (log scale)", "minor": {"showgrid": False}, **kwargs}
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**update)


def _known_colors() -> dict[str, str]:
    """Baseline labels first, then every registered mesh by its place in `mesh_names()`."""
    meshes = [n for n in mesh_names() if n not in _FIXED]
    return {**_FIXED, **{n: _MESH_PALETTE[i % len(_MESH_PALETTE)] for i, n in enumerate(meshes)}}


def mesh_color(name: object) -> str:
    """The colour of a mesh (or any group label): by registry order for registered meshes
    (`envoy+mtls` takes envoy's), stable otherwise."""
    key = str(name).lower()
    for prefix, colour in _known_colors().items():
        if key == prefix or key.startswith(prefix + "-") or key.startswith(prefix + "+"):
            return colour
    return _PALETTE[zlib.crc32(key.encode()) % len(_PALETTE)]


def group_colors(labels: Sequence[object]) -> dict[str, str]:
    """Distinct colours for the groups of one figure: each keeps `mesh_color` unless another
    group already has that colour (`envoy` and `envoy+mtls`, or two labels whose hashes
    collide); exact mesh names claim their colour first."""
    keys = [str(x) for x in dict.fromkeys(labels)]
    known = _known_colors()
    out: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: k.lower() not in known):
        want = mesh_color(key)
        if want in out.values():
            free = [c for c in _PALETTE if c not in out.values()]
            want = free[0] if free else want
        out[key] = want
    return out
