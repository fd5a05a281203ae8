"""Profile importers: Meshery performance profiles (camelCase and snake_case), SMP / Meshery
PerformanceTestConfig, meshlab YAML; checked against the reference schemas and protos."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _formats_reference import MESHERY_API, MESHERY_SCHEMA, SMP_PROTO

from meshlab.errors import ProfileError
from meshlab.formats import import_profiles, load_profile_any
from meshlab.formats._doc import snake
from meshlab.formats.profile_import import CLIENT_KEYS, MESHERY_KEYS, TEST_CONFIG_KEYS

CAMEL = {
    "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "name": "istio soak",
    "owner": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
    "loadGenerators": ["fortio"],
    "endpoints": ["http://productpage.default:9080/productpage"],
    "serviceMesh": "Istio",
    "concurrentRequest": 4,
    "qps": 100,
    "duration": "1m",
    "requestHeaders": json.dumps({"Authorization": "Bearer abc", "X-Trace": "1"}),
    "requestCookies": json.dumps({"session": "s1"}),
    "requestBody": "",
    "contentType": "",
    "metadata": {},
    "totalResults": 3,
    "createdAt": "2026-01-01T00:00:00Z",
    "updatedAt": "2026-01-01T00:00:00Z",
}
SNAKE = {snake(k): v for k, v in CAMEL.items()} | {"user_id": CAMEL["owner"]}
del SNAKE["owner"]

SMP_CONFIG = """
smp_version: v0.0.1
id: load-test-1
name: productpage-load
labels: {team: perf, mesh: linkerd}
clients:
  - internal: false
    load_generator: wrk2
    protocol: PROTOCOL_HTTP
    connections: 8
    rps: 250
    headers: {X-Test: "1"}
    cookies: {}
    body: '{"q": 1}'
    content_type: application/json
    endpoint_urls:
      - http://192.168.1.15/productpage
duration: 30s
"""


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _schema_properties(path: Path, *names: str) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    if not names:
        return set(doc["properties"])
    out: set[str] = set()
    for n in names:
        out |= set(doc["components"]["schemas"][n]["properties"])
    return out


def test_importer_knows_every_field_of_the_reference_schemas() -> None:
    profile_props = _schema_properties(MESHERY_SCHEMA)
    assert {snake(k) for k in profile_props} <= MESHERY_KEYS
    assert set(CAMEL) <= profile_props                     # the sample uses real field names
    payload = _schema_properties(MESHERY_API, "PerformanceProfilePayload")
    assert {snake(k) for k in payload} <= MESHERY_KEYS
    assert {snake(k) for k in _schema_properties(MESHERY_API, "PerformanceTestConfig")} \
        <= TEST_CONFIG_KEYS
    assert {snake(k) for k in _schema_properties(MESHERY_API, "PerformanceTestClient")} \
        <= CLIENT_KEYS
    proto = SMP_PROTO.read_text()
    config = proto[proto.index("message PerformanceTestConfig"):
                   proto.index("message PerformanceTestResult")]
    client = config[config.index("message Client"):config.index("// Spec version")]
    field = re.compile(r"^\s+(?:repeated\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+;", re.M)
    client_fields = set(field.findall(client))
    assert client_fields == {"internal", "load_generator", "protocol", "connections", "rps",
                             "headers", "cookies", "body", "content_type", "endpoint_urls",
                             "ssl_certificate", "additional_options"}
    assert client_fields <= CLIENT_KEYS
    assert set(field.findall(config.replace(client, ""))) <= TEST_CONFIG_KEYS


@pytest.mark.parametrize("doc", [CAMEL, SNAKE], ids=["camelCase", "snake_case"])
def test_meshery_profile(tmp_path: Path, doc: dict[str, Any]) -> None:
    p = load_profile_any(_write(tmp_path, "profile.json", doc))
    assert p.name == "istio soak"
    assert p.target == "http://productpage.default:9080/productpage"
    assert p.meshes == ["istio"]
    assert p.runner == "fortio"
    assert p.loads.rate_rps == [100.0]
    assert p.loads.connections == [4]
    assert p.loads.duration_s == 60.0
    assert p.request.headers == {"Authorization": "Bearer abc", "X-Trace": "1"}
    assert p.request.cookies == {"session": "s1"}
    assert p.request.body is None and p.request.method == "GET"
    assert p.labels["imported.format"] == "meshery-profile"
    assert p.labels["meshery.id"] == CAMEL["id"]
    assert p.to_dict()["request"]["headers"]["Authorization"] == "<redacted>"


def test_meshery_profile_max_rate_body_and_runner_substitution(tmp_path: Path) -> None:
    doc = dict(CAMEL, qps=0, loadGenerators=["nighthawk", "fortio"], serviceMesh="",
               requestBody='{"a": 1}', contentType="application/json", duration="1h30m")
    p = load_profile_any(_write(tmp_path, "p.json", doc))
    assert p.loads.rate_rps == [0.0]
    assert p.loads.duration_s == 5400.0
    assert p.meshes == ["none"]
    assert p.runner == "native"
    assert p.labels["imported.runner_substitution"] == "nighthawk -> native"
    assert p.labels["imported.other_load_generators"] == "fortio"
    assert p.request.method == "POST" and p.request.body == '{"a": 1}'
    assert p.request.content_type == "application/json"
    wrk2_max = load_profile_any(_write(tmp_path, "w.json", dict(doc, loadGenerators=["wrk2"])))
    assert wrk2_max.runner == "wrk"                       # no rate to pace: plain wrk
    wrk2_rate = load_profile_any(_write(tmp_path, "w2.json",
                                        dict(doc, qps=50, loadGenerators=["wrk2"])))
    assert wrk2_rate.runner == "native"


def test_several_endpoints(tmp_path: Path) -> None:
    urls = ["http://a.example/", "http://b.example/", "http://c.example/x"]
    path = _write(tmp_path, "multi.json", dict(CAMEL, endpoints=urls))
    first = load_profile_any(path)
    assert first.target == urls[0]
    assert "http://b.example/" in first.description
    assert first.labels["imported.other_targets"] == "http://b.example/ http://c.example/x"
    assert [p.target for p in import_profiles(path)] == urls
    assert [p.name for p in import_profiles(path)] == [
        "istio soak-1", "istio soak-2", "istio soak-3"]


def test_meshery_page_of_profiles(tmp_path: Path) -> None:
    page = {"page": 0, "pageSize": 25, "totalCount": 2,
            "profiles": [CAMEL, dict(CAMEL, name="second", qps=5)]}
    path = _write(tmp_path, "page.json", page)
    assert [p.name for p in import_profiles(path)] == ["istio soak", "second"]
    assert load_profile_any(path).name == "istio soak"


def test_smp_test_config_yaml(tmp_path: Path) -> None:
    p = load_profile_any(_write(tmp_path, "smp.yaml", SMP_CONFIG))
    assert p.name == "productpage-load"
    assert p.target == "http://192.168.1.15/productpage"
    assert p.loads.rate_rps == [250.0] and p.loads.connections == [8]
    assert p.loads.duration_s == 30.0
    assert p.runner == "native"
    assert p.labels["imported.runner_substitution"] == "wrk2 -> native"
    assert p.labels["team"] == "perf"
    assert p.meshes == ["linkerd"]
    assert p.request.headers == {"X-Test": "1"}
    assert p.request.content_type == "application/json"
    assert p.request.method == "POST"


def test_meshery_camelcase_test_config(tmp_path: Path) -> None:
    doc = {"smpVersion": "v0.0.1", "name": "cfg", "duration": "10s",
           "clients": [{"loadGenerator": "fortio", "protocol": "http", "connections": 2,
                        "rps": 0, "endpointUrls": ["http://x.example/", "http://y.example/"]},
                       {"endpointUrls": ["http://z.example/"], "rps": 7}]}
    profiles = import_profiles(_write(tmp_path, "cfg.json", doc))
    assert [(p.target, p.loads.rate_rps[0], p.runner) for p in profiles] == [
        ("http://x.example/", 0.0, "fortio"), ("http://y.example/", 0.0, "fortio"),
        ("http://z.example/", 7.0, "fortio")]
    assert profiles[2].labels["imported.load_generator"] == "fortio (Meshery's default)"


def test_meshlab_yaml_still_loads(tmp_path: Path) -> None:
    text = "name: local\ntarget: http://127.0.0.1:8080/\nloads: {rate_rps: [100, 200]}\n"
    p = load_profile_any(_write(tmp_path, "meshlab.yaml", text))
    assert p.loads.rate_rps == [100.0, 200.0]


def test_meshlab_profile_with_typos_gets_meshlab_problems(tmp_path: Path) -> None:
    # no `target` and an unknown key: still mostly meshlab keys, so meshlab's own problem list
    # (this used to be decided by a second guesser in the CLI; load_profile_any said "not a
    # profile")
    text = "name: typo\nrunner: wrk\nloads: {rate_rps: [100]}\nrepeat: 3\n"
    with pytest.raises(ProfileError) as ei:
        load_profile_any(_write(tmp_path, "typo.yaml", text))
    assert sorted(ei.value.problems) == ["repeat: unknown key; remove it or check its spelling",
                                         "target: required; add it"]


def test_bad_meshery_profile_lists_every_problem(tmp_path: Path) -> None:
    doc = dict(CAMEL, endpoints=[], qps="lots", duration="10 minutes",
               loadGenerators=["jmeter"], requestHeaders="Authorization: x", colour="red")
    del doc["name"]
    with pytest.raises(ProfileError) as ei:
        load_profile_any(_write(tmp_path, "bad.json", doc))
    text = "\n".join(ei.value.problems)
    for needle in ("colour: unknown key", "name: required", "endpoints: required",
                   "qps: 'lots' is not a number", "duration: not a Go duration",
                   "unknown load generator 'jmeter'", "requestHeaders: expected a JSON object"):
        assert needle in text, needle
    assert ei.value.source and ei.value.source.endswith("bad.json")


def test_bad_values_are_reported_in_source_terms(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as ei:
        load_profile_any(_write(tmp_path, "neg.json",
                                dict(CAMEL, qps=-5, endpoints=["ftp://nope/"])))
    problems = ei.value.problems
    assert any(p.startswith("qps (meshlab loads.rate_rps):") for p in problems), problems
    assert any(p.startswith("endpoints (meshlab target):") for p in problems), problems


@pytest.mark.parametrize(("content", "needle"), [
    ("", "empty document"),
    ('{"name": "x", "endpoints": ["http://a/"', "invalid JSON"),
    ("just some words", "not a meshlab profile"),
    ("[1, 2, 3]", "found a list"),
    ("clients: [{protocol: grpc, endpoint_urls: ['http://a/']}]\nname: g\nduration: 1s\n",
     "is not HTTP"),
    ("clients: []\nname: g\n", "clients: required"),
])
def test_bad_documents(tmp_path: Path, content: str, needle: str) -> None:
    with pytest.raises(ProfileError) as ei:
        load_profile_any(_write(tmp_path, "doc.yaml", content))
    assert needle in str(ei.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile_any(tmp_path / "nope.json")
