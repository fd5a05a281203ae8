"""The external-tool helper: real child processes (sh scripts standing in for a load tool where a
real tool cannot produce the failure), deadlines, cancellation, and the error mapping."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import ClassVar

import pytest

from meshlab.errors import OutputParseError, ToolFailed, ToolNotFound
from meshlab.profile import RunSpec
from meshlab.progress import Progress
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.runners._tool import (
    ToolRunner,
    base_result,
    join_output,
    redact_argv,
    run_tool,
    split_output,
)
from meshlab.runners.base import get_runner
from meshlab.runners.fortio import FortioRunner
from meshlab.runners.wrk import WrkRunner


class ShRunner(ToolRunner):
    """A 'load tool' written in sh: prints `requests=N` lines; the last one is the report."""

    name: ClassVar[str] = "sh-tool"
    binary: ClassVar[str] = "sh"

    def __init__(self, script: str, *, deadline_s: float = 10.0) -> None:
        self.script = script
        self._deadline_s = deadline_s
        self.interrupt_grace_s = 0.5

    def build_argv(self, spec: RunSpec) -> list[str]:
        return ["sh", "-c", self.script]

    def deadline_s(self, spec: RunSpec) -> float:
        return self._deadline_s

    def parse_output(self, stdout: str, *, spec: RunSpec) -> RunResult:
        lines = [ln for ln in stdout.splitlines() if ln.startswith("requests=")]
        if not lines:
            raise OutputParseError("no requests= line", excerpt=stdout)
        n = int(lines[-1].split("=", 1)[1])
        h = Histogram()
        h.record_us([100.0] * n)
        return base_result(spec, runner=self.name, duration_s=spec.duration_s, requests=n,
                           errors=0, status_codes={200: n}, error_kinds={}, latency=h)


SPEC = RunSpec(target="http://127.0.0.1:1/", duration_s=1.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_output_files_round_trip_through_one_document() -> None:
    doc = join_output("report\n", {"a.csv": "x,y\n1,2\n", "b.tsv": "h\n"})
    assert split_output(doc) == ("report\n", {"a.csv": "x,y\n1,2\n", "b.tsv": "h\n"})
    assert split_output("plain") == ("plain", {})


def test_secret_headers_are_redacted_in_argv() -> None:
    argv = ["wrk", "-H", "Authorization: Bearer s3cret", "-H", "Accept: */*", "http://x:1/"]
    out = redact_argv(argv)
    assert "s3cret" not in " ".join(out)
    assert "Accept: */*" in out and out[-1] == "http://x:1/"


def test_missing_binary_raises_tool_not_found_with_install_hint() -> None:
    async def main() -> None:
        with pytest.raises(ToolNotFound, match=r"apt-get install wrk.*runner=\"native\""):
            await run_tool(["/nonexistent/wrk"], tool="wrk", install=WrkRunner.install_hint,
                           deadline_s=5)
        with pytest.raises(ToolNotFound, match="not packaged for Debian or PyPI"):
            await run_tool(["/nonexistent/fortio"], tool="fortio",
                           install=FortioRunner.install_hint, deadline_s=5)

    asyncio.run(main())


class Missing(ShRunner):
    """A tool runner whose binary is on no PATH, carrying its own install hint."""

    name: ClassVar[str] = "missing-tool"
    binary: ClassVar[str] = "meshlab-no-such-tool"
    install_hint: ClassVar[str] = "apt-get install meshlab-no-such-tool"

    def build_argv(self, spec: RunSpec) -> list[str]:
        return [self.binary]


def test_every_runner_carries_its_own_install_hint() -> None:
    for name in ("wrk", "hey", "ab", "fortio"):
        runner = get_runner(name)
        assert runner.install_hint and runner.install_hint == type(runner).install_hint, name
    assert "apache2-utils" in get_runner("ab").install_hint


@pytest.mark.parametrize("where", ["is_available", "spawn"])
def test_a_missing_tool_is_reported_with_the_runner_install_hint(where: str) -> None:
    runner = Missing("true")
    if where == "spawn":     # found on PATH by `is_available`, gone when it is spawned
        runner.is_available = lambda: True  # type: ignore[method-assign]
    with pytest.raises(ToolNotFound, match=r"\(apt-get install meshlab-no-such-tool\) or use "
                                           r"runner=\"native\""):
        asyncio.run(runner.run(RunSpec(target="http://127.0.0.1:9/", duration_s=1)))


def test_nonzero_exit_raises_tool_failed_with_stderr_tail() -> None:
    async def main() -> None:
        runner = ShRunner("echo 'it broke: bad flag' >&2; exit 3")
        with pytest.raises(ToolFailed) as info:
            await runner.run(SPEC)
        assert info.value.returncode == 3
        assert "bad flag" in info.value.stderr_tail
        assert info.value.argv[:2] == ["sh", "-c"] or info.value.argv[0].endswith("/sh")

    asyncio.run(main())


def test_garbage_output_raises_output_parse_error() -> None:
    async def main() -> None:
        with pytest.raises(OutputParseError, match="no requests= line"):
            await ShRunner("echo garbage").run(SPEC)

    asyncio.run(main())


def test_deadline_stops_the_process_group_and_raises() -> None:
    async def main() -> None:
        # The tool ignores SIGINT and SIGTERM: only SIGKILL ends it (after ~1 s of escalation).
        runner = ShRunner("trap '' INT TERM; sleep 30 & wait; sleep 30", deadline_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(ToolFailed, match=r"did not finish within 0\.3 s"):
            await runner.run(SPEC)
        assert time.monotonic() - t0 < 15

    asyncio.run(main())


def test_cancellation_returns_the_partial_report_marked_aborted() -> None:
    async def main() -> None:
        # Like wrk/hey/ab: on SIGINT the tool prints what it has and exits.
        runner = ShRunner("trap 'echo requests=42; exit 0' INT; echo requests=1; "
                          "while :; do sleep 0.05; done")
        task = asyncio.ensure_future(runner.run(SPEC))
        await asyncio.sleep(0.5)
        task.cancel()
        result = await task
        assert result.status == RunStatus.ABORTED
        assert result.requests == 42
        assert any("cancelled" in w for w in result.warnings)

    asyncio.run(main())


def test_cancellation_of_a_silent_tool_returns_an_empty_aborted_result() -> None:
    async def main() -> None:
        runner = ShRunner("trap '' INT; echo $$ > pid; sleep 30")
        task = asyncio.ensure_future(runner.run(SPEC))
        await asyncio.sleep(0.5)
        task.cancel()
        result = await task
        assert result.status == RunStatus.ABORTED and result.requests == 0
        assert result.run_id and result.runner == "sh-tool"

    asyncio.run(main())


def test_soft_stop_interrupts_and_keeps_the_report() -> None:
    async def main() -> None:
        class Soft(ShRunner):
            def stop_after_s(self, spec: RunSpec) -> float | None:
                return 0.3

        runner = Soft("trap 'echo requests=7; exit 1' INT; while :; do sleep 0.05; done")
        result = await runner.run(SPEC)
        assert result.status == RunStatus.COMPLETED and result.requests == 7
        assert any("SIGINT" in w for w in result.warnings)

    asyncio.run(main())


def test_warmup_runs_first_and_progress_reports_phases() -> None:
    async def main() -> None:
        seen: list[Progress] = []
        runner = ShRunner("echo requests=5")
        result = await runner.run(RunSpec(target="http://127.0.0.1:1/", duration_s=1.0,
                                          warmup_s=0.5), progress=seen.append)
        phases = [p.phase for p in seen]
        assert phases[0] == "warmup" and "measure" in phases and phases[-1] == "done"
        assert result.requests == 5 and result.run_id and result.started_at < result.ended_at

    asyncio.run(main())


def test_real_wrk_against_a_closed_port_fails_with_its_message() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        spec = RunSpec(target=f"http://127.0.0.1:{port}/", connections=1, duration_s=1)
        with pytest.raises(ToolFailed) as info:
            await WrkRunner().run(spec)
        assert "connect" in str(info.value).lower()

    asyncio.run(main())


def test_no_process_survives_a_cancelled_run() -> None:
    async def main() -> None:
        task = asyncio.ensure_future(run_tool(["sh", "-c", "trap '' INT; echo $$; sleep 30"],
                                              tool="sh", deadline_s=60, interrupt_grace_s=0.3))
        await asyncio.sleep(0.3)
        task.cancel()
        out = await task
        assert out.aborted
        pid = int(out.stdout.split()[0])
        assert not _alive(pid)

    asyncio.run(main())
