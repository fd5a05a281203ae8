"""Opening the store's DuckDB file: one writer process at a time, so a locked file is retried
with exponential backoff and jitter; DuckDB errors become StoreErrors naming the path.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import duckdb

from meshlab.errors import StoreError

DEFAULT_PATH = "data/meshlab.duckdb"

# "Could not set lock on file ...: Conflicting lock is held in ... (PID 6606)" from another
# process; "different configuration" when this process has the file open read-only and
# read-write at once (two Store objects used from two threads).
_LOCK_MARKERS = ("could not set lock", "conflicting lock", "different configuration",
                 "already attached")
# Two threads connecting to one file at once race in DuckDB's instance cache ("... is already
# attached by database"): connect attempts of this process go one at a time.
_CONNECT_LOCK = threading.Lock()
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.25


class StoreLocked(StoreError):
    """Another process held the file lock for longer than the store's `lock_timeout_s`."""


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(m in text for m in _LOCK_MARKERS)


def open_connection(path: Path, *, read_only: bool,
                    timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Connect to `path`, retrying while another process holds the lock, up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = _FIRST_DELAY_S
    while True:
        try:
            with _CONNECT_LOCK:
                return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            text = str(exc)
            if not is_lock_error(exc):
                if "not a valid duckdb database" in text.lower():
                    raise StoreError(f"{path} is not a DuckDB database file; pass the path of "
                                     f"a meshlab store (default {DEFAULT_PATH})") from exc
                raise StoreError(f"cannot open store {path}: {text}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreLocked(
                    f"store {path} stayed locked by another process for {timeout_s:g} s "
                    f"({text.splitlines()[0]}); close the other meshlab session or notebook "
                    f"holding it, or raise lock_timeout_s") from exc
            # Jitter keeps two waiting writers from retrying in lockstep.
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2.0, _MAX_DELAY_S)


def check_header(path: Path) -> None:
    """A StoreError naming `path` when it exists but is not a DuckDB file (checked without
    taking the lock: the magic bytes `DUCK` sit at offset 8)."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreError(f"store path {path} is a directory; pass a file path such as "
                         f"{path / 'meshlab.duckdb'}") from None
    except OSError as exc:
        raise StoreError(f"cannot read store {path}: {exc.strerror}") from exc
    if head[8:12] != b"DUCK":
        raise StoreError(f"{path} is not a DuckDB database file; pass the path of a meshlab "
                         f"store (default {DEFAULT_PATH})")
