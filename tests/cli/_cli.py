"""Running the CLI in-process against a store, and reading its `--json` output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshlab.cli import main


def cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    """`meshlab ARGS --store DB` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([*args, "--store", str(db)])
    out, err = capsys.readouterr()
    return code, out, err


def lines(text: str) -> list[dict[str, Any]]:
    """One JSON object per non-empty line."""
    return [json.loads(x) for x in text.splitlines() if x.strip()]
