"""Helpers shared by the CLI command modules: the store option, JSON lines, rich output."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
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


# Dimensions a run table shows only when they vary among its runs (mesh, rate and connections
# are always shown): a profile with two policies gives two rows per mesh that would otherwise
# look identical except for their numbers. Run-schema column -> header.
VARYING_DIMENSIONS = {"policy": "policy", "mode": "mode", "mtls": "mtls",
                      "protocol": "protocol"}


def varying_dimensions(rows: Iterable[Mapping[Any, Any]]) -> list[str]:
    """The `VARYING_DIMENSIONS` columns that take more than one value among `rows` (a missing
    value counts as a value of its own)."""
    seen: dict[str, set[str]] = {col: set() for col in VARYING_DIMENSIONS}
    for row in rows:
        for col, values in seen.items():
            values.add(dimension_text(row.get(col)))
    return [col for col, values in seen.items() if len(values) > 1]


def dimension_text(value: Any) -> str:
    """A dimension cell: `-` for a missing value (None, NaN, pandas' NA)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if type(value).__name__ in ("NAType", "NaTType"):
        return "-"
    return str(value)


def fmt_us(value: Any) -> str:
    """`1.23 ms` style text of a microsecond value; `-` when missing."""
    try:
        us = float(value)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(us):
        return "-"
    if abs(us) >= 1_000_000:
        return f"{us / 1_000_000:.2f} s"
    if abs(us) >= 1_000:
        return f"{us / 1_000:.2f} ms"
    return f"{us:.0f} us"


def load_profile_file(path: str) -> Profile:
    """A meshlab profile YAML, or a Meshery JSON / SMP YAML profile: `meshlab.formats` detects
    which (`load_profile_any`)."""
    import warnings

    from meshlab.formats import load_profile_any
    from meshlab.formats.profile_import import ProfileImportWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProfileImportWarning)
        profile = load_profile_any(path)
    for w in caught:
        if issubclass(w.category, ProfileImportWarning):
            print(f"warning: {path}: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return profile
