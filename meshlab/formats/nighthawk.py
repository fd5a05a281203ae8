"""Nighthawk's native JSON output (`nighthawk.client.Output`, api/client/output.proto) to a
`RunResult`: the "global" result's request-to-response statistic becomes the latency histogram,
its `benchmark.http_Nxx` counters the (class-grouped) status codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from meshlab.formats._doc import as_list, as_map, count, fail, go_duration_s, num, text, timestamp
from meshlab.formats.fortio_histogram import (
    FortioBucket,
    FortioHistogramData,
    percentile_key,
    set_headline_percentiles,
)
from meshlab.profile import RunSpec
from meshlab.results import ErrorKind, RunResult, RunStatus

LATENCY_STAT = "benchmark_http_client.request_to_response"
_NIGHTHAWK_DEFAULTS = {"requests_per_second": 5.0, "connections": 100, "duration_s": 5.0}
_ERROR_COUNTERS = {
    "benchmark.stream_resets": ErrorKind.RESET,
    "upstream_cx_connect_fail": ErrorKind.CONNECT_REFUSED,
    "upstream_cx_connect_timeout": ErrorKind.CONNECT_TIMEOUT,
    "upstream_rq_timeout": ErrorKind.TIMEOUT,
    "upstream_rq_pending_failure_eject": ErrorKind.OTHER,
}


def is_nighthawk(doc: object) -> bool:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("results"), list):
        return False
    items = doc["results"]
    return bool(items) and all(isinstance(r, Mapping) and ("statistics" in r or "counters" in r)
                               for r in items)


def run_from_nighthawk(doc: object, *, run_id_for: Callable[[datetime], str],
                       mesh: str = "none", profile: str = "imported") -> RunResult:
    d = as_map(doc, "(root)")
    results = [as_map(r, f"results[{i}]") for i, r in enumerate(as_list(d.get("results"),
                                                                         "results"))]
    if not results:
        fail("results", "empty; Nighthawk writes one result per worker plus 'global'", d)
    gi = next((i for i, r in enumerate(results) if r.get("name") == "global"), len(results) - 1)
    glob, gpath = results[gi], f"results[{gi}]"
    warnings: list[str] = []
    if len(results) > 1 and glob.get("name") != "global":
        warnings.append(f"no 'global' result; used {glob.get('name')!r}, the last of "
                        f"{len(results)}")

    stats = {}
    for i, s in enumerate(as_list(glob.get("statistics") or [], f"{gpath}.statistics")):
        sm = as_map(s, f"{gpath}.statistics[{i}]")
        stats[str(sm.get("id", ""))] = (sm, f"{gpath}.statistics[{i}]")
    stat_id = _latency_stat_id(stats)
    ctx: dict[str, Any] = {"format": "nighthawk", "latency_corrected": False,
                           "nighthawk_workers": sum(r.get("name") != "global" for r in results)}
    if stat_id is None:
        fail(f"{gpath}.statistics", "no latency statistic with a count (expected "
             f"{LATENCY_STAT!r})", list(stats))
    if stat_id != LATENCY_STAT:
        warnings.append(f"no {LATENCY_STAT!r} statistic; used {stat_id!r} as the latency")
    ctx["nighthawk_latency_statistic"] = stat_id
    hd = _statistic_histogram(*stats[stat_id])
    ctx["reported_percentiles_us"] = {percentile_key(p): v * 1e6 for p, v in hd.percentiles}

    counters = {}
    for i, c in enumerate(as_list(glob.get("counters") or [], f"{gpath}.counters")):
        cm = as_map(c, f"{gpath}.counters[{i}]")
        counters[text(cm.get("name"), f"{gpath}.counters[{i}].name")] = count(
            cm.get("value", 0), f"{gpath}.counters[{i}].value")
    ctx["nighthawk_counters"] = counters
    status_codes = {cls * 100: counters[f"benchmark.http_{cls}xx"] for cls in range(1, 6)
                    if counters.get(f"benchmark.http_{cls}xx")}
    error_kinds: dict[str, int] = {}
    for name, kind in _ERROR_COUNTERS.items():
        if counters.get(name):
            error_kinds[str(kind)] = error_kinds.get(str(kind), 0) + counters[name]
    if counters.get("benchmark.pool_overflow"):
        warnings.append(f"{counters['benchmark.pool_overflow']} requests were never sent "
                        "(benchmark.pool_overflow): Nighthawk could not keep the rate")
    if status_codes:
        ctx["status_codes_grouped_by_class"] = True
    requests = sum(status_codes.values()) + sum(error_kinds.values()) or hd.count
    errors = sum(n for c, n in status_codes.items() if c >= 400) + sum(error_kinds.values())

    opts = as_map(d.get("options") or {}, "options")
    rate = num(opts.get("requests_per_second", _NIGHTHAWK_DEFAULTS["requests_per_second"]),
               "options.requests_per_second", minimum=0)
    conns = count(opts.get("connections", _NIGHTHAWK_DEFAULTS["connections"]),
                  "options.connections")
    req_duration = (go_duration_s(opts["duration"], "options.duration")
                    if opts.get("duration") is not None else _NIGHTHAWK_DEFAULTS["duration_s"])
    start_raw = glob.get("execution_start") or d.get("timestamp")
    if start_raw is None:
        fail(f"{gpath}.execution_start", "missing (and no top-level timestamp)", glob)
    started = timestamp(start_raw, f"{gpath}.execution_start")
    duration_s = (go_duration_s(glob["execution_duration"], f"{gpath}.execution_duration")
                  if glob.get("execution_duration") is not None else req_duration)
    target = _target(opts)
    spec = RunSpec(target=target, rate_rps=rate, connections=conns, duration_s=req_duration,
                   runner="nighthawk", profile=profile, mesh=mesh,
                   labels=tuple((f"label{i}", str(v)) for i, v in
                                enumerate(as_list(opts.get("labels") or [], "options.labels"))
                                if isinstance(v, str)))
    latency = hd.to_histogram()
    set_headline_percentiles(ctx, hd, latency, rule="nighthawk")
    return RunResult(
        run_id=run_id_for(started), spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=started, ended_at=started + timedelta(seconds=duration_s), duration_s=duration_s,
        requested_rate_rps=rate,
        achieved_rate_rps=requests / duration_s if duration_s > 0 else 0.0,
        requests=requests, errors=errors, status_codes=status_codes, error_kinds=error_kinds,
        latency=latency, service_time=latency.copy(), runner="nighthawk",
        runner_version=_version(d.get("version")), context=ctx, warnings=warnings,
        raw=dict(d), bytes_received=0,
    )


def _latency_stat_id(stats: Mapping[str, tuple[Mapping[str, Any], str]]) -> str | None:
    if LATENCY_STAT in stats:
        return LATENCY_STAT
    # Synthetic or renamed stats: the duration-valued one with the most percentiles, preferring
    # a name that says latency (the Nighthawk golden file calls it "foo_latency").
    best: tuple[int, int, str] | None = None
    for sid, (s, _) in stats.items():
        if "mean" not in s or not s.get("count") or str(s.get("count")) == "0":
            continue
        rank = (int("latency" in sid or "response" in sid), len(s.get("percentiles") or []), sid)
        if best is None or rank > best:
            best = rank
    return best[2] if best else None


def _statistic_histogram(s: Mapping[str, Any], path: str) -> FortioHistogramData:
    """Nighthawk percentiles are HdrHistogram iteration points (fraction, cumulative count,
    value): the count added since the previous point lies in (previous value, value]."""
    n = count(s.get("count", 0), f"{path}.count")
    mn = _seconds(s.get("min"), f"{path}.min")
    mx = _seconds(s.get("max"), f"{path}.max")
    mean = _seconds(s.get("mean"), f"{path}.mean")
    sd = _seconds(s.get("pstdev"), f"{path}.pstdev")
    buckets, ps = [], []
    prev_v, prev_c = mn, 0
    for i, raw in enumerate(as_list(s.get("percentiles") or [], f"{path}.percentiles")):
        p = as_map(raw, f"{path}.percentiles[{i}]")
        frac = num(p.get("percentile", 0), f"{path}.percentiles[{i}].percentile", minimum=0)
        cum = count(p.get("count", 0), f"{path}.percentiles[{i}].count")
        v = _seconds(p.get("duration"), f"{path}.percentiles[{i}].duration")
        ps.append((frac * 100.0, v))
        if cum > prev_c:
            buckets.append(FortioBucket(min(prev_v, v), max(prev_v, v),
                                        100.0 * cum / n if n else 100.0, cum - prev_c))
            prev_c = cum
        prev_v = max(prev_v, v)
    if n and not buckets:                    # no percentiles: one bucket from min to max
        buckets.append(FortioBucket(mn, max(mx, mn), 100.0, n))
    return FortioHistogramData(count=n, min=mn, max=max(mx, mn), sum=mean * n, avg=mean,
                               stddev=sd, data=tuple(buckets), percentiles=tuple(ps))


def _seconds(v: object, path: str) -> float:
    """A protobuf JSON Duration ("0.000180007s"); absent means 0."""
    if v is None:
        return 0.0
    if isinstance(v, str) and v.strip().endswith("s"):
        return go_duration_s(v.strip(), path)
    return num(v, path, minimum=0)


def _target(opts: Mapping[str, Any]) -> str:
    uri = opts.get("uri")
    if isinstance(uri, str):
        return uri
    if isinstance(uri, Mapping) and isinstance(uri.get("value"), str):
        return str(uri["value"])
    return ""


def _version(v: object) -> str:
    if not isinstance(v, Mapping):
        return ""
    inner = v.get("version")
    if not isinstance(inner, Mapping):
        return ""
    parts = [inner.get("major_number", 0), inner.get("minor_number", 0), inner.get("patch", 0)]
    return ".".join(str(p) for p in parts if isinstance(p, int) and not isinstance(p, bool))
