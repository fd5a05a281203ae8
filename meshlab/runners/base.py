"""The runner interface: a load spec in, a `RunResult` out; and the lazy runner registry."""

from __future__ import annotations

import abc
import importlib
from typing import ClassVar

from meshlab.errors import ProfileError, RunnerError
from meshlab.profile import RunSpec
from meshlab.progress import ProgressCallback
from meshlab.results import RunResult


class Runner(abc.ABC):
    """A load generator. Subclasses set `name` and implement `run`."""

    name: ClassVar[str]
    protocols: ClassVar[tuple[str, ...]] = ("http1",)   # what `spec.protocol` may be

    def is_available(self) -> bool:
        """Whether this runner can run on this machine (its tool is installed)."""
        return True

    def check(self, spec: RunSpec) -> None:
        """Raise ProfileError naming the option when `spec` asks for something this runner
        cannot honour (say an open-loop rate on a closed-loop-only tool). Default: accept every
        spec whose protocol is one of `protocols`."""
        problem = protocol_problem(self, spec)
        if problem:
            raise ProfileError(problem, source=f"runner {self.name}")

    def version(self) -> str:
        return ""

    @abc.abstractmethod
    async def run(self, spec: RunSpec, *, progress: ProgressCallback | None = None) -> RunResult:
        """Run the load described by `spec`. Target failures are counted in the result;
        cancellation returns (not raises) a partial result marked aborted where possible."""


def protocol_problem(runner: Runner, spec: RunSpec) -> str | None:
    """`request.protocol: ...` when `runner` cannot speak `spec.protocol` (never a fallback)."""
    if spec.protocol in runner.protocols:
        return None
    return (f"request.protocol: runner {runner.name} cannot speak {spec.protocol} (it speaks "
            f"{', '.join(runner.protocols)}); choose another runner or protocol")


# name -> "module:Class"; modules are imported only when a runner is asked for.
_REGISTRY: dict[str, str] = {
    "native": "meshlab.runners.native:NativeRunner",
    "wrk": "meshlab.runners.wrk:WrkRunner",
    "hey": "meshlab.runners.hey:HeyRunner",
    "ab": "meshlab.runners.ab:AbRunner",
    "fortio": "meshlab.runners.fortio:FortioRunner",
    "h2load": "meshlab.runners.h2load:H2loadRunner",
    "k6": "meshlab.runners.k6:K6Runner",
}


def register_runner(name: str, target: str) -> None:
    """Register a runner class by import path `module:Class` under a lowercase name."""
    if name != name.lower():
        raise ValueError(f"runner names are lowercase, got {name!r}")
    _REGISTRY[name] = target


def runner_names() -> list[str]:
    return sorted(_REGISTRY)


def get_runner(name: str) -> Runner:
    """Instantiate the runner registered as `name`."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ProfileError(
            f"runner: unknown runner {name!r}; choose one of {', '.join(runner_names())}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunnerError(f"runner {name!r} cannot be loaded from {module_name}: {exc}") from exc
    cls = getattr(module, cls_name)
    runner = cls()
    if not isinstance(runner, Runner):
        raise RunnerError(f"{target} is not a meshlab Runner")
    return runner
