"""Load runners behind one interface: the native open-loop runner and external tools."""

from meshlab.runners.base import Progress, ProgressCallback, Runner, get_runner, runner_names

__all__ = ["Progress", "ProgressCallback", "Runner", "get_runner", "runner_names"]
