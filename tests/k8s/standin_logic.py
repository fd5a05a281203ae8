"""Pure pieces of the API stand-in: label and field selectors, the three patch types, a small
server-side apply (field ownership per manager, conflicts, removal of fields a manager stopped
applying) and `managedFields` rendering. No I/O here; `standin.py` serves it over HTTP.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch

Path_ = tuple[str, ...]


# --- selectors ---------------------------------------------------------------------------

def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


_SET = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")


def match_labels(labels: Mapping[str, str], selector: str | None) -> bool:
    """Kubernetes label selector syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`."""
    if not selector:
        return True
    for req in _split_top(selector):
        if m := _SET.match(req):
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in vals:
                return False
            if op == "notin" and key in labels and labels[key] in vals:
                return False
        elif "!=" in req:
            key, val = (x.strip() for x in req.split("!=", 1))
            if labels.get(key) == val:
                return False
        elif "=" in req:
            key, val = (x.strip() for x in req.replace("==", "=").split("=", 1))
            if labels.get(key) != val:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


def match_fields(obj: Mapping[str, Any], selector: str | None) -> bool:
    """Field selectors as the API supports them for common fields (`spec.nodeName=x`)."""
    if not selector:
        return True
    for req in _split_top(selector):
        neg = "!=" in req
        key, val = (x.strip() for x in re.split(r"!=|==|=", req, maxsplit=1))
        cur: Any = obj
        for part in key.split("."):
            cur = cur.get(part) if isinstance(cur, Mapping) else None
        actual = "" if cur is None else str(cur)
        if (actual == val) == neg:
            return False
    return True


# --- patches -----------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _keyed(items: list[Any]) -> str | None:
    for key in ("name", "containerPort", "port", "mountPath", "ip"):
        if items and all(isinstance(i, Mapping) and key in i for i in items):
            return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, approximated: like a merge patch, but lists of objects with a
    merge key (name, containerPort, port, mountPath) merge item by item instead of replacing."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        cur = out.get(k)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(cur, list) and (key := _keyed(v)) \
                and _keyed(cur) == key:
            merged = [dict(i) for i in cur]
            for item in v:
                idx = next((n for n, c in enumerate(merged) if c[key] == item[key]), None)
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = strategic_merge(merged[idx], item)
            out[k] = merged
        else:
            out[k] = strategic_merge(cur, v)
    return out


def json_patch(target: Mapping[str, Any], ops: list[Any]) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(dict(target)), ops)  # type: ignore[no-any-return]


# --- server-side apply -------------------------------------------------------------------

_SKIP_META = {"name", "namespace", "resourceVersion", "uid", "creationTimestamp", "generation",
              "managedFields"}


def leaves(obj: Any, prefix: Path_ = ()) -> set[Path_]:
    """Field paths a manifest sets; lists count as one (atomic) field."""
    out: set[Path_] = set()
    if isinstance(obj, Mapping) and obj:
        for k, v in obj.items():
            if not prefix and k in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("metadata",) and k in _SKIP_META:
                continue
            out |= leaves(v, (*prefix, str(k)))
    elif prefix:
        out.add(prefix)
    return out


def get_path(obj: Any, path: Path_) -> Any:
    for p in path:
        if not isinstance(obj, Mapping) or p not in obj:
            return None
        obj = obj[p]
    return obj


def del_path(obj: dict[str, Any], path: Path_) -> None:
    parents = []
    cur: Any = obj
    for p in path[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        parents.append((cur, p))
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    for parent, key in reversed(parents):    # drop maps the removal left empty
        if parent.get(key) == {}:
            parent.pop(key)


def deep_merge(target: Any, applied: Any) -> Any:
    if not (isinstance(target, Mapping) and isinstance(applied, Mapping)):
        return copy.deepcopy(applied)
    out = dict(target)
    for k, v in applied.items():
        out[k] = deep_merge(out.get(k), v)
    return out


class Ownership:
    """Which manager owns which field paths of one object."""

    def __init__(self) -> None:
        self.owners: dict[str, tuple[str, set[Path_]]] = {}   # manager -> (operation, paths)

    def apply(self, obj: dict[str, Any] | None, applied: Mapping[str, Any], manager: str, *,
              force: bool) -> tuple[dict[str, Any], list[str]]:
        """The object after `manager` applies `applied`, or conflicts (and the object unchanged)."""
        new_paths = leaves(applied)
        base = copy.deepcopy(obj) if obj is not None else {}
        conflicts: list[str] = []
        for other, (_, paths) in self.owners.items():
            if other == manager:
                continue
            for p in sorted(paths & new_paths):
                if get_path(base, p) != get_path(applied, p):
                    conflicts.append(f'conflict with "{other}": .{".".join(p)}')
        if conflicts and not force:
            return base, conflicts
        for other in list(self.owners):
            if other != manager:
                op, paths = self.owners[other]
                self.owners[other] = (op, paths - new_paths)
        owned_elsewhere = set().union(*(p for m, (_, p) in self.owners.items() if m != manager)) \
            if len(self.owners) > 1 else set()
        previous = self.owners.get(manager, ("Apply", set()))[1]
        for p in sorted(previous - new_paths - owned_elsewhere, key=len, reverse=True):
            del_path(base, p)
        merged = deep_merge(base, {k: v for k, v in applied.items() if k != "status"})
        self.owners[manager] = ("Apply", new_paths)
        return merged, []

    def update(self, before: Mapping[str, Any] | None, after: Mapping[str, Any],
               manager: str) -> None:
        """A non-apply write: the manager takes the fields whose values it changed."""
        changed = {p for p in leaves(after) if get_path(before, p) != get_path(after, p)}
        for other in list(self.owners):
            op, paths = self.owners[other]
            self.owners[other] = (op, paths - changed)
        op, mine = self.owners.get(manager, ("Update", set()))
        self.owners[manager] = (op, mine | changed)

    def managed_fields(self, api_version: str, time: str) -> list[dict[str, Any]]:
        out = []
        for manager, (op, paths) in self.owners.items():
            if not paths:
                continue
            out.append({"manager": manager, "operation": op, "apiVersion": api_version,
                        "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths)})
        return out


def fields_v1(paths: Iterable[Path_]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in paths:
        cur = root
        for part in p:
            cur = cur.setdefault(f"f:{part}", {})
    return root
