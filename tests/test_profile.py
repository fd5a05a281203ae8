"""Profile validation (one ProfileError listing every problem), expansion order and redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshlab.errors import ProfileError
from meshlab.profile import REDACTED, Profile, RunSpec, is_secret_name, redact_mapping

BASE = {"name": "p", "target": "http://127.0.0.1:8080/"}


def test_every_problem_in_one_error() -> None:
    bad = {"name": "", "target": "ftp://x", "runner": "warp", "repeats": 0, "typo_key": 1,
           "loads": {"rate_rps": [100, -5], "connections": [0], "duration_s": -1},
           "request": {"method": "BREW", "timeout_s": 0}}
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(bad, source="bad.yaml")
    problems = info.value.problems
    paths = {p.split(":", 1)[0] for p in problems}
    assert {"name", "target", "runner", "repeats", "typo_key", "loads.rate_rps",
            "loads.connections", "loads.duration_s", "request.method",
            "request.timeout_s"} <= paths
    assert "typo_key: unknown key; remove it or check its spelling" in problems
    assert any("rate -5" in p for p in problems)
    text = str(info.value)
    assert text.startswith(f"{len(problems)} problems in bad.yaml:")
    assert all(f"  - {p}" in text for p in problems)


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"name": "p"}, "target: required; add it"),
    ({**BASE, "target": "http://127.0.0.1:99999/"}, "invalid port"),
    ({**BASE, "modes": ["client-only"]}, "need environment: local or kubernetes"),
    ({**BASE, "request": {"body": "x", "payload_size_bytes": 10}}, "either body or"),
    ({**BASE, "request": {"headers": {"bad header": "x"}}}, "not a valid HTTP token"),
    ({**BASE, "policies": [{"name": "a"}, {"name": "a"}]}, "repeated: a"),
])
def test_single_problems(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(doc)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_yaml_errors_are_profile_errors(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("name: p\ntarget: [unclosed\n")
    with pytest.raises(ProfileError, match=r"\(yaml\): line"):
        Profile.load(f)
    with pytest.raises(ProfileError, match="cannot read"):
        Profile.load(tmp_path / "absent.yaml")
    with pytest.raises(ProfileError, match="expected a mapping"):
        Profile.from_yaml("- a\n- b\n")


def test_scalars_become_lists_and_defaults_apply() -> None:
    p = Profile.from_dict({**BASE, "meshes": "envoy", "loads": {"rate_rps": 50,
                                                                 "connections": 4}})
    assert p.meshes == ["envoy"] and p.loads.rate_rps == [50.0] and p.loads.connections == [4]
    assert p.runner == "native" and p.environment == "direct" and p.repeats == 1


def test_expand_order_repeats_outermost() -> None:
    p = Profile.from_dict({**BASE, "repeats": 2, "meshes": ["none", "envoy"],
                           "loads": {"rate_rps": [100, 200], "connections": [1, 8]}})
    specs = list(p.expand())
    assert len(specs) == p.run_count() == 16
    assert [s.index for s in specs] == list(range(16))
    keys = [(s.repeat, s.mesh, s.rate_rps, s.connections) for s in specs]
    expected = [(r, m, rate, c) for r in (0, 1) for m in ("none", "envoy")
                for rate in (100.0, 200.0) for c in (1, 8)]
    assert keys == expected
    assert all(s.dim("environment") == "direct" and s.dim("policy") == "none" for s in specs)
    assert all(s.target == BASE["target"] and s.profile == "p" for s in specs)


def test_expand_modes_and_policies() -> None:
    p = Profile.from_dict({**BASE, "environment": "local", "meshes": ["envoy"],
                           "modes": ["both", "client-only"],
                           "policies": [{"name": "retry"}, {"name": "plain"}]})
    dims = [(s.dim("mode"), s.dim("policy")) for s in p.expand()]
    assert dims == [("both", "retry"), ("both", "plain"), ("client-only", "retry"),
                    ("client-only", "plain")]


def test_the_none_baseline_runs_once_per_load_point_without_policy() -> None:
    # No proxy can apply a policy on mesh `none`: it is measured once, next to every policy
    # of the meshes under test, instead of making the whole profile invalid.
    p = Profile.from_dict({**BASE, "environment": "local", "meshes": ["none", "envoy"],
                           "repeats": 1, "loads": {"rate_rps": [100], "connections": [1]},
                           "policies": [{"name": "retry"}, {"name": "plain"}]})
    runs = [(s.mesh, s.dim("policy"), s.policy is None) for s in p.expand()]
    assert runs == [("none", "none", True), ("envoy", "retry", False),
                    ("envoy", "plain", False)]
    assert p.run_count() == 3


@pytest.mark.parametrize(("name", "secret"), [
    ("Authorization", True), ("Cookie", True), ("X-Auth-Token", True), ("X-Api-Key", True),
    ("api_key", True), ("Proxy-Authorization", True), ("key", True), ("Set-Cookie", True),
    ("X-Request-Id", False), ("Content-Type", False), ("Accept", False), ("User-Agent", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
    assert (redact_mapping({name: "v"})[name] == REDACTED) is secret


def test_redaction_wherever_a_spec_is_echoed() -> None:
    p = Profile.from_dict({**BASE, "request": {
        "headers": {"Authorization": "Bearer tok-123", "X-Api-Key": "key-456", "X-Ok": "fine"},
        "cookies": {"session": "cookie-789"}}})
    secrets = ("tok-123", "key-456", "cookie-789")
    profile_text = json.dumps(p.to_dict())
    (spec,) = list(p.expand())
    spec_text = json.dumps(spec.to_dict())
    for text in (profile_text, spec_text):
        assert not any(s in text for s in secrets)
        assert "fine" in text and REDACTED in text
    # the runner still gets the real values
    headers = dict(spec.headers)
    assert headers["Authorization"] == "Bearer tok-123"
    assert headers["Cookie"] == "session=cookie-789"
    assert "tok-123" in json.dumps(spec.to_dict(redact=False))
    assert p.to_dict(redact=False)["request"]["cookies"] == {"session": "cookie-789"}


def test_runspec_defaults() -> None:
    s = RunSpec(target="http://127.0.0.1:1/")
    assert not s.open_loop and s.to_dict()["headers"] == {}
    assert RunSpec(target="http://x/", rate_rps=10).open_loop


def test_slo_block() -> None:
    prof = Profile.from_dict({**BASE, "slo": {"p99_ms": 25, "error_rate": 0.001}})
    assert prof.slo is not None and prof.slo.p99_ms == 25.0 and prof.slo.p50_ms is None
    assert prof.to_dict()["slo"]["p99_ms"] == 25.0
    assert Profile.from_dict(BASE).slo is None
    with pytest.raises(ProfileError) as info:
        Profile.from_dict({**BASE, "slo": {"p99_ms": -1, "p50_ms": float("inf"),
                                           "p999_ms": float("nan"), "error_rate": 2,
                                           "min_achieved_ratio": 0, "p95_ms": 3}})
    paths = {p.split(":", 1)[0] for p in info.value.problems}
    assert paths == {"slo.p99_ms", "slo.p50_ms", "slo.p999_ms", "slo.error_rate",
                     "slo.min_achieved_ratio", "slo.p95_ms"}


def test_interleaved_expansion_shuffles_configurations_per_repeat() -> None:
    """Each repeat is a permutation of the (mesh, mode, policy) configurations, with the load
    points of one configuration kept together; the same seed gives the same order."""
    base = {"name": "x", "target": "http://127.0.0.1:1/", "meshes": ["a", "b", "c", "d"],
            "repeats": 3, "loads": {"rate_rps": [100, 200]}}
    orders = []
    for seed in range(8):
        p = Profile.from_dict({**base, "seed": seed})
        specs = list(p.expand())
        assert [s.index for s in specs] == list(range(24)) and len(specs) == p.run_count()
        for repeat in range(3):
            mine = [s for s in specs if s.repeat == repeat]
            assert sorted({s.mesh for s in mine}) == ["a", "b", "c", "d"]
            meshes = [s.mesh for s in mine]
            assert meshes[::2] == meshes[1::2]                        # rates stay together
            assert [s.rate_rps for s in mine] == [100.0, 200.0] * 4
        order = [s.mesh for s in specs[::2]]
        assert order == [s.mesh for s in Profile.from_dict({**base, "seed": seed}).expand()][::2]
        orders.append(order)
    assert any(o != ["a", "b", "c", "d"] * 3 for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    written = [s.mesh for s in Profile.from_dict({**base, "order": "sequential",
                                                  "seed": 3}).expand()][::2]
    assert written == ["a", "b", "c", "d"] * 3
