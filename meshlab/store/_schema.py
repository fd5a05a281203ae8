"""DuckDB schema of the meshlab store: table definitions, the schema version and its check.

Tables are plural snake_case keyed by `run_id`; timestamps are naive UTC `TIMESTAMP`s (a
`TIMESTAMPTZ` would need pytz to fetch); JSON columns hold JSON text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from meshlab.dimensions import DEFAULT_PROTOCOL
from meshlab.errors import StoreError
from meshlab.run_schema import DEFAULT_FORMAT, HISTOGRAM_KINDS, RUN_COLUMNS

# 1: the first store. 2: `runs` gains `protocol` and `format`. 3: `runs` gains
# `unsent_requests` (open-loop requests that came due and were never sent; 0 for older runs).
# An older file is migrated when opened writable, and read through a view of the new columns
# when opened read-only.
SCHEMA_VERSION = 3

KINDS = HISTOGRAM_KINDS

# Child tables holding rows of one run each; `delete_run` and the "no half run" tests use it.
RUN_TABLES = ("run_histograms", "run_buckets", "run_status_codes", "run_errors",
              "run_timeseries", "run_telemetry", "run_raw")


def _runs_ddl() -> str:
    """The `runs` table: the columns of `meshlab.run_schema`, plus when the row was saved."""
    cols = [f"{c.name} {c.type}" + (" PRIMARY KEY" if c.name == "run_id" else
                                    " NOT NULL" if c.required else "") for c in RUN_COLUMNS]
    return ("CREATE TABLE IF NOT EXISTS runs (\n        "
            + ",\n        ".join([*cols, "saved_at TIMESTAMP NOT NULL"]) + ")")


# The `runs` columns each version added, with the SQL that fills them for rows stored before:
# version 1 runs were all HTTP/1.1 load; `format` mirrors run_schema.run_row.
_ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    2: (("protocol", "VARCHAR", f"'{DEFAULT_PROTOCOL}'"),
        ("format", "VARCHAR", "coalesce(nullif(json_extract_string(context, '$.format'), ''), "
                              f"'{DEFAULT_FORMAT}')")),
    3: (("unsent_requests", "BIGINT", "0"),),
}

_DDL = (
    """CREATE TABLE IF NOT EXISTS meta (
        schema_version INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL,
        meshlab_version VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS experiments (
        experiment_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        description VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        labels JSON NOT NULL,
        profile JSON NOT NULL)""",
    # who runs a `running` experiment: opening a store marks one whose owner is gone aborted
    """CREATE TABLE IF NOT EXISTS experiment_owners (
        experiment_id VARCHAR PRIMARY KEY,
        pid INTEGER NOT NULL,
        host VARCHAR NOT NULL,
        process_started_s DOUBLE NOT NULL)""",
    _runs_ddl(),
    """CREATE TABLE IF NOT EXISTS run_histograms (
        run_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        total BIGINT NOT NULL,
        min_ns BIGINT NOT NULL,
        max_ns BIGINT NOT NULL,
        sum_ns DOUBLE NOT NULL,
        sumsq_ns DOUBLE NOT NULL,
        overflow BIGINT NOT NULL,
        PRIMARY KEY (run_id, kind))""",
    """CREATE TABLE IF NOT EXISTS run_buckets (
        run_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        bucket SMALLINT NOT NULL,
        lower_us DOUBLE NOT NULL,
        upper_us DOUBLE NOT NULL,
        count BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS run_status_codes (
        run_id VARCHAR NOT NULL,
        code INTEGER NOT NULL,
        count BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS run_errors (
        run_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        count BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS run_timeseries (
        run_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        second INTEGER NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        p50_us DOUBLE,
        p99_us DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS run_telemetry (
        run_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        t_s DOUBLE NOT NULL,
        source VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS run_raw (
        run_id VARCHAR PRIMARY KEY,
        format VARCHAR,
        document VARCHAR NOT NULL)""",
)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version recorded in `meta`, or None when the file holds no meshlab store."""
    if not _has_table(con, "meta"):
        return None
    row = con.execute("SELECT max(schema_version) FROM meta").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path | str, *, read_only: bool) -> int:
    """Check the stored schema version and, when writable, create every missing table and
    migrate an older store; returns the version of the file as it is now."""
    version = stored_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has meshlab store schema version {version}, newer than the version "
            f"{SCHEMA_VERSION} this meshlab understands; upgrade meshlab "
            f"(pip install -U meshlab) or use another store path")
    if read_only:
        if version is None:
            raise StoreError(f"{path} is a DuckDB file but not a meshlab store (no meta table); "
                             f"pass the path of a meshlab store")
        return version
    from meshlab._version import __version__

    con.execute("BEGIN TRANSACTION")
    try:
        for ddl in _DDL:
            con.execute(ddl)
        if version is None or version < SCHEMA_VERSION:
            if version is not None:
                _migrate(con, version)
            con.execute("INSERT INTO meta VALUES (?, ?, ?)",
                        [SCHEMA_VERSION, datetime.now(UTC).replace(tzinfo=None), __version__])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Bring the tables of a store at `version` to SCHEMA_VERSION (inside the caller's
    transaction): add the columns later versions added and fill them for the stored rows."""
    for added in range(version + 1, SCHEMA_VERSION + 1):
        for name, type_, fill in _ADDED_COLUMNS.get(added, ()):
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} {type_}")
            con.execute(f"UPDATE runs SET {name} = {fill}")


def read_view(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """On a read-only connection to an older store: a temporary `runs` view that adds the
    columns of later versions, so queries read every store alike (the file is not changed)."""
    added = [c for v in range(version + 1, SCHEMA_VERSION + 1) for c in _ADDED_COLUMNS.get(v, ())]
    if not added:
        return
    (db,) = con.execute("SELECT current_database()").fetchone() or ("",)
    extra = ", ".join(f"CAST({fill} AS {type_}) AS {name}" for name, type_, fill in added)
    con.execute(f'CREATE OR REPLACE TEMP VIEW runs AS SELECT *, {extra} FROM "{db}".main.runs')


def create_empty(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema in a fresh (in-memory) database, for read-only views of no file."""
    for ddl in _DDL:
        con.execute(ddl)
