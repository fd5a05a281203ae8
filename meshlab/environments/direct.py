"""`environment: direct`: nothing to deploy; load goes to the profile's target URL as given. When
that URL is a running playground's entry point, the run records the playground's data plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshlab.environments.base import Deployment, Environment
from meshlab.errors import ProfileError
from meshlab.playground.process import default_state_dir
from meshlab.playground.state import PlaygroundStatus, playground_at
from meshlab.profile import Profile, RunSpec


def playground_context(pg: PlaygroundStatus) -> dict[str, Any]:
    """What a run sent through a running playground records about it."""
    from meshlab.topology import parse_mesh

    try:
        dp = parse_mesh(pg.data_plane, mode=pg.mode or "both")
        kind, mtls = str(dp.kind), str(dp.mtls)
    except ValueError:
        kind, mtls = pg.data_plane.split("+")[0], None
    return {"environment": "direct", "data_plane": kind, "mode": pg.mode or None,
            "mtls": mtls, "playground": pg.name, "playground_url": pg.url}


class _DirectDeployment(Deployment):
    def __init__(self, spec: RunSpec, playground: PlaygroundStatus | None) -> None:
        self.target_url = spec.target
        self.context = (playground_context(playground) if playground is not None
                        else {"environment": "direct", "data_plane": "none"})


class DirectEnvironment(Environment):
    """No environment to manage: load goes to the profile's target URL."""

    name = "direct"

    def __init__(self, profile: Profile, *, state_dirs: tuple[Path, ...] | None = None) -> None:
        super().__init__(profile)
        # where running playgrounds are recorded (`meshlab playground up` writes there)
        self.state_dirs = state_dirs if state_dirs is not None else (default_state_dir(),)

    def running_playground(self, spec: RunSpec) -> PlaygroundStatus | None:
        return playground_at(spec.target, self.state_dirs)

    def check(self, spec: RunSpec) -> None:
        """A run through a running playground must say so: its mesh is the playground's data
        plane (`envoy+mtls`), never `none` (which would store proxy latency as the baseline)."""
        pg = self.running_playground(spec)
        if pg is None or spec.mesh == pg.data_plane:
            return
        raise ProfileError(
            f"meshes: {spec.mesh!r}, but target {spec.target} is the entry point of the "
            f"running playground {pg.name!r} (data plane {pg.data_plane}, mode {pg.mode}): "
            f"set meshes: [{pg.data_plane}] so the runs record what they measure (meshlab run "
            f"does it when the profile names no mesh), or target the service behind it")

    async def deploy(self, spec: RunSpec) -> Deployment:
        return _DirectDeployment(spec, self.running_playground(spec))
