"""Pure result data: the mergeable log-linear latency histogram and the `RunResult` of one run.

A histogram keeps integer-nanosecond values in 2,048 HDR-style buckets (exact below 128 ns, then
64 linear sub-buckets per power of two), so any recorded value from 1 us to 100 s is reported
within 0.8 % relative error, and two histograms merge by adding their counts.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from meshlab.dimensions import RunDimensions
from meshlab.units import NS_PER_US

# --- histogram -------------------------------------------------------------------------------

SUB_BUCKET_BITS = 7                      # 2**7 = 128 exact values, then 64 buckets per octave
_SUB = 1 << SUB_BUCKET_BITS              # 128
_HALF = _SUB >> 1                        # 64
MAX_OCTAVE = 36                          # 2**37 ns ~ 137 s > 100 s
BUCKET_COUNT = _SUB + (MAX_OCTAVE - SUB_BUCKET_BITS + 1) * _HALF   # 2048
MAX_TRACKABLE_NS = (1 << (MAX_OCTAVE + 1)) - 1

IntArray = npt.NDArray[np.int64]


def bucket_index_ns(values_ns: npt.ArrayLike) -> IntArray:
    """Vectorised bucket index of integer-nanosecond values (clamped to the trackable range)."""
    v = np.clip(np.asarray(values_ns, dtype=np.int64), 0, MAX_TRACKABLE_NS)
    _, exp = np.frexp(v.astype(np.float64))
    octave = exp.astype(np.int64) - 1                        # floor(log2(v)) for v >= 1
    shift = np.maximum(octave - (SUB_BUCKET_BITS - 1), 0)
    sub = np.right_shift(v, shift)                           # in [64, 128) when v >= 128
    linear = v < _SUB
    idx = _SUB + (octave - SUB_BUCKET_BITS) * _HALF + (sub - _HALF)
    return cast(IntArray, np.where(linear, v, idx))


def bucket_bounds_ns(index: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Lower (inclusive) and upper (exclusive) nanosecond bounds of bucket indexes."""
    i = np.asarray(index, dtype=np.int64)
    linear = i < _SUB
    j = np.maximum(i - _SUB, 0)
    octave = SUB_BUCKET_BITS + j // _HALF
    sub = _HALF + j % _HALF
    width = np.left_shift(np.int64(1), octave - (SUB_BUCKET_BITS - 1))
    lower = np.where(linear, i, sub * width)
    upper = np.where(linear, i + 1, (sub + 1) * width)
    return cast(IntArray, lower), cast(IntArray, upper)


@dataclass(slots=True)
class Histogram:
    """Mergeable latency histogram over integer nanoseconds; reports in microseconds.

    Record in bulk with `record_ns(array)`: binning is a handful of numpy calls, well under a
    microsecond per value. Exact min, max, sum and sum of squares are kept next to the counts.
    """

    counts: IntArray = field(default_factory=lambda: np.zeros(BUCKET_COUNT, dtype=np.int64))
    total: int = 0
    min_ns: int = 0
    max_ns: int = 0
    sum_ns: float = 0.0
    sumsq_ns: float = 0.0
    overflow: int = 0                   # values above 100+ s, clamped into the top bucket

    # recording ---------------------------------------------------------------------------
    def record_ns(self, values_ns: npt.ArrayLike) -> None:
        """Record integer-nanosecond values (any array-like); negatives count as 0."""
        v = np.asarray(values_ns, dtype=np.int64).ravel()
        if v.size == 0:
            return
        v = np.maximum(v, 0)
        self.counts += np.bincount(bucket_index_ns(v), minlength=BUCKET_COUNT)[:BUCKET_COUNT]
        vmin, vmax = int(v.min()), int(v.max())
        self.min_ns = vmin if self.total == 0 else min(self.min_ns, vmin)
        self.max_ns = max(self.max_ns, vmax)
        self.overflow += int(np.count_nonzero(v > MAX_TRACKABLE_NS))
        vf = v.astype(np.float64)
        self.sum_ns += float(vf.sum())
        # einsum, not np.dot: above ~10k values dot hands the work to OpenBLAS's thread pool,
        # whose spinning threads cost ~12 % of a core at 120k req/s in the native runner.
        self.sumsq_ns += float(np.einsum("i,i->", vf, vf))
        self.total += int(v.size)

    def record_us(self, values_us: npt.ArrayLike) -> None:
        """Record microsecond values (floats allowed)."""
        us = np.asarray(values_us, dtype=np.float64)
        self.record_ns(np.rint(us * NS_PER_US).astype(np.int64))

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts into this one (in place)."""
        if other.total == 0:
            return
        self.counts += other.counts
        self.min_ns = other.min_ns if self.total == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.sum_ns += other.sum_ns
        self.sumsq_ns += other.sumsq_ns
        self.overflow += other.overflow
        self.total += other.total

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        """A new histogram holding the sum of `histograms`."""
        out = cls()
        for h in histograms:
            out.merge(h)
        return out

    def copy(self) -> Histogram:
        return dataclasses.replace(self, counts=self.counts.copy())

    # reading -----------------------------------------------------------------------------
    def percentile_us(self, p: float) -> float:
        """The p-th percentile (0-100) in microseconds: the midpoint of the bucket holding it,
        clamped to the exact min and max. NaN when empty."""
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        if self.total == 0:
            return math.nan
        if p == 0.0:
            return self.min_ns / NS_PER_US
        if p == 100.0:
            return self.max_ns / NS_PER_US
        rank = math.ceil(p / 100.0 * self.total)
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank, side="left"))
        lo, hi = bucket_bounds_ns(i)
        mid = (float(lo) + float(hi) - 1.0) / 2.0
        return min(max(mid, self.min_ns), self.max_ns) / NS_PER_US

    def percentiles_us(self, ps: Sequence[float]) -> dict[float, float]:
        return {p: self.percentile_us(p) for p in ps}

    @property
    def min_us(self) -> float:
        return self.min_ns / NS_PER_US if self.total else math.nan

    @property
    def max_us(self) -> float:
        return self.max_ns / NS_PER_US if self.total else math.nan

    @property
    def mean_us(self) -> float:
        return self.sum_ns / self.total / NS_PER_US if self.total else math.nan

    @property
    def stdev_us(self) -> float:
        if self.total < 2:
            return 0.0 if self.total else math.nan
        mean = self.sum_ns / self.total
        var = max(self.sumsq_ns / self.total - mean * mean, 0.0)
        return math.sqrt(var) / NS_PER_US

    def nonzero_buckets(self) -> list[tuple[int, int]]:
        """(bucket index, count) of every non-empty bucket, ascending."""
        idx = np.flatnonzero(self.counts)
        return [(int(i), int(self.counts[i])) for i in idx]

    @classmethod
    def from_buckets(
        cls,
        buckets: Iterable[tuple[int, int]],
        *,
        min_ns: int | None = None,
        max_ns: int | None = None,
        sum_ns: float | None = None,
        sumsq_ns: float | None = None,
    ) -> Histogram:
        """Rebuild from stored (index, count) pairs; missing stats are estimated from midpoints."""
        h = cls()
        for i, c in buckets:
            h.counts[int(i)] += int(c)
        h.total = int(h.counts.sum())
        if h.total == 0:
            return h
        nz = np.flatnonzero(h.counts)
        lo, hi = bucket_bounds_ns(nz)
        mids = (lo.astype(np.float64) + hi.astype(np.float64) - 1.0) / 2.0
        w = h.counts[nz].astype(np.float64)
        h.min_ns = int(min_ns) if min_ns is not None else int(lo[0])
        h.max_ns = int(max_ns) if max_ns is not None else int(hi[-1] - 1)
        h.sum_ns = float(sum_ns) if sum_ns is not None else float(np.dot(mids, w))
        h.sumsq_ns = float(sumsq_ns) if sumsq_ns is not None else float(np.dot(mids * mids, w))
        return h

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": self.nonzero_buckets(),
            "total": self.total,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
            "sum_ns": self.sum_ns,
            "sumsq_ns": self.sumsq_ns,
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Histogram:
        h = cls.from_buckets(
            [(int(i), int(c)) for i, c in d.get("buckets", [])],
            min_ns=d.get("min_ns"),
            max_ns=d.get("max_ns"),
            sum_ns=d.get("sum_ns"),
            sumsq_ns=d.get("sumsq_ns"),
        )
        h.overflow = int(d.get("overflow", 0))
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (
            self.total == other.total
            and bool(np.array_equal(self.counts, other.counts))
            and self.min_ns == other.min_ns
            and self.max_ns == other.max_ns
        )


# --- run results -----------------------------------------------------------------------------

class RunStatus(enum.StrEnum):
    """How a run ended. Target failures do not fail a run: they are counted in it."""

    COMPLETED = "completed"
    ABORTED = "aborted"        # cancelled (Ctrl-C, kernel interrupt, task.cancel()); partial data
    FAILED = "failed"          # meshlab or a tool it drives failed, or no response succeeded
    DEGRADED = "degraded"      # measured, but too many errors or the requested rate not held


class ErrorKind(enum.StrEnum):
    """Transport-level failure kinds counted per run (HTTP statuses are counted separately)."""

    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    RESET = "reset"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    CLOSED = "closed"          # peer closed the connection before a complete response
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TimeSeriesPoint:
    """One second of a run (second 0 = first second after warm-up)."""

    second: int
    requests: int
    errors: int
    p50_us: float
    p99_us: float


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One sample of a metric from a source (a proxy process, Envoy admin, Prometheus)."""

    t_s: float                 # seconds since run start
    source: str                # e.g. "envoy:frontend-sidecar", "prometheus"
    metric: str                # e.g. "cpu_percent", "rss_bytes", "envoy.upstream_rq_retry"
    value: float


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """The machine that produced a run."""

    hostname: str
    cpu_model: str
    cores: int
    kernel: str
    python: str
    meshlab_version: str
    tools: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tools"] = dict(self.tools)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostSnapshot:
        return cls(
            hostname=str(d.get("hostname", "")),
            cpu_model=str(d.get("cpu_model", "")),
            cores=int(d.get("cores", 0)),
            kernel=str(d.get("kernel", "")),
            python=str(d.get("python", "")),
            meshlab_version=str(d.get("meshlab_version", "")),
            tools=dict(d.get("tools", {})),
        )


SUMMARY_PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)
# context keys of a run whose tool reported its own percentiles (fortio's interpolation inside
# its buckets, which a log-linear histogram cannot reproduce): {"50": us, ...} and the
# histogram count they describe (a merged or re-recorded histogram no longer matches it).
HEADLINE_PERCENTILES_KEY = "headline_percentiles_us"
HEADLINE_COUNT_KEY = "headline_percentiles_count"


@dataclass(slots=True)
class RunResult:
    """Everything one run produced, echoing the spec (a redacted dict) that produced it.

    `latency` is measured from each request's intended send time (corrected for coordinated
    omission in open loop; equal to `service_time` in closed loop). `service_time` is measured
    from the actual send. `requests` counts every finished attempt in the measured window;
    `errors` counts transport failures plus HTTP responses with status >= 400.
    `unsent_requests` (open loop) came due within the window and were never sent; `latency`
    holds each of them at its age at the end of the window (a lower bound).
    """

    run_id: str
    spec: dict[str, Any]
    status: RunStatus
    started_at: datetime
    ended_at: datetime
    duration_s: float                  # the measured window (warm-up excluded)
    requested_rate_rps: float          # 0 = closed loop at max rate
    achieved_rate_rps: float
    requests: int
    errors: int
    status_codes: dict[int, int]
    error_kinds: dict[str, int]
    latency: Histogram
    service_time: Histogram
    timeseries: list[TimeSeriesPoint] = field(default_factory=list)
    host: HostSnapshot | None = None
    runner: str = "native"
    runner_version: str = ""
    context: dict[str, Any] = field(default_factory=dict)   # environment, mesh, topology...
    telemetry: list[TelemetrySample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    raw: dict[str, Any] | None = None  # original document for imported runs
    bytes_received: int = 0
    unsent_requests: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def dimensions(self) -> RunDimensions:
        """The run's typed dimensions (mesh, mode, rate, ...), read from `spec` and `context`:
        code reads dimensions here, never out of those dicts."""
        return RunDimensions.from_record(self.spec, self.context,
                                         rate_rps=self.requested_rate_rps)

    def headline_percentile_us(self, p: float, *, kind: str = "latency") -> float:
        """This run's p-th percentile as its tool reported it: `context[HEADLINE_PERCENTILES_KEY]`
        when the run carries one for `p` (fortio and Nighthawk imports: fortio's own
        interpolated value) and it still describes the histogram, else the histogram's
        percentile. `service_time` uses it only when it is the same histogram as `latency`.
        Merged and pooled percentiles always come from the histograms."""
        if kind not in ("latency", "service_time"):
            raise ValueError(f"kind must be 'latency' or 'service_time', got {kind!r}")
        h = self.latency if kind == "latency" else self.service_time
        table = self.context.get(HEADLINE_PERCENTILES_KEY)
        if (isinstance(table, Mapping) and self.context.get(HEADLINE_COUNT_KEY) == h.total
                and (kind == "latency" or self.service_time == self.latency)):
            v = table.get(f"{p:g}")
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
        return h.percentile_us(p)

    def summary(self) -> dict[str, Any]:
        """The flat summary `meshlab run --json` prints (percentiles from the corrected data;
        see `headline_percentile_us`)."""
        lat = self.latency
        return {
            "run_id": self.run_id,
            "status": str(self.status),
            "runner": self.runner,
            "requested_rate_rps": self.requested_rate_rps,
            "achieved_rate_rps": round(self.achieved_rate_rps, 3),
            "connections": self.dimensions.connections,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p50_us": _num(self.headline_percentile_us(50)),
            "p90_us": _num(self.headline_percentile_us(90)),
            "p99_us": _num(self.headline_percentile_us(99)),
            "p999_us": _num(self.headline_percentile_us(99.9)),
            "max_us": _num(lat.max_us),
            "mean_us": _num(lat.mean_us),
            "uncorrected_p50_us": _num(self.headline_percentile_us(50, kind="service_time")),
            "uncorrected_p99_us": _num(self.headline_percentile_us(99, kind="service_time")),
            "status_codes": {str(k): v for k, v in sorted(self.status_codes.items())},
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "warnings": list(self.warnings),
            "unsent_requests": self.unsent_requests,
            "slo": self.context.get("slo"),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict holding everything (the spool and export format)."""
        return {
            "run_id": self.run_id,
            "spec": self.spec,
            "status": str(self.status),
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration_s": self.duration_s,
            "requested_rate_rps": self.requested_rate_rps,
            "achieved_rate_rps": self.achieved_rate_rps,
            "requests": self.requests,
            "errors": self.errors,
            "status_codes": {str(k): v for k, v in self.status_codes.items()},
            "error_kinds": dict(self.error_kinds),
            "latency": self.latency.to_dict(),
            "service_time": self.service_time.to_dict(),
            "timeseries": [dataclasses.asdict(p) for p in self.timeseries],
            "host": self.host.to_dict() if self.host else None,
            "runner": self.runner,
            "runner_version": self.runner_version,
            "context": self.context,
            "telemetry": [dataclasses.asdict(t) for t in self.telemetry],
            "warnings": list(self.warnings),
            "error": self.error,
            "raw": self.raw,
            "bytes_received": self.bytes_received,
            "unsent_requests": self.unsent_requests,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(
            run_id=str(d["run_id"]),
            spec=dict(d.get("spec", {})),
            status=RunStatus(d["status"]),
            started_at=_dt(d["started_at"]),
            ended_at=_dt(d["ended_at"]),
            duration_s=float(d["duration_s"]),
            requested_rate_rps=float(d["requested_rate_rps"]),
            achieved_rate_rps=float(d["achieved_rate_rps"]),
            requests=int(d["requests"]),
            errors=int(d["errors"]),
            status_codes={int(k): int(v) for k, v in d.get("status_codes", {}).items()},
            error_kinds={str(k): int(v) for k, v in d.get("error_kinds", {}).items()},
            latency=Histogram.from_dict(d["latency"]),
            service_time=Histogram.from_dict(d["service_time"]),
            timeseries=[TimeSeriesPoint(**p) for p in d.get("timeseries", [])],
            host=HostSnapshot.from_dict(d["host"]) if d.get("host") else None,
            runner=str(d.get("runner", "native")),
            runner_version=str(d.get("runner_version", "")),
            context=dict(d.get("context", {})),
            telemetry=[TelemetrySample(**t) for t in d.get("telemetry", [])],
            warnings=list(d.get("warnings", [])),
            error=d.get("error"),
            raw=d.get("raw"),
            bytes_received=int(d.get("bytes_received", 0)),
            unsent_requests=int(d.get("unsent_requests", 0)),
        )


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)


def _dt(x: str | datetime) -> datetime:
    if isinstance(x, datetime):
        return x if x.tzinfo else x.replace(tzinfo=UTC)
    d = datetime.fromisoformat(x)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def new_run_id() -> str:
    """A sortable unique run id: UTC timestamp plus random suffix (`20261122T024131-3f9a1c`)."""
    import secrets

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
