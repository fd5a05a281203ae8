"""What a fortio load pod of the stand-in prints: fortio's JSON result (the shape of the
reference document in tests/fixtures/fortio, with counts scaled to the pod's own -qps,
-c, -t / -n) between fortio's structured stderr log lines, as `kubectl logs` would show it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REFERENCE = (Path(__file__).resolve().parents[1] / "fixtures" / "fortio"
             / "fortio-README-rest-run-http-result.json")
# what "-qps -1" achieves per connection in this stand-in; a higher -qps falls short of it
MAX_RATE_PER_CONNECTION = 250
# latency buckets (seconds) and the share of calls in each: a plausible in-cluster spread
_BUCKETS = ((0.0003, 0.0004, 0.55), (0.0004, 0.0006, 0.30), (0.0006, 0.001, 0.12),
            (0.001, 0.003, 0.03))


def _flags(args: Sequence[str]) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    i = 1                                          # args[0] is the subcommand, "load"
    while i < len(args) - 1:
        a = args[i]
        if a in ("-uniform", "-allow-initial-errors", "-grpc", "-ping", "-h2"):   # booleans
            flags[a] = "true"
            i += 1
        else:
            flags[a] = args[i + 1]
            i += 2
    return flags, args[-1]


def _seconds(text: str) -> float:
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _percentile(data: list[dict[str, Any]], p: float, calls: int) -> float:
    """fortio's CalcPercentile: the first 100/Count percent is Min, then linear interpolation
    inside the bucket that reaches `p`, from the previous bucket's cumulative percent."""
    prev = 100.0 / calls
    if p <= prev:
        return float(data[0]["Start"])
    for d in data:
        if p <= d["Percent"]:
            return float(d["Start"] + (p - prev) / (d["Percent"] - prev)
                         * (d["End"] - d["Start"]))
        prev = d["Percent"]
    return float(data[-1]["End"])


def fortio_result(args: Sequence[str], *, image: str, seed: str,
                  codes: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The JSON a `fortio load -json - ...` with these args would print; `codes` splits the
    calls over return codes by share (default all 200)."""
    flags, url = _flags(args)
    conns = int(flags.get("-c", "8"))
    qps = float(flags.get("-qps", "8"))
    exactly = int(flags.get("-n", "0"))
    if exactly:
        calls = exactly
        duration_s = calls / (qps if qps > 0 else MAX_RATE_PER_CONNECTION * conns)
    else:
        duration_s = _seconds(flags.get("-t", "5s"))
        if qps > 0:
            # fortio's periodic runner plans int(qps * t) calls (at least 2, on fewer
            # connections when there are under 2 per connection), whole calls per connection
            planned = max(int(qps * duration_s), 2)
            conns = max(min(conns, planned // 2), 1)
            planned = planned // conns * conns
            # a saturated -qps sends what its connections carry
            calls = min(planned, round(MAX_RATE_PER_CONNECTION * conns * duration_s))
        else:
            calls = round(MAX_RATE_PER_CONNECTION * conns * duration_s)
    calls = max(calls, 1)
    # a little per-pod variation, deterministic per pod
    shift = 1 + int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) % 50 / 1000
    counts = [round(calls * share) for *_, share in _BUCKETS]
    counts[0] += calls - sum(counts)
    data, cum, total = [], 0, 0.0
    for (start, end, _), n in zip(_BUCKETS, counts, strict=True):
        if n <= 0:
            continue
        cum += n
        data.append({"Start": start * shift, "End": end * shift, "Percent": 100 * cum / calls,
                     "Count": n})
        total += n * (start + end) / 2 * shift
    lo, hi = data[0]["Start"] * 1.01, data[-1]["End"] * 0.97
    data[0]["Start"], data[-1]["End"] = lo, hi
    doc = copy.deepcopy(json.loads(REFERENCE.read_text(encoding="utf-8")))
    avg = total / calls
    doc["DurationHistogram"].update(
        Count=calls, Min=lo, Max=hi, Sum=total, Avg=avg, StdDev=avg * 0.3, Data=data,
        Percentiles=[{"Percentile": p, "Value": _percentile(data, p, calls)}
                     for p in (50, 75, 90, 99, 99.9)])
    ret: dict[str, int] = {}
    left = calls
    for code, share in sorted((codes or {"200": 1.0}).items(), key=lambda kv: kv[1]):
        n = min(round(calls * share), left)
        ret[code], left = n, left - n
    ret[max(codes or {"200": 1.0}, key=lambda c: (codes or {"200": 1.0})[c])] += left
    size = len(flags.get("-payload", "")) + 118
    for key, each in (("Sizes", size), ("HeaderSizes", 115)):
        doc[key].update(Count=calls, Min=each, Max=each, Sum=each * calls, Avg=each,
                        Data=[{"Start": each, "End": each, "Percent": 100, "Count": calls}])
    doc.update(
        Labels=flags.get("-labels", ""), StartTime=datetime.now(UTC).isoformat(),
        RequestedQPS="max" if qps <= 0 else f"{qps:g}",
        RequestedDuration=f"exactly {exactly} calls" if exactly else flags.get("-t", "5s"),
        ActualQPS=calls / duration_s, ActualDuration=int(duration_s * 1e9), NumThreads=conns,
        Version=image.rsplit(":", 1)[-1], Exactly=exactly,
        Uniform=flags.get("-uniform") == "true", URL=url, NumConnections=1,
        RetCodes={k: v for k, v in ret.items() if v}, SocketCount=conns,
        HTTPReqTimeOut=int(_seconds(flags.get("-timeout", "3s")) * 1e9),
        Payload=base64.b64encode(flags.get("-payload", "").encode()).decode(), AbortOn=0,
        H2=flags.get("-h2") == "true")
    if flags.get("-grpc") == "true":
        # fortio's gRPC result: Destination instead of URL, serving statuses as RetCodes
        del doc["URL"]
        doc.update(RunType="GRPC Ping" if flags.get("-ping") == "true" else "GRPC Health",
                   Destination=url, Streams=1, Ping=flags.get("-ping") == "true",
                   RetCodes={("SERVING" if k == "200" else k): v
                             for k, v in doc["RetCodes"].items()})
    return doc


def fortio_log(pod: Mapping[str, Any], container: str | None,
               codes: Mapping[str, float] | None = None) -> str:
    """The log of a fortio load container: structured stderr lines around the result."""
    spec = pod.get("spec") or {}
    c = next((c for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
              if c["name"] == (container or "fortio")), None)
    if c is None or (c.get("args") or [""])[0] != "load":
        return ""
    doc = fortio_result(c["args"], image=c.get("image", ""), seed=pod["metadata"]["name"],
                        codes=codes)
    calls = doc["DurationHistogram"]["Count"]
    ts = datetime.now(UTC).timestamp()
    lines = [json.dumps({"ts": ts, "level": "info", "r": 1, "file": "logger.go", "line": 254,
                         "msg": "Log level is now 3 Warning (was 2 Info)"}),
             json.dumps(doc, indent=2),
             json.dumps({"ts": ts + 1, "level": "warn", "file": "periodic.go", "line": 873,
                         "msg": f"All done {calls} calls (plus {doc['NumThreads']} warmup)"})]
    return "\n".join(lines) + "\n"
