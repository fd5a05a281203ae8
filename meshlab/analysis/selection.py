"""Run selectors shared by the report, the CLI and the workbench: a selector names a run group.

`"20261122T0241-3f9a1c,20261122T0242-aa01b2"` (run ids), `"mesh=none"`, `"mesh!=none"`,
`"profile=echo,mesh=envoy,label.version=1.4"` or `"experiment=<id>"` / `"experiment=latest"`
(filters on `Store.runs()`).
Filters on different keys must all hold; values of one key are alternatives: `mesh=envoy|nginx`
(or `mesh=envoy,mesh=nginx`) picks either, `mesh!=none|istio` excludes both. In a mapping, a
key ending in `!` negates: `{"mesh!": "none"}` is `mesh!=none`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

Selector = str | Sequence[str] | Mapping[str, str]


def parse_selector(selector: Selector) -> tuple[list[str], dict[str, str]]:
    """(run ids, filters) of a selector; exactly one of the two is non-empty. A negated filter
    `key!=value` comes back as key `key!`."""
    if isinstance(selector, Mapping):
        return [], {str(k): str(v) for k, v in selector.items()}
    parts = ([p.strip() for p in selector.split(",")] if isinstance(selector, str)
             else [str(p).strip() for p in selector])
    parts = [p for p in parts if p]
    if parts and all("=" in p for p in parts):
        filters: dict[str, str] = {}
        for k, v in (p.split("=", 1) for p in parts):
            key = k.strip()
            filters[key] = f"{filters[key]}|{v.strip()}" if key in filters else v.strip()
        return [], filters
    return parts, {}


def select_runs(runs: pd.DataFrame, selector: Selector) -> list[str]:
    """Run ids of `runs` matching the selector, in `started_at` order; unknown ids are dropped
    (compare with `missing_runs` to report them)."""
    if runs.empty:
        return []
    ids, filters = parse_selector(selector)
    if ids:
        known = set(runs["run_id"])
        return [r for r in ids if r in known]
    mask = pd.Series(True, index=runs.index)
    for raw_key, value in filters.items():
        negate = raw_key.endswith("!")
        key = raw_key.removesuffix("!").strip()
        values = [v.strip() for v in value.split("|")]
        if key.startswith("label."):
            name = key[len("label."):]
            match = runs["labels"].map(lambda t, n=name, vs=values: _label(t, n) in vs)
        elif key == "experiment":
            match = runs["experiment_id"].astype(str).isin(
                [_latest_experiment(runs) if v == "latest" else v for v in values])
        elif key in runs.columns:
            match = runs[key].astype(str).str.removesuffix(".0").isin(
                [v.removesuffix(".0") for v in values])
        else:               # a misspelt column matches nothing, negated or not
            mask &= False
            continue
        mask &= ~match.astype(bool) if negate else match.astype(bool)
    sub = runs[mask]
    if "started_at" in sub.columns:
        sub = sub.sort_values("started_at", kind="stable")
    return [str(r) for r in sub["run_id"]]


def _latest_experiment(runs: pd.DataFrame) -> str:
    """The experiment of the most recently started run (`experiment=latest`)."""
    with_exp = runs[runs["experiment_id"].notna()]
    if with_exp.empty:
        return ""
    if "started_at" in with_exp.columns:
        with_exp = with_exp.sort_values("started_at", kind="stable")
    return str(with_exp["experiment_id"].iloc[-1])


def missing_runs(runs: pd.DataFrame, selector: Selector) -> list[str]:
    """Run ids named by the selector that `runs` does not hold (empty for filter selectors)."""
    ids, _ = parse_selector(selector)
    known = set(runs["run_id"]) if not runs.empty else set()
    return [r for r in ids if r not in known]


def _label(text: object, name: str) -> str | None:
    import json

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
