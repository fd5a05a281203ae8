"""The mesh-neutral traffic policy model: one description of retries, timeouts, circuit breaking,
fault injection, rate limiting, load balancing and mTLS, compiled by each data plane (playground)
or mesh adapter (Kubernetes) to its own configuration, or rejected there with a clear error.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MtlsMode(enum.StrEnum):
    """Mutual TLS between sidecars: off, permissive (accepts both), strict (refuses plaintext)."""

    OFF = "off"
    PERMISSIVE = "permissive"
    STRICT = "strict"


RetryOn = Literal["5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx",
                  "refused-stream", "retriable-status-codes",
                  "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                  "unavailable"]

GRPC_RETRY_ON: frozenset[str] = frozenset({"cancelled", "deadline-exceeded", "internal",
                                           "resource-exhausted", "unavailable"})
"""Retry conditions on a gRPC status code (Envoy's and Istio's names): only a gRPC route has
them, and only a proxy that reads `grpc-status` (not the HTTP status) can apply them."""
CONNECTION_RETRY_ON: frozenset[str] = frozenset({"reset", "connect-failure", "refused-stream"})
"""Retry conditions on the connection or stream, the same for every HTTP protocol."""


_DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("5xx", "connect-failure", "reset")


class RetryPolicy(_Model):
    attempts: int = Field(default=2, ge=1, le=10, description="retries after the first try")
    per_try_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    retry_on: list[RetryOn] = Field(default_factory=lambda: list(_DEFAULT_RETRY_ON), min_length=1)
    retriable_status_codes: list[int] = Field(default_factory=list)
    backoff_base_s: float | None = Field(default=None, gt=0, le=60)


class TimeoutPolicy(_Model):
    request_timeout_s: float = Field(gt=0, le=3600, description=(
        "whole request, retries included; on a gRPC route the per-call deadline (a shorter "
        "grpc-timeout sent by the client wins where the data plane reads it)"))
    idle_timeout_s: float | None = Field(default=None, gt=0, le=86_400)


class OutlierDetection(_Model):
    consecutive_5xx: int = Field(default=5, ge=1, le=1000)
    interval_s: float = Field(default=10.0, gt=0, le=3600)
    base_ejection_s: float = Field(default=30.0, gt=0, le=3600)
    max_ejection_percent: int = Field(default=50, ge=1, le=100)


class CircuitBreaker(_Model):
    max_connections: int | None = Field(default=None, ge=1)
    max_pending_requests: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=0)
    outlier_detection: OutlierDetection | None = None

    @model_validator(mode="after")
    def _something(self) -> CircuitBreaker:
        if all(v is None for v in (self.max_connections, self.max_pending_requests,
                                   self.max_requests, self.max_retries, self.outlier_detection)):
            raise ValueError("set at least one limit or outlier_detection")
        return self


class FaultDelay(_Model):
    delay_s: float = Field(gt=0, le=3600)
    percent: float = Field(default=100.0, gt=0, le=100)


class FaultAbort(_Model):
    http_status: int = Field(ge=200, le=599)
    percent: float = Field(default=100.0, gt=0, le=100)


class FaultInjection(_Model):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _something(self) -> FaultInjection:
        if self.delay is None and self.abort is None:
            raise ValueError("set delay, abort or both")
        return self


class RateLimit(_Model):
    requests_per_s: float = Field(gt=0, description="sustained rate allowed per proxy")
    burst: int | None = Field(default=None, ge=1, description="token bucket size")
    http_status: int = Field(default=429, ge=400, le=599)


class LoadBalancing(_Model):
    algorithm: Literal["round_robin", "least_request", "random"] = "round_robin"


class TrafficPolicy(_Model):
    """A named set of policies applied to traffic towards `service` (all services if None)."""

    name: str = Field(default="default", min_length=1, max_length=100,
                      pattern=r"^[a-z0-9]([-a-z0-9_.+]*[a-z0-9])?$")
    service: str | None = None
    mtls: MtlsMode | None = None
    retries: RetryPolicy | None = None
    timeout: TimeoutPolicy | None = None
    circuit_breaker: CircuitBreaker | None = None
    fault: FaultInjection | None = None
    rate_limit: RateLimit | None = None
    load_balancing: LoadBalancing | None = None

    def features(self) -> list[str]:
        """The policy kinds this set uses, as named in adapter support tables
        (`mtls`, `retries`, `timeout`, `circuit_breaker`, `outlier_detection`, `fault.delay`,
        `fault.abort`, `rate_limit`, `load_balancing.<algorithm>`)."""
        out: list[str] = []
        if self.mtls is not None and self.mtls != MtlsMode.OFF:
            out.append("mtls")
        if self.retries:
            out.append("retries")
        if self.timeout:
            out.append("timeout")
        if self.circuit_breaker:
            cb = self.circuit_breaker
            if any(v is not None for v in (cb.max_connections, cb.max_pending_requests,
                                           cb.max_requests, cb.max_retries)):
                out.append("circuit_breaker")
            if cb.outlier_detection:
                out.append("outlier_detection")
        if self.fault:
            if self.fault.delay:
                out.append("fault.delay")
            if self.fault.abort:
                out.append("fault.abort")
        if self.rate_limit:
            out.append("rate_limit")
        if self.load_balancing:
            out.append(f"load_balancing.{self.load_balancing.algorithm}")
        return out

    def unsupported(self, supported: set[str] | frozenset[str]) -> list[str]:
        """The features this policy uses that are not in `supported`."""
        return [f for f in self.features() if f not in supported]


NO_POLICY = TrafficPolicy(name="none")

_TCP_WHY = ("protocol tcp carries connections, not requests: an L4 route has no requests to "
            "retry, time out, abort or rate-limit; use protocol http1, h2c or grpc")


def protocol_problems(policy: TrafficPolicy, protocol: str) -> list[tuple[str, str]]:
    """(field, reason) for what `policy` asks that traffic of `protocol` cannot mean, whatever
    carries it: HTTP policies on raw TCP, gRPC status conditions on a route without gRPC."""
    out: list[tuple[str, str]] = []
    if protocol == "tcp":
        for name in ("retries", "timeout", "fault", "rate_limit"):
            if getattr(policy, name) is not None:
                out.append((name, _TCP_WHY))
        cb = policy.circuit_breaker
        if cb is not None:
            out += [(f"circuit_breaker.{k}", _TCP_WHY) for k in
                    ("max_pending_requests", "max_requests", "max_retries")
                    if getattr(cb, k) is not None]
            if cb.outlier_detection is not None:
                out.append(("circuit_breaker.outlier_detection", _TCP_WHY))
        return out
    r = policy.retries
    if protocol != "grpc" and r is not None:
        codes = [c for c in r.retry_on if c in GRPC_RETRY_ON]
        if codes:
            out.append(("retries.retry_on", f"{', '.join(codes)}: gRPC status codes, and "
                        f"protocol {protocol} carries no gRPC status; use protocol grpc, or "
                        f"HTTP conditions such as 5xx"))
    return out
