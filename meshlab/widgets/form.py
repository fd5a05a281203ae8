"""A profile form generated from the `Profile` model: one field per model field (YAML text for
lists and mappings), validation problems shown next to the field they concern."""

from __future__ import annotations

import typing
from typing import Any

import ipywidgets as W
import yaml
from pydantic.fields import FieldInfo

from meshlab.errors import ProfileError
from meshlab.profile import LoadMatrix, Profile

# Fields shown by default; the rest of the model (request, policies, topology...) takes YAML.
_SKIP = {"loads"}


def _is_list(info: FieldInfo) -> bool:
    return typing.get_origin(info.annotation) is list


def _text(value: Any, info: FieldInfo) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_defaults=True)
    elif isinstance(value, list):
        value = [v.model_dump(mode="json", exclude_defaults=True) if hasattr(v, "model_dump")
                 else v for v in value]
    if isinstance(value, list) and all(isinstance(v, int | float | str) for v in value):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}"
    if value is None or value == {} or value == []:
        return ""
    return yaml.safe_dump(value, default_flow_style=True).strip()


def _parse(text: str, info: FieldInfo) -> Any:
    text = text.strip()
    if not text:
        return None
    if _is_list(info) and not text.startswith("["):
        text = f"[{text}]"
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text                       # pydantic then names the field and the problem


class ProfileForm:
    """`ProfileForm(defaults).widget` shows the form; `.profile()` validates it and returns a
    Profile, or None after putting each problem next to its field."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        base = {**{k: f.get_default(call_default_factory=True)
                   for k, f in Profile.model_fields.items() if not f.is_required()},
                **(defaults or {})}
        self.fields: dict[str, tuple[FieldInfo, W.Text, W.HTML]] = {}
        rows = []
        specs = [(n, f, base.get(n)) for n, f in Profile.model_fields.items() if n not in _SKIP]
        loads_value = base.get("loads") or {}
        loads = (loads_value.model_dump() if isinstance(loads_value, LoadMatrix)
                 else dict(loads_value))
        specs += [(f"loads.{n}", f, loads.get(n, f.default)) for n, f in
                  LoadMatrix.model_fields.items()]
        for name, info, value in specs:
            box = W.Text(value=_text(value, info), description=name,
                         placeholder=info.description or "",
                         style={"description_width": "9em"}, layout=W.Layout(width="34em"))
            box.add_class(f"meshlab-field-{name.replace('.', '-')}")
            err = W.HTML(value="", layout=W.Layout(width="28em"))
            err.add_class("meshlab-field-error")
            self.fields[name] = (info, box, err)
            rows.append(W.HBox([box, err]))
        self.widget = W.VBox(rows)
        self.widget.add_class("meshlab-profile-form")

    def set(self, name: str, value: str) -> None:
        self.fields[name][1].value = value

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loads": {}}
        for name, (info, box, _) in self.fields.items():
            value = _parse(box.value, info)
            if value is None:
                continue
            if name.startswith("loads."):
                out["loads"][name.removeprefix("loads.")] = value
            else:
                out[name] = value
        return out

    def profile(self) -> Profile | None:
        for _, _, err in self.fields.values():
            err.value = ""
        try:
            return Profile.from_dict(self.data(), source="form")
        except ProfileError as exc:
            self.show_problems(exc.problems)
            return None

    def show_problems(self, problems: list[str]) -> None:
        for problem in problems:
            path = problem.split(":", 1)[0]
            field = next((n for n in sorted(self.fields, key=len, reverse=True)
                          if path == n or path.startswith(n + ".") or path.startswith(n + "[")),
                         None)
            key = field or "name"
            err = self.fields[key][2]
            msg = problem if field is None else problem.split(":", 1)[1].strip()
            err.value += f"<span style='color:#c0392b'>{_escape(msg)}</span><br>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
