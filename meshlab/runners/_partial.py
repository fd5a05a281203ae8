"""What one native-runner engine measured (`Partial`), mergeable across worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meshlab.results import Histogram


@dataclass(slots=True)
class Second:
    """One flushed second of the measured window."""

    requests: int
    errors: int
    p50_us: float
    p99_us: float
    buckets: list[tuple[int, int]] | None = None    # latency histogram, kept for worker merges


@dataclass(slots=True)
class Partial:
    """What one engine measured; merged across worker processes into one RunResult."""

    started_at: datetime
    ended_at: datetime
    duration_s: float = 0.0
    requests: int = 0
    errors: int = 0
    status_codes: dict[int, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)
    service_time: Histogram = field(default_factory=Histogram)
    seconds: list[Second] = field(default_factory=list)
    bytes_received: int = 0
    aborted: bool = False
    warnings: list[str] = field(default_factory=list)
    unsent_requests: int = 0        # open loop: came due within the window, never sent
    cpu_s: float = 0.0              # CPU time of the sending thread over the window
    window_start_s: float = 0.0     # open loop: when measuring began, on the send schedule

    def to_dict(self) -> dict[str, Any]:
        """A picklable/JSON-safe form (for worker processes)."""
        return {
            "started_at": self.started_at.isoformat(), "ended_at": self.ended_at.isoformat(),
            "duration_s": self.duration_s, "requests": self.requests, "errors": self.errors,
            "status_codes": self.status_codes, "error_kinds": self.error_kinds,
            "latency": self.latency.to_dict(), "service_time": self.service_time.to_dict(),
            "seconds": [(s.requests, s.errors, s.p50_us, s.p99_us, s.buckets)
                        for s in self.seconds],
            "bytes_received": self.bytes_received, "aborted": self.aborted,
            "warnings": self.warnings, "unsent_requests": self.unsent_requests,
            "cpu_s": self.cpu_s, "window_start_s": self.window_start_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partial:
        return cls(
            started_at=datetime.fromisoformat(d["started_at"]),
            ended_at=datetime.fromisoformat(d["ended_at"]),
            duration_s=d["duration_s"], requests=d["requests"], errors=d["errors"],
            status_codes=dict(d["status_codes"]), error_kinds=dict(d["error_kinds"]),
            latency=Histogram.from_dict(d["latency"]),
            service_time=Histogram.from_dict(d["service_time"]),
            seconds=[Second(*s) for s in d["seconds"]],
            bytes_received=d["bytes_received"], aborted=d["aborted"], warnings=d["warnings"],
            unsent_requests=int(d.get("unsent_requests", 0)), cpu_s=float(d.get("cpu_s", 0.0)),
            window_start_s=float(d.get("window_start_s", 0.0)),
        )
