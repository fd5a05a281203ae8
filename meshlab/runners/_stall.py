"""Stall watch for the native runner: a stall is a stretch of more than the request timeout with
no response at all while requests were outstanding (a hung target, a dead upstream)."""

from __future__ import annotations


class StallWatch:
    """Fed every timeout sweep with the response count so far; noticed to within one sweep."""

    __slots__ = ("from_ns", "last_ns", "longest_ns", "seen", "stalls")

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, now_ns: int) -> None:
        """Start watching (the measured window begins; the response count restarts at 0)."""
        self.seen = 0
        self.last_ns = now_ns
        self.from_ns: int | None = None
        self.stalls = 0
        self.longest_ns = 0

    def observe(self, now_ns: int, responses: int, *, outstanding: bool, limit_ns: int) -> None:
        if responses != self.seen:
            self.seen, self.last_ns = responses, now_ns
            self.close(now_ns)
        elif self.from_ns is None and outstanding and now_ns - self.last_ns > limit_ns:
            self.from_ns = self.last_ns
            self.stalls += 1

    def close(self, now_ns: int) -> None:
        """End the stall in progress, if any (a response came, or the window closed)."""
        if self.from_ns is not None:
            self.longest_ns = max(self.longest_ns, now_ns - self.from_ns)
            self.from_ns = None

    def warning(self, timeout_s: float) -> str | None:
        if not self.stalls:
            return None
        return (f"target stalled: no response for {self.longest_ns / 1e9:.2f} s (longer than "
                f"the {timeout_s:g} s timeout) while requests were outstanding, "
                f"{self.stalls} time(s); those requests timed out and count as errors")
