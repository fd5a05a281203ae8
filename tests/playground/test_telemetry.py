"""Telemetry: Envoy /stats parsing, the derived proxy costs, and a live sampler on a sidecar."""

from __future__ import annotations

import time

import pytest
from _playground_helpers import fetch

from meshlab.playground.playground import Playground
from meshlab.playground.telemetry import (
    Target,
    TelemetrySampler,
    parse_envoy_stats,
    proxy_costs,
)
from meshlab.results import TelemetrySample

pytestmark = pytest.mark.timeout(60)

STATS = """\
cluster.outbound-backend|backend.upstream_rq_total: 120
cluster.outbound-backend|backend.upstream_rq_retry: 7
cluster.other|x.upstream_rq_total: 3
cluster.outbound-backend|backend.upstream_rq_pending_overflow: 2
http.admin.downstream_rq_total: 99
http.outbound_backend.downstream_rq_total: 118
http.outbound_backend.local_rate_limit.http_local_rate_limit.rate_limited: 5
listener.admin.downstream_cx_total: 4
garbage line
"""


def test_parse_envoy_stats_sums_clusters_and_skips_admin():
    stats = parse_envoy_stats(STATS)
    assert stats == {"envoy.upstream_rq_total": 123, "envoy.upstream_rq_retry": 7,
                     "envoy.upstream_rq_pending_overflow": 2,
                     "envoy.downstream_rq_total": 118, "envoy.rate_limited": 5}


def test_proxy_costs():
    samples = [TelemetrySample(t, src, m, v) for t in (1.0, 2.0) for src, m, v in (
        ("envoy:a", "cpu_percent", 10.0), ("envoy:a", "rss_bytes", 50e6),
        ("envoy:b", "cpu_percent", 30.0), ("envoy:b", "rss_bytes", 70e6),
        ("app:x", "cpu_percent", 90.0), ("meshlab:telemetry", "cpu_percent", 1.0))]
    costs = proxy_costs(samples, 2000, proxies_on_path=2, sources=["envoy:a", "envoy:b"])
    assert costs["proxy_vcpu_total"] == pytest.approx(0.4)
    assert costs["proxy_vcpu_per_1k_rps_total"] == pytest.approx(0.2)
    assert costs["proxy_vcpu_per_1k_rps_per_sidecar"] == pytest.approx(0.1)
    assert costs["proxy_mb_per_sidecar"] == pytest.approx(60.0)
    assert costs["proxies"] == 2 and costs["proxies_on_path"] == 2
    unknown = proxy_costs(samples, 0.0, proxies_on_path=2)
    assert unknown["proxy_vcpu_per_1k_rps_total"] is None
    assert unknown["proxy_vcpu_per_1k_rps_per_sidecar"] is None


def test_sampler_on_a_live_sidecar_is_cheap(started, state_dir):
    pg = Playground(mesh="envoy", state_dir=state_dir)
    started.append(pg.start())
    targets = [Target(f"{p.kind}:{p.name}", p.pid, p.ports.get("admin")) for p in
               pg.proxy_processes()]
    sampler = TelemetrySampler(targets, interval_s=0.2).start()
    fetch(pg.url, 50)
    time.sleep(0.5)
    pg.kill("backend-0-sidecar")
    time.sleep(0.5)
    samples = sampler.stop()
    client = [s for s in samples if s.source == "envoy:client-sidecar"]
    totals = [s.value for s in client if s.metric == "envoy.downstream_rq_total"]
    assert totals[-1] - totals[0] >= 40 and totals == sorted(totals)
    assert {"cpu_percent", "rss_bytes", "envoy.upstream_cx_active"} <= {s.metric for s in client}
    assert sampler.gone == ["envoy:backend-0-sidecar"]
    (own,) = [s.value for s in samples if s.source == "meshlab:telemetry"]
    assert own < 20          # of one core, at 5 samples a second on a busy machine
