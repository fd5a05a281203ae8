"""`meshlab kube contexts` without a kubeconfig: a hint naming KUBECONFIG and --kubeconfig, exit 2
(a setup problem, like a usage error), instead of the client's bare "No configuration found"."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kubernetes")

from meshlab.cli import EXIT_USAGE, main


def test_no_kubeconfig_names_the_env_var_and_the_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))          # no ~/.kube/config there
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(["kube", "contexts"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "KUBECONFIG" in err and "--kubeconfig" in err
    assert "Traceback" not in err


def test_a_missing_kubeconfig_file_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert main(["kube", "contexts", "--kubeconfig", str(missing)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(missing) in err and "KUBECONFIG" in err


def test_a_kubeconfig_lists_its_contexts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("""\
apiVersion: v1
kind: Config
current-context: lab
clusters: [{name: c1, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u1, user: {token: x}}]
contexts: [{name: lab, context: {cluster: c1, user: u1, namespace: bench}}]
""")
    assert main(["kube", "contexts", "--kubeconfig", str(cfg)]) == 0
    assert "* lab\tcluster=c1\tnamespace=bench" in capsys.readouterr().out


def test_mesh_render_for_a_grpc_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    policy = tmp_path / "policy.yaml"
    policy.write_text("name: g\nretries: {attempts: 2, retry_on: [unavailable]}\n")
    assert main(["mesh", "render", "linkerd", "--policy", str(policy), "--protocol",
                 "grpc"]) == 0
    (route,) = yaml.safe_load_all(capsys.readouterr().out)
    assert route["kind"] == "GRPCRoute"
    assert route["metadata"]["annotations"]["retry.linkerd.io/grpc"] == "unavailable"
    assert route["spec"]["parentRefs"][0]["port"] == 8079
    # the same policy on HTTP/1.1: the gRPC code has no meaning there
    assert main(["mesh", "render", "linkerd", "--policy", str(policy)]) != 0
    assert "protocol http1 carries no gRPC status" in capsys.readouterr().err
