"""The registries: lazy `module:Class` entries, one unknown-name message, and profiles that accept
what is registered (a runner from tests/_tiny_runner.py runs a profile against the echo server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshlab.environments.base import environment_for
from meshlab.errors import MeshError, MeshlabError, MissingDependency, ProfileError, RunnerError
from meshlab.experiment import run_profile
from meshlab.meshes.base import get_mesh, register_mesh
from meshlab.playground.playground import data_plane_module
from meshlab.profile import Profile
from meshlab.registry import DATA_PLANES, ENVIRONMENTS, MESHES, RUNNERS, Registry
from meshlab.runners.base import get_runner, register_runner, runner_names
from meshlab.topology import DataPlane, parse_mesh


@pytest.fixture
def cleanup() -> Iterator[list[tuple[Registry, str]]]:
    """(registry, name) pairs a test registers; removed afterwards."""
    added: list[tuple[Registry, str]] = []
    yield added
    for registry, name in added:
        registry.unregister(name)


def _unknown_env() -> None:
    # validation already rejects the name; construct without it to reach the registry itself
    environment_for(Profile.model_construct(name="p", target="http://127.0.0.1:1/",
                                            environment="mars"))


@pytest.mark.parametrize(("lookup", "error", "message"), [
    (lambda: get_runner("warp"), ProfileError,
     "unknown runner 'warp'; choose one of ab, fortio, h2load, hey, k6, native, wrk"),
    (lambda: get_mesh("linkerd2"), MeshError,
     "unknown mesh 'linkerd2'; choose one of consul, envoy, haproxy, istio, istio-ambient, kuma, "
     "linkerd, nginx, none"),
    (_unknown_env, ProfileError,
     "unknown environment 'mars'; choose one of direct, kubernetes, local"),
    (lambda: data_plane_module("traefik"), ProfileError,
     "unknown data plane 'traefik'; choose one of envoy, haproxy, nginx, none"),
], ids=["runner", "mesh", "environment", "data-plane"])
def test_every_registry_reports_an_unknown_name_the_same_way(
        lookup: Callable[[], object], error: type[MeshlabError], message: str) -> None:
    with pytest.raises(error) as info:
        lookup()
    text = info.value.problems if isinstance(info.value, ProfileError) else [str(info.value)]
    assert text == [message]


def test_profile_validation_uses_the_same_messages() -> None:
    with pytest.raises(ProfileError) as info:
        Profile.from_dict({"name": "p", "target": "http://127.0.0.1:1/", "runner": "warp",
                           "environment": "mars"})
    assert info.value.problems == [
        "runner: unknown runner 'warp'; choose one of ab, fortio, h2load, hey, k6, native, wrk",
        "environment: unknown environment 'mars'; choose one of direct, kubernetes, local"]
    with pytest.raises(ValueError, match="unknown data plane 'traefik'; choose one of envoy, "):
        DataPlane(kind="traefik")


def test_registering_imports_nothing_until_the_name_is_loaded() -> None:
    code = ("import sys\n"
            "from meshlab.runners.base import register_runner\n"
            "from meshlab.profile import Profile\n"
            "register_runner('tiny', '_tiny_runner:TinyRunner')\n"
            "Profile.from_dict({'name': 'p', 'target': 'http://127.0.0.1:1/', 'runner': 'tiny'})\n"
            "assert '_tiny_runner' not in sys.modules\n"
            "assert 'meshlab.runners.wrk' not in sys.modules\n"
            "from meshlab.runners.base import get_runner\n"
            "assert get_runner('tiny').name == 'tiny'\n"
            "assert '_tiny_runner' in sys.modules\n")
    path = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr


def test_a_registered_runner_is_accepted_by_a_profile_and_runs_it(
        echo_url: str, cleanup: list[tuple[Registry, str]]) -> None:
    data = {"name": "tiny", "target": echo_url, "runner": "tiny",
            "loads": {"connections": 1, "duration_s": 5, "warmup_s": 0, "max_requests": 20}}
    with pytest.raises(ProfileError, match="unknown runner 'tiny'"):
        Profile.from_dict(data)
    register_runner("tiny", "_tiny_runner:TinyRunner")
    cleanup.append((RUNNERS, "tiny"))
    assert "tiny" in runner_names()
    profile = Profile.from_dict(data)
    out = run_profile(profile, store=None)
    (result,) = out.results
    assert out.ok and result.runner == "tiny"
    assert result.requests == 20 and result.status_codes == {200: 20}
    assert result.latency.percentile_us(50) <= result.latency.percentile_us(99)


def test_entries_that_cannot_load_say_what_is_wrong(cleanup: list[tuple[Registry, str]]) -> None:
    register_runner("ghost", "no_such_module_here:GhostRunner")
    register_runner("notarunner", "_tiny_runner:NotARunner")
    register_mesh("notamesh", "_tiny_runner:TinyRunner")
    cleanup += [(RUNNERS, "ghost"), (RUNNERS, "notarunner"), (MESHES, "notamesh")]
    with pytest.raises(RunnerError, match="runner 'ghost' cannot be loaded from "
                                          "no_such_module_here:GhostRunner"):
        get_runner("ghost")
    with pytest.raises(RunnerError, match="_tiny_runner:NotARunner is not a meshlab Runner"):
        get_runner("notarunner")
    with pytest.raises(MeshError, match="is not a meshlab Mesh"):
        get_mesh("notamesh")
    with pytest.raises(ValueError, match="lowercase"):
        register_runner("Tiny", "_tiny_runner:TinyRunner")
    with pytest.raises(ValueError, match="not 'module:Class'"):
        register_runner("tiny", "_tiny_runner:")


def test_an_entry_whose_dependency_is_missing_raises_missing_dependency(
        cleanup: list[tuple[Registry, str]]) -> None:
    ENVIRONMENTS.register("needy", "_needs_a_missing_package:NeedyEnvironment")
    cleanup.append((ENVIRONMENTS, "needy"))
    profile = Profile.from_dict({"name": "p", "target": "http://127.0.0.1:1/",
                                 "environment": "needy"})
    with pytest.raises(MissingDependency, match=r"meshlab_test_package_that_is_not_installed "
                                                r"\(needed by environment 'needy'\)"):
        environment_for(profile)


def test_a_registered_data_plane_is_a_valid_mesh_string(
        cleanup: list[tuple[Registry, str]]) -> None:
    with pytest.raises(ValueError, match="unknown data plane 'nginx2'"):
        parse_mesh("nginx2+mtls")
    DATA_PLANES.register("nginx2", "meshlab.playground.nginx")
    cleanup.append((DATA_PLANES, "nginx2"))
    dp = parse_mesh("nginx2+mtls", mode="client-only")
    assert dp.kind == "nginx2" and dp.label == "nginx2+mtls"
    assert data_plane_module("nginx2").__name__ == "meshlab.playground.nginx"
    with pytest.raises(MeshError, match="data plane 'none' is built in"):
        data_plane_module("none")
