"""h2load: argv, what it refuses, golden outputs (summary + per-request log) and real runs of the
binary against the echo workload on loopback."""

from __future__ import annotations

import asyncio

import pytest
from _runner_tests import assert_sane, golden, spec

from meshlab.errors import OutputParseError, ProfileError
from meshlab.playground.echo import start_echo_process
from meshlab.runners._tool import FILE_MARKER
from meshlab.runners.h2load import LOG_FILE, H2loadRunner


def test_argv() -> None:
    argv = H2loadRunner().build_argv(spec(protocol="h2c", streams_per_connection=8,
                                          duration_s=1.5, headers=(("X-A", "1"),)))
    assert argv[:7] == ["h2load", "-c", "4", "-t", "1", "-m", "8"]
    assert argv[argv.index("-D") + 1] == "1500ms" and "-n" not in argv
    assert argv[argv.index("-N") + 1] == "10s"
    assert "X-A: 1" in argv and argv[-2:] == [f"--log-file={LOG_FILE}", "http://127.0.0.1:8080/"]
    post = H2loadRunner().build_argv(spec(protocol="h2c", max_requests=100, method="POST",
                                          body=b"x"))
    assert post[post.index("-n") + 1] == "100" and post[post.index("-d") + 1] == "body.bin"
    assert "--h1" in H2loadRunner().build_argv(spec(protocol="http1"))


@pytest.mark.parametrize(("kw", "path"), [
    ({"rate_rps": 100.0}, "loads.rate_rps"),
    ({"method": "PUT", "body": b"x"}, "request.method"),
    ({"max_requests": 2}, "loads.max_requests"),
    ({"protocol": "grpc"}, "request.protocol"),
    ({"protocol": "tcp", "target": "tcp://127.0.0.1:9"}, "request.protocol"),
])
def test_check_rejects(kw: dict[str, object], path: str) -> None:
    base: dict[str, object] = {"protocol": "h2c"}
    base.update(kw)
    with pytest.raises(ProfileError) as info:
        H2loadRunner().check(spec(**base))
    assert info.value.problems[0].startswith(path + ":")


def test_golden_mix() -> None:
    s = spec(protocol="h2c", max_requests=400)
    r = H2loadRunner().parse_output(golden("h2load_mix.txt"), spec=s)
    assert r.requests == 400 and set(r.status_codes) == {200, 503}
    assert 0.1 < r.status_codes[503] / 400 < 0.3
    assert r.errors == r.status_codes[503] and r.error_kinds == {}
    assert r.latency.total == 400
    assert sum(p.requests for p in r.timeseries) == 400
    assert_sane(r)


def test_golden_post_and_refused() -> None:
    r = H2loadRunner().parse_output(golden("h2load_post.txt"),
                                    spec=spec(protocol="h2c", max_requests=200))
    assert r.requests == 200 and r.status_codes == {200: 200} and r.errors == 0
    refused = H2loadRunner().parse_output(golden("h2load_refused.txt"),
                                          spec=spec(protocol="h2c", max_requests=10))
    assert refused.requests == 10 and refused.errors == 10
    assert refused.error_kinds == {"other": 10} and refused.status_codes == {}
    assert refused.warnings


@pytest.mark.parametrize("text", [
    "", "garbage\n", golden("h2load_mix.txt")[:200],
    golden("h2load_mix.txt").split(FILE_MARKER)[0] + f"{FILE_MARKER}{LOG_FILE}\n1\t200\n",
    golden("h2load_mix.txt").replace("\t200\t", "\tabc\t", 1),
])
def test_truncated_or_garbage_raises(text: str) -> None:
    with pytest.raises(OutputParseError):
        H2loadRunner().parse_output(text, spec=spec(protocol="h2c"))


def test_real_run_against_the_echo_workload() -> None:
    with start_echo_process(name="h2load") as echo:
        s = spec(target=echo.url + "?status=503:25", protocol="h2c", connections=2,
                 streams_per_connection=4, max_requests=800)
        r = asyncio.run(H2loadRunner().run(s))
    assert r.requests == 800 and set(r.status_codes) == {200, 503}
    assert 0.15 < r.status_codes[503] / 800 < 0.35
    assert r.runner == "h2load" and r.spec["protocol"] == "h2c"
    assert_sane(r)
