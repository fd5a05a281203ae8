"""The one run-selector grammar of the CLI, the report, the workbench and the notebooks.

A selector is run ids (`20261122T0241-3f9a1c,20261122T0242-aa01b2`) or comma-joined conditions
that must all hold: `mesh=none`, `mesh!=none`, `mesh=envoy|nginx` (either), `label.build=v2`,
`experiment=latest` (or an id), `policy=retry3,rate_rps=1000`; `null` matches a missing value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from meshlab.errors import ProfileError

Selector = str | Sequence[str] | Mapping[str, str]

# What a run varies in: the dimensions a comparison must either group by or hold fixed.
DIMENSIONS = ("profile", "environment", "mesh", "data_plane", "mode", "policy", "runner",
              "rate_rps", "connections", "protocol")
_ALIASES = {"experiment_id": "experiment"}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class Condition:
    """`key=v1|v2` (the run's value is one of them) or, negated, `key!=v1|v2` (none of them)."""

    key: str
    values: tuple[str, ...]
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.key}{'!=' if self.negate else '='}{'|'.join(self.values)}"


@dataclass(frozen=True, slots=True)
class Selection:
    """A parsed selector: run ids, or conditions that must all hold (never both)."""

    run_ids: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def __str__(self) -> str:
        return ",".join([*self.run_ids, *map(str, self.conditions)])

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.key for c in self.conditions))

    def split(self, keys: Iterable[str]) -> tuple[Selection, Selection]:
        """(the conditions on `keys`, the other conditions); run ids go with the first."""
        wanted = set(keys)
        return (Selection(self.run_ids, tuple(c for c in self.conditions if c.key in wanted)),
                Selection((), tuple(c for c in self.conditions if c.key not in wanted)))

    def __and__(self, other: Selection) -> Selection:
        if self.run_ids and other.run_ids:
            raise ProfileError(f"{self} and {other}: two lists of run ids cannot be combined")
        return _merge(self.run_ids or other.run_ids, [*self.conditions, *other.conditions])


def _merge(run_ids: Sequence[str], conditions: Iterable[Condition]) -> Selection:
    # `mesh=a,mesh=b` are alternatives (mesh=a|b); `mesh!=a,mesh!=b` excludes both.
    merged: dict[tuple[str, bool], tuple[str, ...]] = {}
    for c in conditions:
        old = merged.get((c.key, c.negate), ())
        merged[(c.key, c.negate)] = tuple(dict.fromkeys([*old, *c.values]))
    return Selection(tuple(run_ids), tuple(Condition(k, v, n) for (k, n), v in merged.items()))


def _condition(text: str, *, where: str) -> Condition:
    key, sep, value = text.partition("=")
    negate = key.endswith("!")
    key = _ALIASES.get(key.removesuffix("!").strip(), key.removesuffix("!").strip())
    values = tuple(v.strip() for v in value.split("|"))
    if not sep or not _KEY.fullmatch(key) or not all(values):
        raise ProfileError(f"selector {where!r}: {text!r} is not KEY=VALUE, KEY!=VALUE or "
                           f"KEY=A|B (e.g. mesh=none, 'mesh!=none', label.build=v2)")
    return Condition(key, values, negate)


def parse_selector(selector: Selector | Selection) -> Selection:
    """The `Selection` of a selector string, list of parts or mapping (`{"mesh!": "none"}`);
    a ProfileError for an empty selector or one that mixes run ids with conditions."""
    if isinstance(selector, Selection):
        return selector
    if isinstance(selector, Mapping):
        text = ",".join(f"{k}={v}" for k, v in selector.items())
        return _merge((), [_condition(f"{k}={v}", where=text) for k, v in selector.items()])
    parts = ([p.strip() for p in selector.split(",")] if isinstance(selector, str)
             else [str(p).strip() for p in selector])
    parts = [p for p in parts if p]
    text = selector if isinstance(selector, str) else ",".join(parts)
    if not parts:
        raise ProfileError("empty selector; give run ids or KEY=VALUE conditions such as "
                           "mesh=none")
    with_eq = [p for p in parts if "=" in p]
    if with_eq and len(with_eq) != len(parts):
        raise ProfileError(f"selector {text!r} mixes run ids and conditions; give either run "
                           f"ids (id1,id2) or conditions (mesh=none,experiment=latest)")
    if not with_eq:
        return Selection(tuple(dict.fromkeys(parts)))
    return _merge((), [_condition(p, where=text) for p in parts])


def select_runs(runs: pd.DataFrame, selector: Selector | Selection) -> list[str]:
    """Run ids of `runs` matching the selector, in `started_at` order; unknown ids are dropped
    (`missing_runs` lists them) and a condition on an unknown key matches nothing."""
    sel = parse_selector(selector)
    if runs.empty:
        return []
    mask = pd.Series(True, index=runs.index)
    for cond in sel.conditions:
        match = _match(runs, cond)
        mask &= ~match if cond.negate else match
    if sel.run_ids:                  # the order given
        kept = set(runs.loc[mask, "run_id"])
        return [r for r in sel.run_ids if r in kept]
    sub = runs[mask]
    if "started_at" in sub.columns:
        sub = sub.sort_values("started_at", kind="stable")
    return [str(r) for r in sub["run_id"]]


def _match(runs: pd.DataFrame, cond: Condition) -> pd.Series:
    values = list(cond.values)
    if cond.key.startswith("label."):
        name = cond.key[len("label."):]
        col = runs["labels"].map(lambda t: _label(t, name)) if "labels" in runs.columns else None
    elif cond.key == "experiment":
        latest = latest_experiment(runs)
        values = [latest if v == "latest" else v for v in values]
        col = runs.get("experiment_id")
    else:
        col = runs.get(cond.key)
    if col is None:                  # a misspelt key matches nothing, negated or not
        return pd.Series(cond.negate, index=runs.index, dtype=bool)
    return col.map(lambda v: _matches(v, values)).astype(bool)


def _matches(value: object, wanted: Sequence[str]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null" in wanted
    if isinstance(value, int | float) and not isinstance(value, bool):
        for w in wanted:
            try:
                if float(w) == float(value):
                    return True
            except ValueError:
                continue
        return False
    return str(value) in wanted


def latest_experiment(runs: pd.DataFrame) -> str:
    """The experiment of the most recently started run (`experiment=latest`)."""
    if "experiment_id" not in runs:
        return ""
    with_exp = runs[runs["experiment_id"].notna()]
    if with_exp.empty:
        return ""
    if "started_at" in with_exp.columns:
        with_exp = with_exp.sort_values("started_at", kind="stable")
    return str(with_exp["experiment_id"].iloc[-1])


def missing_runs(runs: pd.DataFrame, selector: Selector | Selection) -> list[str]:
    """Run ids named by the selector that `runs` does not hold (empty for conditions)."""
    sel = parse_selector(selector)
    known = set(runs["run_id"]) if not runs.empty else set()
    return [r for r in sel.run_ids if r not in known]


def unknown_keys(runs: pd.DataFrame, selector: Selector | Selection) -> list[str]:
    """Condition keys that name no column of `runs` (a typo: they match nothing)."""
    sel = parse_selector(selector)
    return [k for k in sel.keys
            if k != "experiment" and not k.startswith("label.") and k not in runs.columns]


def varying(runs: pd.DataFrame, *, ignore: Iterable[str] = ()) -> dict[str, list[str]]:
    """The dimensions (DIMENSIONS) in which `runs` differ, with their values: what pooling
    these runs would mix beyond repeats."""
    skip = set(ignore)
    out: dict[str, list[str]] = {}
    for dim in DIMENSIONS:
        if dim in skip or dim not in runs.columns or runs.empty:
            continue
        values = sorted({value_text(v) for v in runs[dim]})
        if len(values) > 1:
            out[dim] = values
    return out


def value_text(value: object) -> str:
    """A run's value as a selector writes it: `null` for missing, `1000` for 1000.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def store_summary(runs: pd.DataFrame) -> str:
    """What a store holds, for a message after a selector matched nothing."""
    if runs.empty:
        return "the store holds no runs"
    parts = []
    for dim, name in (("mesh", "meshes"), ("policy", "policies"), ("mode", "modes")):
        if dim in runs.columns:
            values = sorted({value_text(v) for v in runs[dim]} - {"null"})
            if values:
                parts.append(f"{name} in the store: {', '.join(values)}")
    latest = latest_experiment(runs)
    if latest:
        n = runs["experiment_id"].dropna().nunique()
        parts.append(f"{n} experiment(s), latest {latest}")
    return "; ".join(parts) or f"{len(runs)} run(s)"


def no_match_problem(runs: pd.DataFrame, name: str, selector: Selector | Selection
                     ) -> str | None:
    """Why `selector` (the `name` side of a comparison) selects no run, or None if it does."""
    sel = parse_selector(selector)
    if runs.empty:
        return ("The store holds no runs yet. Record some first, e.g. "
                "`meshlab run profile.yaml`.")
    unknown = missing_runs(runs, sel)
    if unknown:
        return (f"{name}: unknown run ids {', '.join(unknown)} "
                f"(list stored runs with `meshlab runs`)")
    if select_runs(runs, sel):
        return None
    bad = unknown_keys(runs, sel)
    if bad:
        known = [c for c in DIMENSIONS if c in runs.columns]
        return (f"{name}: selector {str(sel)!r} matched no runs: no key {bad[0]!r}; use "
                f"{', '.join(known)}, label.NAME, experiment or status")
    return f"{name}: selector {str(sel)!r} matched no runs ({store_summary(runs)})"


def _label(text: object, name: str) -> str | None:
    if isinstance(text, str):
        try:
            d = json.loads(text)
        except ValueError:
            return None
    elif isinstance(text, Mapping):
        d = text
    else:
        return None
    v = d.get(name) if isinstance(d, Mapping) else None
    return None if v is None else str(v)
