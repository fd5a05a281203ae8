"""The Kubernetes environment's run flow as the CLI drives it (check, deploy, begin, load, end for
each spec), with `close` in `finally`: it deletes meshlab's namespace or restores the user's,
whether the flow ended, failed or was cancelled. Shared by the stand-in and real-cluster tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from meshlab.environments.base import Environment
from meshlab.environments.kubernetes import KubernetesDeployment
from meshlab.profile import Profile, RunSpec
from meshlab.results import RunResult


async def run_all(env: Environment, profile: Profile,
                  prepare: Callable[[RunSpec], RunSpec] = lambda spec: spec) -> list[RunResult]:
    """Every spec of `profile` run on `env` (each first passed through `prepare`)."""
    out = []
    try:
        for spec in map(prepare, profile.expand()):
            env.check(spec)
            dep = await env.deploy(spec)
            assert isinstance(dep, KubernetesDeployment)
            await dep.begin()
            result = await dep.run_load(replace(spec, target=dep.target_url))
            await dep.end()
            assert result is not None
            out.append(result)
    finally:
        await env.close()
    return out
