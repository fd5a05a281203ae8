"""What a real API server refuses or keeps that the stand-in must too: RBAC denials per verb and
resource (set per test), PUT of a custom resource without `metadata.resourceVersion` (422), and
foreground deletion without a garbage collector (the object stays with its finalizer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standin_controllers import now

FOREGROUND = "foregroundDeletion"


def verb_of(method: str, name: str | None) -> str:
    """The RBAC verb of a request."""
    if method == "GET":
        return "get" if name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update",
            "DELETE": "delete"}.get(method, "get")


@dataclass(frozen=True, slots=True)
class Deny:
    """Refuse `verb` on `resource` (plural, `*` = any) in `namespace` (None = everywhere)."""

    verb: str
    resource: str
    namespace: str | None = None

    def matches(self, verb: str, resource: str, namespace: str | None) -> bool:
        return (self.verb in ("*", verb) and self.resource in ("*", resource)
                and (self.namespace is None or self.namespace == namespace))


def forbidden_message(verb: str, plural: str, group: str, namespace: str | None) -> str:
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (f'{plural} is forbidden: User "system:serviceaccount:meshlab:runner" cannot {verb} '
            f'resource "{plural}" in API group "{group}"{where}')


def missing_resource_version(doc: Mapping[str, Any] | None) -> str | None:
    """The 422 message a server gives an update of a custom resource without resourceVersion."""
    if ((doc or {}).get("metadata") or {}).get("resourceVersion"):
        return None
    return ("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")


def propagation_of(doc: Mapping[str, Any] | None, query: Mapping[str, str]) -> str:
    """The delete's propagation policy (body DeleteOptions or query); the default is Background
    for most kinds."""
    return str((doc or {}).get("propagationPolicy") or query.get("propagationPolicy")
               or "Background")


def mark_foreground(obj: dict[str, Any]) -> dict[str, Any]:
    """What a server does on a foreground delete: set deletionTimestamp and the finalizer; only
    the garbage collector removes them (after the dependents are gone)."""
    meta = obj.setdefault("metadata", {})
    meta.setdefault("deletionTimestamp", now())
    meta.setdefault("deletionGracePeriodSeconds", 0)
    fins = list(meta.get("finalizers") or [])
    if FOREGROUND not in fins:
        fins.append(FOREGROUND)
    meta["finalizers"] = fins
    return obj
