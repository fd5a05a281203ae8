"""The runner interface: a load spec in, a `RunResult` out; and the lazy runner registry."""

from __future__ import annotations

import abc
from typing import ClassVar

from meshlab.errors import ProfileError
from meshlab.profile import RunSpec
from meshlab.progress import ProgressCallback
from meshlab.registry import RUNNERS
from meshlab.results import RunResult


class Runner(abc.ABC):
    """A load generator. Subclasses set `name` and implement `run`."""

    name: ClassVar[str]
    # How to get what `is_available` looks for, shown whenever it is missing.
    install_hint: ClassVar[str] = ""
    protocols: ClassVar[tuple[str, ...]] = ("http1",)   # what `spec.protocol` may be
    # why a protocol outside `protocols` cannot be spoken, said with the refusal
    protocol_notes: ClassVar[dict[str, str]] = {}
    shapes: ClassVar[tuple[str, ...]] = ("constant",)   # which `loads.shape` kinds it generates

    def is_available(self) -> bool:
        """Whether this runner can run on this machine (its tool is installed)."""
        return True

    def check(self, spec: RunSpec) -> None:
        """Raise ProfileError naming the option when `spec` asks for something this runner
        cannot honour (say an open-loop rate on a closed-loop-only tool). Default: accept every
        spec whose protocol is one of `protocols` and whose shape is one of `shapes`."""
        problems = [p for p in (protocol_problem(self, spec), shape_problem(self, spec)) if p]
        if problems:
            raise ProfileError(problems, source=f"runner {self.name}")

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
    note = runner.protocol_notes.get(spec.protocol)
    return (f"request.protocol: runner {runner.name} cannot speak {spec.protocol} (it speaks "
            f"{', '.join(runner.protocols)}{'; ' + note if note else ''}); choose another "
            f"runner or protocol")


def shape_problem(runner: Runner, spec: RunSpec) -> str | None:
    """`loads.shape: ...` when `runner` cannot generate `spec.shape` (never a silent constant
    rate), or when a shape other than constant is asked of a closed loop."""
    kind = spec.shape.kind
    if kind == "constant":
        return None
    if not spec.open_loop:
        return (f"loads.shape: kind {kind!r} needs an open-loop rate, but rate_rps is 0 (closed "
                f"loop); set loads.rate_rps > 0 (the shape's peak) or use shape kind constant")
    if kind in runner.shapes:
        return None
    able = ", ".join(runner.shapes)
    return (f"loads.shape: runner {runner.name} cannot generate a {kind} shape (it generates "
            f"{able}); use runner native, which generates every shape, or shape kind constant")


def register_runner(name: str, target: str) -> None:
    """Register a runner class by import path `module:Class` under a lowercase name; a profile
    naming it then validates."""
    RUNNERS.register(name, target)


def runner_names() -> list[str]:
    return RUNNERS.names()


def get_runner(name: str) -> Runner:
    """Instantiate the runner registered as `name` (its module is imported now, not before);
    an unknown name raises ProfileError listing the known ones."""
    cls = RUNNERS.load(name)
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise RUNNERS.not_a(name, "Runner")
    return cls()
