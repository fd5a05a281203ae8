"""A run as a table row, defined once: the columns of the store's `runs` table, of the analysis
frames and of the CSV/Parquet export (`RUN_COLUMNS`), a run's row (`run_row`), its histogram
buckets as rows (`bucket_columns`), and the percentile column names (`percentile_column`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from meshlab.results import RunResult, bucket_bounds_ns
from meshlab.units import NS_PER_US

# The percentiles analysis reports by default; a run's row carries these as columns.
DEFAULT_PS = (50.0, 90.0, 99.0, 99.9)
DEFAULT_FORMAT = "meshlab"           # the `format` of a run meshlab measured (not imported)


def percentile_column(p: float) -> str:
    """The column name of a percentile: 50 -> p50_us, 99.9 -> p999_us, 99.99 -> p9999_us."""
    return "p" + f"{float(p):g}".replace(".", "") + "_us"


@dataclass(frozen=True, slots=True)
class RunColumn:
    """One column of the runs table: its name, DuckDB type and meaning."""

    name: str
    type: str                  # DuckDB type: VARCHAR, DOUBLE, INTEGER, BIGINT, TIMESTAMP, JSON
    meaning: str
    required: bool = False     # NOT NULL in the store


def _c(name: str, type_: str, meaning: str, required: bool = False) -> RunColumn:
    return RunColumn(name, type_, meaning, required)


RUN_COLUMNS: tuple[RunColumn, ...] = (
    _c("run_id", "VARCHAR", "unique run id, sortable by start time", True),
    _c("experiment_id", "VARCHAR", "the experiment the run belongs to (NULL: a single run)"),
    _c("profile", "VARCHAR", "the profile that produced the run"),
    _c("mesh", "VARCHAR", "the mesh under test; 'none' is the baseline"),
    _c("runner", "VARCHAR", "the load runner (native, wrk, hey, ab, fortio...)", True),
    _c("runner_version", "VARCHAR", "the version the runner reported ('' unknown)", True),
    _c("environment", "VARCHAR", "where the run ran: direct, local, kubernetes"),
    _c("mode", "VARCHAR", "which sidecars were on the path (both, server, client...)"),
    _c("policy", "VARCHAR", "the traffic policy's name ('none': no policy)"),
    _c("data_plane", "VARCHAR", "the proxy kind on the path (envoy, nginx, haproxy, none)"),
    _c("mtls", "VARCHAR", "mutual TLS as the environment reported it"),
    _c("target", "VARCHAR", "the URL the load was sent to"),
    _c("rate_rps", "DOUBLE", "requested rate in requests/s; 0 = closed loop at max rate", True),
    _c("connections", "INTEGER", "concurrent connections of the load"),
    _c("protocol", "VARCHAR", "the load's HTTP protocol (http1)"),
    _c("duration_s", "DOUBLE", "the measured window in seconds (warm-up excluded)", True),
    _c("warmup_s", "DOUBLE", "warm-up before the measured window, in seconds"),
    _c("repeat", "INTEGER", "repeat number of the matrix point"),
    _c("run_index", "INTEGER", "index of the run in its profile's matrix"),
    _c("status", "VARCHAR", "how the run ended: completed, degraded, aborted, failed", True),
    _c("started_at", "TIMESTAMP", "start time (UTC)", True),
    _c("ended_at", "TIMESTAMP", "end time (UTC)", True),
    _c("achieved_rate_rps", "DOUBLE", "finished requests per second of the window", True),
    _c("requests", "BIGINT", "finished requests in the window", True),
    _c("errors", "BIGINT", "transport failures plus HTTP statuses >= 400", True),
    _c("error_rate", "DOUBLE", "errors / requests", True),
    _c("unsent_requests", "BIGINT", "open-loop requests due in the window that were never sent "
       "(counted in the corrected latency at their age at the window's end)", True),
    _c("bytes_received", "BIGINT", "response bytes received", True),
    *(_c(percentile_column(p), "DOUBLE",
         f"p{p:g} latency in us from the intended send time (the tool's own value for "
         f"fortio/Nighthawk imports)") for p in DEFAULT_PS),
    _c("min_us", "DOUBLE", "minimum latency in us"),
    _c("max_us", "DOUBLE", "maximum latency in us"),
    _c("mean_us", "DOUBLE", "mean latency in us"),
    _c("stdev_us", "DOUBLE", "standard deviation of latency in us"),
    _c("uncorrected_p50_us", "DOUBLE", "p50 service time in us (from the actual send)"),
    _c("uncorrected_p99_us", "DOUBLE", "p99 service time in us (from the actual send)"),
    _c("hostname", "VARCHAR", "the machine that ran the load"),
    _c("error", "VARCHAR", "why a failed run failed"),
    _c("format", "VARCHAR", "where the run came from: meshlab, or the imported format"),
    _c("warnings", "JSON", "warnings of the run (JSON list)", True),
    _c("labels", "JSON", "labels of the run and its experiment (JSON object)", True),
    _c("spec", "JSON", "the full spec that produced the run (secrets redacted)", True),
    _c("context", "JSON", "the full context the environment recorded", True),
    _c("host", "JSON", "the machine snapshot (JSON object)"),
)
RUN_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RUN_COLUMNS)
# The columns `RunResult.dimensions` fills: what runs are grouped, filtered and compared by.
DIMENSION_COLUMNS = ("profile", "mesh", "environment", "mode", "policy", "data_plane", "mtls",
                     "target", "rate_rps", "connections", "protocol", "warmup_s", "repeat",
                     "run_index", "labels")
BUCKET_COLUMNS = ("run_id", "kind", "bucket", "lower_us", "upper_us", "count")
HISTOGRAM_KINDS = ("latency", "service_time")


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _json(value: object) -> str:
    return json.dumps(value, default=str)


def run_row(result: RunResult, *, experiment_id: str | None = None,
            experiment_labels: Mapping[str, str] | None = None) -> dict[str, object]:
    """The row of a run: `RUN_COLUMN_NAMES` -> value. Times are aware UTC datetimes, missing
    values and NaN are None, nested values JSON text. The run's labels win over its
    experiment's."""
    d = result.dimensions
    lat = result.latency
    fmt = result.context.get("format")
    return {
        "run_id": result.run_id,
        "experiment_id": experiment_id,
        "profile": d.profile,
        "mesh": d.mesh,
        "runner": result.runner,
        "runner_version": result.runner_version,
        "environment": d.environment,
        "mode": d.mode,
        "policy": d.policy,
        "data_plane": d.data_plane,
        "mtls": d.mtls,
        "target": d.target,
        "rate_rps": d.rate_rps,
        "connections": d.connections,
        "protocol": d.protocol,
        "duration_s": float(result.duration_s),
        "warmup_s": d.warmup_s,
        "repeat": d.repeat,
        "run_index": d.run_index,
        "status": str(result.status),
        "started_at": _utc(result.started_at),
        "ended_at": _utc(result.ended_at),
        "achieved_rate_rps": float(result.achieved_rate_rps),
        "requests": int(result.requests),
        "errors": int(result.errors),
        "error_rate": float(result.error_rate),
        "unsent_requests": int(result.unsent_requests),
        "bytes_received": int(result.bytes_received),
        # the run's own percentiles: fortio/Nighthawk imports keep the tool's reported values
        # (RunResult.headline_percentile_us); the buckets keep the histogram for pooling
        **{percentile_column(p): _finite(result.headline_percentile_us(p)) for p in DEFAULT_PS},
        "min_us": _finite(lat.min_us),
        "max_us": _finite(lat.max_us),
        "mean_us": _finite(lat.mean_us),
        "stdev_us": _finite(lat.stdev_us),
        "uncorrected_p50_us": _finite(result.headline_percentile_us(50, kind="service_time")),
        "uncorrected_p99_us": _finite(result.headline_percentile_us(99, kind="service_time")),
        "hostname": result.host.hostname if result.host else None,
        "error": result.error,
        "format": str(fmt) if fmt else DEFAULT_FORMAT,
        "warnings": _json(list(result.warnings)),
        "labels": _json({**(experiment_labels or {}), **d.label_map}),
        "spec": _json(result.spec),
        "context": _json(result.context),
        "host": _json(result.host.to_dict()) if result.host else None,
    }


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def bucket_columns(results: Sequence[RunResult]) -> dict[str, npt.NDArray[np.generic]]:
    """The non-empty buckets of both histograms of every run as `BUCKET_COLUMNS` arrays
    (built column-wise in numpy: one run may hold thousands of buckets)."""
    keys: list[tuple[str, str]] = []
    sizes: list[int] = []
    idxs: list[npt.NDArray[np.int64]] = []
    counts: list[npt.NDArray[np.int64]] = []
    for r in results:
        for kind, h in zip(HISTOGRAM_KINDS, (r.latency, r.service_time), strict=True):
            idx = np.flatnonzero(h.counts).astype(np.int64)
            keys.append((r.run_id, kind))
            sizes.append(idx.size)
            idxs.append(idx)
            counts.append(np.asarray(h.counts[idx], dtype=np.int64))
    idx = np.concatenate(idxs) if idxs else np.zeros(0, dtype=np.int64)
    lower, upper = bucket_bounds_ns(idx)
    return {
        "run_id": np.repeat(np.array([k[0] for k in keys], dtype=object), sizes),
        "kind": np.repeat(np.array([k[1] for k in keys], dtype=object), sizes),
        "bucket": idx,
        "lower_us": np.asarray(lower, dtype=np.float64) / NS_PER_US,
        "upper_us": np.asarray(upper, dtype=np.float64) / NS_PER_US,
        "count": np.concatenate(counts) if counts else idx,
    }
