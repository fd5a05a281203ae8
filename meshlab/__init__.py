"""meshlab: measure what a service mesh costs and how it behaves, from Python and Jupyter."""

from typing import TYPE_CHECKING, Any

from meshlab.dimensions import RunDimensions
from meshlab.errors import (
    ClusterError,
    MeshError,
    MeshlabError,
    MissingDependency,
    NotebookError,
    OutputParseError,
    PlaygroundError,
    ProfileError,
    RunnerError,
    StoreError,
    ToolFailed,
    ToolNotFound,
    WaitTimeout,
)
from meshlab.profile import LoadMatrix, Profile, RequestSpec, RunSpec
from meshlab.results import Histogram, RunResult, RunStatus

if TYPE_CHECKING:
    from meshlab.experiment import (
        ExperimentOutcome,
        ExperimentSnapshot,
        ExperimentStatus,
        RunHandle,
        arun_profile,
        run_profile,
        start_profile,
    )

from meshlab._version import __version__

# Imported on first use so `import meshlab` stays light: name -> defining module.
_LAZY = {
    "ExperimentOutcome": "meshlab.experiment",
    "ExperimentSnapshot": "meshlab.experiment",
    "ExperimentStatus": "meshlab.experiment",
    "RunHandle": "meshlab.experiment",
    "arun_profile": "meshlab.experiment",
    "run_profile": "meshlab.experiment",
    "start_profile": "meshlab.experiment",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'meshlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ClusterError",
    "ExperimentOutcome",
    "ExperimentSnapshot",
    "ExperimentStatus",
    "Histogram",
    "LoadMatrix",
    "MeshError",
    "MeshlabError",
    "MissingDependency",
    "NotebookError",
    "OutputParseError",
    "PlaygroundError",
    "Profile",
    "ProfileError",
    "RequestSpec",
    "RunDimensions",
    "RunHandle",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "RunnerError",
    "StoreError",
    "ToolFailed",
    "ToolNotFound",
    "WaitTimeout",
    "__version__",
    "arun_profile",
    "run_profile",
    "start_profile",
]
