"""k6's end-of-test summary JSON (`k6 run --summary-export=FILE`, or the `data` object a script's
`handleSummary` writes), read once for both meshlab's k6 runner and `meshlab import`: counts,
percentile points and the latency histogram rebuilt from them (`percentiles_only`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from meshlab.formats._doc import as_map, count, fail, num
from meshlab.formats.fortio_histogram import (
    FortioBucket,
    FortioHistogramData,
    percentile_key,
    set_headline_percentiles,
)
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.wire import GRPC_CODES

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERCENTILES_ONLY = ("k6 reports percentiles only ({points}): the histogram is rebuilt from them")
# k6's `error_code` tag on a failed request -> meshlab's error kind (k6's documented codes)
ERROR_CODES = {1050: "timeout", 1211: "connect_timeout", 1212: "connect_refused",
               1220: "reset"}
_TRENDS = ("http_req_duration", "grpc_req_duration")
_STAT = re.compile(r"^p\((\d+(?:\.\d+)?)\)$")
_STATUS_TAG = re.compile(r"^http_reqs\{status:(\d+)\}$")
_ERROR_TAG = re.compile(r"^http_reqs\{error_code:(\d+)\}$")
_GRPC_TAG = re.compile(r"^grpc_req_duration\{status:(\d+)\}$")


@dataclass(frozen=True, slots=True)
class K6Summary:
    """What one k6 summary says about its run: counts as meshlab counts them, and the request
    durations as k6 keeps them (percentile points, in microseconds, non-decreasing)."""

    grpc: bool
    duration_s: float
    requests: int
    errors: int
    status_codes: dict[int, int]
    error_kinds: dict[str, int]
    points_us: tuple[tuple[float, float], ...]    # (percent 0..100, us); 0 = min, 100 = max
    timed: int                  # the values the histogram holds (responses, when tagged)
    mean_us: float | None
    dropped_iterations: int
    vus_max: int
    bytes_received: int
    warnings: tuple[str, ...]   # what this summary cannot tell

    @property
    def percentiles_warning(self) -> str:
        names = ", ".join("min" if p == 0 else "max" if p == 100 else f"p{p:g}"
                          for p, _ in self.points_us)
        return PERCENTILES_ONLY.format(points=names)


def is_k6_summary(doc: object) -> bool:
    """k6's summary: `metrics` (and `root_group`), with a request-duration trend or counter."""
    if not isinstance(doc, Mapping) or "root_group" not in doc:
        return False
    metrics = doc.get("metrics")
    return isinstance(metrics, Mapping) and any(
        k in metrics for k in (*_TRENDS, "http_reqs", "iterations"))


def _values(metrics: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A metric's values in either shape: `{"type": ..., "values": {...}}` (handleSummary) or
    the values themselves (--summary-export)."""
    if name not in metrics:
        return None
    m = as_map(metrics[name], f"metrics.{name}")
    if "values" in m:
        return as_map(m["values"], f"metrics.{name}.values")
    return m


def _count(metrics: Mapping[str, Any], name: str) -> int | None:
    v = _values(metrics, name)
    if v is None or v.get("count") is None:
        return None
    return count(v["count"], f"metrics.{name}.count")


def _tagged(metrics: Mapping[str, Any], tag: re.Pattern[str]) -> dict[int, int] | None:
    """{tag value: count} of the per-tag submetrics `tag` matches (zero counts kept), or None
    when the summary holds none (k6 writes a submetric only when a threshold names it)."""
    out: dict[int, int] | None = None
    for key in metrics:
        m = tag.match(str(key))
        if m:
            out = out if out is not None else {}
            out[int(m.group(1))] = _count(metrics, str(key)) or 0
    return out


def _points_us(trend: Mapping[str, Any], path: str) -> list[tuple[float, float]]:
    """(percent, us) from k6's trend stats: min, med, p(N), max (milliseconds)."""
    out = []
    for key, value in trend.items():
        m = _STAT.match(key)
        p = (0.0 if key == "min" else 50.0 if key == "med" else 100.0 if key == "max"
             else float(m.group(1)) if m else None)
        if p is not None and p <= 100.0:
            out.append((p, num(value, f"{path}.{key}", minimum=0) * 1e3))
    out.sort()
    # k6 interpolates each percentile on its own: keep the quantile function non-decreasing
    return [(p, max(v, out[i - 1][1] if i else v)) for i, (p, v) in enumerate(out)]


def _rebuild(points: list[tuple[float, float]], n: int, mean_us: float | None
             ) -> tuple[Histogram, FortioHistogramData | None]:
    """`n` values spread uniformly between successive percentile points (a linear quantile
    function through them); nothing is rebuilt from fewer than two points."""
    if n <= 0 or len(points) < 2:
        return Histogram(), None
    if points[0][0] > 0:
        points = [(0.0, points[0][1]), *points]
    buckets, done = [], 0
    for (_pa, va), (pb, vb) in itertools.pairwise(points):
        upto = round(n * pb / 100.0)
        if upto > done:
            buckets.append(FortioBucket(va / 1e6, vb / 1e6, pb, upto - done))
            done = upto
    if done < n:                     # the highest point is below p100 (no max reported)
        v = points[-1][1] / 1e6
        buckets.append(FortioBucket(v, v, 100.0, n - done))
    mean_s = (mean_us or 0.0) / 1e6
    hd = FortioHistogramData(count=n, min=points[0][1] / 1e6, max=points[-1][1] / 1e6,
                             sum=mean_s * n, avg=mean_s, stddev=0.0, data=tuple(buckets),
                             percentiles=())
    h = hd.to_histogram()
    return Histogram.from_buckets(h.nonzero_buckets(), min_ns=h.min_ns, max_ns=h.max_ns,
                                  sum_ns=h.sum_ns if mean_us is not None else None), hd


def _duration_s(d: Mapping[str, Any], metrics: Mapping[str, Any]) -> float:
    state = d.get("state")
    if state is not None:
        st = as_map(state, "state")
        if st.get("testRunDurationMs") is not None:
            return num(st["testRunDurationMs"], "state.testRunDurationMs", minimum=0) / 1e3
    # --summary-export has no state: a counter's count over its rate is the test's duration
    for name in ("http_reqs", "iterations"):
        v = _values(metrics, name)
        if v is not None and v.get("count") is not None and v.get("rate") is not None:
            rate = num(v["rate"], f"metrics.{name}.rate", minimum=0)
            n = count(v["count"], f"metrics.{name}.count")
            return n / rate if rate > 0 else 0.0
    fail("state.testRunDurationMs", "missing, and no http_reqs or iterations counter to "
         "derive the duration from", d.get("state"))


_Counts = tuple[int, int, dict[int, int], dict[str, int], int | None]


def _grpc_counts(metrics: Mapping[str, Any], trend: Mapping[str, Any] | None,
                 warnings: list[str]) -> _Counts:
    """(requests, errors, status codes, error kinds, responses) of a gRPC summary."""
    tagged = _tagged(metrics, _GRPC_TAG)
    failed = _count(metrics, "meshlab_call_errors") or 0     # meshlab's script: no response
    if tagged is not None or failed:
        codes: dict[int, int] = {}
        kinds: dict[str, int] = {}
        for c, n in sorted((tagged or {}).items()):
            if n and c == 0:
                codes[200] = n
            elif n:
                kinds[f"grpc_{GRPC_CODES[c] if c < len(GRPC_CODES) else c}"] = n
        responses = sum(codes.values()) + sum(kinds.values())
        if failed:
            kinds["other"] = failed
        requests = responses + failed
        return requests, requests - codes.get(200, 0), codes, kinds, responses
    calls = trend.get("count") if trend is not None else None
    if calls is not None:
        requests = count(calls, "metrics.grpc_req_duration.count")
    else:
        iterations = _count(metrics, "iterations")
        if iterations is None:
            fail("metrics.iterations", "missing; a gRPC summary without a call count needs "
                 "the iterations counter")
        requests = iterations
        warnings.append("k6's gRPC summary holds no call count: one call per iteration is "
                        "assumed")
    warnings.append("k6's summary does not count gRPC status codes (tag each call's status "
                    "in a threshold, as meshlab's k6 runner does): errors are not known "
                    "(recorded as 0) and status_codes is empty")
    return requests, 0, {}, {}, None


def _http_counts(metrics: Mapping[str, Any], warnings: list[str]) -> _Counts:
    """(requests, errors, status codes, error kinds, responses) of an HTTP summary."""
    requests = _count(metrics, "http_reqs")
    if requests is None:
        fail("metrics.http_reqs.count", "missing; k6 counts every HTTP request there")
    tagged = _tagged(metrics, _STATUS_TAG)
    if tagged is not None:            # meshlab's own script tags each status (0: no response)
        codes = {c: n for c, n in sorted(tagged.items()) if n and c}
        responses = sum(codes.values())
        transport = requests - responses
        if transport < 0:
            fail("metrics.http_reqs.count", f"{requests} requests but the status-tagged "
                 f"counters hold {responses} responses", requests)
        kinds: dict[str, int] = {}
        for code, n in sorted((_tagged(metrics, _ERROR_TAG) or {}).items()):
            if n and code in ERROR_CODES:
                kinds[ERROR_CODES[code]] = kinds.get(ERROR_CODES[code], 0) + n
        if transport - sum(kinds.values()) > 0:
            kinds["other"] = transport - sum(kinds.values())
        return (requests, transport + sum(n for c, n in codes.items() if c >= 400), codes,
                kinds, responses)
    failed = _values(metrics, "http_req_failed")
    if failed is None:
        fail("metrics.http_req_failed", "missing; without it (or status-tagged http_reqs) "
             "failed requests cannot be told from good ones")
    # a Rate metric: `passes` counts true values, and true means the request failed
    errors = count(failed.get("passes", 0), "metrics.http_req_failed.passes")
    if errors > requests:
        fail("metrics.http_req_failed.passes", f"{errors} failed requests but http_reqs counts "
             f"{requests}", errors)
    warnings.append("k6's summary counts failed requests (http_req_failed) but not their "
                    "status codes: status_codes is empty")
    return requests, errors, {}, {}, None


def read_k6_summary(doc: object, *, grpc: bool | None = None) -> K6Summary:
    """Read a k6 summary; `grpc` says which trend holds the durations (None: gRPC when the
    summary has grpc_req_duration and no http_req_duration). Bad fields raise
    OutputParseError naming them."""
    d = as_map(doc, "(root)")
    metrics = as_map(d.get("metrics"), "metrics")
    if grpc is None:
        grpc = "grpc_req_duration" in metrics and "http_req_duration" not in metrics
    name = "grpc_req_duration" if grpc else "http_req_duration"
    trend = _values(metrics, name)
    warnings: list[str] = []
    duration_s = _duration_s(d, metrics)
    if grpc:
        requests, errors, codes, kinds, responses = _grpc_counts(metrics, trend, warnings)
    else:
        requests, errors, codes, kinds, responses = _http_counts(metrics, warnings)
    points: list[tuple[float, float]] = []
    mean_us: float | None = None
    timed = 0
    if trend is None:
        if requests:       # k6 writes no trend only when no request was sent
            fail(f"metrics.{name}", "missing; k6 records each request's duration there")
    else:
        points = _points_us(trend, f"metrics.{name}")
        # k6 times a request without a response too (0 when refused): meshlab's latency
        # holds responses, so a summary that counts them rebuilds that many values
        timed = (responses if responses is not None
                 else count(trend["count"], f"metrics.{name}.count")
                 if trend.get("count") is not None else requests)
        if trend.get("avg") is not None:
            mean_us = num(trend["avg"], f"metrics.{name}.avg", minimum=0) * 1e3
    vus = _values(metrics, "vus_max")
    return K6Summary(
        grpc=grpc, duration_s=duration_s, requests=requests, errors=errors,
        status_codes=dict(sorted(codes.items())), error_kinds=dict(sorted(kinds.items())),
        points_us=tuple(points), timed=timed, mean_us=mean_us,
        dropped_iterations=_count(metrics, "dropped_iterations") or 0,
        vus_max=count(vus.get("max", vus.get("value", 0)), "metrics.vus_max.max") if vus else 0,
        bytes_received=_count(metrics, "data_received") or 0, warnings=tuple(warnings))


def k6_latency(summary: K6Summary) -> tuple[Histogram, dict[str, Any]]:
    """The latency histogram rebuilt from the summary's percentile points, and the context
    that says so: k6's own points and mean (`reported_*`), which are also the run's headline
    percentiles (the store's p50_us.. columns)."""
    hist, hd = _rebuild(list(summary.points_us), summary.timed, summary.mean_us)
    reported = {percentile_key(p): v for p, v in summary.points_us}
    ctx: dict[str, Any] = {"percentiles_only": True, "histogram_reconstructed": True,
                           "reported_percentiles_us": reported}
    if summary.mean_us is not None:
        ctx["reported_mean_us"] = summary.mean_us
    if hd is not None:
        set_headline_percentiles(ctx, hd, hist, rule="k6", reported=reported)
    return hist, ctx


def run_from_k6(doc: object, *, run_id_for: Callable[[datetime], str],
                ended_at: datetime | None = None) -> RunResult:
    """One run from a k6 summary. k6 writes no start time: the run ends at `ended_at` (the
    file's modification time on import) or, without it, at the epoch."""
    s = read_k6_summary(doc)
    hist, latency_ctx = k6_latency(s)
    warnings = [s.percentiles_warning, *s.warnings] if s.points_us else list(s.warnings)
    if not s.grpc:
        warnings.append("k6's summary does not name the HTTP version: http1 is assumed (k6 "
                        "negotiates HTTP/2 with https targets)")
    if s.dropped_iterations:
        warnings.append(f"k6 dropped {s.dropped_iterations} iterations: every VU was busy at "
                        f"their intended time (open loop)")
    ended = ended_at or EPOCH
    started = ended - timedelta(seconds=s.duration_s)
    ctx: dict[str, Any] = {"format": "k6", **latency_ctx, "latency_corrected": False}
    if ended_at is None:
        warnings.append("k6's summary holds no start time; the run is dated at the epoch")
    spec = RunSpec(target="", connections=s.vus_max, duration_s=s.duration_s, runner="k6",
                   profile="imported", protocol="grpc" if s.grpc else "http1")
    return RunResult(
        run_id=run_id_for(started), spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=started, ended_at=ended, duration_s=s.duration_s, requested_rate_rps=0.0,
        achieved_rate_rps=s.requests / s.duration_s if s.duration_s > 0 else 0.0,
        requests=s.requests, errors=s.errors, status_codes=dict(s.status_codes),
        error_kinds=dict(s.error_kinds), latency=hist, service_time=hist.copy(),
        runner="k6", context=ctx, warnings=warnings, bytes_received=s.bytes_received,
        raw={"tool": "k6", "percentiles_only": True, "dropped_iterations": s.dropped_iterations,
             "summary": dict(as_map(doc, "(root)"))})
