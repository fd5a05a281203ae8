"""`environment: direct`: nothing to deploy; load goes to the profile's target URL as given."""

from __future__ import annotations

from meshlab.environments.base import Deployment, Environment
from meshlab.profile import RunSpec


class _DirectDeployment(Deployment):
    def __init__(self, spec: RunSpec) -> None:
        self.target_url = spec.target
        self.context = {"environment": "direct", "data_plane": "none"}


class DirectEnvironment(Environment):
    """No environment to manage: load goes to the profile's target URL."""

    name = "direct"

    async def deploy(self, spec: RunSpec) -> Deployment:
        return _DirectDeployment(spec)
