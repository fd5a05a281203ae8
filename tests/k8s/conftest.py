"""Fixtures for the Kubernetes tests: a fresh API stand-in per test (real HTTP on 127.0.0.1),
a `Cluster` pointed at it, a kubeconfig naming it, a Prometheus stand-in, the CRD schemas from
tests/fixtures/crds, and an opt-in real cluster (`-m cluster`, MESHLAB_TEST_KUBE_CONTEXT).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from crd_schema import CrdSet, fixture_crds
from standin import ApiStandIn, serve

from meshlab.k8s.cluster import Cluster


@pytest.fixture(scope="session")
def crds() -> CrdSet:
    return fixture_crds()


@pytest.fixture()
def standin(crds: CrdSet) -> Iterator[tuple[ApiStandIn, str]]:
    handler = ApiStandIn()
    handler.serve_crds(crds)
    with serve(handler) as (h, url):
        h.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        yield h, url


@pytest.fixture()
def api(standin: tuple[ApiStandIn, str]) -> ApiStandIn:
    return standin[0]


@pytest.fixture()
def cluster(standin: tuple[ApiStandIn, str]) -> Iterator[Cluster]:
    c = Cluster.from_url(standin[1], request_timeout_s=10)
    yield c
    c.close()


@pytest.fixture()
def kube_context() -> str:
    """The real cluster's context, from MESHLAB_TEST_KUBE_CONTEXT (tests marked `cluster`)."""
    ctx = os.environ.get("MESHLAB_TEST_KUBE_CONTEXT")
    if not ctx:
        pytest.skip("set MESHLAB_TEST_KUBE_CONTEXT to run against a real cluster")
    return ctx


@pytest.fixture()
def real_cluster(kube_context: str) -> Iterator[Cluster]:
    """A connection to the real cluster named by MESHLAB_TEST_KUBE_CONTEXT."""
    c = Cluster.connect(context=kube_context)
    yield c
    c.close()


@pytest.fixture()
def kubeconfig(tmp_path: Path, standin: tuple[ApiStandIn, str]) -> Path:
    """A kubeconfig whose context `lab` (namespace bench) and `other` point at the stand-in."""
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "lab",
           "clusters": [{"name": "c", "cluster": {"server": standin[1]}}],
           "users": [{"name": "u", "user": {"token": "t0ken"}}],
           "contexts": [{"name": "lab", "context": {"cluster": "c", "user": "u",
                                                   "namespace": "bench"}},
                        {"name": "other", "context": {"cluster": "c", "user": "u"}}]}
    p = tmp_path / "kubeconfig"
    p.write_text(yaml.safe_dump(doc))
    return p


class _Prom(BaseHTTPRequestHandler):
    """`/api/v1/query_range` answering latency quantiles (ms, one NaN step), per-pod proxy CPU,
    and nothing for everything else."""

    def do_GET(self) -> None:
        q = parse_qs(urlsplit(self.path).query)
        query, start = q["query"][0], float(q["start"][0])
        if "histogram_quantile" in query:
            result = [{"metric": {}, "values": [[start, "1.5"], [start + 5, "NaN"]]}]
        elif "container_cpu" in query and "sum by (pod)" in query:
            result = [{"metric": {"pod": "server-1"}, "values": [[start, "0.25"]]}]
        else:
            result = []
        body = json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                          "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        return None


@pytest.fixture()
def prometheus_url() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Prom)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
