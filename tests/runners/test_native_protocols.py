"""The native runner over h2c, gRPC and TCP against the echo workload in its own process:
counts, status and gRPC-code mixes, open-loop pacing, and bad targets (counted, never a hang)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import hpack
import pytest

from meshlab import wire
from meshlab.errors import ProfileError
from meshlab.playground.certs import CertificateAuthority
from meshlab.playground.echo import EchoProcess, start_echo_process
from meshlab.profile import RunSpec
from meshlab.progress import Progress
from meshlab.results import RunResult
from meshlab.runners._h2 import request_parts
from meshlab.runners.native import NativeRunner


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProcess]:
    with start_echo_process(tcp_port=0, name="proto") as proc:
        assert proc.tcp_port
        yield proc


def run(spec: RunSpec, runner: NativeRunner | None = None) -> RunResult:
    return asyncio.run((runner or NativeRunner()).run(spec))


def _spec(target: str, protocol: str, **kw: object) -> RunSpec:
    base: dict[str, object] = {"connections": 2, "streams_per_connection": 8, "duration_s": 5.0,
                               "warmup_s": 0.0, "timeout_s": 2.0}
    base.update(kw)
    return RunSpec(target=target, protocol=protocol, **base)  # type: ignore[arg-type]


def test_h2c_closed_loop_counts_statuses_with_warmup_and_progress(echo: EchoProcess) -> None:
    seen: list[Progress] = []
    spec = _spec(echo.url + "?status=503:25", "h2c", max_requests=3000, warmup_s=0.2)
    res = asyncio.run(NativeRunner().run(spec, progress=seen.append))
    assert res.requests == 3000
    assert set(res.status_codes) == {200, 503}
    assert 0.18 < res.status_codes[503] / res.requests < 0.32
    assert res.errors == res.status_codes[503]
    assert res.error_kinds == {}
    assert res.latency.total == 3000
    assert res.spec["protocol"] == "h2c" and res.dimensions.protocol == "h2c"
    assert {p.phase for p in seen} >= {"warmup", "done"}
    assert res.latency.percentile_us(50) <= res.latency.percentile_us(99)


def test_grpc_codes_are_counted_as_error_kinds(echo: EchoProcess) -> None:
    spec = _spec(echo.url, "grpc", max_requests=2000,
                 headers=(("x-echo-query", "grpc_status=unavailable:20"),))
    res = run(spec)
    assert res.requests == 2000
    unavailable = res.error_kinds.get("grpc_unavailable", 0)
    assert 0.13 < unavailable / 2000 < 0.27
    assert res.status_codes == {200: 2000 - unavailable}
    assert res.errors == unavailable
    assert res.latency.total == 2000          # a failed call has a latency, like an HTTP 503


def test_grpc_maps_http_status_and_ping_payload(echo: EchoProcess) -> None:
    res = run(_spec(echo.url, "grpc", max_requests=300, body=b"x" * 3000,
                    headers=(("x-echo-query", "status=503"),)))
    assert res.error_kinds == {"grpc_unavailable": 300}
    ok = run(_spec(echo.url, "grpc", max_requests=300, body=b"x" * 3000))
    assert ok.status_codes == {200: 300}
    assert ok.bytes_received > 300 * 3000     # the payload came back in every answer


def test_tcp_echo(echo: EchoProcess) -> None:
    spec = _spec(f"tcp://127.0.0.1:{echo.tcp_port}", "tcp", max_requests=2000,
                 body=b"y" * 1500)
    res = run(spec)
    assert res.requests == 2000 and res.errors == 0
    assert res.status_codes == {200: 2000}
    assert res.bytes_received == 2000 * 1500


@pytest.mark.parametrize("protocol", ["h2c", "grpc"])
def test_open_loop_keeps_the_rate(echo: EchoProcess, protocol: str) -> None:
    res = run(_spec(echo.url, protocol, rate_rps=400.0, duration_s=2.0, warmup_s=0.2))
    assert 0.95 < res.achieved_rate_rps / 400.0 < 1.05
    assert res.errors == 0
    assert res.service_time.total == res.requests


def test_workers_merge_h2c(echo: EchoProcess) -> None:
    res = run(_spec(echo.url, "h2c", max_requests=1000, connections=2),
              NativeRunner(workers=2))
    assert res.requests == 1000 and res.status_codes == {200: 1000}
    assert res.context["workers"] == 2


def test_request_header_block_is_stateless() -> None:
    spec = RunSpec(target="http://127.0.0.1:8080/a?b=1", protocol="h2c", method="POST",
                   body=b"abc", headers=(("X-Test", "1"), ("Host", "ignored")))
    block, body = request_parts(spec, "127.0.0.1", 8080, False)
    assert wire.hpack_is_stateless(block) and body == b"abc"
    decoder = hpack.Decoder()
    fields = dict(decoder.decode(block))
    assert fields[":path"] == "/a?b=1" and fields[":authority"] == "127.0.0.1:8080"
    assert fields["x-test"] == "1" and fields["content-length"] == "3"
    assert "host" not in fields
    assert dict(decoder.decode(block)) == fields       # the same bytes decode the same again
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize(("protocol", "target"), [
    ("h2c", "https://127.0.0.1:1/"), ("h2", "http://127.0.0.1:1/"),
    ("tcp", "http://127.0.0.1:1/"), ("grpc", "tcp://127.0.0.1:1"),
])
def test_native_refuses_a_target_the_protocol_cannot_reach(protocol: str, target: str) -> None:
    with pytest.raises(ProfileError, match=f"{protocol} cannot be sent"):
        NativeRunner().check(RunSpec(target=target, protocol=protocol))


def _bounded(spec: RunSpec) -> RunResult:
    started = time.monotonic()
    res = run(dataclasses.replace(spec, duration_s=1.0, timeout_s=0.3))
    assert time.monotonic() - started < 8.0
    return res


def test_grpc_against_an_http1_only_server_is_a_counted_protocol_error(nginx_url: str) -> None:
    res = _bounded(_spec(nginx_url, "grpc"))
    assert res.errors > 0 and res.status_codes == {}
    assert set(res.error_kinds) <= {"protocol", "closed", "reset"}
    assert res.error_kinds.get("protocol", 0) > 0


def test_tcp_against_an_http_server_counts_errors(echo: EchoProcess) -> None:
    res = _bounded(_spec(echo.url.replace("http://", "tcp://").rstrip("/"), "tcp",
                         connections=2))
    assert res.errors > 0 and res.status_codes == {}
    assert set(res.error_kinds) <= {"protocol", "timeout", "closed", "reset"}


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A TLS server (no ALPN h2) that answers nothing: what an h2c client must not hang on."""
    import threading

    files = CertificateAuthority(Path(tmp_path_factory.mktemp("ca"))).issue("tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    loop = asyncio.new_event_loop()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)           # answer nothing; closed on shutdown

    server = loop.run_until_complete(asyncio.start_server(hold, "127.0.0.1", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port

    async def shut() -> None:
        for w in writers:
            w.transport.abort()
        server.close()
        await server.wait_closed()

    asyncio.run_coroutine_threadsafe(shut(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_h2c_against_a_tls_server_counts_errors(tls_port: int) -> None:
    res = _bounded(_spec(f"http://127.0.0.1:{tls_port}/", "h2c"))
    assert res.errors > 0 and res.status_codes == {}
    assert set(res.error_kinds) <= {"protocol", "timeout", "closed", "reset"}


def test_h2_with_an_untrusted_certificate_is_a_counted_protocol_error(tls_port: int) -> None:
    res = _bounded(_spec(f"https://127.0.0.1:{tls_port}/", "h2"))
    assert res.errors > 0 and res.status_codes == {}
    assert set(res.error_kinds) == {"protocol"}


def test_h2c_goaway_reconnects_and_completes(echo: EchoProcess) -> None:
    # close=true:5: GOAWAY after 5 % of answers; streams the server had not taken yet fail
    # (closed), the others are answered, and the client reconnects
    res = run(_spec(echo.url + "?close=true:5", "h2c", max_requests=600))
    assert res.requests == 600
    assert res.status_codes.get(200, 0) >= 360
    assert set(res.error_kinds) <= {"closed", "reset"}
    one = run(_spec(echo.url + "?close=true:5", "h2c", max_requests=300,
                    streams_per_connection=1))
    assert one.status_codes == {200: 300}       # nothing sent behind a GOAWAY


def test_open_loop_counts_streams_refused_by_a_dead_target() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _bounded(_spec(f"http://127.0.0.1:{port}/", "grpc", rate_rps=200.0))
    assert res.errors > 0 and set(res.error_kinds) == {"connect_refused"}
