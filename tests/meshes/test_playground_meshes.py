"""Playground data planes as meshes: the registry, describe(), and apply() to a Playground."""

from __future__ import annotations

import httpx
import pytest

from meshlab.errors import MeshError
from meshlab.meshes import get_mesh, mesh_names
from meshlab.playground.playground import Playground
from meshlab.policy import FaultAbort, FaultDelay, FaultInjection, TrafficPolicy

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("name", ["none", "envoy", "nginx", "haproxy"])
def test_describe(name):
    info = get_mesh(name).describe()
    assert info.name == name
    if name == "none":
        assert info.kind == "baseline" and not info.supported
    else:
        assert info.version and "retries" in info.supported and info.details["source"]


def test_registry_is_lazy_and_rejects_unknown():
    assert {"none", "envoy", "nginx", "haproxy", "istio", "linkerd", "consul", "kuma"} <= \
        set(mesh_names())
    with pytest.raises(MeshError, match="unknown mesh 'linkerd2'"):
        get_mesh("linkerd2")


def test_apply_switches_a_running_playground(tmp_path):
    abort = TrafficPolicy(name="abort", fault=FaultInjection(abort=FaultAbort(http_status=418)))
    with Playground(mesh="none", state_dir=tmp_path) as pg:
        assert "server" not in httpx.get(pg.url).headers
        get_mesh("envoy").apply(pg, abort)
        assert pg.data_plane.kind == "envoy"
        assert httpx.get(pg.url).status_code == 418
        with pytest.raises(MeshError, match="nginx cannot express policy 'slow'"):
            get_mesh("nginx").apply(pg, TrafficPolicy(
                name="slow", fault=FaultInjection(delay=FaultDelay(delay_s=1))))
        assert httpx.get(pg.url).status_code == 418     # the running one was left alone
        get_mesh("envoy").remove(pg)
        assert pg.data_plane.kind == "none" and httpx.get(pg.url).status_code == 200
