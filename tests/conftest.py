"""Shared fixtures: an echo server in its own process, stopped even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshlab.playground.echo import EchoProcess, start_echo_process

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def echo_process() -> Iterator[EchoProcess]:
    """An echo server (fortio query semantics) on 127.0.0.1, in a separate process."""
    proc = start_echo_process(name="echo-test")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def echo_url(echo_process: EchoProcess) -> str:
    """Base URL of the session echo server, e.g. `http://127.0.0.1:40159/`."""
    return echo_process.url


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (reference formats); a clear failure when missing."""
    if not (SHARED / "reference").is_dir():
        pytest.fail(f"{SHARED}/reference is missing: the repository must sit beside shared/")
    return SHARED
