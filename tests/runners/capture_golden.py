"""Regenerate tests/runners/golden/ from the real binaries against the echo server (not a test).

    .venv/bin/python tests/runners/capture_golden.py

Each file holds exactly what a runner's `parse_output` receives: the tool's stdout, plus any
output files joined under marker lines (ab's -e and -g tables).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from meshlab.playground.echo import start_echo_process
from meshlab.profile import RunSpec
from meshlab.runners._tool import ToolRunner, run_tool
from meshlab.runners.ab import AbRunner
from meshlab.runners.h2load import H2loadRunner
from meshlab.runners.hey import HeyRunner
from meshlab.runners.k6 import K6Runner
from meshlab.runners.wrk import WrkRunner

GOLDEN = Path(__file__).parent / "golden"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def capture(runner: ToolRunner, spec: RunSpec, name: str) -> None:
    out = await run_tool(runner.build_argv(spec), tool=runner.binary, install=runner.install_hint,
                         deadline_s=runner.deadline_s(spec), stop_after_s=runner.stop_after_s(spec),
                         input_files=runner.input_files(spec), output_files=runner.output_files,
                         output_tail_lines=runner.output_tail_lines)
    (GOLDEN / name).write_text(out.stdout, encoding="utf-8")
    print(f"{name}: rc={out.returncode} {len(out.stdout)} chars")


async def main() -> None:
    with start_echo_process(name="golden") as echo:
        mix = echo.url + "?status=503:20"
        refused = f"http://127.0.0.1:{free_port()}/"
        wrk, hey, ab = WrkRunner(threads=2), HeyRunner(), AbRunner()
        await capture(wrk, RunSpec(target=mix, connections=4, duration_s=1), "wrk_mix.txt")
        await capture(wrk, RunSpec(target=echo.url, connections=2, duration_s=1, method="POST",
                                   body=b"hello"), "wrk_post.txt")
        await capture(hey, RunSpec(target=mix, connections=4, max_requests=400), "hey_mix.csv")
        await capture(hey, RunSpec(target=refused, connections=2, max_requests=10),
                      "hey_refused.csv")
        await capture(ab, RunSpec(target=mix, connections=4, max_requests=400), "ab_mix.txt")
        await capture(ab, RunSpec(target=echo.url, connections=2, max_requests=200,
                                  method="POST", body=b"hello",
                                  headers=(("Content-Type", "text/plain"),)), "ab_post.txt")


async def protocols() -> None:
    """h2load and k6 goldens (`capture_golden.py protocols`)."""
    with start_echo_process(name="golden") as echo:
        mix = echo.url + "?status=503:20"
        refused = f"http://127.0.0.1:{free_port()}/"
        h2load = H2loadRunner()
        await capture(h2load, RunSpec(target=mix, protocol="h2c", connections=4,
                                      streams_per_connection=4, max_requests=400),
                      "h2load_mix.txt")
        await capture(h2load, RunSpec(target=echo.url, protocol="h2c", connections=2,
                                      streams_per_connection=2, max_requests=200, method="POST",
                                      body=b"hello"), "h2load_post.txt")
        await capture(h2load, RunSpec(target=refused, protocol="h2c", connections=2,
                                      max_requests=10), "h2load_refused.txt")
        k6 = K6Runner()
        await capture(k6, RunSpec(target=mix, connections=4, max_requests=400), "k6_mix.txt")
        await capture(k6, RunSpec(target=echo.url, protocol="grpc", connections=4,
                                  duration_s=1, headers=(("x-echo-query",
                                                          "grpc_status=unavailable:20"),)),
                      "k6_grpc_mix.txt")
        await capture(k6, RunSpec(target=echo.url, connections=4, duration_s=1,
                                  rate_rps=200.0), "k6_open.txt")
        await capture(k6, RunSpec(target=refused, connections=2, max_requests=10,
                                  timeout_s=1.0), "k6_refused.txt")


if __name__ == "__main__":
    asyncio.run(protocols() if sys.argv[1:] == ["protocols"] else main())
