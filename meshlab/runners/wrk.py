"""wrk as a runner: closed loop only, whole seconds; a bundled Lua script (`wrk_report.lua`) sets
method and body, counts statuses, and prints wrk's full microsecond latency spectrum as JSON.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from typing import ClassVar

from meshlab.errors import OutputParseError
from meshlab.profile import RunSpec
from meshlab.results import ErrorKind, RunResult
from meshlab.runners._spectrum import as_dict, from_quantiles, from_value_counts, get_int, get_num
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    base_result,
    header_args,
    whole_seconds_problem,
    whole_timeout_problem,
)

MARKER = "@@meshlab-wrk-json@@ "


def script_path() -> str:
    """Filesystem path of the bundled Lua reporter."""
    return str(resources.files("meshlab.runners").joinpath("wrk_report.lua"))


class WrkRunner(ToolRunner):
    """`wrk -t T -c C -d Ds --timeout Ts -s wrk_report.lua URL -- METHOD BODYFILE`.

    `threads` defaults to half the cores (one on a 2-core machine, where a second wrk thread
    only competes with the target). Latency is wrk's per-microsecond record of every response
    up to the timeout, read exactly; it is service time (closed loop, no correction).
    `count_statuses=False` drops the per-response Lua hook that counts each status (wrk then
    parses less per response; only the count of statuses >= 400 remains).
    """

    name: ClassVar[str] = "wrk"
    binary: ClassVar[str] = "wrk"
    install_hint: ClassVar[str] = "apt-get install wrk (or brew install wrk)"
    warmup_whole_seconds: ClassVar[bool] = True

    def __init__(self, *, threads: int | None = None, count_statuses: bool = True) -> None:
        self.threads = threads if threads is not None else max(1, (os.cpu_count() or 2) // 2)
        self.count_statuses = count_statuses

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        if spec.rate_rps > 0:
            out.append(f"loads.rate_rps: wrk cannot run open loop at a fixed rate "
                       f"({spec.rate_rps:g} req/s; wrk2 is not packaged for Debian); use "
                       f"rate_rps: 0 for closed loop or {NATIVE_ALTERNATIVE}")
        if spec.max_requests is not None:
            out.append(f"loads.max_requests: wrk stops on time only (-d); remove max_requests "
                       f'or use runner="hey", runner="ab" or {NATIVE_ALTERNATIVE}')
        if spec.method == "HEAD":
            out.append('request.method: wrk waits for a body after a HEAD response and records '
                       f'nothing; use GET, runner="hey", runner="ab" or {NATIVE_ALTERNATIVE}')
        out += [p for p in (whole_seconds_problem(spec, "wrk"),
                            whole_timeout_problem(spec, "wrk")) if p]
        return out

    def build_argv(self, spec: RunSpec) -> list[str]:
        threads = max(1, min(self.threads, spec.connections))
        return [
            "wrk", "-t", str(threads), "-c", str(spec.connections),
            "-d", f"{math.ceil(spec.duration_s)}s",
            "--timeout", f"{math.ceil(spec.timeout_s)}s",
            "-s", script_path(), *header_args(spec), spec.target,
            "--", spec.method, BODY_FILE if spec.body else "",
            "1" if self.count_statuses else "0",
        ]

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        doc = _report(stdout)
        duration_s = get_num(doc, "duration_us", "wrk") / 1e6
        responses = get_int(doc, "requests", "wrk")
        errs = as_dict(doc.get("errors"), "wrk.errors")
        e = {k: get_int(errs, k, "wrk.errors")
             for k in ("connect", "read", "write", "status", "timeout")}
        raw_statuses = doc.get("statuses")
        statuses = {} if raw_statuses is None else as_dict(raw_statuses, "wrk.statuses")
        codes = {}
        for k in statuses:
            if not k.isdigit() or not 100 <= int(k) <= 999:
                raise OutputParseError(f"wrk.statuses: {k!r} is not an HTTP status", excerpt=k)
            codes[int(k)] = get_int(statuses, k, "wrk.statuses")
        lat = as_dict(doc.get("latency"), "wrk.latency")
        warnings = []
        if raw_statuses is None:
            warnings.append("statuses not counted (count_statuses=False): errors holds wrk's "
                            "count of statuses >= 400")
        buckets = lat.get("buckets")
        if isinstance(buckets, list) and all(
                isinstance(b, list) and len(b) == 2 for b in buckets):
            pairs = [(get_num({"v": v}, "v", "wrk.latency.buckets[]"),
                      get_int({"c": c}, "c", "wrk.latency.buckets[]")) for v, c in buckets]
            hist = from_value_counts([v for v, _ in pairs], [c for _, c in pairs])
        elif buckets is None:
            pts = lat.get("percentiles")
            if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2
                                                     for p in pts):
                raise OutputParseError("wrk.latency.percentiles: expected [[p, us], ...]",
                                       excerpt=repr(pts)[:300])
            points = [(get_num({"p": p}, "p", "wrk.latency.percentiles[]"),
                       get_num({"v": v}, "v", "wrk.latency.percentiles[]")) for p, v in pts]
            points += [(0.0, get_num(lat, "min", "wrk.latency")),
                       (100.0, get_num(lat, "max", "wrk.latency"))]
            hist = from_quantiles(points, responses)
            warnings.append(f"wrk recorded too many distinct latencies to list; the spectrum "
                            f"is rebuilt from {len(pts)} percentiles")
        else:
            raise OutputParseError("wrk.latency.buckets: expected [[us, count], ...] or null",
                                   excerpt=repr(buckets)[:300])
        if e["timeout"]:
            warnings.append("wrk counts a timeout each time it finds a request older than the "
                            "timeout (checked every 2 s) and records no latency above it")
        transport = e["connect"] + e["read"] + e["write"]
        requests = responses + transport
        kinds = {str(ErrorKind.CONNECT_REFUSED): e["connect"],
                 str(ErrorKind.RESET): e["read"] + e["write"],
                 str(ErrorKind.TIMEOUT): e["timeout"]}
        result = base_result(
            spec, runner=self.name, duration_s=duration_s, requests=requests,
            errors=min(e["status"] + transport + e["timeout"], requests) if requests else 0,
            status_codes=codes, error_kinds={k: v for k, v in kinds.items() if v},
            latency=hist, warnings=warnings)
        result.bytes_received = get_int(doc, "bytes", "wrk")
        result.raw = {"tool": "wrk", "errors": e, "threads": doc.get("threads"),
                      "latency_source": lat.get("source")}
        return result


def _report(stdout: str) -> dict[str, object]:
    line = None
    for candidate in stdout.splitlines():
        if candidate.startswith(MARKER):
            line = candidate[len(MARKER):]
    if line is None:
        raise OutputParseError("wrk printed no meshlab report line (is wrk_report.lua loaded?)",
                               excerpt=stdout[-300:])
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise OutputParseError(f"wrk report is not JSON: {exc}", excerpt=line) from None
    return as_dict(doc, "wrk")
