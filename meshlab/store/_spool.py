"""The store's spool: writes that could not get the DuckDB lock in time wait as JSON files in
`<db>.spool/` until the next writer imports them (idempotently: `run_id` is the primary key).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlab.results import RunResult

SPOOL_FORMAT = "meshlab-store-spool"
SPOOL_VERSION = 1

log = logging.getLogger("meshlab.store")


def spool_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".spool")


def write(db_path: Path, op: str, payload: Mapping[str, Any], *, key: str) -> Path:
    """Atomically write one spooled operation; names sort in write order (nanosecond clock)."""
    directory = spool_dir(db_path)
    directory.mkdir(parents=True, exist_ok=True)
    safe_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:80]
    name = f"{time.time_ns():020d}-{secrets.token_hex(3)}-{op}-{safe_key}.json"
    doc = {"format": SPOOL_FORMAT, "version": SPOOL_VERSION, "op": op, **payload}
    tmp = directory / (name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    final = directory / name
    os.replace(tmp, final)           # a reader never sees a half-written spool file
    return final


def write_saves(db_path: Path, results: Iterable[RunResult], *, experiment_id: str | None,
                replace: bool) -> int:
    """Spool one `save` per run (the store stayed locked); returns how many were spooled."""
    n = 0
    for result in results:
        write(db_path, "save", {"experiment_id": experiment_id, "replace": replace,
                                "result": result.to_dict()}, key=result.run_id)
        n += 1
    if n:
        log.warning("store %s is locked; %d run(s) spooled to %s (the next writer imports "
                    "them)", db_path, n, spool_dir(db_path))
    return n


def pending(db_path: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Spooled operations in write order; a file that does not parse yields None."""
    directory = spool_dir(db_path)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:      # imported meanwhile by another thread of this process
            continue
        except (OSError, ValueError):
            yield path, None
            continue
        ok = isinstance(doc, dict) and doc.get("format") == SPOOL_FORMAT
        yield path, doc if ok else None


def set_aside(path: Path) -> None:
    """Rename an unreadable spool file to `*.bad` so it is kept but not retried forever."""
    log.warning("store spool file %s cannot be read; renamed to %s.bad", path, path.name)
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + ".bad"))


def done(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def spooled_run_ids(db_path: Path) -> list[str]:
    """Run ids waiting in the spool (for a helpful "not found yet" message)."""
    out = []
    for _path, doc in pending(db_path):
        if doc and doc.get("op") == "save":
            result = doc.get("result")
            if isinstance(result, dict) and "run_id" in result:
                out.append(str(result["run_id"]))
    return out
