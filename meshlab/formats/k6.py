"""k6's end-of-test summary JSON (`k6 run --summary-export=FILE`, or the `data` object a script's
`handleSummary` writes) to a `RunResult`. k6 keeps percentiles only: the histogram is rebuilt
from them, and the run says so (`percentiles_only`), as meshlab's own k6 runner does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
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
_TRENDS = ("http_req_duration", "grpc_req_duration")
_STAT = re.compile(r"^p\((\d+(?:\.\d+)?)\)$")
_STATUS_TAG = re.compile(r"^http_reqs\{status:(\d+)\}$")
_GRPC_TAG = re.compile(r"^grpc_req_duration\{status:(\d+)\}$")


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


def _grpc_counts(metrics: Mapping[str, Any], trend: Mapping[str, Any],
                 warnings: list[str]) -> tuple[int, int, dict[int, int], dict[str, int]]:
    """(requests, errors, status codes, error kinds) of a gRPC summary."""
    codes: dict[int, int] = {}
    kinds: dict[str, int] = {}
    tagged = False
    for key in metrics:
        m = _GRPC_TAG.match(str(key))
        if not m:
            continue
        tagged = True
        c = int(m.group(1))
        v = _values(metrics, str(key)) or {}
        n = count(v.get("count", 0), f"metrics.{key}.count")
        if n and c == 0:
            codes[200] = n
        elif n:
            kinds[f"grpc_{GRPC_CODES[c] if c < len(GRPC_CODES) else c}"] = n
    if tagged:
        failed = _count(metrics, "meshlab_call_errors") or 0
        if failed:
            kinds["other"] = failed
        requests = sum(codes.values()) + sum(kinds.values())
        return requests, requests - codes.get(200, 0), codes, kinds
    calls = trend.get("count")
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
    return requests, 0, {}, {}


def _http_counts(metrics: Mapping[str, Any], warnings: list[str]
                 ) -> tuple[int, int, dict[int, int], dict[str, int]]:
    requests = _count(metrics, "http_reqs")
    if requests is None:
        fail("metrics.http_reqs.count", "missing; k6 counts every HTTP request there")
    codes: dict[int, int] = {}
    for key in metrics:
        m = _STATUS_TAG.match(str(key))
        if m:
            n = count((_values(metrics, str(key)) or {}).get("count", 0), f"metrics.{key}.count")
            if n and int(m.group(1)):
                codes[int(m.group(1))] = n
    kinds: dict[str, int] = {}
    if codes:                         # meshlab's own script tags each status
        transport = requests - sum(codes.values())
        if transport > 0:
            kinds["other"] = transport
        return requests, transport + sum(n for c, n in codes.items() if c >= 400), codes, kinds
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
    return requests, errors, {}, {}


def run_from_k6(doc: object, *, run_id_for: Callable[[datetime], str],
                ended_at: datetime | None = None) -> RunResult:
    """One run from a k6 summary. k6 writes no start time: the run ends at `ended_at` (the
    file's modification time on import) or, without it, at the epoch."""
    d = as_map(doc, "(root)")
    metrics = as_map(d.get("metrics"), "metrics")
    grpc = "grpc_req_duration" in metrics and "http_req_duration" not in metrics
    name = "grpc_req_duration" if grpc else "http_req_duration"
    trend = _values(metrics, name)
    if trend is None:
        fail(f"metrics.{name}", "missing; k6 records each request's duration there")
    warnings: list[str] = []
    duration_s = _duration_s(d, metrics)
    if grpc:
        requests, errors, codes, kinds = _grpc_counts(metrics, trend, warnings)
    else:
        requests, errors, codes, kinds = _http_counts(metrics, warnings)
        warnings.append("k6's summary does not name the HTTP version: http1 is assumed (k6 "
                        "negotiates HTTP/2 with https targets)")
    points = _points_us(trend, f"metrics.{name}")
    timed = (count(trend["count"], f"metrics.{name}.count") if trend.get("count") is not None
             else requests)
    mean_us = num(trend["avg"], f"metrics.{name}.avg", minimum=0) * 1e3 \
        if trend.get("avg") is not None else None
    hist, hd = _rebuild(points, timed, mean_us)
    names = ", ".join("min" if p == 0 else "max" if p == 100 else f"p{p:g}" for p, _ in points)
    warnings.insert(0, PERCENTILES_ONLY.format(points=names))
    vus = _values(metrics, "vus_max")
    conns = count(vus.get("max", vus.get("value", 0)), "metrics.vus_max.max") if vus else 0
    dropped = _count(metrics, "dropped_iterations") or 0
    if dropped:
        warnings.append(f"k6 dropped {dropped} iterations: every VU was busy at their intended "
                        f"time (open loop)")
    ended = ended_at or EPOCH
    started = ended - timedelta(seconds=duration_s)
    reported = {percentile_key(p): v for p, v in points}
    ctx: dict[str, Any] = {"format": "k6", "percentiles_only": True,
                           "histogram_reconstructed": True, "reported_percentiles_us": reported,
                           "latency_corrected": False}
    if mean_us is not None:
        ctx["reported_mean_us"] = mean_us
    if hd is not None:
        set_headline_percentiles(ctx, hd, hist, rule="k6", reported=reported)
    if ended_at is None:
        warnings.append("k6's summary holds no start time; the run is dated at the epoch")
    spec = RunSpec(target="", connections=conns, duration_s=duration_s, runner="k6",
                   profile="imported", protocol="grpc" if grpc else "http1")
    received = _count(metrics, "data_received")
    return RunResult(
        run_id=run_id_for(started), spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=started, ended_at=ended, duration_s=duration_s, requested_rate_rps=0.0,
        achieved_rate_rps=requests / duration_s if duration_s > 0 else 0.0,
        requests=requests, errors=errors, status_codes=dict(sorted(codes.items())),
        error_kinds=dict(sorted(kinds.items())), latency=hist, service_time=hist.copy(),
        runner="k6", context=ctx, warnings=warnings, bytes_received=received or 0,
        raw={"tool": "k6", "percentiles_only": True, "dropped_iterations": dropped,
             "summary": dict(d)})
