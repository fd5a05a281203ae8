"""The mesh interface (`name`, `apply(environment, policy)`, `remove`, `describe() -> MeshInfo`)
and a lazy registry by lowercase name. Playground data planes apply to a `Playground`; Kubernetes
meshes (istio, linkerd, consul, kuma) to their own environment type."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from meshlab.errors import MeshError
from meshlab.policy import TrafficPolicy
from meshlab.registry import MESHES

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


def register_mesh(name: str, target: str) -> None:
    """Register a mesh class by import path `module:Class` under a lowercase name."""
    MESHES.register(name, target)


def mesh_names() -> list[str]:
    return MESHES.names()


def get_mesh(name: str) -> Mesh[Any]:
    """Instantiate the mesh registered as `name` (its module is imported now, not before);
    an unknown name raises MeshError listing the known ones."""
    cls = MESHES.load(name)
    if not (isinstance(cls, type) and issubclass(cls, Mesh)):
        raise MESHES.not_a(name, "Mesh")
    mesh: Mesh[Any] = cls()
    return mesh
