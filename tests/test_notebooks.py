"""Every notebook executes headless (papermill, in-process, a real kernel) with tiny parameters,
and each lab's effect is really in the store it wrote (status mixes and proxy counters).

Labs and compare-meshes need the local playground (Envoy etc.); quickstart and
coordinated-omission need only the echo server; regression-check only a store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _kernels import KernelsAhead

from meshlab.analysis import Frames, counters_by, load_frames, status_shares
from meshlab.analysis import NO_INTERVAL
from meshlab.profile import LoadMatrix
from meshlab.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WARMUP_DEFAULT_S = LoadMatrix.model_fields["dataplane_warmup_s"].default
LAB = {"duration_s": 1.0, "warmup_s": 0.0, "dataplane_warmup_s": 0.0}
# labs whose checks count statuses and proxy counters only (no run status): 100-200 requests
# per run still show each effect many times over
COUNTED = {**LAB, "duration_s": 0.5}
FAST: dict[str, dict[str, Any]] = {
    "quickstart": {"duration_s": 1.0, "rate_rps": 200.0, "dataplane_warmup_s": 0.0},
    "regression-check": {},
    "coordinated-omission": {"duration_s": 1.0, "rate_rps": 100.0, "stall": "200ms:2",
                             "dataplane_warmup_s": 0.0},
    "compare-meshes": {**LAB, "rates_rps": [200.0], "repeats": 1, "meshes": ["none", "envoy"]},
    "lab-sidecar-overhead-mtls": {**LAB, "rate_rps": 200.0, "repeats": 1},
    "lab-retries": {**COUNTED, "rate_rps": 200.0, "repeats": 1},
    "lab-timeouts-faults": {**COUNTED, "rate_rps": 200.0, "repeats": 1},
    "lab-circuit-breaking": {**COUNTED, "rates_rps": [50.0, 400.0], "repeats": 1},
    "lab-load-balancing": {**COUNTED, "rate_rps": 300.0, "repeats": 1},
    "lab-grpc-load-balancing": {"calls": 60, "replicas": 2},
}
CLIENT = "envoy:client-sidecar"


def _share(f: Frames, runs: pd.DataFrame, group: str, code: int, by: str = "policy") -> float:
    s = status_shares(f.status_codes, runs, by=by)
    hit = s[(s[by] == group) & (s["code"] == code)]
    return float(hit["share"].sum())


def _counter(f: Frames, runs: pd.DataFrame, group: str, metric: str, by: str = "policy",
             source: str = CLIENT) -> float:
    t = counters_by(f.telemetry, runs, metric, by=by, source=source)
    return float(t.loc[t[by] == group, "value"].sum())


def _retries(f: Frames) -> None:
    assert _share(f, f.runs, "no-retries", 503) > 0.05
    assert _share(f, f.runs, "retries", 503) < _share(f, f.runs, "no-retries", 503) / 2
    assert _counter(f, f.runs, "retries", "envoy.upstream_rq_retry") > 0
    assert _counter(f, f.runs, "no-retries", "envoy.upstream_rq_retry") == 0


def _timeouts(f: Frames) -> None:
    assert _counter(f, f.runs, "fault-delay", "envoy.fault_delays") > 0
    assert _counter(f, f.runs, "fault-abort", "envoy.fault_aborts") > 0
    assert _share(f, f.runs, "fault-abort", 503) > 0
    assert _share(f, f.runs, "slow-backend+timeout", 504) > 0
    assert _counter(f, f.runs, "slow-backend+timeout", "envoy.upstream_rq_timeout") > 0
    assert _share(f, f.runs, "slow-backend", 504) == 0


def _breaker(f: Frames) -> None:
    runs = f.runs.assign(config=f.runs["policy"] + "@" + f.runs["rate_rps"].map("{:.0f}".format))
    assert _share(f, runs, "breaker@400", 503, by="config") > 0.2
    assert _counter(f, runs, "breaker@400", "envoy.upstream_rq_pending_overflow",
                    by="config") > 0
    assert _share(f, runs, "no-breaker@400", 503, by="config") == 0


def _balancing(f: Frames) -> None:
    t = counters_by(f.telemetry, f.runs, "envoy.downstream_rq_total", by="policy",
                    source="envoy:backend-*-sidecar", per_source=True)
    slow = t[t["source"] == "envoy:backend-2-sidecar"].set_index("policy")["share"]
    assert 0.25 < slow["round-robin"] < 0.42
    assert slow["least-request"] < slow["round-robin"]


# a closing answer (Answer.text): a number with its 95% interval, or "not distinguishable here"
ANSWER = re.compile(r"^[^:]+: (?:[+-]?[\d,.]+ ?[a-z% ]+|not distinguishable here) "
                    r"\((?:95% interval [+-]?[\d,.]+ ?[a-z% ]+ to [+-]?[\d,.]+ ?[a-z% ]+|"
                    + re.escape(NO_INTERVAL) + r")\)$")
ANSWERED = {"lab-sidecar-overhead-mtls", "lab-retries", "lab-timeouts-faults",
            "lab-circuit-breaking", "lab-load-balancing", "compare-meshes"}


def _answers(executed: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    cells = [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{executed.name}: one cell tagged answer"
    return "".join(o.get("text", "") for o in cells[0].outputs
                   if o.output_type == "stream").splitlines()


def _meshes(*names: str) -> Callable[[Frames], None]:
    def check(f: Frames) -> None:
        assert sorted(f.runs["mesh"]) == sorted(names)
        assert set(f.runs["status"]) == {"completed"} and f.runs["errors"].sum() == 0
    return check


EFFECTS: dict[str, Callable[[Frames], None]] = {
    "lab-retries": _retries,
    "lab-timeouts-faults": _timeouts,
    "lab-circuit-breaking": _breaker,
    "lab-load-balancing": _balancing,
    "lab-sidecar-overhead-mtls": _meshes("none", "envoy", "envoy+mtls"),
    "compare-meshes": _meshes("none", "envoy"),
}


def test_every_notebook_is_listed_and_has_a_parameters_cell() -> None:
    import nbformat

    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert names == set(FAST)
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        # a FAST override of the data plane warm-up shortens only the test: the notebook's
        # own default is the profile model's, so a lab's published answers keep their warm-up
        if "dataplane_warmup_s" in FAST[path.stem]:
            assert f"\ndataplane_warmup_s = {WARMUP_DEFAULT_S!r}\n" in f"\n{tagged[0].source}\n", \
                path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
            f"{path.name}: strip outputs before committing"
        if path.stem.startswith("lab-"):
            assert "**Learning goal:**" in nb.cells[0].source, path.name
            assert nb.cells[-1].cell_type == "markdown", path.name
            assert nb.cells[-1].source.startswith("**Question:**"), path.name
            assert "figures." in nb.cells[-2].source or any(
                "figures." in c.source for c in nb.cells[-3:-1]), path.name


@pytest.fixture(scope="module")
def kernels(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelsAhead]:
    """Each notebook's own fresh kernel, launched while the notebook before it runs."""
    left = sum(getattr(item, "originalname", "") == "test_notebook_executes"
               and item.path == request.path for item in request.session.items)
    pool = KernelsAhead(lambda: tmp_path_factory.mktemp("notebook"), left)
    try:
        yield pool
    finally:
        pool.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(FAST))
def test_notebook_executes(name: str, tmp_path: Path, kernels: KernelsAhead) -> None:
    import papermill as pm

    workdir = kernels.workdir(tmp_path)
    store_path = workdir / "meshlab.duckdb"
    params = {"store_path": str(store_path), "renderer": "plotly_mimetype", **FAST[name]}
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(workdir / f"{name}.ipynb"),
                        parameters=params, kernel_name="python3", progress_bar=False,
                        cwd=str(workdir), execution_timeout=200,
                        kernel_manager_class=kernels.manager_class)
    if name in ANSWERED:
        lines = _answers(workdir / f"{name}.ipynb")
        assert lines and all(ANSWER.match(line) for line in lines), lines
    check = EFFECTS.get(name)
    if check is not None:
        check(load_frames(Store(store_path, read_only=True)))
