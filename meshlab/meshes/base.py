"""The mesh interface (`name`, `apply(environment, policy)`, `remove`, `describe() -> MeshInfo`)
and a lazy registry by lowercase name. Playground data planes apply to a `Playground`; Kubernetes
meshes (istio, linkerd, consul, kuma) to their own environment type."""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from meshlab.errors import MeshError
from meshlab.policy import TrafficPolicy

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class MeshInfo:
    """What a mesh is and what it can do; `supported` uses TrafficPolicy.features() names."""

    name: str
    kind: str                            # "playground" | "kubernetes" | "baseline"
    version: str = ""
    supported: frozenset[str] = frozenset()
    modes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)   # e.g. binary path and source

    def unsupported(self, policy: TrafficPolicy) -> list[str]:
        return policy.unsupported(self.supported)


class Mesh(abc.ABC, Generic[E]):
    """A mesh (or data plane) that can be applied to an environment of type E."""

    name: ClassVar[str]

    @abc.abstractmethod
    def apply(self, environment: E, policy: TrafficPolicy | None = None) -> None:
        """Put this mesh, with `policy`, in charge of the environment's traffic. Raise MeshError
        naming the mesh and the policy when it cannot express the policy."""

    def remove(self, environment: E) -> None:
        """Take this mesh out of the environment (default: nothing to undo)."""
        return None

    @abc.abstractmethod
    def describe(self) -> MeshInfo:
        """Version and the policy features this mesh expresses."""

    def check(self, policy: TrafficPolicy) -> None:
        """Raise MeshError when this mesh cannot express `policy`."""
        missing = self.describe().unsupported(policy)
        if missing:
            raise MeshError(f"mesh {self.name} cannot express policy {policy.name!r}: "
                            f"{', '.join(missing)} not supported")


_REGISTRY: dict[str, str] = {
    "none": "meshlab.meshes.playground:NoMesh",
    "envoy": "meshlab.meshes.playground:EnvoyMesh",
    "nginx": "meshlab.meshes.playground:NginxMesh",
    "haproxy": "meshlab.meshes.playground:HaproxyMesh",
    "istio": "meshlab.meshes.istio:IstioMesh",
    "istio-ambient": "meshlab.meshes.istio:IstioAmbientMesh",
    "linkerd": "meshlab.meshes.linkerd:LinkerdMesh",
    "consul": "meshlab.meshes.consul:ConsulMesh",
    "kuma": "meshlab.meshes.kuma:KumaMesh",
}


def register_mesh(name: str, target: str) -> None:
    """Register a mesh class by import path `module:Class` under a lowercase name."""
    if name != name.lower():
        raise ValueError(f"mesh names are lowercase, got {name!r}")
    _REGISTRY[name] = target


def mesh_names() -> list[str]:
    return sorted(_REGISTRY)


def get_mesh(name: str) -> Mesh[Any]:
    """Instantiate the mesh registered as `name` (its module is imported now, not before)."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise MeshError(f"unknown mesh {name!r}; choose one of {', '.join(mesh_names())}") \
            from None
    module_name, _, cls_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise MeshError(f"mesh {name!r} cannot be loaded from {target}: {exc}") from exc
    mesh = cls()
    if not isinstance(mesh, Mesh):
        raise MeshError(f"{target} is not a meshlab Mesh")
    return mesh
