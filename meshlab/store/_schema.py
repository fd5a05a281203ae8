"""DuckDB schema of the meshlab store: table definitions, the schema version and its check.

Tables are plural snake_case keyed by `run_id`; timestamps are naive UTC `TIMESTAMP`s (a
`TIMESTAMPTZ` would need pytz to fetch); JSON columns hold JSON text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from meshlab.errors import StoreError

SCHEMA_VERSION = 1

KINDS = ("latency", "service_time")

# Child tables holding rows of one run each; `delete_run` and the "no half run" tests use it.
RUN_TABLES = ("run_histograms", "run_buckets", "run_status_codes", "run_errors",
              "run_timeseries", "run_telemetry", "run_raw")

DIMENSIONS = ("environment", "mode", "policy", "data_plane", "mtls")

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
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,
        experiment_id VARCHAR,
        profile VARCHAR,
        mesh VARCHAR,
        runner VARCHAR NOT NULL,
        runner_version VARCHAR NOT NULL,
        environment VARCHAR,
        mode VARCHAR,
        policy VARCHAR,
        data_plane VARCHAR,
        mtls VARCHAR,
        target VARCHAR,
        rate_rps DOUBLE NOT NULL,
        connections INTEGER,
        duration_s DOUBLE NOT NULL,
        warmup_s DOUBLE,
        repeat INTEGER,
        run_index INTEGER,
        status VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP NOT NULL,
        achieved_rate_rps DOUBLE NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        error_rate DOUBLE NOT NULL,
        bytes_received BIGINT NOT NULL,
        p50_us DOUBLE,
        p90_us DOUBLE,
        p99_us DOUBLE,
        p999_us DOUBLE,
        min_us DOUBLE,
        max_us DOUBLE,
        mean_us DOUBLE,
        stdev_us DOUBLE,
        uncorrected_p50_us DOUBLE,
        uncorrected_p99_us DOUBLE,
        hostname VARCHAR,
        error VARCHAR,
        warnings JSON NOT NULL,
        labels JSON NOT NULL,
        spec JSON NOT NULL,
        context JSON NOT NULL,
        host JSON,
        saved_at TIMESTAMP NOT NULL)""",
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


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path | str, *, read_only: bool) -> None:
    """Check the stored schema version and, when writable, create every missing table."""
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
        return
    from meshlab._version import __version__

    con.execute("BEGIN TRANSACTION")
    try:
        for ddl in _DDL:
            con.execute(ddl)
        if version is None:
            con.execute("INSERT INTO meta VALUES (?, ?, ?)",
                        [SCHEMA_VERSION, datetime.now(UTC).replace(tzinfo=None), __version__])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def create_empty(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema in a fresh (in-memory) database, for read-only views of no file."""
    for ddl in _DDL:
        con.execute(ddl)
