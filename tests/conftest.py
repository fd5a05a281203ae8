"""Shared fixtures: an echo server in its own process, stopped even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshlab.playground.echo import EchoProcess, start_echo_process


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

