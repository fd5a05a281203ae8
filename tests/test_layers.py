"""Layering: the core never imports the workbench's heavy packages; `import meshlab` stays light."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

WORKBENCH = ("ipywidgets", "plotly", "papermill", "nbformat", "nbconvert")
HEAVY = ("duckdb", "pandas", "httptools", "uvloop", "httpx", "rich", "kubernetes", "psutil")
# The core (L0-L3 + experiment) and the CLI's start-up: none may pull in a workbench package.
CORE = ("meshlab.experiment", "meshlab.store", "meshlab.runners.native", "meshlab.environments.base",
        "meshlab.playground.echo", "meshlab.formats", "meshlab.crosscheck", "meshlab.cli")


def _loaded_after(code: str) -> set[str]:
    probe = (f"import sys, json\n{code}\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_meshlab_is_light() -> None:
    loaded = _loaded_after("import meshlab")
    assert not loaded & set(HEAVY + WORKBENCH)


def test_experiment_imports_no_workbench_package() -> None:
    loaded = _loaded_after("import meshlab.experiment")
    assert not loaded & set(WORKBENCH)
    assert not loaded & {"duckdb", "pandas"}      # the store is imported when a run stores


def test_core_modules_import_no_workbench_package() -> None:
    modules = [m for m in CORE if importlib.util.find_spec(m) is not None]
    # One interpreter, modules imported in turn: the first that pulls a workbench package is named.
    code = (f"import importlib, sys\nculprits = {{}}\nfor m in {modules!r}:\n"
            f"    importlib.import_module(m)\n"
            f"    bad = sorted(w for w in {WORKBENCH!r} if w in sys.modules)\n"
            f"    if bad and not culprits: culprits[m] = bad\n"
            f"print(culprits)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{}", f"core module imported a workbench package: {proc.stdout}"


def test_cli_start_up_imports_no_heavy_package() -> None:
    # Every command module registers at start-up; handlers import heavy modules when they run.
    loaded = _loaded_after("from meshlab.cli import build_parser\nbuild_parser()")
    assert not loaded & {"duckdb", "pandas", *WORKBENCH}
