"""pyproject.toml declares its licence the way current setuptools expects, so installing meshlab
(`make demo`, `pip install -e .`) prints no `BuildBackendWarning` about `project.license`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_license_is_an_spdx_string_not_a_deprecated_table() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    # `license = { text = ... }` makes setuptools >= 77 print a deprecation block per build step
    assert project["license"] == "Apache-2.0"
    assert not any(str(c).startswith("License ::") for c in project.get("classifiers", []))


def test_build_backend_is_new_enough_for_spdx_licenses() -> None:
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    pins = [r for r in build["requires"] if re.match(r"setuptools\b", r)]
    assert len(pins) == 1
    m = re.fullmatch(r"setuptools\s*>=\s*(\d+)(\.\d+)*", pins[0])
    assert m is not None and int(m.group(1)) >= 77, pins[0]
