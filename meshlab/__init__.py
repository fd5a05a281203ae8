"""meshlab: measure what a service mesh costs and how it behaves, from Python and Jupyter."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from meshlab.dimensions import RunDimensions
    from meshlab.experiment import (
        ExperimentOutcome,
        ExperimentSnapshot,
        ExperimentStatus,
        RunHandle,
        arun_profile,
        run_profile,
        start_profile,
    )
    from meshlab.profile import LoadMatrix, Profile, RequestSpec, RunSpec
    from meshlab.results import Histogram, RunResult, RunStatus

from meshlab._version import __version__

# Imported on first use so `import meshlab` stays light (the echo and relay processes of every
# playground import it; pydantic, numpy and the profile model cost them ~0.5 s of start-up
# each): name -> defining module.
_LAZY = {
    "Histogram": "meshlab.results",
    "LoadMatrix": "meshlab.profile",
    "Profile": "meshlab.profile",
    "RequestSpec": "meshlab.profile",
    "RunDimensions": "meshlab.dimensions",
    "RunResult": "meshlab.results",
    "RunSpec": "meshlab.profile",
    "RunStatus": "meshlab.results",
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
