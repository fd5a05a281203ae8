"""h2load's text output (nghttp2-client) to a `RunResult`: a summary only (counts, status
classes, min/max/mean/sd of request time), so the run keeps no invented histogram and says so.
meshlab's h2load runner reads the same summary lines and adds `--log-file` for the histogram.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from meshlab.errors import OutputParseError
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus

REQUESTS = re.compile(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", re.MULTILINE)
FINISHED = re.compile(r"^finished in ([\d.]+)(us|ms|s|m), ", re.MULTILINE)
UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.MULTILINE)
_TIME = r"([\d.]+)(us|ms|s|m)"
_REQUEST_TIME = re.compile(rf"^time for request:\s+{_TIME}\s+{_TIME}\s+{_TIME}\s+{_TIME}",
                           re.MULTILINE)
_CLIENTS = re.compile(r"^spawning thread #\d+: (\d+) total client\(s\)", re.MULTILINE)
_PROTOCOL = re.compile(r"^Application protocol: (\S+)", re.MULTILINE)
_TRAFFIC = re.compile(r"^traffic: \S+ \((\d+)\) total", re.MULTILINE)
_PROTOCOLS = {"h2c": "h2c", "h2": "h2", "http/1.1": "http1"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUMMARY_ONLY = ("h2load's text output is a summary (min, max, mean, sd of request time): no "
                "percentiles and no histogram are kept; run h2load through meshlab (runner: "
                "h2load, which reads its --log-file) for the full distribution")


def _seconds(value: str, unit: str, line: str) -> float:
    try:
        return float(value) * UNIT_S[unit]
    except ValueError:
        raise OutputParseError(f"h2load `{line}` holds {value!r}, not a number",
                               excerpt=value) from None


def is_h2load_text(data: bytes) -> bool:
    """h2load's stdout: its `finished in` and `requests:` summary lines."""
    head = data[:65536].decode("utf-8", "replace")
    return FINISHED.search(head) is not None and REQUESTS.search(head) is not None


def summary_counts(text: str) -> tuple[float, tuple[int, ...]]:
    """(duration_s, (total, started, done, succeeded, failed, errored, timeout)) from h2load's
    summary lines; OutputParseError naming the missing line."""
    f = FINISHED.search(text)
    m = REQUESTS.search(text)
    if f is None or m is None:
        line = "finished in" if f is None else "requests:"
        raise OutputParseError(f"h2load output has no `{line}` summary line (truncated, or "
                               "not h2load)", excerpt=text[-300:])
    return _seconds(f.group(1), f.group(2), "finished in"), tuple(int(g) for g in m.groups())


def run_from_h2load(data: bytes, *, run_id_for: Callable[[datetime], str],
                    ended_at: datetime | None = None) -> RunResult:
    """One run from h2load's stdout. h2load prints no start time: the run ends at `ended_at`
    (the file's modification time on import) or, without it, at the epoch."""
    text = data.decode("utf-8", "replace")
    duration_s, (total, _started, done, _ok, _failed, errored, timeout) = summary_counts(text)
    s = _STATUS.search(text)
    if s is None:
        raise OutputParseError("h2load output has no `status codes:` line (truncated?)",
                               excerpt=text[-300:])
    classes = [int(g) for g in s.groups()]
    if sum(classes) != done:
        raise OutputParseError(f"h2load `status codes:` add up to {sum(classes)}, `requests:` "
                               f"says {done} done", excerpt=s.group(0))
    t = _REQUEST_TIME.search(text)
    if t is None:
        raise OutputParseError("h2load output has no `time for request:` line (truncated?)",
                               excerpt=text[-300:])
    g = t.groups()
    min_us, max_us, mean_us, sd_us = (_seconds(g[i], g[i + 1], "time for request:") * 1e6
                                      for i in range(0, 8, 2))
    proto = _PROTOCOL.search(text)
    warnings = [SUMMARY_ONLY, "h2load counts responses by status class only: 200, 300, 400 "
                              "and 500 stand for 2xx, 3xx, 4xx and 5xx"]
    if proto is None:
        protocol = "h2c"
        warnings.append("h2load printed no application protocol (no connection succeeded): "
                        "h2c assumed")
    elif proto.group(1) in _PROTOCOLS:
        protocol = _PROTOCOLS[proto.group(1)]
    else:
        raise OutputParseError(f"Application protocol: {proto.group(1)!r} is not one of "
                               f"{', '.join(_PROTOCOLS)}", excerpt=proto.group(0))
    codes = {c: n for c, n in zip((200, 300, 400, 500), classes, strict=True) if n}
    kinds = {k: n for k, n in (("timeout", timeout), ("other", max(errored - timeout, 0))) if n}
    conns = sum(int(n) for n in _CLIENTS.findall(text))
    traffic = _TRAFFIC.search(text)
    ended = ended_at or EPOCH
    if ended_at is None:
        warnings.append("h2load's output holds no start time; the run is dated at the epoch")
    requests = done + errored
    ctx: dict[str, Any] = {
        "format": "h2load", "summary_only": True, "latency_corrected": False,
        "status_codes_grouped_by_class": True,
        "reported_percentiles_us": {"0": min_us, "100": max_us} if done else {},
        "reported_mean_us": mean_us, "reported_stddev_us": sd_us,
        "h2load_requests": {"total": total, "done": done, "errored": errored,
                            "timeout": timeout}}
    spec = RunSpec(target="", connections=max(conns, 1), duration_s=duration_s,
                   runner="h2load", profile="imported", protocol=protocol)
    started = ended - timedelta(seconds=duration_s)
    return RunResult(
        run_id=run_id_for(started), spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=started, ended_at=ended, duration_s=duration_s, requested_rate_rps=0.0,
        achieved_rate_rps=requests / duration_s if duration_s > 0 else 0.0, requests=requests,
        errors=classes[2] + classes[3] + errored, status_codes=codes, error_kinds=kinds,
        latency=Histogram(), service_time=Histogram(), runner="h2load", context=ctx,
        warnings=warnings, bytes_received=int(traffic.group(1)) if traffic else 0,
        raw={"tool": "h2load", "summary_only": True, "output": text[-20000:]})
