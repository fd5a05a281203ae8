"""request.protocol: validated in the profile, carried on every run, refused by runners that
cannot speak it (never a silent fallback to HTTP/1.1)."""

from __future__ import annotations

import pytest

from meshlab.dimensions import RunDimensions
from meshlab.errors import ProfileError
from meshlab.profile import Profile, RunSpec
from meshlab.runners.base import get_runner


def _profile(**request: object) -> Profile:
    target = request.pop("target", "http://127.0.0.1:8080/")
    return Profile.from_dict({"name": "p", "target": target, "request": request})


def test_default_protocol_is_http1_and_stored_on_the_run() -> None:
    spec = next(_profile().expand())
    assert spec.protocol == "http1"
    assert spec.to_dict()["protocol"] == "http1"
    assert RunDimensions.from_record(spec.to_dict(), {}, rate_rps=0).protocol == "http1"


def test_protocol_list_is_a_matrix_dimension() -> None:
    p = _profile(protocol=["http1", "h2c", "grpc"], streams_per_connection=8)
    specs = list(p.expand())
    assert p.run_count() == len(specs) == 3
    assert [s.protocol for s in specs] == ["http1", "h2c", "grpc"]
    assert all(s.streams_per_connection == 8 for s in specs)
    dims = [RunDimensions.from_record(s.to_dict(), {}, rate_rps=0).protocol for s in specs]
    assert dims == ["http1", "h2c", "grpc"]


@pytest.mark.parametrize(("protocol", "target", "needle"), [
    ("h2c", "https://127.0.0.1:8443/", "h2c cannot be sent to a https://"),
    ("h2", "http://127.0.0.1:8080/", "h2 cannot be sent to a http://"),
    ("tcp", "http://127.0.0.1:8080/", "tcp cannot be sent to a http://"),
    ("http1", "tcp://127.0.0.1:9000", "http1 cannot be sent to a tcp://"),
    ("quic", "http://127.0.0.1:8080/", "request.protocol[0]"),
])
def test_protocol_and_target_must_fit(protocol: str, target: str, needle: str) -> None:
    with pytest.raises(ProfileError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        _profile(protocol=protocol, target=target)


def test_tcp_target_needs_a_port() -> None:
    with pytest.raises(ProfileError, match="names no port"):
        _profile(protocol="tcp", target="tcp://127.0.0.1")


@pytest.mark.parametrize("runner", ["wrk", "hey", "ab"])
@pytest.mark.parametrize("protocol", ["h2c", "grpc"])
def test_http1_only_tools_refuse_other_protocols(runner: str, protocol: str) -> None:
    spec = RunSpec(target="http://127.0.0.1:8080/", protocol=protocol, duration_s=1.0)
    with pytest.raises(ProfileError, match=f"runner {runner} cannot speak {protocol}"):
        get_runner(runner).check(spec)


@pytest.mark.parametrize(("runner", "speaks"), [
    ("wrk", {"http1"}), ("ab", {"http1"}), ("hey", {"http1", "h2"}),
    ("fortio", {"http1", "h2c", "h2", "grpc", "tcp"}), ("h2load", {"http1", "h2c", "h2"}),
    ("k6", {"http1", "h2", "grpc"}),
])
def test_each_tool_speaks_exactly_its_protocols(runner: str, speaks: set[str]) -> None:
    targets = {"h2": "https://127.0.0.1:8443/", "tcp": "tcp://127.0.0.1:9000"}
    for protocol in ("http1", "h2c", "h2", "grpc", "tcp"):
        spec = RunSpec(target=targets.get(protocol, "http://127.0.0.1:8080/"),
                       protocol=protocol, duration_s=1.0)
        if protocol in speaks:
            get_runner(runner).check(spec)
        else:
            with pytest.raises(ProfileError, match=f"runner {runner} cannot speak {protocol}"):
                get_runner(runner).check(spec)
