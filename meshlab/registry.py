"""Lazy registries by lowercase name: the runner, mesh, environment and playground data plane
tables live here as data (import paths), so profile validation can ask them without importing a
runner, mesh or environment. Nothing is imported until `Registry.load`."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from meshlab.errors import (
    MeshError,
    MeshlabError,
    MissingDependency,
    ProfileError,
    RunnerError,
)


class Registry:
    """Names -> `"module:Class"` (or `"module"`) import paths of one kind of extension.

    `kind` names it in messages (`unknown runner 'x'; choose one of ab, native`); `error` is
    raised for an unknown name, `load_error` when a registered entry cannot be imported, and
    MissingDependency when the entry imports a package that is not installed (`extras` names
    the meshlab extra that brings it, per entry). `builtin` names are valid but have nothing to
    load (the data plane `none`: no proxy)."""

    def __init__(self, kind: str, entries: Mapping[str, str], *,
                 error: type[MeshlabError], load_error: type[MeshlabError] | None = None,
                 builtin: Iterable[str] = (), extras: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.error = error
        self.load_error = load_error or error
        self._builtin = frozenset(builtin)
        self._extras = dict(extras or {})
        self._entries: dict[str, str] = {}
        for name, target in entries.items():
            self.register(name, target)

    def register(self, name: str, target: str) -> None:
        """Add (or replace) `name` -> `target`, an import path `"pkg.mod:Class"` or `"pkg.mod"`;
        the module is imported only when the name is loaded."""
        if not name or name != name.lower():
            raise ValueError(f"{self.kind} names are lowercase, got {name!r}")
        module, _, attr = target.partition(":")
        if not module or (":" in target and not attr):
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not 'module:Class' "
                             f"or 'module'")
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Remove a registered name (say a test's or a plugin's); unknown names are ignored."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Every valid name, sorted."""
        return sorted(self._builtin | self._entries.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._entries

    def unknown_message(self, name: str) -> str:
        """The one message shape for an unknown name: `unknown runner 'x'; choose one of ...`."""
        return f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"

    def check(self, name: str) -> str:
        """`name` when it is registered; else raise `error` with `unknown_message`."""
        if name not in self:
            raise self.error(self.unknown_message(name))
        return name

    def accept(self, name: str) -> str:
        """A pydantic validator: `name` when registered, else ValueError with the one message
        (profiles and topologies ask the registry at validation time, never a copied list)."""
        if name not in self:
            raise ValueError(self.unknown_message(name))
        return name

    def target(self, name: str) -> str:
        """The import path registered for `name`."""
        self.check(name)
        try:
            return self._entries[name]
        except KeyError:
            raise self.load_error(f"{self.kind} {name!r} is built in: there is nothing to "
                                  f"load") from None

    def load(self, name: str) -> object:
        """Import the entry of `name` now: the class (`module:Class`) or the module."""
        target = self.target(name)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr) if attr else module
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            own = missing == module_name or module_name.startswith(missing + ".")
            if missing and not own:      # the entry exists; a package it imports does not
                extra = self._extras.get(name)
                raise MissingDependency(
                    f"{missing} (needed by {self.kind} {name!r})",
                    install=f"pip install 'meshlab[{extra}]'" if extra else
                    f"pip install {missing.split('.')[0]}") from exc
            raise self.load_error(f"{self.kind} {name!r} cannot be loaded from {target}: "
                                  f"{exc}") from exc
        except (ImportError, AttributeError) as exc:
            raise self.load_error(f"{self.kind} {name!r} cannot be loaded from {target}: "
                                  f"{exc}") from exc

    def not_a(self, name: str, what: str) -> MeshlabError:
        """The error for an entry that loaded but is not the expected class (`what`)."""
        return self.load_error(f"{self.kind} {name!r}: {self._entries.get(name, '?')} is not a "
                               f"meshlab {what}")


# The four tables. Adding a runner, mesh, environment or data plane is its own module plus one
# line here (or one `register(...)` call from outside meshlab).
RUNNERS = Registry("runner", {
    "native": "meshlab.runners.native:NativeRunner",
    "wrk": "meshlab.runners.wrk:WrkRunner",
    "hey": "meshlab.runners.hey:HeyRunner",
    "ab": "meshlab.runners.ab:AbRunner",
    "fortio": "meshlab.runners.fortio:FortioRunner",
    "h2load": "meshlab.runners.h2load:H2loadRunner",
    "k6": "meshlab.runners.k6:K6Runner",
}, error=ProfileError, load_error=RunnerError)

MESHES = Registry("mesh", {
    "none": "meshlab.meshes.playground:NoMesh",
    "envoy": "meshlab.meshes.playground:EnvoyMesh",
    "nginx": "meshlab.meshes.playground:NginxMesh",
    "haproxy": "meshlab.meshes.playground:HaproxyMesh",
    "istio": "meshlab.meshes.istio:IstioMesh",
    "istio-ambient": "meshlab.meshes.istio:IstioAmbientMesh",
    "linkerd": "meshlab.meshes.linkerd:LinkerdMesh",
    "consul": "meshlab.meshes.consul:ConsulMesh",
    "kuma": "meshlab.meshes.kuma:KumaMesh",
}, error=MeshError)

ENVIRONMENTS = Registry("environment", {
    "direct": "meshlab.environments.direct:DirectEnvironment",
    "local": "meshlab.environments.local:LocalEnvironment",
    "kubernetes": "meshlab.environments.kubernetes:KubernetesEnvironment",
}, error=ProfileError, load_error=MeshlabError,
   extras={"local": "playground", "kubernetes": "k8s"})

# A data plane is a compiler module of the playground: find_binary(), prepare(proxy, dir, *,
# binary), FIELDS / FIELDS_L4 (policy support) and optionally MTLS_MODES. `none` is no proxy.
DATA_PLANES = Registry("data plane", {
    "envoy": "meshlab.playground.envoy",
    "nginx": "meshlab.playground.nginx",
    "haproxy": "meshlab.playground.haproxy",
}, error=ProfileError, load_error=MeshError, builtin=("none",))


__all__ = ["DATA_PLANES", "ENVIRONMENTS", "MESHES", "RUNNERS", "Registry"]
