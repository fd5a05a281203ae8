"""hey as a runner: `-o csv` gives one record per response (0.1 ms resolution), from which the
histogram, status counts and a per-second series are exact. Closed loop only (see `HeyRunner`).
HTTP/1.1, and HTTP/2 over TLS with `-h2`; not h2c (hey's `-h2` sends HTTP/1.1 to http://).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from meshlab.errors import OutputParseError
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners._spectrum import from_rounded, per_second
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    base_result,
    header_args,
    request_log_rows,
    spread_problem,
    whole_timeout_problem,
)

CSV_HEADER = ("response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,"
              "status-code,offset")
RESOLUTION_US = 100.0          # hey prints seconds with "%4.4f"
_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")

RATE_WARNING = ("hey -q limits each of the {c} workers to {per:g} req/s: a rate-limited closed "
                "loop, not an open loop. A slow response delays that worker's next sends, so "
                "latency is not corrected for coordinated omission (latency == service time)")
TLS_WARNING = ("hey does not verify the target's certificate (its TLS client skips "
               "verification): an untrusted certificate is not an error here")
CSV_WARNING = ("hey's CSV lists completed responses only: connection errors and timeouts are "
               "not counted (errors holds HTTP statuses >= 400)")


class HeyRunner(ToolRunner):
    """`hey -c C (-z Ds | -n N) [-q R/C] -t T -m METHOD -H ... [-D body] -o csv URL`.

    hey has no open loop: its `-q` makes each worker wait 1/q between its own sends, a closed
    loop that waits out slow responses. So a spec's `rate_rps > 0` is rejected, unless the
    caller opts in with `limit_rate=True` (crosscheck and the bench do, to show the
    difference): then the rate is split into a per-worker `-q` and the result says so in its
    first warning. `spread_connections` has no meaning for hey (every worker has its own
    connection and its own pace); false is rejected with a rate.
    """

    name: ClassVar[str] = "hey"
    binary: ClassVar[str] = "hey"
    install_hint: ClassVar[str] = "apt-get install hey (or go install github.com/rakyll/hey@latest)"
    protocols: ClassVar[tuple[str, ...]] = ("http1", "h2")
    protocol_notes: ClassVar[dict[str, str]] = {
        "h2c": "hey's -h2 negotiates HTTP/2 through TLS ALPN only: to an http:// target it "
               "sends HTTP/1.1, so h2c would silently be HTTP/1.1; use h2load or native"}

    def __init__(self, *, limit_rate: bool = False) -> None:
        self.limit_rate = limit_rate

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        if spec.rate_rps > 0 and not self.limit_rate:
            out.append(f"loads.rate_rps: hey cannot run open loop at a fixed rate "
                       f"({spec.rate_rps:g} req/s): its -q only slows each worker of a closed "
                       f"loop, which waits out slow responses; use rate_rps: 0 for closed loop "
                       f"or {NATIVE_ALTERNATIVE}")
        elif self.limit_rate:
            problem = spread_problem(spec, "hey")
            if problem:
                out.append(problem)
        problem = whole_timeout_problem(spec, "hey")
        if problem:
            out.append(problem)
        if spec.method not in _METHODS:
            out.append(f"request.method: hey cannot send {spec.method}")
        if spec.streams_per_connection > 1:
            out.append(f"request.streams_per_connection: each hey worker sends one request at "
                       f"a time; use 1 (connections = workers), runner=\"h2load\" or "
                       f"{NATIVE_ALTERNATIVE}")
        if spec.max_requests is not None and spec.max_requests < spec.connections:
            out.append(f"loads.max_requests: hey needs at least one request per worker "
                       f"({spec.max_requests} < {spec.connections} connections); raise "
                       f"max_requests or lower connections")
        return out

    def build_argv(self, spec: RunSpec) -> list[str]:
        argv = ["hey", "-c", str(spec.connections)]
        if spec.max_requests is not None:
            argv += ["-n", str(spec.max_requests)]     # -z would override -n: stop via SIGINT
        else:
            argv += ["-z", f"{spec.duration_s:g}s"]
        if spec.rate_rps > 0:
            argv += ["-q", f"{spec.rate_rps / spec.connections:.6g}"]
        argv += ["-t", str(math.ceil(spec.timeout_s)), "-m", spec.method,
                 *header_args(spec)]
        if spec.body:
            argv += ["-D", BODY_FILE]
        if spec.protocol == "h2":
            argv.append("-h2")
        return [*argv, "-disable-redirects", "-o", "csv", spec.target]

    def stop_after_s(self, spec: RunSpec) -> float | None:
        return spec.duration_s if spec.max_requests is not None else None

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        rows = _rows(stdout)
        lat_us = rows[:, 0] * 1e6
        status = rows[:, 6].astype(np.int64)
        offsets = rows[:, 7]
        failed = status >= 400
        ends = offsets + rows[:, 0]
        duration_s = float(ends.max()) if rows.shape[0] else spec.duration_s
        if spec.max_requests is None:
            duration_s = max(duration_s, spec.duration_s)
        codes, counts = np.unique(status, return_counts=True)
        warnings = [CSV_WARNING, f"hey prints latencies in 0.1 ms steps; each value is spread "
                                 f"over its rounding interval (percentiles within ±"
                                 f"{RESOLUTION_US / 2:g} us)"]
        if spec.rate_rps > 0:
            warnings.insert(0, RATE_WARNING.format(c=spec.connections,
                                                   per=spec.rate_rps / spec.connections))
        if spec.max_requests is not None and spec.max_requests % spec.connections:
            done = spec.max_requests // spec.connections * spec.connections
            warnings.append(f"hey splits -n evenly over workers: it sends {done}, not "
                            f"{spec.max_requests}")
        if rows.shape[0] == 0:
            warnings.append("hey recorded no completed response (is the target up?)")
        if spec.target.lower().startswith("https://"):
            warnings.append(TLS_WARNING)
        result = base_result(
            spec, runner=self.name, duration_s=duration_s, requests=int(rows.shape[0]),
            errors=int(failed.sum()),
            status_codes={int(c): int(n) for c, n in zip(codes, counts, strict=True)},
            error_kinds={}, latency=from_rounded(lat_us, resolution_us=RESOLUTION_US),
            warnings=warnings)
        result.timeseries = per_second(offsets, lat_us, failed)
        result.raw = {"tool": "hey", "rows": int(rows.shape[0])}
        return result


def _rows(stdout: str) -> npt.NDArray[np.float64]:
    text = stdout.lstrip("\r\n")
    head, _, body = text.partition("\n")
    if head.strip() != CSV_HEADER:
        raise OutputParseError("hey output does not start with its CSV header (was -o csv "
                               "given?)", excerpt=text[:300])
    return request_log_rows(body, what="hey CSV", delimiter=",", columns=8,
                            time_columns=(0, 7), status_column=6)
