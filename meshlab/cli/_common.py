"""Helpers shared by the CLI command modules: the store option, JSON lines, rich output,
stored strings made safe for a terminal, and output files that never clobber silently."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from meshlab.errors import ProfileError
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


# C0/C1 controls (ESC starts terminal escape sequences), bidi overrides and isolates (U+202E
# shows "exe.txt" for "txt.exe"), zero-width and line/paragraph separators, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def shown(value: object, *, markup: bool = True) -> str:
    """`value` as text safe to print: control, bidi and invisible characters escaped (`\\x1b`,
    `\\u202e`); with `markup` also rich markup (`[bold]` in a run's name prints as typed).
    Every stored or user-given string the CLI prints goes through here."""
    text = _UNSAFE.sub(_escape_char, value if isinstance(value, str) else str(value))
    if markup:
        from rich.markup import escape

        text = escape(text)
    return text


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
    """`1.23 ms` style text of a microsecond value; `-` when missing (`units.format_us`, the
    one formatter the CLI, the report and the widgets share)."""
    from meshlab.units import format_us

    return format_us(value)


_DUCKDB_MAGIC = b"DUCK"      # bytes 8..12 of every DuckDB database file


def _is_duckdb(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(12)[8:12] == _DUCKDB_MAGIC
    except OSError:
        return False


def write_output(path: str, text: str, *, force: bool = False,
                 protect: Sequence[str] = ()) -> None:
    """Write `text` to the file `path`: never over a DuckDB file, a `protect`ed path (the store
    and its WAL), a symlink or a non-regular file; over an existing file only with `force`;
    through a temporary file in the same directory renamed into place, so a failure (disk
    full) leaves the old file whole. Every refusal is one ProfileError naming `--out`."""
    from meshlab.errors import ProfileError

    def refuse(message: str) -> ProfileError:
        return ProfileError(f"--out: {message}")

    p = Path(path)
    parent = p.parent
    where = shown(p, markup=False)
    if not p.name or p.name in (".", ".."):
        raise refuse(f"{shown(path, markup=False)} names a directory; give a file name")
    try:
        name_max = os.pathconf(parent if parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(p.name)) > name_max:
        raise refuse(f"file name is {len(os.fsencode(p.name))} bytes, longer than the "
                     f"{name_max} this file system allows")
    try:
        st: os.stat_result | None = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise refuse(f"cannot use {where}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise refuse(f"{where} is a symbolic link; give the file's own path (outputs never "
                         "follow links)")
        if stat.S_ISDIR(st.st_mode):
            raise refuse(f"{where} is a directory; give a file name in it")
        if not stat.S_ISREG(st.st_mode):
            raise refuse(f"{where} is not a regular file; give a file path, or leave out "
                         "--out to write to stdout")
        for kept in protect:
            for q in (Path(kept), Path(f"{kept}.wal")):
                with contextlib.suppress(OSError):
                    if os.path.samefile(p, q):
                        raise refuse(f"{where} is the store this command reads; write the "
                                     "output to another file")
        if _is_duckdb(p):
            raise refuse(f"{where} is a DuckDB database; outputs never overwrite one")
        if not force:
            raise refuse(f"{where} exists; pass --force to replace it")
    elif not parent.is_dir():
        raise refuse(f"directory {shown(parent, markup=False)} does not exist; create it first")
    _write_replacing(p, text, force=force, refuse=refuse)


def _write_replacing(p: Path, text: str, *, force: bool,
                      refuse: Callable[[str], ProfileError]) -> None:
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".meshlab-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, p.stat().st_mode & 0o7777 if p.exists() else 0o666 & ~umask)
        if force:
            os.replace(tmp, p)
        else:
            try:
                os.link(tmp, p)          # atomic: fails if the name appeared meanwhile
            except FileExistsError:
                raise refuse(f"{shown(p, markup=False)} exists; pass --force to replace "
                             "it") from None
            except OSError:              # a file system without hard links
                if p.exists():
                    raise refuse(f"{shown(p, markup=False)} exists; pass --force to replace "
                                 "it") from None
                os.replace(tmp, p)
    except OSError as exc:
        raise refuse(f"cannot write {shown(p, markup=False)}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


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
