"""The benchmark workload: the fortio server from `meshlab/k8s/templates` (the mesh layer supplies
the annotation that keeps port 8081 out of the sidecar), the client setting per mode, rollout and
"every pod meshed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

import yaml

from meshlab.errors import MeshError, ProfileError
from meshlab.k8s._api import Manifest
from meshlab.k8s.cluster import Cluster
from meshlab.k8s.snapshot import pod_info
from meshlab.k8s.topology import FORTIO_IMAGE, KubernetesTopology

TEMPLATES = "templates"          # package data of meshlab.k8s, found in a wheel too
CAPTURED_PORT = 8080
DIRECT_PORT = 8081
GRPC_PORT = 8079                 # fortio's gRPC ping/health port, captured like CAPTURED_PORT
DIRECT_GRPC_PORT = 8078
H2C_PORT = 8082                  # Service ports (appProtocol kubernetes.io/h2c) to 8080 and 8081
DIRECT_H2C_PORT = 8083
DIRECT_PORTS = (DIRECT_PORT, DIRECT_GRPC_PORT)
"""The ports a mesh must keep out of inbound capture (the `none` and `client-only` baselines)."""
CLUSTER_PROTOCOLS = ("http1", "h2c", "grpc")
"""What the in-cluster fortio load speaks (HTTP/1.1 to 8080, h2c (`-h2`) to Service port 8082
which reaches the same 8080, gRPC ping to 8079)."""
MODES = ("none", "server-only", "client-only", "both")
DEFAULT_IMAGE = FORTIO_IMAGE


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """The benchmark server's shape (from a profile's `topology`)."""

    namespace: str = "meshlab-bench"
    name: str = "meshlab-server"
    replicas: int = 1
    image: str = DEFAULT_IMAGE
    cpu: str = "1"
    memory: str = "256Mi"

    @classmethod
    def from_topology(cls, topology: KubernetesTopology | Mapping[str, Any] | None) -> ServerSpec:
        t = (topology if isinstance(topology, KubernetesTopology)
             else KubernetesTopology.from_profile(topology))
        return cls(namespace=t.namespace, name=t.name, replicas=t.replicas, image=t.image,
                   cpu=t.cpu, memory=t.memory)


def render_template(name: str, values: Mapping[str, object]) -> list[Manifest]:
    """The manifests of a packaged template (`server.yaml`, `load-job.yaml`) with `$name`
    placeholders filled from `values`; MeshError for an unknown template or a missing value."""
    try:
        text = (resources.files("meshlab.k8s") / TEMPLATES / name).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise MeshError(f"Kubernetes template {name!r} is not in the meshlab package "
                        f"(meshlab/k8s/{TEMPLATES}); available: {', '.join(template_names())}; "
                        f"reinstall meshlab if one is missing") from exc
    try:
        rendered = Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise MeshError(f"Kubernetes template {name} needs a value for "
                        f"${exc.args[0]}; pass it in values") from None
    except ValueError as exc:     # a stray `$` in the template text
        raise MeshError(f"Kubernetes template {name} is malformed: {exc}") from None
    try:
        docs = list(yaml.safe_load_all(rendered))
    except yaml.YAMLError as exc:
        raise MeshError(f"Kubernetes template {name} is not valid YAML once filled: "
                        f"{exc}") from exc
    return [d for d in docs if d]


def template_names() -> list[str]:
    """The packaged Kubernetes templates."""
    root = resources.files("meshlab.k8s") / TEMPLATES
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".yaml"))


def server_manifests(spec: ServerSpec, *,
                     pod_annotations: Mapping[str, str] | None = None) -> list[Manifest]:
    """The server's Deployment and Service; `pod_annotations` go on its pod template (the
    mesh's way to keep DIRECT_PORT out of the sidecar)."""
    docs = render_template("server.yaml", {"namespace": spec.namespace, "name": spec.name,
                                           "replicas": spec.replicas, "image": spec.image,
                                           "cpu": spec.cpu, "memory": spec.memory})
    if pod_annotations:
        docs[0]["spec"]["template"]["metadata"]["annotations"] = dict(pod_annotations)
    return docs


def mode_plan(mode: str) -> tuple[bool, int]:
    """(client pod gets a sidecar, server port to aim at) for a sidecar placement mode."""
    plans = {"none": (False, DIRECT_PORT), "server-only": (False, CAPTURED_PORT),
             "client-only": (True, DIRECT_PORT), "both": (True, CAPTURED_PORT)}
    try:
        return plans[mode]
    except KeyError:
        raise ProfileError(f"modes: {mode!r} is not a Kubernetes mode; choose one of "
                           f"{', '.join(MODES)}") from None


def server_port(mode: str, protocol: str = "http1") -> int:
    """The Service port a load of `protocol` aims at in `mode` (gRPC: the fortio gRPC ports;
    h2c: the ports declaring HTTP/2 cleartext in front of the HTTP ones)."""
    _, port = mode_plan(mode)
    if protocol == "grpc":
        return GRPC_PORT if port == CAPTURED_PORT else DIRECT_GRPC_PORT
    if protocol == "h2c":
        return H2C_PORT if port == CAPTURED_PORT else DIRECT_H2C_PORT
    return port


def target_url(spec: ServerSpec, mode: str, path: str = "/echo", protocol: str = "http1") -> str:
    """`http://server...:8080/echo` (h2c: `:8082`), or `server...:8079` (fortio -grpc's
    destination)."""
    host = f"{spec.name}.{spec.namespace}.svc.cluster.local:{server_port(mode, protocol)}"
    return host if protocol == "grpc" else f"http://{host}{path}"


def deploy_server(cluster: Cluster, spec: ServerSpec, *,
                  pod_annotations: Mapping[str, str] | None = None,
                  timeout_s: float = 300.0) -> list[Manifest]:
    cluster.ensure_namespace(spec.namespace, labels={"app.kubernetes.io/part-of": "meshlab"})
    docs = server_manifests(spec, pod_annotations=pod_annotations)
    cluster.apply_all(docs)
    cluster.wait_rollout(spec.name, namespace=spec.namespace, timeout_s=timeout_s)
    return docs


def unmeshed_pods(cluster: Cluster, namespace: str, *, selector: Mapping[str, str] | str | None,
                  sidecars: Sequence[str]) -> list[str]:
    out = []
    for p in cluster.pods(namespace=namespace, selector=selector):
        info = pod_info(p)
        if info.phase in ("Succeeded", "Failed"):
            continue
        if not any(c.name in sidecars for c in info.containers):
            out.append(info.name)
    return out


def verify_meshed(cluster: Cluster, namespace: str, *, selector: Mapping[str, str] | str | None,
                  sidecars: Sequence[str], mesh: str) -> None:
    bad = unmeshed_pods(cluster, namespace, selector=selector, sidecars=sidecars)
    if bad:
        raise MeshError(f"{len(bad)} pod(s) in {namespace} have no {mesh} sidecar "
                        f"({'/'.join(sidecars)}): {', '.join(sorted(bad))}; check the injection "
                        f"webhook and that the rollout finished")


def roll_workloads(cluster: Cluster, namespace: str, *, timeout_s: float = 300.0) -> list[str]:
    """Restart every Deployment of a namespace (so injection takes effect) and wait."""
    names = [d["metadata"]["name"] for d in cluster.list_objects("apps/v1", "Deployment",
                                                                  namespace=namespace)]
    for n in names:
        cluster.restart_rollout(n, namespace=namespace)
    for n in names:
        cluster.wait_rollout(n, namespace=namespace, timeout_s=timeout_s)
    return names
