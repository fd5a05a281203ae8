"""Golden-file imports: every fortio / Nighthawk / Meshery / SMP result in tests/fixtures/."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from _formats_reference import (
    ALL_RESULT_FILES,
    FORTIO_FILES,
    MESHERY_RESULTS,
    NIGHTHAWK_NATIVE,
    REFERENCE,
    SMP_RESULT,
    fortio_docs,
)

from meshlab.formats import detect_format, fortio_histogram_data, import_results
from meshlab.formats._doc import parse_bytes
from meshlab.results import RunResult

FORTIO = REFERENCE / "fortio"

# file -> (format, runs, runner, requests, errors, status codes, requested rate, connections)
EXPECTED: dict[str, tuple[str, int, str, int, int, dict[int, int], float, int]] = {
    # -c 2 -s 4: fortio writes NumThreads 8 (2 connections x 4 streams); SERVING counts as 200
    "fortio-README-grpc-ping-result.json": ("fortio", 1, "fortio", 40, 0, {200: 40}, 8.0, 2),
    "fortio-README-rest-run-http-result.json": ("fortio", 1, "fortio", 4, 0, {200: 4}, 40.0, 2),
    "iter8-metrics-server_test-fortioResultJSON.json":
        ("fortio-map", 1, "fortio", 100, 0, {200: 100}, 8.0, 4),
    "nighthawk-output_formatter.medium.fortio.gold.json":
        ("nighthawk-fortio", 1, "nighthawk", 56, 0, {200: 56}, 30.0, 300),
    "nighthawk-output_formatter.medium.fortio-noquirks.gold.json":
        ("nighthawk-fortio", 1, "nighthawk", 56, 0, {200: 56}, 30.0, 300),
    "output_formatter.json.gold.json": ("nighthawk", 1, "nighthawk", 4, 0, {}, 5.0, 0),
    "meshery-test-results.json": ("meshery", 3, "fortio", 78, 0, {200: 78}, 0.0, 1),
    "service-mesh-performance-result.yaml": ("smp", 1, "smp", 10800, 0, {}, 0.0, 1),
}


def test_every_reference_result_file_has_an_expectation() -> None:
    assert {p.name for p in ALL_RESULT_FILES} == set(EXPECTED)


FORTIO_DOCS = [(f"{p.name}:{k}", d) for p in [*FORTIO_FILES, MESHERY_RESULTS]
               for k, d in fortio_docs(p)]


@pytest.mark.parametrize("path", ALL_RESULT_FILES, ids=lambda p: p.name)
def test_import_golden(path: Path) -> None:
    fmt, n, runner, requests, errors, codes, rate, conns = EXPECTED[path.name]
    assert detect_format(parse_bytes(path.read_bytes())) == fmt
    runs = import_results(path)
    assert len(runs) == n
    first = runs[0]
    assert first.context["format"] == fmt
    assert first.runner == runner
    assert (first.requests, first.errors, first.status_codes) == (requests, errors, codes)
    assert first.requested_rate_rps == rate
    assert first.spec["connections"] == conns
    assert first.raw is not None
    json.dumps([r.to_dict() for r in runs])               # JSON-safe, raw included
    again = [RunResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in runs]
    assert [a.latency for a in again] == [r.latency for r in runs]
    for r in runs:
        assert r.latency.total > 0
        assert r.latency == r.service_time
        assert r.context["latency_corrected"] is False
        assert r.ended_at >= r.started_at
        ps = [r.latency.percentile_us(p) for p in (50, 90, 99, 99.9)]
        assert ps == sorted(ps)
    # importing the same bytes twice gives the same run ids (a store can refuse duplicates)
    assert [r.run_id for r in import_results(path.read_bytes())] == [r.run_id for r in runs]


@pytest.mark.parametrize(("name", "doc"), FORTIO_DOCS, ids=[n for n, _ in FORTIO_DOCS])
def test_fortio_percentile_rule_reproduces_reported_percentiles(
        name: str, doc: Mapping[str, Any]) -> None:
    hd = fortio_histogram_data(doc)
    assert hd.percentiles, name
    for p, reported in hd.percentiles:
        assert hd.calc_percentile(p) == pytest.approx(reported, rel=1e-12, abs=1e-15), p


@pytest.mark.parametrize(("name", "doc"), FORTIO_DOCS, ids=[n for n, _ in FORTIO_DOCS])
def test_fortio_histogram_keeps_exact_stats(name: str, doc: Mapping[str, Any]) -> None:
    hd = fortio_histogram_data(doc)
    h = hd.to_histogram()
    assert h.total == hd.bucket_total == sum(b.count for b in hd.data)
    assert h.min_ns == round(hd.min * 1e9) and h.max_ns == round(hd.max * 1e9)
    assert h.mean_us == pytest.approx(hd.sum / hd.count * 1e6, rel=1e-12)
    assert h.stdev_us == pytest.approx(hd.stddev * 1e6, rel=1e-6, abs=1e-6)
    for p in (1, 50, 90, 99, 99.9):
        assert hd.min * 1e6 - 1e-6 <= h.percentile_us(p) <= hd.max * 1e6 + 1e-6


@pytest.mark.parametrize("path", [*FORTIO_FILES, MESHERY_RESULTS], ids=lambda p: p.name)
def test_meshlab_percentiles_fall_in_the_fortio_bucket_reported(path: Path) -> None:
    """The spread histogram agrees with fortio up to the resolution of fortio's own buckets:
    meshlab's percentile lies in the fortio bucket (or its neighbour, at a rank boundary) that
    holds the reported value, widened by one meshlab bucket (1/64 octave)."""
    docs = [d for name, d in fortio_docs(path) if not name.endswith("#ConnectionStats")]
    for r, doc in zip(import_results(path), docs, strict=True):
        hd = fortio_histogram_data(doc)
        reported = r.context["reported_percentiles_us"]
        assert reported == {f"{p:g}": v * 1e6 for p, v in hd.percentiles}
        edges = [(b.start_s, b.end_s) for b in hd.data if b.count]
        for key, value_us in reported.items():
            mine = r.latency.percentile_us(float(key))
            k = next(i for i, (s, e) in enumerate(edges) if s * 1e6 <= value_us <= e * 1e6)
            lo = edges[max(k - 1, 0)][0] * 1e6 * (1 - 1 / 64)
            hi = edges[min(k + 1, len(edges) - 1)][1] * 1e6 * (1 + 1 / 64)
            assert lo <= mine <= hi, (key, value_us, mine)
            assert math.isfinite(mine)


def test_fortio_http_fields() -> None:
    (r,) = import_results(FORTIO / "fortio-README-rest-run-http-result.json")
    assert r.spec["target"] == "http://localhost:8080"
    assert r.spec["method"] == "POST"                      # Payload "Zm9v" = b"foo"
    assert r.spec["body_size_bytes"] == 3
    assert r.spec["duration_s"] == pytest.approx(0.1)
    assert r.spec["timeout_s"] == pytest.approx(3.0)
    assert r.duration_s == pytest.approx(0.104035637)
    assert r.achieved_rate_rps == pytest.approx(38.44836361217263)
    assert r.bytes_received == 472
    assert r.runner_version == "X.Y.Z"
    assert r.context["reported_percentiles_us"]["99.9"] == pytest.approx(929.5303506666667)
    assert r.context["socket_count"] == 2


def test_fortio_grpc_ping_and_older_fortio() -> None:
    (r,) = import_results(FORTIO / "fortio-README-grpc-ping-result.json")
    assert r.context["run_type"].startswith("GRPC Ping")
    assert r.context["grpc_status_counts"] == {"1": 40}
    assert r.spec["target"] == "https://fortio-stage.istio.io"
    assert "errors_duration" not in r.context                # 0.9.0 had no errors histogram
    assert r.runner_version == "0.9.0"


def test_iter8_fortio_map_keeps_errors_histogram_and_exactly() -> None:
    (r,) = import_results(FORTIO / "iter8-metrics-server_test-fortioResultJSON.json")
    assert r.context["endpoint_key"] == "http://httpbin.default/get"
    assert r.context["errors_duration"]["count"] == 0
    assert r.spec["max_requests"] == 100                    # "exactly 100 calls"
    assert r.runner_version == "1.57.3"


def test_nighthawk_fortio_quirks_match_pedantic_output() -> None:
    (quirky,) = import_results(FORTIO / "nighthawk-output_formatter.medium.fortio.gold.json")
    (strict,) = import_results(
        FORTIO / "nighthawk-output_formatter.medium.fortio-noquirks.gold.json")
    assert quirky.latency == strict.latency
    assert quirky.latency.total == 53 and quirky.requests == 56
    assert quirky.context["status_codes_grouped_by_class"] is True
    assert quirky.context["bytes_sent"] == 3528 and quirky.bytes_received == 2702142
    assert any("RetCodes" in w for w in quirky.warnings)
    assert quirky.context["reported_percentiles_us"] == strict.context["reported_percentiles_us"]


def test_nighthawk_native() -> None:
    (r,) = import_results(NIGHTHAWK_NATIVE)
    assert r.context["nighthawk_latency_statistic"] == "foo_latency"
    assert r.context["nighthawk_counters"] == {"bar": 2, "foo": 1}
    assert r.context["nighthawk_workers"] == 2
    assert r.latency.total == 4
    assert r.latency.min_us == pytest.approx(180.007)
    assert r.latency.max_us == pytest.approx(210.007)
    assert r.latency.mean_us == pytest.approx(195.004)
    assert r.latency.stdev_us == pytest.approx(11.180, rel=1e-3)
    assert r.duration_s == 1.0
    assert r.runner_version == "0.3.0"


def test_meshery_results_context() -> None:
    runs = import_results(MESHERY_RESULTS)
    # Meshery's sample declares linkerd for http://localhost/: a loopback target cannot be
    # behind linkerd, so the runs are mesh none and keep the document's word as a label
    assert [r.spec["mesh"] for r in runs] == ["none", "none", "none"]
    assert [r.dimensions.label_map.get("declared_mesh") for r in runs] == [
        None, "linkerd", "linkerd"]
    assert [r.spec["profile"] for r in runs] == [
        "No mesh_1650983199033", "linkerd_1652379422611", "linkerd_1652362153916"]
    k8s = runs[0].context["kubernetes"]
    assert k8s["server_version"] == "v1.22.5" and k8s["nodes"][0]["architecture"] == "arm64"
    assert runs[0].context["meshery"]["id"] == "f9ccd668-9d26-4f70-8a51-47de5af3c502"
    assert runs[0].requested_rate_rps == 0.0                # RequestedQPS "max"
    # fortio's -1 return code: connection failures, no HTTP response at all
    assert runs[1].errors == runs[1].requests == 300
    assert runs[1].error_kinds == {"other": 300} and runs[1].status_codes == {}
    assert runs[1].context["ret_codes"] == {"-1": 300}
    assert len({r.run_id for r in runs}) == 3


def test_meshery_detected_meshes_and_bare_runner_results() -> None:
    entry = json.loads(MESHERY_RESULTS.read_text())[1]
    rr = dict(entry["runner_results"][0], **{"detected-meshes": {"linkerd": ["stable-2.11"]}})
    (bare,) = import_results(json.dumps(rr).encode())
    assert bare.context["format"] == "meshery"
    assert bare.context["detected_meshes"] == {"linkerd": ["stable-2.11"]}
    page = {"page": 0, "page_size": 10, "total_count": 1,
            "results": [dict(entry, runner_results=rr)]}
    (paged,) = import_results(json.dumps(page).encode())
    assert paged.spec["mesh"] == "none" and paged.latency == bare.latency
    assert paged.spec["labels"]["declared_mesh"] == "linkerd"


def test_smp_result() -> None:
    (r,) = import_results(SMP_RESULT)
    assert r.context["histogram_reconstructed"] is True
    assert r.spec["target"] == "http://192.168.1.15/productpage"
    assert r.context["smp"]["exp_uuid"] == "a0b57497-12f1-40a5-ae78-3fd3414c4a48"
    assert r.context["smp_env"] == {"kubernetes": "v1.15.5"}
    assert r.latency.min_us == pytest.approx(12.007082, abs=1e-3)
    assert r.latency.max_us == pytest.approx(350.472228, abs=1e-3)
    assert r.latency.mean_us == pytest.approx(23.581708206018594, rel=1e-9)
    assert r.latency.percentile_us(50) == pytest.approx(21.899, rel=0.02)
    assert r.latency.percentile_us(99) == pytest.approx(55.0, rel=0.02)
    assert r.warnings
