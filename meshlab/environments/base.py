"""Where a run's workload lives: the `Environment` that deploys what a RunSpec needs, the
`Deployment` it returns (target URL, context, telemetry), and the lazy environment registry.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

from meshlab.profile import Profile, RunSpec
from meshlab.progress import ProgressCallback
from meshlab.registry import ENVIRONMENTS
from meshlab.results import RunResult, TelemetrySample


@dataclass(slots=True)
class DeploymentReport:
    """What a deployment observed during a run."""

    telemetry: list[TelemetrySample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # e.g. "sidecar envoy:backend died"
    context: dict[str, Any] = field(default_factory=dict)  # e.g. after-run snapshot, changes
    failure: str = ""     # set when the run cannot be trusted (a process died): fails the run


class Deployment(abc.ABC):
    """A workload ready for one run: where to send load and what to record about it."""

    target_url: str
    context: dict[str, Any]     # data plane, versions, mode, policy, topology: stored with a run

    async def begin(self) -> None:
        """Called right before load starts (start telemetry sampling)."""
        return None

    async def end(self) -> DeploymentReport:
        """Called right after load stops (stop sampling, check health)."""
        return DeploymentReport()

    def derive(self, result: RunResult) -> dict[str, Any]:
        """Figures that need the finished run (its telemetry and achieved rate), merged into
        the stored context: e.g. sidecar vCPU per 1,000 req/s. Default: none."""
        return {}

    async def run_load(self, spec: RunSpec, *,
                       progress: ProgressCallback | None = None) -> RunResult | None:
        """Generate the load from inside the environment (say fortio Jobs in a cluster, whose
        target URL is reachable only there) and return the merged result; None (the default)
        means meshlab's own runner loads `target_url` from this machine."""
        return None


class Environment(abc.ABC):
    """Deploys workloads for runs. Reuse across runs is the environment's business: it may keep
    a topology up while consecutive specs need the same one."""

    name: ClassVar[str]
    # True when deployments generate the load themselves (Deployment.run_load, e.g. fortio
    # Jobs in a cluster): the local runner's availability and option checks then do not apply.
    generates_load: ClassVar[bool] = False

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def check(self, spec: RunSpec) -> None:
        """Raise ProfileError (or MeshError) before any run when a spec cannot be deployed."""
        return None

    @abc.abstractmethod
    async def deploy(self, spec: RunSpec) -> Deployment:
        """Bring up what `spec` needs and return where to aim the load."""

    async def close(self) -> None:
        """Tear everything down; must be safe to call twice and after a failure."""
        return None

    async def __aenter__(self) -> Environment:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def register_environment(name: str, target: str) -> None:
    """Register an environment class by import path `module:Class` under a lowercase name."""
    ENVIRONMENTS.register(name, target)


def environment_names() -> list[str]:
    return ENVIRONMENTS.names()


def environment_for(profile: Profile) -> Environment:
    """Instantiate the environment a profile names (its module is imported now, not before);
    an unknown name raises ProfileError listing the known ones."""
    cls = ENVIRONMENTS.load(profile.environment)
    if not (isinstance(cls, type) and issubclass(cls, Environment)):
        raise ENVIRONMENTS.not_a(profile.environment, "Environment")
    return cls(profile)
