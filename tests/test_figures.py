"""Figures: pure `fn(df) -> go.Figure`, units in every axis title, stable mesh colours, a
handful of traces even over 1,000 runs, and an explanatory empty figure for empty input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import pytest

from meshlab.analysis import Frames, frames_from_results, overhead, overhead_by, synthetic_result
from meshlab.report import figures

MESHES = ("none", "envoy", "istio", "linkerd")


@pytest.fixture(scope="module")
def many() -> Frames:
    """1,000 runs: 4 meshes x 5 rates x 2 connection counts x 25 repeats."""
    results = []
    i = 0
    for repeat in range(25):
        for m, mesh in enumerate(MESHES):
            for rate in (100.0, 200.0, 500.0, 1000.0, 2000.0):
                for conns in (8, 32):
                    results.append(synthetic_result(
                        run_id=f"r{i}", mesh=mesh, rate_rps=rate, connections=conns,
                        repeat=repeat, seed=i, requests=300, duration_s=3.0,
                        slowdown=1 + 0.1 * m, cpu_percent=5.0 + m))
                    i += 1
    return frames_from_results(results)


def _lat(f: Frames) -> object:
    return f.buckets[f.buckets["kind"] == "latency"]


FIGS: dict[str, Callable[[Frames], go.Figure]] = {
    "spectrum": lambda f: figures.percentile_spectrum(_lat(f), runs=f.runs),  # type: ignore[arg-type]
    "histogram": lambda f: figures.histogram_cdf(_lat(f), runs=f.runs),       # type: ignore[arg-type]
    "rate": lambda f: figures.latency_vs_rate(f.runs),
    "connections": lambda f: figures.latency_vs_connections(f.runs),
    "cpu": lambda f: figures.resource_vs_rate(f.runs, f.telemetry),
    "timeline": lambda f: figures.timeline(f.timeseries, runs=f.runs),
    "ab": lambda f: figures.ab_overlay(f.buckets, baseline=["r0"], candidate=["r1"]),
    "co": lambda f: figures.corrected_vs_uncorrected(f.buckets, run_ids=["r0", "r4"]),
}


@pytest.mark.parametrize("name", sorted(FIGS))
def test_figures_over_1000_runs_have_one_trace_per_group_and_units(many: Frames,
                                                                     name: str) -> None:
    fig = FIGS[name](many)
    assert isinstance(fig, go.Figure)
    assert 1 <= len(fig.data) <= 2 * len(MESHES)
    titles = [fig.layout.xaxis.title.text, fig.layout.yaxis.title.text]
    assert all(t and "(" in t for t in titles), titles          # every axis names its unit
    fig.to_json()


def test_colours_are_consistent_per_mesh(many: Frames) -> None:
    a = figures.percentile_spectrum(_lat(many), runs=many.runs)  # type: ignore[arg-type]
    b = figures.latency_vs_rate(many.runs)
    colour_a = {t.name.split(" ")[0]: t.line.color for t in a.data}
    colour_b = {t.name: t.line.color for t in b.data}
    assert colour_a == colour_b
    assert figures.mesh_color("envoy") != figures.mesh_color("none")
    assert figures.mesh_color("my-mesh") == figures.mesh_color("my-mesh")


def test_spectrum_is_monotonic_on_a_percentile_axis(many: Frames) -> None:
    fig = figures.percentile_spectrum(_lat(many), runs=many.runs)  # type: ignore[arg-type]
    assert fig.layout.xaxis.type == "log"
    for tr in fig.data:
        ys = list(tr.y)
        assert ys == sorted(ys)


def test_overhead_bars_carry_intervals(many: Frames) -> None:
    sub = many.subset([f"r{i}" for i in range(80)])
    table = overhead(sub.runs, _lat(sub), baseline=list(sub.runs.run_id[sub.runs.mesh == "none"]),  # type: ignore[arg-type]
                     candidate=list(sub.runs.run_id[sub.runs.mesh == "envoy"]), n_boot=100)
    fig = figures.overhead_bars(table)
    assert len(fig.data) == 1 and fig.data[0].error_y.array is not None
    by = overhead_by(sub.runs, _lat(sub), by=(), n_boot=50)  # type: ignore[arg-type]
    assert len(figures.overhead_bars(by).data) == len(MESHES) - 1


def test_empty_input_gives_an_explanatory_figure() -> None:
    e = Frames.empty()
    for fig in (figures.percentile_spectrum(e.buckets), figures.latency_vs_rate(e.runs),
                figures.timeline(e.timeseries), figures.overhead_bars(e.runs),
                figures.histogram_cdf(e.buckets)):
        assert fig.layout.annotations and not fig.data


def test_status_mix_and_counter_bars() -> None:
    import pandas as pd

    from meshlab.analysis import counters_by, status_shares

    runs = pd.DataFrame({"run_id": ["a", "b"], "policy": ["off", "on"]})
    codes = pd.DataFrame({"run_id": ["a", "a", "b"], "code": [200, 503, 200],
                          "count": [80, 20, 100]})
    mix = figures.status_mix(status_shares(codes, runs))
    assert {t.name for t in mix.data} == {"200", "503"} and mix.layout.barmode == "stack"
    assert "(%)" in mix.layout.yaxis.title.text
    tel = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "t_s": [0.0, 1.0, 0.0, 1.0],
                        "source": ["envoy:x"] * 4, "metric": ["envoy.upstream_rq_retry"] * 4,
                        "value": [0.0, 0.0, 5.0, 25.0]})
    bars = figures.counter_bars(counters_by(tel, runs, "envoy.upstream_rq_retry"),
                                labels={"envoy.upstream_rq_retry": "retries"})
    assert [t.name for t in bars.data] == ["retries"] and list(bars.data[0].y) == [0.0, 20.0]
    for fig in (figures.status_mix(status_shares(codes.iloc[0:0], runs)),
                figures.counter_bars(counters_by(tel.iloc[0:0], runs, "m"))):
        assert fig.layout.annotations and not fig.data


def test_groups_of_one_figure_get_distinct_colours() -> None:
    colours = figures.group_colors(["envoy+mtls", "envoy", "fault-delay", "slow-backend",
                                    "fault-abort", "slow-backend+timeout"])
    assert colours["envoy"] == figures.mesh_color("envoy")     # the mesh keeps its colour
    assert len(set(colours.values())) == len(colours)


LATENCY_AXES = {"spectrum": "yaxis", "histogram": "xaxis", "rate": "yaxis",
                "connections": "yaxis", "timeline": "yaxis", "ab": "yaxis", "co": "yaxis"}


@pytest.mark.parametrize("name", sorted(LATENCY_AXES))
def test_latency_axes_are_log_with_unit_labelled_major_ticks(many: Frames, name: str) -> None:
    axis = FIGS[name](many).layout[LATENCY_AXES[name]]
    assert axis.type == "log"
    assert axis.ticktext and all(t.endswith((" us", " ms", " s")) for t in axis.ticktext)
    leading = {f"{v:g}"[0] for v in axis.tickvals}
    assert leading <= {"1", "2", "5"}                         # 1-2-5 at most, no "3 4 6 7 8 9"


def test_spectrum_of_a_10ms_baseline_and_400ms_candidate_separates(many: Frames) -> None:
    """On the old linear axis a 10 ms baseline lay flat under a 400 ms candidate."""
    runs = [synthetic_result(run_id="b", p50_us=10_000.0, requests=2_000),
            synthetic_result(run_id="c", p50_us=400_000.0, requests=2_000, mesh="envoy")]
    f = frames_from_results(runs)
    fig = figures.percentile_spectrum(_lat(f), runs=f.runs)  # type: ignore[arg-type]
    assert fig.layout.yaxis.type == "log"
    assert {"10 ms", "100 ms"} <= set(fig.layout.yaxis.ticktext)


def test_rate_charts_need_two_rates() -> None:
    f = frames_from_results([synthetic_result(run_id=f"r{i}", seed=i, requests=500,
                                              rate_rps=500.0, cpu_percent=5.0)
                             for i in range(3)])
    for fig in (figures.latency_vs_rate(f.runs), figures.resource_vs_rate(f.runs, f.telemetry)):
        assert not fig.data and "two or more" in fig.layout.annotations[0].text


def test_timeline_has_a_legend_and_a_live_window(many: Frames) -> None:
    sub = many.subset(["r0"])
    fig = figures.timeline(sub.timeseries, runs=sub.runs, window_s=30.0)
    assert fig.layout.showlegend is True and fig.data[0].name == "none"
    assert tuple(fig.layout.xaxis.range) == (0, 30.0)
    rps = figures.timeline(sub.timeseries, runs=sub.runs, metric="requests")
    assert rps.layout.yaxis.range[0] == 0                      # not an autoscaled sliver


def test_export_png_and_svg(tmp_path: Path, many: Frames) -> None:
    pytest.importorskip("kaleido")
    from meshlab.report.image import export_images

    fig = FIGS["spectrum"](many)
    paths = export_images({"spectrum": fig}, tmp_path)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:400]


def test_a_first_live_frame_has_a_readable_range() -> None:
    """One point at 3457 us used to autoscale the axis to 3456.5-3458."""
    import math

    import pandas as pd

    ts = pd.DataFrame({"run_id": ["live"], "second": [0], "p99_us": [3457.0],
                       "p50_us": [900.0], "requests": [500.0], "errors": [0]})
    fig = figures.timeline(ts, title="live p99 latency", window_s=10.0)
    lo, hi = fig.layout.yaxis.range
    shown = [t for t, v in zip(fig.layout.yaxis.ticktext, fig.layout.yaxis.tickvals,
                               strict=True) if lo <= math.log10(v) <= hi]
    assert len(shown) >= 2 and hi - lo >= 0.3, shown           # at least two labelled ticks
    assert tuple(fig.layout.xaxis.range) == (0, 10.0)
