"""h2load (Debian `nghttp2-client`) as a runner: HTTP/2 (h2c with prior knowledge, or TLS with
ALPN h2) and HTTP/1.1, closed loop only; its `--log-file` holds one line per completed request
(start time in microseconds since the epoch, status, microseconds to the end of the response),
so the latency histogram is exact.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from meshlab.errors import OutputParseError
from meshlab.formats.h2load import summary_counts
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners._spectrum import from_value_counts, per_second
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    base_result,
    header_args,
    request_log_rows,
    split_output,
)

LOG_FILE = "requests.tsv"


class H2loadRunner(ToolRunner):
    """`h2load -c C -m STREAMS -t T (-D Dms | -n N) --log-file requests.tsv URL`.

    h2load's `--rate` paces connections, not requests: it runs closed loop only. It has no
    per-request timeout; `-N` (connection inactivity) is set to the request timeout instead.
    """

    name: ClassVar[str] = "h2load"
    binary: ClassVar[str] = "h2load"
    install_hint: ClassVar[str] = "apt-get install nghttp2-client"
    protocols: ClassVar[tuple[str, ...]] = ("h2c", "h2", "http1")
    output_files: ClassVar[tuple[str, ...]] = (LOG_FILE,)

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        if spec.rate_rps > 0:
            out.append(f"loads.rate_rps: h2load runs closed loop only (its --rate paces new "
                       f"connections, not requests); use rate_rps: 0 or {NATIVE_ALTERNATIVE}")
        if spec.method not in ("GET", "POST") or (spec.method == "POST") != bool(spec.body):
            out.append(f"request.method: h2load sends GET, or POST with a body (-d); "
                       f"{spec.method} {'with' if spec.body else 'without'} a body needs "
                       f"{NATIVE_ALTERNATIVE}")
        if spec.max_requests is not None and spec.max_requests < spec.connections:
            out.append(f"loads.max_requests: h2load needs at least one request per connection "
                       f"({spec.connections}); raise max_requests")
        return out

    def build_argv(self, spec: RunSpec) -> list[str]:
        threads = max(1, min(self.threads, spec.connections))
        argv = ["h2load", "-c", str(spec.connections), "-t", str(threads),
                "-m", str(spec.streams_per_connection)]
        if spec.max_requests is not None:
            argv += ["-n", str(spec.max_requests)]
        else:
            argv += ["-D", f"{max(1, round(spec.duration_s * 1000))}ms"]
        argv += ["-N", f"{max(1, math.ceil(spec.timeout_s))}s"]
        if spec.protocol == "http1":
            argv.append("--h1")
        if spec.body:
            argv += ["-d", BODY_FILE]
        return [*argv, *header_args(spec), f"--log-file={LOG_FILE}", spec.target]

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        text, files = split_output(stdout)
        duration_s, summary = summary_counts(text)
        total, started, done, ok, failed, errored, timeout = summary
        rows = _rows(files.get(LOG_FILE, ""))
        if rows.shape[0] != done:
            raise OutputParseError(f"h2load's log holds {rows.shape[0]} requests, its summary "
                                   f"{done} done", excerpt=text[-300:])
        status = rows[:, 1].astype(np.int64)
        lat_us = rows[:, 2]
        codes, counts = np.unique(status, return_counts=True)
        # errored counts streams and connections that ended without a response (refused,
        # reset, GOAWAY); h2load's timeouts are among them
        kinds = {k: n for k, n in (("timeout", timeout), ("other", max(errored - timeout, 0)))
                 if n}
        bad = int((status >= 400).sum())
        offsets = (rows[:, 0] - rows[:, 0].min()) / 1e6 if rows.shape[0] else rows[:, 0]
        result = base_result(
            spec, runner=self.name, duration_s=duration_s, requests=done + errored,
            errors=bad + errored,
            status_codes={int(c): int(n) for c, n in zip(codes, counts, strict=True)},
            error_kinds=kinds, latency=from_value_counts(*np.unique(lat_us, return_counts=True)),
            warnings=[] if done else ["h2load completed no request (is the target up?)"])
        result.timeseries = per_second(offsets, lat_us, status >= 400)
        result.raw = {"tool": "h2load", "total": total, "started": started, "succeeded": ok,
                      "failed": failed}
        return result


def _rows(log: str) -> npt.NDArray[np.float64]:
    # start time (us since the epoch), status, microseconds to the end of the response
    return request_log_rows(log, what="h2load log", delimiter="\t", columns=3,
                            usecols=(0, 1, 2), time_columns=(2,), status_column=1)
