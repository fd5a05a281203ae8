"""Service Mesh Performance (SMP) `PerformanceTestResult` documents (protos/
service_mesh_performance.proto) to and from `RunResult`. SMP carries summary latencies only
(min/average/p50/p90/p99/max in ms), so an imported histogram is a labelled reconstruction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from meshlab.formats._doc import as_map, count, fail, num, rfc3339, snake_keys, timestamp
from meshlab.formats._meshlab_record import apply_record, meshlab_record
from meshlab.formats.fortio_histogram import (
    FortioBucket,
    FortioHistogramData,
    percentile_key,
    set_headline_percentiles,
)
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus

SMP_VERSION = "v0.0.1"
# PerformanceTestConfig.Client.Protocol (the result has no protocol field: meshlab's export
# carries the run's protocol in its labels, `meshlab.protocol`)
_PROTOCOLS = {"PROTOCOL_HTTP": "http1", "PROTOCOL_TCP": "tcp", "PROTOCOL_GRPC": "grpc",
              1: "http1", 2: "tcp", 4: "grpc"}
_POINTS = (("min", 0.0), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0))


def is_smp_result(doc: object) -> bool:
    if not isinstance(doc, Mapping):
        return False
    d, _ = snake_keys(doc)
    client = d.get("client")
    if "latencies_ms" in d or (isinstance(client, Mapping) and "latencies_ms" in client):
        return True
    return "smp_version" in d and ("start_time" in d or "actual_qps" in d)


def run_from_smp(doc: object, *, run_id_for: Callable[[datetime], str]) -> RunResult:
    """`run_id_for(started_at) -> str` names the run (the caller knows the document digest)."""
    d, _ = snake_keys(as_map(doc, "(root)"))
    client: dict[str, Any] = {}
    if d.get("client") is not None:
        client, _ = snake_keys(as_map(d["client"], "client"))
    lat_raw = d.get("latencies_ms", client.get("latencies_ms"))
    lat = snake_keys(as_map(lat_raw, "latencies_ms"))[0] if lat_raw is not None else {}
    if "start_time" not in d:
        fail("start_time", "missing; an SMP result needs its start time", d)
    started = timestamp(d["start_time"], "start_time")
    ended = timestamp(d["end_time"], "end_time") if d.get("end_time") is not None else started
    if ended < started:
        fail("end_time", "is before start_time", d.get("end_time"))
    duration_s = (ended - started).total_seconds()
    qps_raw = d.get("actual_qps", client.get("rps", client.get("actual_qps")))
    qps = num(qps_raw, "actual_qps", minimum=0) if qps_raw is not None else 0.0
    conns = count(client.get("connections", 0), "client.connections")
    labels = {str(k): str(v) for k, v in as_map(d.get("labels") or {}, "labels").items()}
    warnings = ["SMP results carry no histogram and no request count: requests are estimated "
                "as actual_qps x (end_time - start_time) and the latency histogram is rebuilt "
                "from min/p50/p90/p99/max"]
    reported = {}
    for key, p in _POINTS:
        if lat.get(key) is not None:
            reported[percentile_key(p)] = num(lat[key], f"latencies_ms.{key}", minimum=0) * 1e3
    avg_ms = num(lat["average"], "latencies_ms.average", minimum=0) if lat.get(
        "average") is not None else None
    requests = round(qps * duration_s)
    hist, hd = _rebuild(reported, avg_ms, requests, warnings)
    target = d.get("endpoint_url", client.get("endpoint_url", ""))
    mesh = labels.get("mesh") or labels.get("service_mesh") or "none"
    proto = client.get("protocol")
    protocol = _PROTOCOLS.get(proto, "http1") if isinstance(proto, str | int) else "http1"
    spec = RunSpec(target=target if isinstance(target, str) else "", rate_rps=0.0,
                   connections=conns, duration_s=duration_s, runner="smp", profile="smp",
                   mesh=mesh, labels=tuple(sorted(labels.items())), protocol=protocol)
    ctx: dict[str, Any] = {"format": "smp", "reported_percentiles_us": reported,
                           "histogram_reconstructed": True, "latency_corrected": False}
    if avg_ms is not None:
        ctx["reported_mean_us"] = avg_ms * 1e3
    if hd is not None:
        set_headline_percentiles(ctx, hd, hist, rule="smp", reported=reported)
    smp = {k: d[k] for k in ("smp_version", "id", "exp_uuid", "test_id", "mesh_config_id",
                             "env_id", "details_uri") if isinstance(d.get(k), str | int | float)}
    if smp:
        ctx["smp"] = smp
    for key in ("env", "metrics"):
        if isinstance(d.get(key), Mapping) and d[key]:
            ctx[f"smp_{key}"] = _json_safe(d[key])
    result = RunResult(
        run_id=run_id_for(started), spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=started, ended_at=ended, duration_s=duration_s, requested_rate_rps=0.0,
        achieved_rate_rps=qps, requests=requests, errors=0, status_codes={}, error_kinds={},
        latency=hist, service_time=hist.copy(), runner="smp", context=ctx, warnings=warnings,
        raw=_json_safe(dict(doc)) if isinstance(doc, Mapping) else None,
    )
    if "meshlab.run_id" in labels:      # meshlab's own export: its record is in the labels
        record = {k.removeprefix("meshlab."): v for k, v in labels.items()
                  if k.startswith("meshlab.")}
        own = {k: v for k, v in labels.items() if not k.startswith("meshlab.")}
        apply_record(result, record, own)
    return result


def _rebuild(reported_us: Mapping[str, float], avg_ms: float | None, n: int,
             warnings: list[str]) -> tuple[Histogram, FortioHistogramData | None]:
    points = [(float(p), v / 1e6) for p, v in ((0.0, reported_us.get("0")),
                                               (50.0, reported_us.get("50")),
                                               (90.0, reported_us.get("90")),
                                               (99.0, reported_us.get("99")),
                                               (100.0, reported_us.get("100"))) if v is not None]
    if n <= 0 or len(points) < 2:
        warnings.append("too little data to rebuild a histogram; it is left empty")
        return Histogram(), None
    if any(b[1] < a[1] for a, b in itertools.pairwise(points)):
        warnings.append("latencies_ms are not increasing (min <= p50 <= p90 <= p99 <= max); "
                        "the histogram is left empty")
        return Histogram(), None
    buckets, done = [], 0
    if points[0][0] > 0:
        points.insert(0, (0.0, points[0][1]))
    for (_pa, va), (pb, vb) in itertools.pairwise(points):
        upto = round(n * pb / 100.0)
        if upto > done:
            buckets.append(FortioBucket(va, vb, pb, upto - done))
            done = upto
    lo, hi = points[0][1], points[-1][1]
    mean = avg_ms / 1e3 if avg_ms is not None else 0.0
    hd = FortioHistogramData(count=n, min=lo, max=hi, sum=mean * n, avg=mean, stddev=0.0,
                             data=tuple(buckets), percentiles=())
    h = hd.to_histogram()
    # no stddev in SMP: estimate the sum of squares from bucket midpoints, keep the exact sum
    return Histogram.from_buckets(h.nonzero_buckets(), min_ns=h.min_ns, max_ns=h.max_ns,
                                  sum_ns=h.sum_ns if avg_ms is not None else None), hd


def _json_safe(v: Any) -> Any:
    """YAML may hold datetimes; the raw document must survive json.dumps."""
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, datetime):
        return rfc3339(v)
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def smp_result(result: RunResult, *, smp_version: str = SMP_VERSION) -> dict[str, Any]:
    """An SMP PerformanceTestResult (proto field names) from a run. Values the proto has no
    field for (mesh, runner, connections, requested rate, counts) travel in `labels`."""
    lat = result.latency
    dims = result.dimensions

    def ms(us: float) -> float:
        return 0.0 if us != us else us / 1e3          # NaN (empty histogram) -> 0

    labels = dict(sorted(dims.labels))
    labels.update({f"meshlab.{k}": v for k, v in meshlab_record(result).items()})
    return {
        "smp_version": smp_version,
        "id": result.run_id,
        "labels": labels,
        "start_time": rfc3339(result.started_at),
        "end_time": rfc3339(result.ended_at),
        "latencies_ms": {
            "min": ms(lat.min_us), "average": ms(lat.mean_us),
            "p50": ms(result.headline_percentile_us(50)),
            "p90": ms(result.headline_percentile_us(90)),
            "p99": ms(result.headline_percentile_us(99)),
            "max": ms(lat.max_us),
        },
        "actual_qps": float(result.achieved_rate_rps),
        "details_uri": "",
        "test_id": dims.profile or "",
        "mesh_config_id": "",
        "env_id": "",
    }
