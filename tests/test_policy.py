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


def test_protocol_problems_name_what_a_protocol_cannot_mean() -> None:
    from meshlab.policy import protocol_problems

    grpc = TrafficPolicy(name="g", retries={"attempts": 2,
                                            "retry_on": ["unavailable", "connect-failure"]})
    assert protocol_problems(grpc, "grpc") == []
    ((field, why),) = protocol_problems(grpc, "h2c")
    assert field == "retries.retry_on" and "unavailable" in why and "protocol h2c" in why
    l4 = TrafficPolicy(name="l4", retries={"attempts": 2}, load_balancing={"algorithm": "random"},
                       circuit_breaker={"max_connections": 4, "max_requests": 8})
    assert [f for f, _ in protocol_problems(l4, "tcp")] == ["retries",
                                                           "circuit_breaker.max_requests"]
    # mTLS, balancing and connection limits are L4 policies
    assert protocol_problems(l4.model_copy(update={"retries": None, "circuit_breaker":
                                                    CircuitBreaker(max_connections=4)}),
                             "tcp") == []
