"""The stable public API: `meshlab.__all__` is sorted, unique and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import meshlab


def test_all_is_sorted_and_unique() -> None:
    assert meshlab.__all__ == sorted(meshlab.__all__)
    assert len(set(meshlab.__all__)) == len(meshlab.__all__)


def test_every_name_is_importable() -> None:
    for name in meshlab.__all__:
        assert getattr(meshlab, name) is not None, name


def test_star_import_in_a_fresh_interpreter() -> None:
    code = ("from meshlab import *\n"
            "import meshlab\n"
            "missing = [n for n in meshlab.__all__ if n not in globals()]\n"
            "assert not missing, missing\n"
            "assert run_profile is meshlab.experiment.run_profile\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        meshlab.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("meshlab.no_such_name resolved")


def test_echo_process_imports_stay_light() -> None:
    """Every playground starts echo and relay processes that import `meshlab`: the package face
    resolves the profile and result models on first use, so they start without pydantic or
    numpy (~0.5 s each on a busy machine)."""
    code = ("import sys, meshlab.playground.echo, meshlab.playground.relay\n"
            "heavy = sorted({'pydantic', 'numpy', 'pandas', 'yaml'} & set(sys.modules))\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
