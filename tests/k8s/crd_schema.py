"""Validate custom resources against real CRD `openAPIV3Schema`s with jsonschema, the way an API
server does with `fieldValidation=Strict`: unknown fields are errors, `x-kubernetes-int-or-string`
accepts both, `nullable` allows null, and `int32`/`int64`/`duration` formats are checked.

CEL rules (`x-kubernetes-validations`) are evaluated with cel-python once the structural schema
passes (`crd_cel.py`); `cel_rules()` counts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from crd_cel import CelRules

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "crds"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$")


def to_jsonschema(node: Any) -> Any:
    """Convert one structural-schema node (recursively) to plain JSON Schema."""
    if isinstance(node, list):
        return [to_jsonschema(n) for n in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("x-kubernetes-validations", "description"):
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: to_jsonschema(pv) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not") or k in ("allOf", "anyOf", "oneOf"):
            out[k] = to_jsonschema(v)
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        if "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False      # fieldValidation=Strict: unknown fields fail
    return out


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(v: object) -> bool:
    return not isinstance(v, int) or -(2**31) <= v < 2**31


@_FORMATS.checks("int64")
def _int64(v: object) -> bool:
    return not isinstance(v, int) or -(2**63) <= v < 2**63


@_FORMATS.checks("duration")
def _duration(v: object) -> bool:
    return not isinstance(v, str) or bool(_GO_DURATION.match(v))


def cel_rules(node: Any) -> int:
    if isinstance(node, list):
        return sum(cel_rules(n) for n in node)
    if not isinstance(node, Mapping):
        return 0
    return len(node.get("x-kubernetes-validations") or []) + sum(cel_rules(v)
                                                                  for v in node.values())


class CrdSet:
    """CRDs by (group, version, kind) with compiled validators."""

    def __init__(self) -> None:
        self.crds: dict[tuple[str, str], Mapping[str, Any]] = {}   # (group, kind) -> CRD
        self._validators: dict[tuple[str, str, str], jsonschema.Draft7Validator] = {}
        self.cel: dict[tuple[str, str, str], CelRules] = {}

    @classmethod
    def load(cls, paths: Iterable[Path]) -> CrdSet:
        s = cls()
        for p in paths:
            for doc in yaml.load_all(p.read_text(encoding="utf-8"), Loader=_Loader):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    s.add(doc)
        return s

    def add(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        self.crds[(spec["group"], spec["names"]["kind"])] = crd
        for v in spec["versions"]:
            raw = (v.get("schema") or {}).get("openAPIV3Schema") or {}
            self.cel[(spec["group"], v["name"], spec["names"]["kind"])] = CelRules(raw)
            schema = to_jsonschema(raw)
            props = schema.setdefault("properties", {})
            # the API server fills these; a schema never constrains them
            for k in ("apiVersion", "kind"):
                props.setdefault(k, {"type": "string"})
            props["metadata"] = {"type": "object"}
            self._validators[(spec["group"], v["name"], spec["names"]["kind"])] = \
                jsonschema.Draft7Validator(schema, format_checker=_FORMATS)

    def knows(self, api_version: str, kind: str) -> bool:
        group, _, version = api_version.rpartition("/")
        return (group, version, kind) in self._validators

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """Every problem with `obj` as `path: message`; [] when valid."""
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        kind = str(obj.get("kind", ""))
        v = self._validators.get((group, version, kind))
        if v is None:
            return [f"(root): no CRD serves {kind} {obj.get('apiVersion')}"]
        out = []
        name = str((obj.get("metadata") or {}).get("name", ""))
        if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            out.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
        for err in sorted(v.iter_errors(dict(obj)), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in err.absolute_path) or "(root)"
            out.append(f"{path}: {err.message}")
        if not out:       # CEL runs on structurally valid objects, as in the API server
            out += self.cel[(group, version, kind)].errors(dict(obj))
        return out


def fixture_crds(*, kuma: str = "kuma-v2.14.3") -> CrdSet:
    """The CRDs copied into tests/fixtures/crds (see SOURCE.md there); Kuma from one set."""
    paths = [p for p in sorted(FIXTURES.rglob("*.yaml"))
             if not p.parent.name.startswith("kuma") or p.parent.name == kuma]
    return CrdSet.load(paths)
