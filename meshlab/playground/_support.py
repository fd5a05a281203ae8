"""Field-level policy support of the playground data planes: which TrafficPolicy fields each
compiler renders, which it rejects (with the reason), and the check that turns a policy into the
list of problems a MeshError reports. A field a table does not mention is rejected, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from meshlab.policy import GRPC_RETRY_ON, TrafficPolicy

ValueCheck = Callable[[TrafficPolicy], list[tuple[str, str]]]
"""Extra problems a value causes (`("retries.retriable_status_codes", "418: nginx retries only
on ...")`), for fields rendered in general but not with every value."""
ProtocolCheck = Callable[[TrafficPolicy, str], list[tuple[str, str]]]
"""Extra problems of a policy on one protocol (`grpc`: a proxy that cannot read grpc-status)."""

# a coarse feature (MeshInfo.supported, TrafficPolicy.features()) -> the field that carries it
_FEATURE_FIELD = {
    "mtls": "mtls", "retries": "retries.attempts", "timeout": "timeout.request_timeout_s",
    "outlier_detection": "circuit_breaker.outlier_detection.consecutive_5xx",
    "fault.delay": "fault.delay.delay_s", "fault.abort": "fault.abort.http_status",
    "rate_limit": "rate_limit.requests_per_s",
}
_LIMITS = ("max_connections", "max_pending_requests", "max_requests", "max_retries")


@dataclass(frozen=True, slots=True)
class FieldSupport:
    """What one data plane (one proxy flavour: HTTP or L4) does with each policy field.

    `rendered` and `rejected` hold dotted field paths or prefixes of them (`fault.delay`); the
    longest matching prefix decides. `rejected` maps to the reason and the fix."""

    plane: str
    rendered: frozenset[str]
    rejected: Mapping[str, str] = field(default_factory=dict)
    values: ValueCheck | None = None
    by_protocol: ProtocolCheck | None = None

    def decision(self, path: str) -> str | None:
        """None when `path` is rendered, else the reason it is rejected."""
        best, reason = -1, "meshlab has no compiler for this field yet"
        for prefix in self.rendered:
            if _matches(path, prefix) and len(prefix) > best:
                best, reason = len(prefix), ""
        for prefix, why in self.rejected.items():
            if _matches(path, prefix) and len(prefix) > best:
                best, reason = len(prefix), why
        return reason or None

    def features(self) -> frozenset[str]:
        """The coarse feature names (as MeshInfo.supported lists them) this plane renders."""
        out = {f for f, path in _FEATURE_FIELD.items() if self.decision(path) is None}
        if any(self.decision(f"circuit_breaker.{k}") is None for k in _LIMITS):
            out.add("circuit_breaker")
        if self.decision("load_balancing.algorithm") is None:
            out |= {"load_balancing.round_robin", "load_balancing.least_request",
                    "load_balancing.random"}
        return frozenset(out)

    def problems(self, policy: TrafficPolicy, protocol: str = "http1",
                 ) -> list[tuple[str, str]]:
        """(field, reason) for every field `policy` sets that this plane cannot render for
        traffic of `protocol`."""
        out = [(path, why) for path in used_fields(policy)
               if (why := self.decision(path)) is not None]
        if self.values is not None:
            out += self.values(policy)
        if self.by_protocol is not None:
            out += self.by_protocol(policy, protocol)
        return out


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def used_fields(policy: BaseModel, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaf fields a policy sets: inside a component that is present, every
    field whose value is not None or empty (defaults count: they are asked for too)."""
    for name in type(policy).model_fields:
        value = getattr(policy, name)
        if value is None or value == []:
            continue
        if isinstance(value, BaseModel):
            yield from used_fields(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def describe_problems(problems: list[tuple[str, str]]) -> str:
    """`a, b (reason); c (reason)`: fields grouped by their reason, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for path, why in problems:
        grouped.setdefault(why, [])
        if path not in grouped[why]:
            grouped[why].append(path)
    return "; ".join(f"{', '.join(paths)} ({why})" for why, paths in grouped.items())


def common_values(policy: TrafficPolicy) -> list[tuple[str, str]]:
    """Value problems every data plane shares."""
    r = policy.retries
    if r is not None and r.retriable_status_codes and "retriable-status-codes" not in r.retry_on:
        return [("retries.retriable_status_codes", "ignored unless retries.retry_on includes "
                 "retriable-status-codes; add it")]
    return []


def status_codes(policy: TrafficPolicy, allowed: frozenset[int], plane: str,
                 ) -> list[tuple[str, str]]:
    """Retriable status codes a data plane cannot retry on, one problem per code."""
    r = policy.retries
    if r is None or "retriable-status-codes" not in r.retry_on:
        return []
    return [("retries.retriable_status_codes",
             f"{code}: {plane} retries only on {', '.join(map(str, sorted(allowed)))}")
            for code in r.retriable_status_codes if code not in allowed]


def whole_rate(requests_per_s: float) -> tuple[int, int] | None:
    """(requests, window_s) expressing the rate within 1 % with a window of 1, 10 or 60 s; None
    when no such whole count exists (0.001 req/s)."""
    for window_s in (1, 10, 60):
        n = round(requests_per_s * window_s)
        if n >= 1 and abs(n / window_s - requests_per_s) <= 0.01 * requests_per_s:
            return n, window_s
    return None


def grpc_status_retries(policy: TrafficPolicy, protocol: str, why: str,
                        ) -> list[tuple[str, str]]:
    """The gRPC status conditions of a gRPC route's retries, for a proxy that cannot see them."""
    r = policy.retries
    if protocol != "grpc" or r is None:
        return []
    codes = [c for c in r.retry_on if c in GRPC_RETRY_ON]
    return [("retries.retry_on", f"{', '.join(codes)} on protocol grpc: {why}")] if codes else []
