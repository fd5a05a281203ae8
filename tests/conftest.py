"""Shared fixtures: an echo server in its own process, stopped even when a test fails."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from meshlab.playground.echo import EchoProcess, start_echo_process


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a non-interactive shell (`make test &`) inherits
    SIGINT and SIGQUIT ignored, and so would every process a test starts: the Ctrl-C and
    soft-stop tests would then fail for a reason that is not theirs. Restore the defaults."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


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

