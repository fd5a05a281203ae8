"""The one exception tree of meshlab; third-party exceptions are mapped to it at the boundary.

    MeshlabError
    ├── ProfileError            bad user input (profile YAML, notebook parameters, widget state)
    ├── MissingDependency       an optional Python package or system tool is not installed
    ├── ClusterError            the Kubernetes API refused or failed a call
    │   └── WaitTimeout         an object did not reach the awaited condition in time
    ├── MeshError               a mesh adapter cannot apply, remove or describe itself
    ├── PlaygroundError         a local playground process failed to start, became unready, or died
    ├── RunnerError             a load runner failed (not the target: target failures are data)
    │   ├── ToolNotFound        an external load tool is not on PATH
    │   ├── ToolFailed          an external load tool exited non-zero
    │   └── OutputParseError    a tool's output or an imported document cannot be parsed
    ├── StoreError              the DuckDB store cannot be opened, written or queried
    └── NotebookError           a notebook or report failed to execute or render
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class MeshlabError(Exception):
    """Base class of every error meshlab raises on purpose."""


class ProfileError(MeshlabError):
    """Invalid user input; `problems` lists every bad path as `path: message`."""

    def __init__(self, problems: Iterable[str] | str, *, source: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class MissingDependency(MeshlabError):
    """An optional dependency is missing; the message says how to install it."""

    def __init__(self, what: str, *, install: str) -> None:
        self.what = what
        self.install = install
        super().__init__(f"{what} is not installed; install it with: {install}")


class ClusterError(MeshlabError):
    """A Kubernetes API call failed; carries HTTP status, reason and the resource concerned."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        resource: str | None = None,
        not_restored: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.reason = reason
        self.resource = resource
        self.not_restored = not_restored   # objects a rollback after this error left changed
        parts = [message]
        if resource:
            parts.append(f"resource={resource}")
        if status is not None:
            parts.append(f"status={status}")
        if reason:
            parts.append(f"reason={reason}")
        super().__init__(" ".join(parts) if len(parts) > 1 else message)


class WaitTimeout(ClusterError):
    """An object did not reach a condition in time; names the object and its last condition."""


class MeshError(MeshlabError):
    """A mesh adapter cannot install, apply, remove or describe."""


class PlaygroundError(MeshlabError):
    """A playground process failed to start, never became ready, or died."""


class RunnerError(MeshlabError):
    """A load runner itself failed (target failures are counted in results instead)."""


class ToolNotFound(RunnerError):
    """An external tool is not on PATH."""

    def __init__(self, tool: str, *, install: str, alternative: str | None = None) -> None:
        self.tool = tool
        self.install = install
        alt = f" or use {alternative}" if alternative else ""
        super().__init__(f"{tool} not found on PATH; install it ({install}){alt}")


class ToolFailed(RunnerError):
    """An external tool exited with an error; carries argv, exit code and the stderr tail."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr_tail: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        cmd = " ".join(self.argv)
        super().__init__(f"{cmd!r} exited with code {returncode}: {stderr_tail.strip()[-2000:]}")


class OutputParseError(RunnerError):
    """Output or a document cannot be parsed; carries an excerpt of what was read."""

    def __init__(self, message: str, *, excerpt: str | bytes = "") -> None:
        if isinstance(excerpt, bytes):
            excerpt = excerpt.decode("utf-8", "replace")
        self.excerpt = excerpt[:300]
        suffix = f" (excerpt: {self.excerpt!r})" if self.excerpt else ""
        super().__init__(message + suffix)


class StoreError(MeshlabError):
    """The DuckDB store cannot be opened, written or read."""


class NotebookError(MeshlabError):
    """A notebook or report failed to execute or render."""


__all__ = [
    "ClusterError",
    "MeshError",
    "MeshlabError",
    "MissingDependency",
    "NotebookError",
    "OutputParseError",
    "PlaygroundError",
    "ProfileError",
    "RunnerError",
    "StoreError",
    "ToolFailed",
    "ToolNotFound",
    "WaitTimeout",
]
