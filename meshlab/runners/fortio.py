"""fortio as a runner when its binary is on PATH (`fortio load -json -`). Its `-qps` is a real
target rate, paced per connection (closed loop per connection: latency is from the actual send).
HTTP/1.1, HTTP/2 (`-h2`: h2c to http://, ALPN h2 to https://), gRPC ping (`-grpc -ping -s
STREAMS`) and TCP echo (a tcp:// target). The JSON is read by meshlab.formats.fortio, the same
code that imports saved fortio results.
"""

from __future__ import annotations

import json
from typing import ClassVar

from meshlab.errors import OutputParseError
from meshlab.profile import RunSpec
from meshlab.results import RunResult
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    header_args,
    spread_problem,
)

RESOLUTION_S = 0.00001      # -r: 10 us lowest buckets (fortio's default 1 ms hides loopback)

RATE_WARNING = ("fortio paces each of the {c} connections at {per:g} req/s and times each call "
                "from its actual send: a connection stalled by a slow response sends late (then "
                "catches up), so latency is not corrected for coordinated omission")


class FortioRunner(ToolRunner):
    """`fortio load -json - -qps R -c C (-t Ds | -n N) -timeout Ts -r 0.00001 ... URL`.

    fortio is not packaged for Debian or PyPI; `is_available()` is false until a release binary
    is on PATH. Its own per-connection warm-up call is excluded from its statistics. It always
    paces each connection at rate/connections, so `spread_connections: false` is rejected at a
    rate (in closed loop the option means nothing to any runner).
    """

    name: ClassVar[str] = "fortio"
    binary: ClassVar[str] = "fortio"
    install_hint: ClassVar[str] = (
        "fortio is not packaged for Debian or PyPI: download a release binary from "
        "https://github.com/fortio/fortio/releases or `go install fortio.org/fortio@latest`")
    protocols: ClassVar[tuple[str, ...]] = ("http1", "h2c", "h2", "grpc", "tcp")

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        if spec.max_requests is not None and spec.max_requests < spec.connections:
            out.append(f"loads.max_requests: fortio needs max_requests >= connections "
                       f"({spec.max_requests} < {spec.connections})")
        problem = spread_problem(spec, "fortio")
        if problem:
            out.append(problem)
        if spec.streams_per_connection > 1 and spec.protocol != "grpc":
            out.append("request.streams_per_connection: fortio's -s (streams per connection) "
                       "is for gRPC only; each HTTP/2 connection carries one request at a time: "
                       f"use 1, runner=\"h2load\" or {NATIVE_ALTERNATIVE}")
        if spec.protocol == "grpc":
            try:
                spec.body.decode("utf-8")
            except UnicodeDecodeError:
                out.append("request.body: fortio sends a gRPC ping payload as a string; this "
                           f"body is not UTF-8 (use text or {NATIVE_ALTERNATIVE})")
        return out

    def build_argv(self, spec: RunSpec) -> list[str]:
        argv = ["fortio", "load", "-json", "-", "-qps", f"{spec.rate_rps:g}",
                "-c", str(spec.connections)]
        if spec.max_requests is not None:
            argv += ["-n", str(spec.max_requests)]
        else:
            argv += ["-t", f"{spec.duration_s:g}s"]
        argv += ["-timeout", f"{spec.timeout_s:g}s", "-r", f"{RESOLUTION_S:g}",
                 "-allow-initial-errors"]
        if spec.protocol == "grpc":        # -H headers become the calls' metadata
            argv += ["-grpc", "-ping", "-s", str(spec.streams_per_connection)]
        elif spec.protocol in ("h2c", "h2"):
            argv.append("-h2")
        if spec.protocol != "tcp":
            argv += header_args(spec)
        if spec.body:
            argv += ["-payload-file", BODY_FILE]
        http = spec.protocol in ("http1", "h2c", "h2")
        if http and (spec.method not in ("GET", "POST")
                     or (spec.method == "POST") != bool(spec.body)):
            argv += ["-X", spec.method]
        return [*argv, spec.target]

    def stop_after_s(self, spec: RunSpec) -> float | None:
        return spec.duration_s if spec.max_requests is not None else None

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        from meshlab.formats.fortio import run_from_fortio

        doc = _json_document(stdout)
        try:
            result = run_from_fortio(doc, run_id_for=lambda _started: "", runner=self.name,
                                     mesh=spec.mesh, profile=spec.profile)
        except OutputParseError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise OutputParseError(f"fortio JSON is not a fortio result: {exc}",
                                   excerpt=stdout[:300]) from None
        result.spec = spec.to_dict()
        result.requested_rate_rps = spec.rate_rps
        if spec.rate_rps > 0:
            result.warnings.insert(0, RATE_WARNING.format(
                c=spec.connections, per=spec.rate_rps / spec.connections))
        result.raw = None          # the document is large; keep what RunResult already holds
        return result


def _json_document(stdout: str) -> dict[str, object]:
    """The first JSON object in stdout (fortio may print log lines around it)."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        start = stdout.find("{", pos)
        if start < 0:
            raise OutputParseError("fortio printed no JSON result (was -json - given?)",
                                   excerpt=stdout[-300:])
        if start == 0 or stdout[start - 1] == "\n":
            try:
                doc, _ = decoder.raw_decode(stdout, start)
            except (ValueError, RecursionError) as exc:
                raise OutputParseError(f"fortio JSON is malformed or truncated: {exc}",
                                       excerpt=stdout[start:start + 300]) from None
            if not isinstance(doc, dict):
                raise OutputParseError("fortio JSON is not an object", excerpt=stdout[:300])
            return doc
        pos = start + 1
