"""Helpers shared by the CLI command modules: the store option, JSON lines, rich output."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from meshlab.profile import Profile
    from meshlab.store import Store

DEFAULT_STORE = "data/meshlab.duckdb"


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="PATH", default=None,
                        help=f"DuckDB store (default: $MESHLAB_STORE or {DEFAULT_STORE})")


def store_path(args: argparse.Namespace) -> str:
    """--store, else $MESHLAB_STORE, else data/meshlab.duckdb (only the CLI reads MESHLAB_*)."""
    return str(getattr(args, "store", None) or os.environ.get("MESHLAB_STORE") or DEFAULT_STORE)


def open_store(args: argparse.Namespace, *, read_only: bool = False) -> Store:
    from meshlab.errors import StoreError
    from meshlab.store import Store

    path = store_path(args)
    if read_only and not Path(path).exists():
        raise StoreError(f"no store at {path}; run a profile first (meshlab run PROFILE "
                         f"--store {path}) or point --store / MESHLAB_STORE at one")
    return Store(path, read_only=read_only)


def jsonable(value: Any) -> Any:
    """NaN/inf become null; numpy and pandas scalars become Python numbers; the rest str()."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):   # pandas' missing values
        return None
    item = getattr(value, "item", None)          # numpy scalar
    if callable(item):
        return jsonable(item())
    isoformat = getattr(value, "isoformat", None)  # datetime, pandas Timestamp
    if callable(isoformat):
        return isoformat()
    return str(value)


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout, flushed (scripts read it as it comes)."""
    sys.stdout.write(json.dumps(jsonable(obj), separators=(", ", ": ")) + "\n")
    sys.stdout.flush()


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output has no terminal width: rich would squeeze tables into 80 columns.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, highlight=False, width=width)


def table(title: str) -> Table:
    """A compact rich table (light rules, no outer padding) that fits more columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                 collapse_padding=True)


def fmt_us(value: Any) -> str:
    """`1.23 ms` style text of a microsecond value; `-` when missing (`units.format_us`, the
    one formatter the CLI, the report and the widgets share)."""
    from meshlab.units import format_us

    return format_us(value)


def _meshlab_keys() -> set[str]:
    from meshlab.profile import Profile

    return set(Profile.model_fields)


def load_profile_file(path: str) -> Profile:
    """A meshlab profile YAML, or (through meshlab.formats) a Meshery JSON / SMP YAML profile.

    A mapping is taken as a meshlab profile when most of its keys are meshlab profile keys, so a
    meshlab profile with a typo still gets meshlab's own problem list."""
    import yaml

    from meshlab.errors import ProfileError
    from meshlab.profile import Profile

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"(file): cannot read {p}: {exc.strerror}", source=str(p)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, Mapping) and doc:
        keys = {str(k) for k in doc}
        if len(keys & _meshlab_keys()) * 2 > len(keys):
            return Profile.from_dict(doc, source=str(p))
    try:
        from meshlab.formats import load_profile_any
    except ImportError:
        return Profile.from_yaml(text, source=str(p))
    return load_profile_any(p)
