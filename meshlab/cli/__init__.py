"""The `meshlab` command line, a thin client of the library: `main(argv) -> exit code`
(0 ok, 1 a run or command failed, 2 usage or input error, 130 interrupted by Ctrl-C, 143 by
SIGTERM, 129 by SIGHUP: both take the Ctrl-C path)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshlab.errors import ProfileError

# Each module exposes `register(subparsers)` and adds its sub-commands with
# `parser.set_defaults(handler=fn)`, `fn(args: argparse.Namespace) -> int | None`. Handlers import
# heavy modules (store, runners, pandas, plotly) only when they run, so `meshlab --help` is fast.
_COMMAND_MODULES = [
    "meshlab.cli.core",
    "meshlab.cli.search",
    "meshlab.cli.data",
    "meshlab.cli.compare",
    "meshlab.cli.playground",
    "meshlab.cli.report",
    "meshlab.cli.k8s",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from meshlab._version import __version__

    parser = argparse.ArgumentParser(
        prog="meshlab",
        description="Measure what a service mesh costs and how it behaves.",
        epilog="MESHLAB_STORE sets the default store path (data/meshlab.duckdb otherwise).")
    parser.add_argument("--version", action="version", version=f"meshlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage/input error, 130 Ctrl-C,
    128 + the signal number for SIGTERM and SIGHUP)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:             # --help, --version, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    if os.environ.get("MESHLAB_STATE_DIR"):
        # `meshlab run` starts playgrounds too: `playground down` must find a crashed run's
        from meshlab.playground.process import use_state_dir

        use_state_dir(os.environ["MESHLAB_STATE_DIR"])
    # progress lines reach a pipe as they happen (a killed `meshlab import | tee` shows them)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)     # type: ignore[union-attr]
    from meshlab.cli._signals import terminate_like_ctrl_c

    with terminate_like_ctrl_c() as received:
        code = _dispatch(handler, args)
    if received and code == EXIT_INTERRUPTED:
        return 128 + received[0]
    return code


def _dispatch(handler: Callable[[argparse.Namespace], int | None],
              args: argparse.Namespace) -> int:
    from meshlab.errors import MeshlabError, MissingDependency, ProfileError

    try:
        code = handler(args)
    except ProfileError as exc:
        print(f"error: {_one_problem(exc) or exc}", file=sys.stderr)
        return EXIT_USAGE
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MeshlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:               # `meshlab runs --json | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return EXIT_OK if code is None else int(code)


def _one_problem(exc: ProfileError) -> str | None:
    """One problem on one line (`error: bad.yaml: (file): not UTF-8 text ...`); None for a list."""
    if len(exc.problems) != 1:
        return None
    return (f"{exc.source}: " if exc.source else "") + exc.problems[0]


__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
