"""A runner defined outside meshlab, registered by import path in tests/test_registry.py: one
connection per request, sequential, closed loop. Small on purpose; it is a real load runner."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlsplit

from meshlab.profile import RunSpec
from meshlab.progress import ProgressCallback
from meshlab.results import Histogram, RunResult, RunStatus, new_run_id
from meshlab.runners.base import Runner


class TinyRunner(Runner):
    """Sends GET requests one after another until `max_requests` or `duration_s`."""

    name: ClassVar[str] = "tiny"
    install_hint: ClassVar[str] = "nothing to install: tests/_tiny_runner.py"

    async def run(self, spec: RunSpec, *, progress: ProgressCallback | None = None) -> RunResult:
        url = urlsplit(spec.target)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        request = (f"GET {url.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Connection: close\r\n\r\n").encode()
        started = datetime.now(UTC)
        t_end = time.monotonic() + spec.duration_s
        latencies_ns: list[int] = []
        codes: dict[int, int] = {}
        errors = 0
        while time.monotonic() < t_end and (spec.max_requests is None
                                            or len(latencies_ns) < spec.max_requests):
            t0 = time.perf_counter_ns()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
            latencies_ns.append(time.perf_counter_ns() - t0)
            code = int(response.split(b" ", 2)[1])
            codes[code] = codes.get(code, 0) + 1
            errors += code >= 400
        ended = datetime.now(UTC)
        latency = Histogram()
        latency.record_ns(latencies_ns)
        duration_s = (ended - started).total_seconds()
        return RunResult(
            run_id=new_run_id(), spec=spec.to_dict(), status=RunStatus.COMPLETED,
            started_at=started, ended_at=ended, duration_s=duration_s,
            requested_rate_rps=spec.rate_rps, achieved_rate_rps=len(latencies_ns) / duration_s,
            requests=len(latencies_ns), errors=errors, status_codes=codes, error_kinds={},
            latency=latency, service_time=latency.copy(), runner=self.name)


class NotARunner:
    """Registered by mistake: loading it must say it is not a Runner."""
