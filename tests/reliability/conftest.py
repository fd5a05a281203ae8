"""Fixtures for the reliability tests: a `spawner` starting `meshlab` subprocesses, which reaps
them and every process group they started at teardown, whether or not the test passed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _signal_helpers import Spawner


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Spawner]:
    s = Spawner(tmp_path)
    try:
        yield s
    finally:
        s.cleanup()
