"""What differs between fortio's HTTP, gRPC and TCP result objects (`fhttp.HTTPRunnerResults`,
`fgrpc.GRPCRunnerResults`, `tcprunner.RunnerResults`): the run's protocol, its connections
and streams, its RetCodes keys, and the fields after the shared `periodic.RunnerResults`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlab.formats._doc import count
from meshlab.results import ErrorKind, RunResult

GRPC_OK = "SERVING"          # fortio's ping and health runs count a good call under this key
GRPC_ERROR = "ERROR"         # fgrpc.Error: every failed call (fortio keeps no gRPC code)
TCP_OK = "OK"                # tcprunner.TCPStatusOK; failures are keyed by their error text
# fortio's TCP error texts (Go's net errors) <-> meshlab's error kinds, both ways
_TCP_KINDS = (("connection refused", ErrorKind.CONNECT_REFUSED),
              ("connection reset by peer", ErrorKind.RESET),
              ("i/o timeout", ErrorKind.TIMEOUT), ("short read", ErrorKind.CLOSED),
              ("read not echoing writes", ErrorKind.PROTOCOL))
_TCP_TEXT = {str(kind): text for text, kind in _TCP_KINDS}


def run_kind(run_type: str) -> str:
    """"grpc", "tcp" or "http" from fortio's RunType ("GRPC Ping Delay=...", "TCP", "HTTP")."""
    upper = run_type.strip().upper()
    if upper.startswith("GRPC"):
        return "grpc"
    return "tcp" if upper.startswith("TCP") else "http"


def protocol_of(d: Mapping[str, Any], kind: str, url: str, threads: int, path: str
                ) -> tuple[str, int, int]:
    """(protocol, connections, streams per connection) of a fortio result. A gRPC run's
    NumThreads is connections x Streams (fortio multiplies them: `-c 2 -s 4` gives 8); an HTTP
    run with `"H2": true` is h2 over https, h2c over http."""
    if kind == "grpc":
        streams = max(count(d.get("Streams") or 1, f"{path}Streams"), 1)
        return "grpc", max(threads // streams, 1) if threads else 0, streams
    if kind == "tcp":
        return "tcp", threads, 1
    if d.get("H2") is True:
        return ("h2" if url.lower().startswith("https://") else "h2c"), threads, 1
    return "http1", threads, 1


def tcp_error_kind(key: str) -> str:
    """meshlab's error kind for one of fortio's TCP error texts ("connection refused" ...)."""
    low = key.lower()
    for needle, kind in _TCP_KINDS:
        if needle in low:
            return str(kind)
    return str(ErrorKind.TIMEOUT) if "timeout" in low else str(ErrorKind.OTHER)


def protocol_fields(result: RunResult, *, ok: int, failed: int, threads: int,
                    streams: int) -> tuple[str, dict[str, Any]]:
    """(RunType, the fields fortio writes after the shared ones) for a gRPC or TCP run. A TCP
    run's failures are keyed by the error text fortio would print for each kind."""
    dims = result.dimensions
    target = dims.target or ""
    spec = result.spec
    if dims.protocol == "grpc":
        run_type = "GRPC Ping"
        size = int(spec.get("body_size_bytes") or 0)
        if size:
            run_type += f" PayloadLength={size}"
        ret = {GRPC_OK: ok} if ok else {}
        if failed:
            ret[GRPC_ERROR] = failed
        return run_type, {"RetCodes": ret, "Destination": target, "Streams": streams,
                          "Ping": True, "Metadata": None}
    ret = {TCP_OK: ok} if ok else {}
    for kind, n in sorted(result.error_kinds.items()):
        text = _TCP_TEXT.get(kind, f"{kind} error")
        ret[text] = ret.get(text, 0) + n
    rest = failed - sum(result.error_kinds.values())
    if rest > 0:                  # statuses other than a complete echo (none for meshlab's TCP)
        ret["other error"] = ret.get("other error", 0) + rest
    return "TCP", {"Destination": target, "Payload": None, "UnixDomainSocket": "",
                   "ReqTimeout": round(float(spec.get("timeout_s") or 10.0) * 1e9),
                   "RetCodes": ret, "SocketCount": int(result.context.get("socket_count")
                                                       or threads),
                   "BytesSent": int(result.context.get("bytes_sent") or 0),
                   "BytesReceived": int(result.bytes_received)}
