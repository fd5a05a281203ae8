"""gRPC policies in the four meshes' resources: retries on gRPC status codes and per-call
deadlines render valid objects (OpenAPI schema and CEL rules of the real CRDs) on a gRPC route,
and a policy a protocol cannot carry is a MeshError naming the mesh, the policy and the protocol.
"""

from __future__ import annotations

from typing import Any

import pytest
from crd_schema import CrdSet
from test_render import MESHES, _validate

from meshlab.errors import MeshError
from meshlab.meshes.consul import ConsulMesh
from meshlab.meshes.istio import IstioMesh
from meshlab.meshes.kubernetes import RenderContext
from meshlab.meshes.kuma import KumaMesh
from meshlab.meshes.linkerd import LinkerdMesh
from meshlab.policy import TrafficPolicy

GRPC = RenderContext(namespace="bench", service="server", port=8079, client="client",
                     protocol="grpc")
CODES = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"]
POLICY = TrafficPolicy(name="grpc-calls", service="server",
                       retries={"attempts": 3, "retry_on": CODES},
                       timeout={"request_timeout_s": 2})


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_grpc_retries_and_deadline_render_valid_resources(crds: CrdSet, mesh_name: str) -> None:
    _validate(crds, MESHES[mesh_name].render(POLICY, GRPC))


def test_istio_retries_on_grpc_codes() -> None:
    vs = _by_kind(IstioMesh().render(POLICY, GRPC))["VirtualService"]
    route = vs["spec"]["http"][0]
    assert route["retries"]["retryOn"] == ",".join(CODES)
    assert route["timeout"] == "2s"


def test_linkerd_uses_a_grpcroute_with_grpc_retry_annotations(crds: CrdSet) -> None:
    (route,) = LinkerdMesh().render(POLICY, GRPC)
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "GRPCRoute")
    assert route["metadata"]["annotations"] == {
        "retry.linkerd.io/grpc": ",".join(CODES), "retry.linkerd.io/limit": "3",
        "timeout.linkerd.io/request": "2s"}
    assert route["spec"]["parentRefs"][0]["port"] == 8079


def test_kuma_meshretry_grpc_section() -> None:
    retry = _by_kind(KumaMesh().render(POLICY, GRPC))["MeshRetry"]
    default = retry["spec"]["to"][0]["default"]
    assert default == {"grpc": {"numRetries": 3, "retryOn": [
        "Canceled", "DeadlineExceeded", "Internal", "ResourceExhausted", "Unavailable"]}}


def test_consul_declares_grpc_and_retries_on_codes() -> None:
    docs = ConsulMesh().render(POLICY, GRPC)
    defaults = next(d for d in docs if d["kind"] == "ServiceDefaults")
    assert defaults["spec"]["protocol"] == "grpc"
    dest = _by_kind(docs)["ServiceRouter"]["spec"]["routes"][0]["destination"]
    assert dest["retryOn"] == CODES and dest["requestTimeout"] == "2s"


@pytest.mark.parametrize("protocol", ["http1", "h2c"])
@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_grpc_codes_need_a_grpc_route(mesh_name: str, protocol: str) -> None:
    ctx = RenderContext(namespace="bench", service="server", protocol=protocol)
    with pytest.raises(MeshError) as err:
        MESHES[mesh_name].render(POLICY, ctx)
    text = str(err.value)
    assert mesh_name in text and "grpc-calls" in text
    assert f"protocol {protocol} carries no gRPC status" in text and "retries.retry_on" in text


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
@pytest.mark.parametrize("body", [{"retries": {"attempts": 2}},
                                  {"timeout": {"request_timeout_s": 1}}])
def test_http_policies_on_tcp_are_refused(mesh_name: str, body: dict[str, Any]) -> None:
    ctx = RenderContext(namespace="bench", service="server", protocol="tcp")
    policy = TrafficPolicy.model_validate({"name": "l7", **body})
    with pytest.raises(MeshError) as err:
        MESHES[mesh_name].render(policy, ctx)
    text = str(err.value)
    assert mesh_name in text and "on protocol tcp" in text and next(iter(body)) in text


@pytest.mark.parametrize("mesh_name", ["linkerd", "kuma"])
def test_http_conditions_on_a_grpc_route_are_refused(mesh_name: str) -> None:
    # their gRPC retry settings take gRPC status codes only
    policy = TrafficPolicy(name="mixed", retries={"attempts": 2,
                                                  "retry_on": ["5xx", "unavailable"]})
    with pytest.raises(MeshError) as err:
        MESHES[mesh_name].render(policy, GRPC)
    text = str(err.value)
    assert mesh_name in text and "protocol grpc" in text and "5xx" in text
