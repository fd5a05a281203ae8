"""Load runners behind one interface: the native open-loop runner and external tools."""

from meshlab.runners.base import Runner, get_runner, register_runner, runner_names

__all__ = ["Runner", "get_runner", "register_runner", "runner_names"]
