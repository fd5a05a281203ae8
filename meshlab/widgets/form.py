"""The run form: dropdowns filled from the runner, environment, mesh and mode registries,
presets from `data/profiles/`, number boxes with units (open loop at a stated rate by default),
YAML for the rest of the profile; each validation problem is shown next to its field."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as W
import yaml
from pydantic.fields import FieldInfo

from meshlab.errors import ProfileError
from meshlab.profile import LoadMatrix, Profile

DEFAULT_RATE_RPS = 500.0     # open loop at a stated rate: a closed loop hides queueing (CO)
_LABEL = {"description_width": "9em"}
_WIDE = W.Layout(width="30em")
# field -> (label with unit, kind): kinds pick the widget
_MAIN: dict[str, tuple[str, str]] = {
    "name": ("name", "text"), "target": ("target URL", "text"),
    "runner": ("runner", "runner"), "environment": ("environment", "environment"),
    "meshes": ("meshes", "meshes"), "modes": ("sidecar modes", "modes"),
    "repeats": ("repeats", "int"),
    "loads.rate_rps": ("rate (req/s)", "list"), "loads.connections": ("connections", "list"),
    "loads.duration_s": ("duration (s)", "float"), "loads.warmup_s": ("warm-up (s)", "float"),
}
_YAML_FIELDS = ("description", "topology", "policies", "request", "labels",
                "loads.max_requests", "loads.spread_connections")


def _is_list(info: FieldInfo) -> bool:
    return typing.get_origin(info.annotation) is list


def _text(value: Any) -> str:
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


def _parse(text: str, info: FieldInfo | None) -> Any:
    text = text.strip()
    if not text:
        return None
    if info is not None and _is_list(info) and not text.startswith("["):
        text = f"[{text}]"
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text                       # pydantic then names the field and the problem


def _info(name: str) -> FieldInfo:
    if name.startswith("loads."):
        return LoadMatrix.model_fields[name.removeprefix("loads.")]
    return Profile.model_fields[name]


def _choices(kind: str) -> list[str]:
    """The registry behind a dropdown (asked when the form is built, never copied)."""
    if kind == "runner":
        from meshlab.runners.base import runner_names

        return runner_names()
    if kind == "environment":
        from meshlab.environments.base import environment_names

        return environment_names()
    if kind == "meshes":
        from meshlab.meshes import mesh_names

        return mesh_names()
    from meshlab.topology import Mode

    return [str(m) for m in Mode]


def preset_dirs() -> list[Path]:
    """Where presets come from: `data/profiles/` under the working directory, then the one
    next to the package in a source checkout."""
    here = Path(__file__).resolve().parents[2] / "data" / "profiles"
    return list(dict.fromkeys(p for p in (Path("data/profiles").resolve(), here) if p.is_dir()))


def presets(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Preset name (file stem) -> profile YAML."""
    out: dict[str, Path] = {}
    for d in dirs if dirs is not None else preset_dirs():
        for p in sorted(d.glob("*.y*ml")):
            out.setdefault(p.stem, p)
    return out


class ProfileForm:
    """`ProfileForm(defaults).widget` shows the form; `.profile()` validates it and returns a
    Profile, or None after putting each problem next to its field. `.set(name, text)` and
    `.fields[name] -> (FieldInfo, widget, error HTML)` drive it from code and tests."""

    def __init__(self, defaults: dict[str, Any] | None = None, *,
                 preset_paths: dict[str, Path] | None = None) -> None:
        base: dict[str, Any] = {k: f.get_default(call_default_factory=True)
                                for k, f in Profile.model_fields.items() if not f.is_required()}
        base.update(defaults or {})
        loads_value = base.get("loads") or {}
        loads = (loads_value.model_dump() if isinstance(loads_value, LoadMatrix)
                 else dict(loads_value))
        if not (defaults or {}).get("loads", {}).get("rate_rps"):
            loads["rate_rps"] = [DEFAULT_RATE_RPS]
        self.fields: dict[str, tuple[FieldInfo, W.Widget, W.HTML]] = {}
        self._presets = preset_paths if preset_paths is not None else presets()
        self.preset = W.Dropdown(options=["(none)", *self._presets], description="preset",
                                 style=_LABEL, layout=_WIDE)
        self.preset.add_class("meshlab-preset")
        self.preset.observe(lambda ch: self.load_preset(str(ch["new"])), names="value")
        main = [self._row(n, label, kind, self._value(n, base, loads))
                for n, (label, kind) in _MAIN.items()]
        more = [self._row(n, n.removeprefix("loads."), "yaml", self._value(n, base, loads))
                for n in _YAML_FIELDS]
        self.hint = W.HTML("<span style='color:#555'>rate 0 = closed loop at the maximum "
                           "rate: latency then misses queueing time (coordinated "
                           "omission)</span>")
        advanced = W.Accordion(children=[W.VBox(more)])
        advanced.set_title(0, "More: description, topology, policies, request, labels (YAML)")
        advanced.selected_index = None
        half = len(main) - 4
        self.widget = W.VBox([self.preset, W.HBox([W.VBox(main[:half]),
                                                   W.VBox([*main[half:], self.hint])]),
                              advanced])
        self.widget.add_class("meshlab-profile-form")

    @staticmethod
    def _value(name: str, base: dict[str, Any], loads: dict[str, Any]) -> Any:
        if name.startswith("loads."):
            key = name.removeprefix("loads.")
            return loads.get(key, LoadMatrix.model_fields[key].default)
        return base.get(name)

    def _row(self, name: str, label: str, kind: str, value: Any) -> W.Widget:
        info = _info(name)
        tip = info.description or ""
        box: W.Widget
        if kind in ("runner", "environment"):
            options = _choices(kind)
            box = W.Dropdown(options=options, value=value if value in options else options[0],
                             description=label, style=_LABEL, layout=_WIDE)
        elif kind in ("meshes", "modes"):
            options = _choices(kind)
            chosen = [v for v in (value or []) if v in options]
            extra = [v for v in (value or []) if v not in options]   # e.g. envoy+mtls
            box = W.SelectMultiple(options=[*options, *extra], value=[*chosen, *extra],
                                   rows=min(5, len(options) + len(extra)),
                                   description=label, style=_LABEL, layout=_WIDE)
        elif kind == "int":
            box = W.IntText(value=int(value or 1), description=label, style=_LABEL,
                            layout=_WIDE)
        elif kind == "float":
            box = W.FloatText(value=float(value or 0.0), description=label, style=_LABEL,
                              layout=_WIDE)
        else:
            box = W.Text(value=_text(value), description=label, placeholder=tip, style=_LABEL,
                         layout=_WIDE)
        box.add_class(f"meshlab-field-{name.replace('.', '-')}")
        box.tooltip = tip
        err = W.HTML(value="", layout=W.Layout(width="24em"))
        err.add_class("meshlab-field-error")
        self.fields[name] = (info, box, err)
        return W.VBox([box, err], layout=W.Layout(margin="0 0 2px 0"))

    # values -----------------------------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Set a field from text or a value (`"200"`, `"envoy, nginx"`, `["none"]`)."""
        box = self.fields[name][1]
        if isinstance(box, W.SelectMultiple):
            items = value if isinstance(value, list | tuple) else \
                [v.strip() for v in str(value).split(",") if v.strip()]
            box.options = list(dict.fromkeys([*box.options, *map(str, items)]))
            box.value = tuple(map(str, items))
        elif isinstance(box, W.Dropdown):
            box.value = str(value)
        elif isinstance(box, W.IntText | W.FloatText):
            convert: Callable[[Any], Any] = int if isinstance(box, W.IntText) else float
            box.value = convert(float(value)) if isinstance(value, str) else convert(value)
        else:
            box.value = value if isinstance(value, str) else _text(value)

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loads": {}}
        for name, (info, box, _) in self.fields.items():
            if isinstance(box, W.SelectMultiple):
                value: Any = list(box.value)
            elif isinstance(box, W.Text):
                value = _parse(box.value, info)
            else:
                value = box.value
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

    def load_preset(self, name: str) -> bool:
        """Fill the form from a preset profile; False (with the problem shown) if it is bad."""
        path = self._presets.get(name)
        if path is None:
            return False
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            self.fields["name"][2].value = f"<span style='color:#c0392b'>preset {name}: " \
                                           f"{_escape(str(exc))}</span>"
            return False
        loads = doc.pop("loads", {}) or {}
        for key, value in [*doc.items(), *((f"loads.{k}", v) for k, v in loads.items())]:
            if key in self.fields:
                self.set(key, value)
        return True

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
