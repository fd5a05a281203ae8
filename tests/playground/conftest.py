"""Fixtures for playground tests: a state dir and a list of playgrounds stopped after a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _playground_helpers import assert_gone

from meshlab.playground.playground import Playground


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def started(state_dir: Path) -> Iterator[list[Playground]]:
    """Collects playgrounds a test starts; stops them and checks no process survived."""
    pgs: list[Playground] = []
    yield pgs
    pids = [p.pid for pg in pgs for p in pg.processes]
    for pg in pgs:
        pg.stop()
    assert_gone(pids)
