"""The report: real DuckDB store, real kernel via papermill, standalone HTML, exit codes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from meshlab.analysis import synthetic_result
from meshlab.report import build_report, prepare, report_main
from meshlab.report import sections as rpt_sections
from meshlab.report.sections import exit_code
from meshlab.store import Store

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("report")) / "meshlab.duckdb"
    store = Store(path)
    for i in range(3):
        common = {"requests": 20_000, "duration_s": 4.0}
        store.save(synthetic_result(run_id=f"base-{i}", seed=i, **common))            # type: ignore[arg-type]
        store.save(synthetic_result(run_id=f"slow-{i}", seed=10 + i, slowdown=1.2,    # type: ignore[arg-type]
                                    mesh="envoy", **common))
        store.save(synthetic_result(run_id=f"same-{i}", seed=20 + i, mesh="same",      # type: ignore[arg-type]
                                    **common))
    return path


def test_planted_regression_exits_one(store_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code = report_main(baseline="mesh=none", candidate="mesh=envoy", out=out,
                       store=store_path, thresholds=["p99=10%"])
    assert code == 1
    # envoy against no mesh is an overhead, not a regression (that word is for a new build)
    err = capsys.readouterr().err
    assert "OVERHEAD beyond thresholds in" in err and "REGRESSION" not in err
    html = out.read_text(encoding="utf-8")
    assert "OVERHEAD beyond thresholds in" in html and "REGRESSION" not in html
    assert "Overhead: candidate vs baseline (3 runs)" in html
    assert "Plotly.newPlot" in html and 'src="http' not in html   # plotly.js inlined: offline
    assert "rpt.prepare" not in html                               # code hidden


def test_identical_candidate_exits_zero(store_path: Path, tmp_path: Path) -> None:
    outcome = build_report(store_path, baseline="base-0,base-1,base-2",
                           candidate=["same-0", "same-1", "same-2"], out=tmp_path / "r.html",
                           n_boot=300)
    assert outcome.exit_code == 0, outcome
    assert not outcome.regressions and outcome.out.exists()


def test_empty_store_gives_a_message_not_a_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    Store(empty).runs()
    outcome = build_report(empty, baseline="mesh=none", candidate="mesh=envoy",
                           out=tmp_path / "r.html")
    assert outcome.exit_code == 2
    assert outcome.problem and "no runs" in outcome.problem
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Cannot compare" in html and "Traceback" not in html


@pytest.mark.parametrize(("baseline", "candidate", "needle"), [
    ("base-0,nope-1", "mesh=envoy", "unknown run ids nope-1"),
    ("mesh=istio", "mesh=envoy", "baseline: selector 'mesh=istio' matched no runs"),
])
def test_bad_selection_is_explained(store_path: Path, baseline: str, candidate: str,
                                    needle: str) -> None:
    ctx = prepare(store_path, baseline=baseline, candidate=candidate, renderer=None)
    assert ctx.problem and needle in ctx.problem
    assert exit_code(ctx) == 2


def test_missing_store_is_explained(tmp_path: Path) -> None:
    ctx = prepare(tmp_path / "absent.duckdb", baseline="a", candidate="b", renderer=None)
    assert ctx.problem and "No store at" in ctx.problem


def test_negative_selector_in_the_report(store_path: Path) -> None:
    ctx = prepare(store_path, baseline="mesh=none", candidate="mesh!=none", renderer=None,
                  n_boot=50)
    assert ctx.problem is None
    assert sorted(ctx.candidate) == [*(f"same-{i}" for i in range(3)),
                                     *(f"slow-{i}" for i in range(3))]
    assert sorted(ctx.baseline) == [f"base-{i}" for i in range(3)]


def test_the_report_notebook_exists_once_as_package_data() -> None:
    from meshlab.report.build import template_path

    repo = Path(__file__).resolve().parents[1]
    packaged = repo / "meshlab" / "report" / "report.ipynb"
    assert template_path() == packaged                    # a checkout runs what a wheel ships
    assert not (repo / "templates").exists()              # no second copy to drift from it


class _Visible(HTMLParser):
    """The text a reader sees: everything outside <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.depth += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def test_demo_report_reads_without_scientific_notation_or_index(tmp_path: Path) -> None:
    """The `make demo` shape (baseline vs meshes, proxy telemetry, errors, slow candidates)."""
    path = tmp_path / "demo.duckdb"
    store = Store(path)
    for i in range(2):
        common = {"requests": 8_000, "duration_s": 4.0, "cpu_percent": 30.0}
        store.save(synthetic_result(run_id=f"none-{i}", seed=i, **common))   # type: ignore[arg-type]
        store.save(synthetic_result(run_id=f"envoy-{i}", seed=5 + i, mesh="envoy",  # type: ignore[arg-type]
                                    p50_us=400_000.0, error_rate=0.01, **common))
    out = tmp_path / "demo.html"
    outcome = build_report(path, baseline="mesh=none", candidate="mesh!=none", out=out,
                           n_boot=100)
    assert outcome.exit_code == 1
    html = out.read_text(encoding="utf-8")
    parser = _Visible()
    parser.feed(html)
    text = " ".join(parser.parts)
    assert "p99 latency" in text and " ms" in text and "req/s" in text
    tokens = [t.strip("()%[]") for t in re.split(r"[\s,;]+", text)]
    assert not [t for t in tokens if re.fullmatch(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+", t)]
    assert 'class="dataframe"' not in html                 # no raw pandas table, no index
    assert "ci_high_pct" not in text and "higher_is_better" not in text
    assert re.search(r"[+-]\d[\d,]*% \([+-]?\d[\d,.]*% \.\. [+-]?\d[\d,.]*%\)", text)
    assert 'verdict-slower' in html


def test_each_candidate_group_gets_its_own_section(store_path: Path) -> None:
    """Two meshes as one candidate are not pooled: one judged section each, with intervals."""
    ctx = prepare(store_path, baseline="mesh=none", candidate="mesh!=none", renderer=None,
                  n_boot=300)
    assert ctx.problem is None and ctx.word == "overhead"
    assert "REGRESSION" not in rpt_sections.verdict_line(ctx)
    frames = dict(rpt_sections.group_frames(ctx))
    assert list(frames) == ["Overhead: mesh=envoy vs baseline (3 runs)",
                            "Overhead: mesh=same vs baseline (3 runs)"]
    envoy = frames["Overhead: mesh=envoy vs baseline (3 runs)"].set_index("metric")
    same = frames["Overhead: mesh=same vs baseline (3 runs)"].set_index("metric")
    assert {"delta", "ci_low", "ci_high", "difference"} <= set(envoy.columns)
    assert envoy.loc["p99_us", "difference"] == "slower"        # planted 20% slowdown
    assert envoy.loc["p99_us", "ci_low"] > 0
    assert same.loc["p50_us", "difference"] in {"indistinguishable", "faster", "slower"}
    assert same.loc["p50_us", "ci_low"] < envoy.loc["p50_us", "ci_low"]
    # the verdict is each group's own, named by group (never the pooled candidate's)
    assert ctx.verdict is not None
    assert set(ctx.verdict.table["group"]) == {"mesh=envoy", "mesh=same"}
    assert all(r.startswith(("mesh=envoy: ", "mesh=same: ")) for r in ctx.verdict.regressions)
    gated = prepare(store_path, baseline="mesh=none", candidate="mesh!=none", renderer=None,
                    n_boot=300, thresholds=["p99=10%"])
    assert gated.verdict is not None and "mesh=envoy: p99_us" in gated.verdict.regressions
    assert exit_code(gated) == 1


def test_regression_only_for_the_same_mesh(store_path: Path) -> None:
    ctx = prepare(store_path, baseline="base-0,base-1", candidate="base-2", renderer=None,
                  n_boot=200)
    assert ctx.problem is None and ctx.word == "regression"
    ((heading, _table),) = rpt_sections.group_frames(ctx)
    assert heading == "Regression check: candidate vs baseline (1 runs)"
