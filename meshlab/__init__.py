"""meshlab: measure what a service mesh costs and how it behaves, from Python and Jupyter."""

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

__version__ = "0.1.0"

__all__ = [
    "ClusterError",
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
    "RunResult",
    "RunSpec",
    "RunStatus",
    "RunnerError",
    "StoreError",
    "ToolFailed",
    "ToolNotFound",
    "WaitTimeout",
    "__version__",
]
