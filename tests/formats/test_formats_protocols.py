"""Exports per protocol: a gRPC run in fortio's GRPCRunnerResults shape, a TCP run in its
tcprunner shape, h2/h2c flagged `H2`; the protocol in SMP's labels; and each read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import yaml

from meshlab.formats import export_run, import_results
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus


def _run(protocol: str, *, connections: int = 4, streams: int = 1,
         codes: dict[int, int] | None = None, kinds: dict[str, int] | None = None) -> RunResult:
    h = Histogram()
    h.record_ns(np.random.default_rng(1).lognormal(np.log(300_000), 0.5, 500).astype(np.int64))
    scheme = {"tcp": "tcp", "h2": "https"}.get(protocol, "http")
    spec = RunSpec(target=f"{scheme}://127.0.0.1:8080/", connections=connections,
                   protocol=protocol, streams_per_connection=streams, rate_rps=100.0,
                   body=b"hello", dims=(("protocol", protocol),))
    codes = codes if codes is not None else {200: 500}
    kinds = kinds or {}
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    n = sum(codes.values()) + sum(kinds.values())
    return RunResult(
        run_id=f"20261201T100000-{protocol}", spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=start, ended_at=start + timedelta(seconds=5), duration_s=5.0,
        requested_rate_rps=100.0, achieved_rate_rps=n / 5, requests=n,
        errors=n - codes.get(200, 0), status_codes=codes, error_kinds=kinds, latency=h,
        service_time=h.copy(), runner="native")


def test_grpc_run_exports_fortios_grpc_result_shape() -> None:
    run = _run("grpc", connections=2, streams=4, codes={200: 480},
               kinds={"grpc_unavailable": 15, "reset": 5})
    doc = json.loads(export_run(run, "fortio"))
    assert doc["RunType"] == "GRPC Ping PayloadLength=5"
    assert doc["RetCodes"] == {"SERVING": 480, "ERROR": 20}
    assert doc["NumThreads"] == 8 and doc["Streams"] == 4      # fortio: -c 2 -s 4 -> 8
    assert doc["Destination"] == "http://127.0.0.1:8080/" and doc["Ping"] is True
    assert "URL" not in doc and "HTTPReqTimeOut" not in doc
    (back,) = import_results(json.dumps(doc).encode())
    assert back.dimensions.protocol == "grpc" and back.dimensions.connections == 2
    assert back.spec["streams_per_connection"] == 4
    assert (back.status_codes, back.error_kinds) == (run.status_codes, run.error_kinds)
    # without meshlab's record (fortio's own file): SERVING is a good call, ERROR a failure
    doc.pop("Meshlab")
    (foreign,) = import_results(json.dumps(doc).encode())
    assert foreign.dimensions.protocol == "grpc" and foreign.dimensions.connections == 2
    assert foreign.status_codes == {200: 480} and foreign.error_kinds == {"other": 20}


def test_tcp_run_exports_fortios_tcp_result_shape() -> None:
    run = _run("tcp", codes={200: 490}, kinds={"reset": 6, "timeout": 4})
    doc = json.loads(export_run(run, "fortio"))
    assert doc["RunType"] == "TCP" and doc["Destination"] == "tcp://127.0.0.1:8080/"
    assert doc["RetCodes"] == {"OK": 490, "connection reset by peer": 6, "i/o timeout": 4}
    doc.pop("Meshlab")
    (back,) = import_results(json.dumps(doc).encode())       # the kinds survive fortio's keys
    assert back.dimensions.protocol == "tcp"
    assert back.status_codes == {200: 490} and back.error_kinds == {"reset": 6, "timeout": 4}


@pytest.mark.parametrize(("protocol", "h2"), [("http1", False), ("h2c", True), ("h2", True)])
def test_http_runs_flag_h2(protocol: str, h2: bool) -> None:
    doc = json.loads(export_run(_run(protocol), "fortio"))
    assert doc["RunType"] == "HTTP" and doc["H2"] is h2
    doc.pop("Meshlab")
    (back,) = import_results(json.dumps(doc).encode())
    assert back.dimensions.protocol == protocol


@pytest.mark.parametrize("protocol", ["http1", "h2c", "h2", "grpc", "tcp"])
def test_smp_carries_the_protocol_in_its_labels(protocol: str) -> None:
    run = _run(protocol, streams=3 if protocol in ("h2c", "grpc") else 1)
    doc = yaml.safe_load(export_run(run, "smp"))
    assert doc["labels"]["meshlab.protocol"] == protocol
    (back,) = import_results(export_run(run, "smp").encode())
    assert back.dimensions.protocol == protocol
    assert back.spec["streams_per_connection"] == run.spec["streams_per_connection"]


@pytest.mark.parametrize(("value", "protocol"), [("PROTOCOL_GRPC", "grpc"), (2, "tcp"),
                                                 ("PROTOCOL_HTTP", "http1")])
def test_smp_client_protocol_is_read(value: object, protocol: str) -> None:
    doc = {"smp_version": "v0.0.1", "start_time": "2026-12-01T10:00:00Z",
           "end_time": "2026-12-01T10:00:10Z",
           "client": {"connections": 2, "rps": 10.0, "protocol": value,
                      "latencies_ms": {"min": 1.0, "p50": 2.0, "p90": 3.0, "p99": 4.0,
                                       "max": 5.0}}}
    (run,) = import_results(json.dumps(doc).encode())
    assert run.dimensions.protocol == protocol
