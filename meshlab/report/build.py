"""Execute the report notebook with papermill (in-process) and render standalone HTML.

The HTML hides code and inlines plotly.js once, so it opens offline; the verdict comes back
through a small JSON file the notebook writes, and decides the exit code CI gates on.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshlab.errors import MissingDependency, NotebookError

_INSTALL = "pip install 'meshlab[workbench]'"
_CDN_MATHJAX = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*">'
                          r"</script>")


def template_path() -> Path:
    """The report notebook, `meshlab/report/report.ipynb`: package data, edited in place in a
    source checkout and installed with the package."""
    packaged = Path(__file__).resolve().parent / "report.ipynb"
    if packaged.is_file():
        return packaged
    raise NotebookError(f"report template not found: {packaged} does not exist; reinstall "
                        "meshlab (pip install 'meshlab[workbench]') or pass template=")


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """Where the report went and what it concluded. `exit_code`: 0 ok, 1 regression, 2 bad
    input (the report explains it)."""

    out: Path
    verdict: str
    regressions: tuple[str, ...]
    exit_code: int
    problem: str | None
    elapsed_s: float
    comparison: str = "regression"    # "overhead" when the candidate is another mesh/policy

    @property
    def is_regression(self) -> bool:
        return self.exit_code == 1

    def message(self) -> str:
        if self.problem:
            return f"report written to {self.out}; cannot compare: {self.problem}"
        if self.regressions and self.comparison == "overhead":
            return (f"OVERHEAD beyond thresholds in {', '.join(self.regressions)}; report "
                    f"written to {self.out}")
        if self.regressions:
            return f"REGRESSION in {', '.join(self.regressions)}; report written to {self.out}"
        return f"{self.verdict}; report written to {self.out}"


def _selector(sel: str | Sequence[str] | Mapping[str, str]) -> str | list[str] | dict[str, str]:
    if isinstance(sel, str):
        return sel
    if isinstance(sel, Mapping):
        return {str(k): str(v) for k, v in sel.items()}
    return [str(s) for s in sel]


def ipc_kernel_manager() -> type:
    """A kernel manager class talking to its kernel over Unix sockets, not loopback TCP: no
    race for ports with other processes starting kernels at the same time (parallel CI jobs),
    and no "running over TCP without encryption" warning. Pass it to papermill as
    `kernel_manager_class=`."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

    return IpcKernelManager


def render_html(notebook_path: Path, out: Path) -> None:
    """nbconvert to a standalone HTML file without code cells, prompts or CDN scripts."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
        from traitlets.config import Config
    except ImportError as exc:
        raise MissingDependency("nbconvert", install=_INSTALL) from exc
    cfg = Config()
    cfg.HTMLExporter.exclude_input = True
    cfg.HTMLExporter.exclude_input_prompt = True
    cfg.HTMLExporter.exclude_output_prompt = True
    cfg.HTMLExporter.require_js_url = ""
    cfg.HTMLExporter.mathjax_url = ""
    nb = nbformat.read(str(notebook_path), as_version=4)  # type: ignore[no-untyped-call]
    exporter = HTMLExporter(config=cfg)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(nb)
    # plotly's "notebook" renderer hard-codes a MathJax CDN <script> before every figure; the
    # report has no LaTeX, and offline each tag is a failed request: drop them.
    body = _CDN_MATHJAX.sub("", body)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")


def build_report(
    store_path: str | Path,
    *,
    baseline: str | Sequence[str] | Mapping[str, str],
    candidate: str | Sequence[str] | Mapping[str, str],
    out: str | Path,
    thresholds: Sequence[str] | Mapping[str, str] | None = None,
    title: str = "meshlab report",
    template: str | Path | None = None,
    kernel_name: str = "python3",
    timeout_s: float = 600.0,
    n_boot: int = 1000,
    keep_notebook: bool = False,
    figures_dir: str | Path | None = None,
    trend_over: str = "experiment",
) -> ReportOutcome:
    """Execute the report template against the store and write `out` (HTML).

    `baseline`/`candidate`: run ids (list or comma-separated) or filters (`"mesh=none"`).
    `thresholds`: `["p99=10%", "error_rate=1%"]` or `{"p99": "10%"}`; defaults otherwise.
    `figures_dir`: also write every chart there as PNG and SVG (needs kaleido).
    `trend_over`: the trend section's points (experiment, day, label.NAME).
    Raises NotebookError when the notebook itself fails (bad input does not: see exit_code)."""
    try:
        import papermill as pm
    except ImportError as exc:
        raise MissingDependency("papermill", install=_INSTALL) from exc
    t0 = time.monotonic()
    out = Path(out).resolve()
    tpl = Path(template) if template else template_path()
    with tempfile.TemporaryDirectory(prefix="meshlab-report-") as tmp:
        verdict_path = Path(tmp) / "verdict.json"
        executed = (out.with_suffix(".ipynb") if keep_notebook
                    else Path(tmp) / "report.ipynb")
        params = {
            "store_path": str(Path(store_path).resolve()),
            "baseline": _selector(baseline),
            "candidate": _selector(candidate),
            "thresholds": (list(thresholds) if thresholds is not None
                           and not isinstance(thresholds, Mapping)
                           else [f"{k}={v}" for k, v in (thresholds or {}).items()]),
            "title": title,
            "verdict_path": str(verdict_path),
            "n_boot": n_boot,
            "figures_dir": str(Path(figures_dir).resolve()) if figures_dir else "",
            "trend_over": trend_over,
        }
        failure: Exception | None = None
        try:
            # written once at the end (also when a cell fails): saving after every cell
            # re-validated and rewrote a growing notebook of charts, ~20% of a report's time
            pm.execute_notebook(str(tpl), str(executed), parameters=params,
                                kernel_name=kernel_name, progress_bar=False, log_output=False,
                                execution_timeout=int(timeout_s), cwd=tmp,
                                kernel_manager_class=ipc_kernel_manager(),
                                request_save_on_cell_execute=False)
        except pm.PapermillExecutionError as exc:
            failure = exc
        if executed.exists():
            render_html(executed, out)
        if failure is not None or not verdict_path.exists():
            raise NotebookError(f"report notebook {tpl} failed: {failure or 'no verdict'}; "
                                f"partial report at {out}") from failure
        doc = json.loads(verdict_path.read_text(encoding="utf-8"))
    return ReportOutcome(out=out, verdict=str(doc["verdict"]),
                         regressions=tuple(doc.get("regressions", [])),
                         exit_code=int(doc["exit_code"]), problem=doc.get("problem"),
                         elapsed_s=time.monotonic() - t0,
                         comparison=str(doc.get("comparison", "regression")))


def report_main(
    *,
    baseline: str,
    candidate: str,
    out: str | Path = "report.html",
    store: str | Path = "data/meshlab.duckdb",
    thresholds: Sequence[str] = (),
    title: str = "meshlab report",
    fail_on_regression: bool = True,
    figures_dir: str | Path | None = None,
    trend_over: str = "experiment",
) -> int:
    """`meshlab report`: build the report, print one line, return the process exit code:
    0 no regression, 1 regression, 2 bad input or a failed notebook. With
    `fail_on_regression=False` (`--no-fail`) a regression exits 0 too (it is still printed and
    in the report); bad input still exits 2. Selectors: run ids or filters like `mesh=none`,
    `mesh!=none`, `label.build=candidate`."""
    import sys

    from meshlab.errors import MeshlabError

    try:
        outcome = build_report(store, baseline=baseline, candidate=candidate, out=out,
                               thresholds=list(thresholds) or None, title=title,
                               figures_dir=figures_dir, trend_over=trend_over)
    except MeshlabError as exc:
        print(f"meshlab report: {exc}", file=sys.stderr)
        return 2
    stream = sys.stdout if outcome.exit_code == 0 else sys.stderr
    print(outcome.message(), file=stream)
    if outcome.exit_code == 1 and not fail_on_regression:
        return 0
    return outcome.exit_code
