"""Environments (L3): where a run's workload lives. `direct` (a URL as given), `local` (the
playground on loopback) and `kubernetes` (a cluster); each reaches a mesh only through the mesh
registry. Import submodules directly; nothing heavy is imported here."""

from meshlab.environments.base import (
    Deployment,
    DeploymentReport,
    Environment,
    environment_for,
    environment_names,
    register_environment,
)

__all__ = ["Deployment", "DeploymentReport", "Environment", "environment_for",
           "environment_names", "register_environment"]
