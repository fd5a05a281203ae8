"""CEL validation rules (`x-kubernetes-validations`) of a CRD schema, evaluated with cel-python
(`celpy`) the way an API server does: each rule runs with `self` bound to the value at its node;
a false result is a 422 cause `path: message`.

Not evaluated (counted in `CelRules.skipped`): transition rules (they use `oldSelf`) and rules
calling a Kubernetes CEL library function celpy does not have (`isURL`, `quantity`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celpy

_ENV = celpy.Environment()


class CelRules:
    """Compiled rules of one schema, evaluated against objects."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._programs: dict[str, Any] = {}
        self.evaluated = 0
        self.skipped = 0

    def _program(self, rule: str) -> Any:
        if rule not in self._programs:
            self._programs[rule] = _ENV.program(_ENV.compile(rule))
        return self._programs[rule]

    def errors(self, obj: Any) -> list[str]:
        out: list[str] = []
        self._walk(self.schema, obj, "", out)
        return out

    def _walk(self, node: Any, value: Any, path: str, out: list[str]) -> None:
        if not isinstance(node, Mapping) or value is None:
            return
        for rule in node.get("x-kubernetes-validations") or []:
            self._check(rule, value, path, out)
        if isinstance(value, Mapping):
            props = node.get("properties") or {}
            for k, v in value.items():
                if k in props:
                    self._walk(props[k], v, f"{path}.{k}" if path else str(k), out)
                elif isinstance(node.get("additionalProperties"), Mapping):
                    self._walk(node["additionalProperties"], v, f"{path}[{k}]", out)
        elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
            for i, v in enumerate(value):
                self._walk(node["items"], v, f"{path}[{i}]", out)

    def _check(self, rule: Mapping[str, Any], value: Any, path: str, out: list[str]) -> None:
        text = str(rule.get("rule", ""))
        if "oldSelf" in text:          # transition rule: only meaningful on update
            self.skipped += 1
            return
        try:
            result = self._program(text).evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError as exc:
            result = exc
        if isinstance(result, celpy.CELEvalError):
            if isinstance(result.args[1] if len(result.args) > 1 else None, type) and \
                    issubclass(result.args[1], KeyError) and "undeclared reference" in str(
                        result.args[0]):
                self.skipped += 1          # a Kubernetes CEL library function celpy lacks
                return
            self.evaluated += 1
            out.append(f"{path or '(root)'}: Invalid value: rule {text!r} failed: {result}")
            return
        self.evaluated += 1
        if not bool(result):
            msg = rule.get("message") or f"failed rule: {text}"
            out.append(f"{path or '(root)'}: Invalid value: {msg}")
