"""An imported document's mesh is the run's mesh only when the target could be behind it: a
loopback URL cannot be a Kubernetes mesh's workload (only a playground data plane)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshlab.formats import import_results
from meshlab.formats._mesh_claim import target_could_be_mesh

MESHERY_RESULTS = (Path(__file__).resolve().parent.parent / "fixtures" / "smp"
                   / "meshery-test-results.json")


@pytest.mark.parametrize(("target", "mesh", "could"), [
    ("http://127.0.0.1:8080/", "istio", False),
    ("http://localhost/", "linkerd", False),
    ("http://[::1]:9000/x", "kuma", False),
    ("http://productpage.default:9080/", "istio", True),
    ("http://192.168.1.15/productpage", "linkerd", True),
    ("http://127.0.0.1:10000/", "envoy+mtls", True),      # a local playground's entry point
    ("http://127.0.0.1:10000/", "nginx", True),
])
def test_target_could_be_mesh(target: str, mesh: str, could: bool) -> None:
    assert target_could_be_mesh(target, mesh) is could


def test_a_meshery_result_on_a_cluster_url_keeps_its_mesh() -> None:
    entry = json.loads(MESHERY_RESULTS.read_text())[1]
    rr = entry["runner_results"]
    rr = dict(rr[0] if isinstance(rr, list) else rr, URL="http://web.emojivoto:80/")
    (run,) = import_results(json.dumps(dict(entry, runner_results=rr)).encode())
    assert run.spec["mesh"] == "linkerd" and "declared_mesh" not in run.spec["labels"]
    assert not any("declares mesh" in w for w in run.warnings)
    (local,) = import_results(json.dumps(dict(entry, runner_results=dict(
        rr, URL="http://localhost/"))).encode())
    assert local.spec["mesh"] == "none"
    assert any("declares mesh 'linkerd'" in w for w in local.warnings)
