"""The mesh-neutral policy model: validation, feature naming, and unsupported detection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshlab.policy import CircuitBreaker, MtlsMode, TrafficPolicy


def test_features_name_each_policy_kind() -> None:
    p = TrafficPolicy.model_validate({
        "name": "all", "mtls": "strict", "retries": {"attempts": 3},
        "timeout": {"request_timeout_s": 0.5},
        "circuit_breaker": {"max_connections": 1, "outlier_detection": {}},
        "fault": {"delay": {"delay_s": 0.1, "percent": 10}, "abort": {"http_status": 503}},
        "rate_limit": {"requests_per_s": 100}, "load_balancing": {"algorithm": "least_request"},
    })
    assert p.features() == ["mtls", "retries", "timeout", "circuit_breaker", "outlier_detection",
                            "fault.delay", "fault.abort", "rate_limit",
                            "load_balancing.least_request"]
    assert p.unsupported({"mtls", "retries", "timeout"}) == [
        "circuit_breaker", "outlier_detection", "fault.delay", "fault.abort", "rate_limit",
        "load_balancing.least_request"]


def test_mtls_off_is_no_feature() -> None:
    assert TrafficPolicy(name="plain", mtls=MtlsMode.OFF).features() == []


@pytest.mark.parametrize("doc", [
    {"name": "x", "fault": {}},
    {"name": "x", "circuit_breaker": {}},
    {"name": "x", "retries": {"attempts": 0}},
    {"name": "x", "fault": {"abort": {"http_status": 99}}},
    {"name": "Bad Name"},
    {"name": "x", "retrys": {}},
])
def test_invalid_policies_are_rejected(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrafficPolicy.model_validate(doc)


def test_empty_circuit_breaker_message() -> None:
    with pytest.raises(ValidationError, match="at least one limit"):
        CircuitBreaker()
