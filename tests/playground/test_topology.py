"""The topology model, the mesh-string grammar, certificates and config compilers (no processes)."""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from meshlab.errors import ProfileError
from meshlab.playground import envoy, haproxy, nginx
from meshlab.playground.certs import CertificateAuthority
from meshlab.playground.playground import check_topology, resolve_topology
from meshlab.policy import MtlsMode, RetryPolicy, TrafficPolicy
from meshlab.profile import Profile
from meshlab.topology import DataPlaneKind, Mode, Service, Topology, Workload, parse_mesh


@pytest.mark.parametrize(("text", "mode", "kind", "mtls", "h2", "waypoint"), [
    ("none", "both", "none", "off", False, False),
    ("envoy", "client-only", "envoy", "off", False, False),
    ("envoy+mtls", "both", "envoy", "strict", False, False),
    ("Envoy+MTLS+h2", "ingress", "envoy", "strict", True, False),
    ("envoy+mtls-permissive", "both", "envoy", "permissive", False, False),
    ("envoy+mtls", "node-proxy+waypoint", "envoy", "strict", False, True),
    ("haproxy+mtls", "server-only", "haproxy", "strict", False, False),
])
def test_parse_mesh(text, mode, kind, mtls, h2, waypoint):
    dp = parse_mesh(text, mode=mode)
    assert (dp.kind, dp.mtls, dp.http2, dp.waypoint) == (kind, mtls, h2, waypoint)
    assert dp.mode == mode.split("+")[0]
    assert parse_mesh(dp.label, mode=mode) == dp


@pytest.mark.parametrize(("text", "mode", "match"), [
    ("istio", "both", "unknown data plane 'istio'"),   # the environment adds the hint
    ("traefik", "both", "unknown data plane 'traefik'"),
    ("envoy+tls", "both", "unknown option 'tls'"),
    ("nginx+h2", "both", "only implemented for envoy"),
    ("none+mtls", "both", "carries no mTLS"),
    ("envoy+waypoint", "both", "waypoint needs mode node-proxy"),
    ("envoy", "sidecar", "mode 'sidecar'"),
])
def test_parse_mesh_rejects(text, mode, match):
    with pytest.raises(ValueError, match=match):
        parse_mesh(text, mode=mode)


def test_topology_validation():
    with pytest.raises(ValueError, match="cycle"):
        Topology(services=[Service(name="a", calls="b"), Service(name="b", calls="a")])
    with pytest.raises(ValueError, match="no service named 'c'"):
        Topology(services=[Service(name="a", calls="c")])
    with pytest.raises(ValueError, match="replica index 2"):
        Service(name="a", replicas=2, replica_workloads={2: Workload(status="503")})
    topo = Topology(services=[Service(name="fe", calls="be"), Service(name="be")])
    assert [s.name for s in topo.chain()] == ["fe", "be"]
    assert Workload(status="503:50", delay="1ms").defaults_query() == "delay=1ms&status=503:50"


def test_profile_topology_is_validated_with_paths():
    with pytest.raises(ProfileError) as err:
        Profile.from_dict({"name": "p", "target": "http://x/", "environment": "local",
                           "topology": {"services": [{"name": "A b"}]}})
    assert any(p.startswith("topology.services[0].name") for p in err.value.problems)
    with pytest.raises(ProfileError, match=r"topology\.services"):
        resolve_topology({"services": [{"name": "x", "replicas": 0}]})


def test_policy_mtls_overrides_data_plane():
    topo = resolve_topology(None, mesh="envoy", policy=TrafficPolicy(name="m",
                                                                    mtls=MtlsMode.STRICT))
    assert topo.data_plane.mtls == MtlsMode.STRICT


def test_certificates_carry_spiffe_ids(tmp_path):
    ca = CertificateAuthority(tmp_path)
    files = ca.issue("backend")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://meshlab.local/ns/default/sa/backend"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() < 86_400
    assert ca.issue("backend") is files


def _plan(mesh, policy=None, mode="both"):
    topo = resolve_topology(Topology(services=[Service(name="be", replicas=2)]), mesh=mesh,
                            mode=mode, policy=policy)
    return check_topology(topo)


def test_envoy_compiles_policy_into_route_and_cluster():
    pol = TrafficPolicy(name="r", retries=RetryPolicy(attempts=3, per_try_timeout_s=0.5))
    plan = _plan("envoy+mtls+h2", pol)
    client = next(p for p in plan.proxies if p.name == "client-sidecar")
    cfg = envoy.compile_proxy(client)
    text = json.dumps(cfg)
    route = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["retry_policy"]["num_retries"] == 3
    assert route["retry_policy"]["per_try_timeout"] == "0.5s"
    assert "spiffe://meshlab.local/ns/default/sa/be" in text and "http2_protocol_options" in text
    server = next(p for p in plan.proxies if p.name == "be-0-sidecar")
    assert "require_client_certificate" in json.dumps(envoy.compile_proxy(server))


def test_nginx_and_haproxy_compile_retries():
    pol = TrafficPolicy(name="r", retries=RetryPolicy(attempts=2))
    cfg = nginx.compile_proxy(_plan("nginx", pol).proxies[0], workdir=__import__("pathlib").Path(
        "/w"))
    assert "proxy_next_upstream_tries 3;" in cfg and "http_503" in cfg
    assert cfg.count("server 127.0.0.1:") == 4        # 2 replicas, twice: 3 tries
    cfg = haproxy.compile_proxy(_plan("haproxy", pol).proxies[0])
    assert "retries 2" in cfg and "retry-on 500 502 503 504" in cfg


def test_support_tables_use_policy_feature_names():
    everything = TrafficPolicy.model_validate({
        "name": "all", "mtls": "strict", "retries": {}, "timeout": {"request_timeout_s": 1},
        "circuit_breaker": {"max_requests": 1, "outlier_detection": {}},
        "fault": {"delay": {"delay_s": 1}, "abort": {"http_status": 503}},
        "rate_limit": {"requests_per_s": 1}, "load_balancing": {"algorithm": "random"}})
    names = set(everything.features()) | {"load_balancing.round_robin",
                                          "load_balancing.least_request"}
    for mod in (envoy, nginx, haproxy):
        assert set(mod.SUPPORTED) <= names
    assert names == envoy.SUPPORTED
    assert "circuit_breaker" not in nginx.SUPPORTED and "fault.delay" not in haproxy.SUPPORTED
    l4 = {"mtls", "circuit_breaker", "load_balancing.round_robin",
          "load_balancing.least_request", "load_balancing.random"}
    assert l4 == envoy.SUPPORTED_L4
    assert DataPlaneKind.NONE == "none" and Mode.NODE_PROXY == "node-proxy"


@pytest.mark.parametrize(("topology", "problem"), [
    ({"services": [{"name": "Back_end"}]},
     "topology.services[0].name: 'Back_end': use lowercase letters, digits and '-'"),
    ({"services": [{"name": "a", "calls": "b"}]},
     "topology.services[0].calls: no service named 'b'; choose one of a"),
    ({"services": [{"name": "a", "node": "Node 1"}]}, "topology.services[0].node: 'Node 1': use"),
    ({"client": "a", "services": [{"name": "a"}]},
     "topology: client name 'a' is also a service name"),
])
def test_topology_errors_say_the_path_and_the_fix(topology, problem):
    with pytest.raises(ProfileError) as err:
        resolve_topology(topology)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
    assert not any("pattern" in p or "(root)" in p for p in err.value.problems)


def test_a_kubernetes_mesh_in_a_local_profile_suggests_kubernetes():
    from meshlab.environments.local import LocalEnvironment

    prof = Profile.from_dict({"name": "p", "target": "http://x/", "environment": "local",
                              "meshes": ["linkerd"]})
    with pytest.raises(ProfileError, match="use environment: kubernetes"):
        LocalEnvironment(prof).check(next(prof.expand()))


def test_unknown_process_is_a_playground_error(tmp_path):
    from meshlab.errors import PlaygroundError
    from meshlab.playground.playground import Playground

    with pytest.raises(PlaygroundError, match="no process named 'nope'"):
        Playground(state_dir=tmp_path).process("nope")
