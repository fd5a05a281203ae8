"""ApacheBench (ab) as a runner: HTTP/1.0 with keep-alive, closed loop, whole seconds. The
latency spectrum comes from ab's `-e` table (101 percentiles at 1 us resolution), its top
percent bounded by the slowest rows of the `-g` table (whole milliseconds).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import ClassVar

from meshlab.errors import OutputParseError
from meshlab.profile import RunSpec
from meshlab.results import ErrorKind, RunResult
from meshlab.runners._spectrum import from_quantiles
from meshlab.runners._tool import (
    BODY_FILE,
    NATIVE_ALTERNATIVE,
    ToolRunner,
    base_result,
    header_args,
    header_value,
    split_output,
    whole_seconds_problem,
    whole_timeout_problem,
)

PERCENT_FILE = "percentiles.csv"
GNUPLOT_FILE = "requests.tsv"
GNUPLOT_HEADER = "starttime\tseconds\tctime\tdtime\tttime\twait"
TAIL_LINES = 20_000     # the slowest requests of ab's -g table (sorted by total time)
# ab allocates one 32-byte record per planned request up front (-n): plan for 400k req/s, cap
# the allocation near 1.3 GB (virtual; only touched pages are used).
PLANNED_RPS = 400_000
MAX_PLANNED = 40_000_000

HTTP10_WARNING = ("ab speaks HTTP/1.0 (keep-alive by `Connection: Keep-Alive`); some proxies "
                  "answer 426 or close after each response")
STATUS_WARNING = ("ab reports only a count of non-2xx responses, not each status: errors "
                  "include them (3xx too); status_codes is empty")

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_FIELDS = {
    "complete": re.compile(rf"^Complete requests:\s+{_NUM}\s*$", re.M),
    "failed": re.compile(rf"^Failed requests:\s+{_NUM}\s*$", re.M),
    "taken": re.compile(rf"^Time taken for tests:\s+{_NUM} seconds\s*$", re.M),
}
_OPTIONAL = {
    "non2xx": re.compile(rf"^Non-2xx responses:\s+{_NUM}\s*$", re.M),
    "transferred": re.compile(rf"^Total transferred:\s+{_NUM} bytes\s*$", re.M),
    "concurrency": re.compile(rf"^Concurrency Level:\s+{_NUM}\s*$", re.M),
}
_FAILED_DETAIL = re.compile(r"^\s+\(Connect: (\d+), Receive: (\d+), Length: (\d+), "
                            r"Exceptions: (\d+)\)\s*$", re.M)
_PCT_LINE = re.compile(r"^(\d{1,3}),(\d+(?:\.\d+)?)$")


class AbRunner(ToolRunner):
    """`ab -q -k -r -l -t D -n N -c C -s T -e percentiles.csv [-m M] [-H ...] [-p|-u body -T ct]
    URL`. `-r` keeps going on socket errors (failures are data), `-l` accepts varying lengths.
    `-t` comes before `-n` on purpose: ab's `-t` resets `-n` to 50,000."""

    name: ClassVar[str] = "ab"
    binary: ClassVar[str] = "ab"
    install_hint: ClassVar[str] = "apt-get install apache2-utils"
    output_files: ClassVar[tuple[str, ...]] = (PERCENT_FILE, GNUPLOT_FILE)
    output_tail_lines: ClassVar[dict[str, int]] = {GNUPLOT_FILE: TAIL_LINES}
    warmup_whole_seconds: ClassVar[bool] = True

    def problems(self, spec: RunSpec) -> list[str]:
        out = []
        if spec.rate_rps > 0:
            out.append(f"loads.rate_rps: ab cannot run open loop at a fixed rate "
                       f"({spec.rate_rps:g} req/s); use rate_rps: 0 for closed loop or "
                       f"{NATIVE_ALTERNATIVE}")
        out += [p for p in (whole_seconds_problem(spec, "ab"),
                            whole_timeout_problem(spec, "ab")) if p]
        if spec.body and spec.method not in ("POST", "PUT"):
            out.append(f"request.body: ab sends a body with POST or PUT only, not "
                       f"{spec.method}; change request.method or use {NATIVE_ALTERNATIVE}")
        if spec.max_requests is not None and spec.max_requests < spec.connections:
            out.append(f"loads.max_requests: ab needs max_requests >= connections "
                       f"({spec.max_requests} < {spec.connections})")
        if spec.target.startswith("https://") and "://[" in spec.target:
            out.append("target: ab cannot reach IPv6 literal https targets reliably; use "
                       f"{NATIVE_ALTERNATIVE}")
        return out

    def planned_requests(self, spec: RunSpec) -> int:
        if spec.max_requests is not None:
            return spec.max_requests
        return min(math.ceil(spec.duration_s * PLANNED_RPS), MAX_PLANNED) + spec.connections

    def build_argv(self, spec: RunSpec) -> list[str]:
        argv = ["ab", "-q", "-k", "-r", "-l",
                "-t", str(math.ceil(spec.duration_s)), "-n", str(self.planned_requests(spec)),
                "-c", str(spec.connections), "-s", str(math.ceil(spec.timeout_s)),
                "-e", PERCENT_FILE, "-g", GNUPLOT_FILE]
        if spec.method == "HEAD":
            argv.append("-i")
        elif spec.body:
            ctype = header_value(spec, "Content-Type") or "application/octet-stream"
            argv += ["-p" if spec.method == "POST" else "-u", BODY_FILE, "-T", ctype]
        elif spec.method != "GET":
            argv += ["-m", spec.method]
        argv += header_args(spec, skip=("Content-Type",) if spec.body else ())
        return [*argv, spec.target]

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        text, files = split_output(stdout)
        got = {}
        for key, rx in _FIELDS.items():
            m = rx.search(text)
            if m is None:
                raise OutputParseError(f"ab output lacks its {key!r} line (truncated, or not "
                                       f"ab's report)", excerpt=text[-300:])
            got[key] = float(m.group(1))
        opt = {k: float(m.group(1)) for k, rx in _OPTIONAL.items() if (m := rx.search(text))}
        complete, failed = int(got["complete"]), int(got["failed"])
        non2xx = int(opt.get("non2xx", 0))
        duration_s = got["taken"]
        kinds: dict[str, int] = {}
        detail = _FAILED_DETAIL.search(text)
        if detail:
            connect, receive, length, exceptions = (int(x) for x in detail.groups())
            for kind, n in ((ErrorKind.CONNECT_REFUSED, connect), (ErrorKind.RESET, receive),
                            (ErrorKind.PROTOCOL, length), (ErrorKind.OTHER, exceptions)):
                if n:
                    kinds[str(kind)] = kinds.get(str(kind), 0) + n
        elif failed:
            kinds[str(ErrorKind.OTHER)] = failed
        points = _percentiles(files.get(PERCENT_FILE), complete)
        top_us = _slowest(files.get(GNUPLOT_FILE), complete)
        warnings = [HTTP10_WARNING, STATUS_WARNING]
        if spec.max_requests is None and complete >= self.planned_requests(spec):
            warnings.append(f"ab reached its planned {complete} requests before "
                            f"{spec.duration_s:g} s")
        result = base_result(
            spec, runner=self.name, duration_s=duration_s, requests=complete,
            errors=min(failed + non2xx, complete), status_codes={}, error_kinds=kinds,
            latency=from_quantiles(points, complete, top_us=top_us, top_resolution_us=1000.0),
            warnings=warnings)
        result.bytes_received = int(opt.get("transferred", 0))
        result.raw = {"tool": "ab", "complete": complete, "failed": failed, "non_2xx": non2xx,
                      "percentiles_ms": [[p, v / 1000.0] for p, v in points]}
        return result


def _percentiles(text: str | None, complete: int) -> list[tuple[float, float]]:
    """(percent, us) points from ab's `-e` CSV; [] when nothing completed."""
    if complete == 0:
        return []
    if text is None:
        raise OutputParseError(f"ab wrote no {PERCENT_FILE} (-e) for {complete} requests",
                               excerpt="")
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if not lines or lines[0] != "Percentage served,Time in ms":
        raise OutputParseError(f"ab {PERCENT_FILE} lacks its header", excerpt=text[:300])
    points = []
    for ln in lines[1:]:
        m = _PCT_LINE.match(ln)
        if m is None or int(m.group(1)) > 100:
            raise OutputParseError(f"ab {PERCENT_FILE}: bad line", excerpt=ln)
        points.append((float(m.group(1)), float(m.group(2)) * 1000.0))
    if len(points) != 101 or [p for p, _ in points] != [float(i) for i in range(101)]:
        raise OutputParseError(f"ab {PERCENT_FILE} is truncated: {len(points)} of 101 rows",
                               excerpt=text[-300:])
    return points


def _slowest(text: str | None, complete: int) -> list[float]:
    """Total times (us, whole ms) of the slowest rows ab's `-g` table kept, ascending."""
    if complete == 0 or not text:
        return []
    lines = text.strip("\n").split("\n")
    if lines[0].strip() != GNUPLOT_HEADER:
        raise OutputParseError(f"ab {GNUPLOT_FILE} lacks its header", excerpt=text[:300])
    out = []
    for ln in lines[1:]:
        cols = ln.split("\t")
        if len(cols) != 6 or not cols[4].strip().isdigit():
            raise OutputParseError(f"ab {GNUPLOT_FILE}: bad row (truncated?)", excerpt=ln)
        out.append(float(cols[4]) * 1000.0)
    if any(b < a for a, b in itertools.pairwise(out)):
        raise OutputParseError(f"ab {GNUPLOT_FILE} is not sorted by total time",
                               excerpt=text[-300:])
    return out[-complete:]
