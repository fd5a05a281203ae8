"""The playground data planes as meshes: `none` (direct, the baseline), `envoy`, `nginx`,
`haproxy`. Applying one to a `Playground` restarts it with that data plane and policy.
"""

from __future__ import annotations

from typing import ClassVar

from meshlab.errors import MissingDependency
from meshlab.meshes.base import Mesh, MeshInfo
from meshlab.playground.playground import Playground, data_plane_module, supported_features
from meshlab.policy import TrafficPolicy
from meshlab.topology import DataPlaneKind, Mode


class PlaygroundMesh(Mesh[Playground]):
    """A data plane of the local playground."""

    name: ClassVar[str]
    kind: ClassVar[str]             # a data plane name (meshlab.registry.DATA_PLANES)
    modes: ClassVar[tuple[str, ...]] = tuple(str(m) for m in Mode if m != Mode.NODE_PROXY)

    def apply(self, environment: Playground, policy: TrafficPolicy | None = None) -> None:
        dp = environment.data_plane.model_copy(update={"kind": self.kind})
        environment.reconfigure(dp.label, mode=str(dp.mode), policy=policy)

    def remove(self, environment: Playground) -> None:
        if self.kind != DataPlaneKind.NONE:
            NoMesh().apply(environment, None)

    def describe(self) -> MeshInfo:
        version, details = "", {}
        if self.kind != DataPlaneKind.NONE:
            try:
                binary = data_plane_module(self.kind).find_binary()
                version, details = binary.version, {"binary": binary.path,
                                                    "source": binary.source}
            except MissingDependency as exc:   # support is still worth describing
                details = {"error": str(exc)}
        return MeshInfo(name=self.name, kind="baseline" if self.kind == DataPlaneKind.NONE
                        else "playground", version=version,
                        supported=supported_features(self.kind), modes=self.modes,
                        details=details)


class NoMesh(PlaygroundMesh):
    """No proxy at all: the client talks to the workload directly (the baseline)."""

    name = "none"
    kind = DataPlaneKind.NONE
    modes = ("both",)

    def apply(self, environment: Playground, policy: TrafficPolicy | None = None) -> None:
        environment.reconfigure("none", mode="both", policy=policy)


class EnvoyMesh(PlaygroundMesh):
    name = "envoy"
    kind = DataPlaneKind.ENVOY
    modes = tuple(str(m) for m in Mode)


class NginxMesh(PlaygroundMesh):
    name = "nginx"
    kind = DataPlaneKind.NGINX


class HaproxyMesh(PlaygroundMesh):
    name = "haproxy"
    kind = DataPlaneKind.HAPROXY
