"""fortio result JSON (`periodic.RunnerResults` + `fhttp.HTTPRunnerResults`, gRPC ping/health
or TCP echo) to and from `RunResult`, including Nighthawk's `--output-format fortio` quirks
(uint64 counts as strings, integer RequestedQPS, all 2xx counted under "200").
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from meshlab.errors import ProfileError
from meshlab.formats._doc import (
    as_map,
    count,
    fail,
    go_duration_s,
    go_duration_text,
    num,
    opt_text,
    rfc3339,
    timestamp,
)
from meshlab.formats._fortio_protocol import (
    GRPC_OK,
    TCP_OK,
    protocol_fields,
    protocol_of,
    run_kind,
    tcp_error_kind,
)
from meshlab.formats._meshlab_record import apply_record, meshlab_record
from meshlab.formats.fortio_histogram import (
    FORTIO_PERCENTILES,
    FortioHistogramData,
    histogram_data_of,
    parse_histogram_data,
    percentile_key,
    reported_percentiles_us,
    set_headline_percentiles,
)
from meshlab.profile import RunSpec
from meshlab.results import ErrorKind, Histogram, RunResult, RunStatus
from meshlab.units import NS_PER_S

_GRPC_OK = {"1", GRPC_OK}             # health ServingStatus SERVING (fortio 0.9 wrote the int)
_EXACTLY = re.compile(r"^exactly\s+(\d+)\s+calls?$")
_REL_TOL = 1e-9


def is_fortio(doc: object) -> bool:
    """A fortio (or fortio-compatible) result object."""
    return (isinstance(doc, Mapping) and "DurationHistogram" in doc
            and any(k in doc for k in ("RunType", "ActualQPS", "RequestedQPS", "StartTime")))


def is_nighthawk_fortio(doc: object) -> bool:
    """Nighthawk's fortio-compatible output: fortio has no BytesSent/BytesReceived fields."""
    return is_fortio(doc) and isinstance(doc, Mapping) and (
        "BytesSent" in doc or "BytesReceived" in doc)


def run_from_fortio(
    doc: object,
    *,
    run_id_for: Callable[[datetime], str],
    fmt: str = "fortio",
    path: str = "",
    runner: str | None = None,
    mesh: str = "none",
    profile: str = "imported",
    context: Mapping[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> RunResult:
    """Normalize one fortio result object; `run_id_for(started_at)` names the run and `path`
    prefixes field names in error messages."""
    d = as_map(doc, path.rstrip(".") or "(root)")
    nighthawk = is_nighthawk_fortio(d)
    runner = runner or ("nighthawk" if nighthawk else "fortio")
    if "DurationHistogram" not in d:
        fail(path + "DurationHistogram", "missing; not a fortio result", d)
    hd = parse_histogram_data(d["DurationHistogram"], f"{path}DurationHistogram")
    if "StartTime" not in d:
        fail(path + "StartTime", "missing; fortio always writes the start time", d)
    started = timestamp(d["StartTime"], f"{path}StartTime")
    actual_ns = num(d.get("ActualDuration", 0), f"{path}ActualDuration", minimum=0)
    if actual_ns > 1e18:
        fail(f"{path}ActualDuration", "more than 30 years of nanoseconds", d["ActualDuration"])
    run_type = opt_text(d.get("RunType"), f"{path}RunType") or "HTTP"
    kind = run_kind(run_type)
    grpc = kind == "grpc"
    warnings: list[str] = []

    # what was asked for
    rate = _requested_qps(d.get("RequestedQPS"), f"{path}RequestedQPS")
    req_duration, exactly = _requested_duration(d, path)
    threads = count(d.get("NumThreads", 0), f"{path}NumThreads")
    url_key = "URL" if kind == "http" else "Destination"
    url = opt_text(d.get(url_key), f"{path}{url_key}")
    protocol, conns, streams = protocol_of(d, kind, url, threads, path)
    labels_text = opt_text(d.get("Labels"), f"{path}Labels")
    payload = _payload(d.get("Payload"))
    method = opt_text(d.get("MethodOverride"), f"{path}MethodOverride") or (
        "POST" if payload else "GET")
    content_type = opt_text(d.get("ContentType"), f"{path}ContentType")
    timeout_ns = num(d.get("HTTPReqTimeOut", 0), f"{path}HTTPReqTimeOut", minimum=0)
    spec = RunSpec(
        target=url, rate_rps=rate, connections=conns, protocol=protocol,
        streams_per_connection=streams,
        duration_s=req_duration if req_duration is not None else actual_ns / NS_PER_S,
        max_requests=exactly or None, method=method,
        headers=(("Content-Type", content_type),) if content_type else (),
        body=payload, timeout_s=timeout_ns / NS_PER_S if timeout_ns else 10.0,
        runner=runner, profile=profile, mesh=mesh,
        labels=(("fortio_labels", labels_text),) if labels_text else (),
    )

    # what happened
    ret_codes = {str(k): count(v, f"{path}RetCodes[{k!r}]")
                 for k, v in as_map(d.get("RetCodes") or {}, f"{path}RetCodes").items()}
    status_codes, error_kinds, errors = _classify(ret_codes, kind=kind, path=f"{path}RetCodes")
    requests = sum(ret_codes.values()) if ret_codes else hd.count
    if ret_codes and requests != hd.count:
        warnings.append(f"RetCodes count {requests} responses but DurationHistogram.Count is "
                        f"{hd.count}; requests={requests} is taken from RetCodes")
    if hd.count and hd.bucket_total != hd.count:
        warnings.append(f"DurationHistogram buckets hold {hd.bucket_total} values but Count is "
                        f"{hd.count}; the histogram keeps the bucket counts")
    if nighthawk:
        warnings.append("Nighthawk fortio output groups status codes by class: '200' counts "
                        "every 2xx response")
    latency = hd.to_histogram()
    record = d.get("Meshlab")
    if not isinstance(record, Mapping):     # meshlab's export: its percentiles are meshlab's
        record = None
        warnings.extend(_check_percentiles(hd))

    ctx: dict[str, Any] = {
        "format": fmt,
        "run_type": run_type,
        "reported_percentiles_us": reported_percentiles_us(hd),
        "ret_codes": ret_codes,
        "latency_corrected": False,     # fortio times each call from its actual send
    }
    if labels_text:
        ctx["fortio_labels"] = labels_text
    if grpc:
        ctx["grpc_status_counts"] = ret_codes
    if nighthawk:
        ctx["status_codes_grouped_by_class"] = True
    edh = histogram_data_of(d, "ErrorsDurationHistogram", path)
    set_headline_percentiles(ctx, hd, latency, rule="fortio")
    if edh is not None:
        ctx["errors_duration"] = {"count": edh.count, "avg_us": edh.avg * 1e6,
                                  "max_us": edh.max * 1e6}
    for key in ("SocketCount", "BytesSent"):
        if d.get(key) is not None:
            ctx[_snake_name(key)] = count(d[key], f"{path}{key}")
    ctx.update(context or {})

    duration_s = actual_ns / NS_PER_S
    achieved = num(d.get("ActualQPS", 0), f"{path}ActualQPS", minimum=0)
    result = RunResult(
        run_id=run_id_for(started),
        spec=spec.to_dict(),
        status=RunStatus.COMPLETED,
        started_at=started,
        ended_at=started + timedelta(seconds=duration_s),
        duration_s=duration_s,
        requested_rate_rps=rate,
        achieved_rate_rps=achieved,
        requests=requests,
        errors=errors,
        status_codes=status_codes,
        error_kinds=error_kinds,
        latency=latency,
        service_time=latency.copy(),
        runner=runner,
        runner_version=opt_text(d.get("Version"), f"{path}Version"),
        context=ctx,
        warnings=warnings,
        raw=raw if raw is not None else dict(d),
        bytes_received=_bytes_received(d, path),
    )
    if record is not None:
        own = record.get("labels")
        apply_record(result, record, own if isinstance(own, Mapping) else {})
        kinds = record.get("error_kinds")
        if isinstance(kinds, Mapping):     # RetCodes lumps them (-1, ERROR): meshlab's own kinds
            result.error_kinds = {str(k): count(v, f"{path}Meshlab.error_kinds[{k!r}]")
                                  for k, v in kinds.items()}
    return result


def _requested_qps(v: object, path: str) -> float:
    if v is None or (isinstance(v, str) and v.strip().lower() in ("", "max", "-1")):
        return 0.0
    q = num(v, path)
    return max(q, 0.0)                    # fortio -qps -1 / 0 both mean "max"


def _requested_duration(d: Mapping[str, Any], path: str) -> tuple[float | None, int]:
    exactly = count(d.get("Exactly", 0), f"{path}Exactly")
    rd = d.get("RequestedDuration")
    if rd is None or rd == "":
        return None, exactly
    if isinstance(rd, str):
        m = _EXACTLY.match(rd.strip())
        if m:
            return None, int(m.group(1))
    return go_duration_s(rd, f"{path}RequestedDuration"), exactly


def _payload(v: object) -> bytes:
    """fortio's Payload is []byte, i.e. base64 in JSON; anything unreadable counts as none."""
    if not isinstance(v, str) or not v:
        return b""
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return v.encode()


def _classify(
    ret_codes: Mapping[str, int], *, kind: str, path: str
) -> tuple[dict[int, int], dict[str, int], int]:
    """(status codes, error kinds, errors): a good gRPC call or TCP echo counts as status 200,
    as meshlab's own runners count them."""
    status: dict[int, int] = {}
    kinds: dict[str, int] = {}
    errors = 0
    for key, n in ret_codes.items():
        if kind != "http":
            good = (key.strip().upper() in _GRPC_OK) if kind == "grpc" else key == TCP_OK
            if good:
                status[200] = status.get(200, 0) + n
                continue
            errors += n
            k = tcp_error_kind(key) if kind == "tcp" else str(ErrorKind.OTHER)
            kinds[k] = kinds.get(k, 0) + n
            continue
        try:
            code = int(key)
        except ValueError:
            fail(path, f"status code key {key!r} is not an integer", key)
        if code < 0:                  # fortio -1: the socket/connection failed, no response
            kinds[str(ErrorKind.OTHER)] = kinds.get(str(ErrorKind.OTHER), 0) + n
            errors += n
            continue
        status[code] = status.get(code, 0) + n
        if code >= 400:
            errors += n
    return status, kinds, errors


def _check_percentiles(hd: FortioHistogramData) -> list[str]:
    """fortio computed its Percentiles from these buckets; say so when they disagree."""
    out = []
    for p, reported in hd.percentiles:
        mine = hd.calc_percentile(p)
        if abs(mine - reported) > _REL_TOL * max(abs(reported), 1e-12):
            out.append(f"reported p{percentile_key(p)} {reported:g}s differs from fortio's rule "
                       f"on the buckets ({mine:g}s); the reported value is kept in context")
    return out


def _bytes_received(d: Mapping[str, Any], path: str) -> int:
    if d.get("BytesReceived") is not None:
        return count(d["BytesReceived"], f"{path}BytesReceived")
    sizes = histogram_data_of(d, "Sizes", path)
    return int(sizes.sum) if sizes is not None and sizes.sum >= 0 else 0


def _snake_name(key: str) -> str:
    return {"SocketCount": "socket_count", "BytesSent": "bytes_sent"}[key]


# --- export -----------------------------------------------------------------------------------

def fortio_json(
    result: RunResult,
    *,
    kind: str = "latency",
    percentiles: Sequence[float] = FORTIO_PERCENTILES,
) -> dict[str, Any]:
    """A fortio result object that fortio's report UI and Meshery read: field names and JSON
    types of fortio's HTTPRunnerResults, or for a gRPC run GRPCRunnerResults (RunType "GRPC
    Ping", RetCodes SERVING/ERROR, Destination, Streams; NumThreads is connections x streams,
    as fortio counts it) and for a TCP run tcprunner's RunnerResults. DurationHistogram holds
    `result.latency` (or `service_time`), one Data entry per non-empty meshlab bucket, with
    the percentiles meshlab computes. `Sizes` is approximate: meshlab keeps only the total
    bytes received."""
    if kind not in ("latency", "service_time"):
        raise ProfileError(f"kind: must be 'latency' or 'service_time', got {kind!r}")
    hist = result.latency if kind == "latency" else result.service_time
    spec, dims = result.spec, result.dimensions
    exactly = spec.get("max_requests") or 0
    rate = result.requested_rate_rps
    ret: dict[str, int] = {str(c): n for c, n in sorted(result.status_codes.items())}
    transport = sum(result.error_kinds.values())
    if transport:
        ret["-1"] = ret.get("-1", 0) + transport
    duration_ns = round(result.duration_s * NS_PER_S)
    requested_ns = round(float(spec.get("duration_s") or result.duration_s) * NS_PER_S)
    headers = spec.get("headers") or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    streams = max(int(spec.get("streams_per_connection") or 1), 1)
    threads = (dims.connections or 0) * (streams if dims.protocol == "grpc" else 1)
    ok = result.status_codes.get(200, 0)
    run_type, tail = "HTTP", dict[str, Any]()
    if dims.protocol in ("grpc", "tcp"):
        run_type, tail = protocol_fields(result, ok=ok, failed=max(result.requests - ok, 0),
                                         threads=threads, streams=streams)
    out: dict[str, Any] = {
        "RunType": run_type,
        "Labels": _labels(result),
        "StartTime": rfc3339(result.started_at),
        "RequestedQPS": "max" if rate <= 0 else f"{rate:.9g}",
        "RequestedDuration": (f"exactly {exactly} calls" if exactly
                              else go_duration_text(requested_ns)),
        "ActualQPS": float(result.achieved_rate_rps),
        "ActualDuration": duration_ns,
        "NumThreads": threads,
        "Version": result.runner_version or f"meshlab-{_meshlab_version()}",
        "DurationHistogram": _histogram_data(result, hist, kind, percentiles).to_json(),
    }
    if result.errors == 0:
        out["ErrorsDurationHistogram"] = FortioHistogramData.from_histogram(
            type(hist)(), percentiles=()).to_json()
    out.update({
        "Exactly": int(exactly),
        "Jitter": False,
        "Uniform": False,
        "RunID": 0,
        "AccessLoggerInfo": "",
    })
    record = {**meshlab_record(result), "labels": dict(sorted(dims.labels)),
              "error_kinds": dict(sorted(result.error_kinds.items()))}
    if tail:
        # fortio ignores unknown fields; meshlab reads its own run back from this record
        return {**out, **tail, "Meshlab": record}
    out.update({
        "RetCodes": ret,
        "URL": dims.target or "",
        "H2": dims.protocol in ("h2c", "h2"),
        "NumConnections": 1,
        "HTTPReqTimeOut": round(float(spec.get("timeout_s") or 10.0) * NS_PER_S),
        "ContentType": str(content_type),
        "Payload": None,
        "Sizes": _sizes(result),
        "HeaderSizes": None,
        "SocketCount": int(result.context.get("socket_count") or dims.connections or 0),
        "AbortOn": 0,
        "Meshlab": record,
    })
    return out


def _histogram_data(result: RunResult, hist: Histogram, kind: str,
                    percentiles: Sequence[float]) -> FortioHistogramData:
    """One Data entry per non-empty meshlab bucket; Percentiles are the run's own
    (`headline_percentile_us`), so an imported fortio run exports fortio's values again."""
    hd = FortioHistogramData.from_histogram(hist, percentiles=percentiles)
    if not hd.percentiles:
        return hd
    return dataclasses.replace(hd, percentiles=tuple(
        (p, result.headline_percentile_us(p, kind=kind) / 1e6) for p, _ in hd.percentiles))


def _labels(result: RunResult) -> str:
    fortio_labels = result.context.get("fortio_labels")
    if isinstance(fortio_labels, str) and fortio_labels:
        return fortio_labels
    dims = result.dimensions
    parts = [dims.profile or "meshlab", f"mesh={dims.mesh or 'none'}"]
    parts += [f"{k}={v}" for k, v in sorted(dims.labels)]
    return " ".join(parts)


def _sizes(result: RunResult) -> dict[str, Any] | None:
    n = result.requests
    if not result.bytes_received or not n:
        return None
    avg = result.bytes_received / n
    return {"Count": n, "Min": avg, "Max": avg, "Sum": float(result.bytes_received),
            "Avg": avg, "StdDev": 0.0,
            "Data": [{"Start": avg, "End": avg, "Percent": 100.0, "Count": n}]}


def _meshlab_version() -> str:
    from meshlab._version import __version__

    return __version__
