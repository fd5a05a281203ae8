"""CLI commands for Kubernetes: `kube contexts|snapshot|check`,
`mesh install|uninstall|upgrade|render`.
The context comes from --context or MESHLAB_KUBE_CONTEXT (only the CLI reads env vars)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import yaml

MESH_HELP = "a Kubernetes mesh of the mesh registry (an unknown name lists them)"



def register(subparsers: Any) -> None:
    kube = subparsers.add_parser("kube", help="Kubernetes cluster access").add_subparsers(
        dest="kube_cmd", required=True)
    p = kube.add_parser("contexts", help="list kubeconfig contexts")
    p.add_argument("--kubeconfig")
    p.set_defaults(func=_contexts)
    p = kube.add_parser("snapshot", help="describe cluster, mesh and benchmark namespaces")
    p.add_argument("namespaces", nargs="+")
    _ctx_args(p)
    p.set_defaults(func=_snapshot)
    p = kube.add_parser("check", help="configuration findings for a namespace")
    p.add_argument("namespace")
    _ctx_args(p)
    p.set_defaults(func=_check)
    mesh = subparsers.add_parser("mesh", help="Kubernetes mesh adapters").add_subparsers(
        dest="mesh_cmd", required=True)
    for cmd in ("install", "uninstall", "upgrade"):
        p = mesh.add_parser(cmd, help=f"{cmd} a mesh with its own CLI")
        p.add_argument("mesh", type=_mesh_name, help=MESH_HELP)
        p.add_argument("--dry-run", action="store_true", help="print the commands only")
        if cmd != "uninstall":
            p.add_argument("--version", dest="mesh_version", default=None,
                           help="the release to install (its CLI must be that release)")
        _ctx_args(p)
        p.set_defaults(func={"install": _install, "uninstall": _uninstall,
                             "upgrade": _upgrade}[cmd])
    p = mesh.add_parser("render", help="print a policy as the mesh's resources (YAML)")
    p.add_argument("mesh", type=_mesh_name, help=MESH_HELP)
    p.add_argument("--policy", required=True, help="YAML/JSON file with one TrafficPolicy")
    p.add_argument("--namespace", default="meshlab-bench")
    p.add_argument("--service", default="meshlab-server")
    p.add_argument("--protocol", default="http1", choices=("http1", "h2c", "h2", "grpc", "tcp"),
                   help="what the traffic speaks (grpc: gRPC routes, retries on gRPC codes)")
    p.add_argument("--port", type=int, default=None,
                   help="the service port (default: 8080, 8079 for grpc)")
    p.set_defaults(func=_render)


def _mesh_name(name: str) -> str:
    """Checked against the mesh registry when parsed (not when the parser is built)."""
    from meshlab.errors import ProfileError
    from meshlab.meshes.detect import BASELINE, kubernetes_mesh, kubernetes_mesh_names

    try:
        mesh = kubernetes_mesh(name)
    except ProfileError:
        mesh = None
    if mesh is None:
        known = [n for n in kubernetes_mesh_names() if n != BASELINE]
        raise argparse.ArgumentTypeError(f"{name!r} is not a Kubernetes mesh; choose one of "
                                         f"{', '.join(known)}")
    return name


def _ctx_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", default=os.environ.get("MESHLAB_KUBE_CONTEXT"))
    p.add_argument("--kubeconfig")


def _cluster(args: argparse.Namespace) -> Any:
    from meshlab.k8s.cluster import Cluster

    return Cluster.connect(context=args.context, kubeconfig=args.kubeconfig)


def _no_kubeconfig_hint(kubeconfig: str | None) -> str:
    """What to do when no kubeconfig can be read: the user cannot act on the client's
    `Invalid kube-config file. No configuration found` alone."""
    where = (f"--kubeconfig {kubeconfig}" if kubeconfig else
             f"KUBECONFIG={os.environ['KUBECONFIG']}" if os.environ.get("KUBECONFIG") else
             "~/.kube/config (KUBECONFIG is not set)")
    return (f"no usable kubeconfig at {where}; point KUBECONFIG or --kubeconfig FILE at the "
            f"kubeconfig of your cluster (kind, minikube and cloud CLIs write one)")


def _contexts(args: argparse.Namespace) -> int:
    """Exit 2 when there is no kubeconfig to read: a setup problem, not a failed command."""
    import sys

    from meshlab.errors import ClusterError
    from meshlab.k8s.cluster import list_contexts

    try:
        contexts = list_contexts(args.kubeconfig)
    except ClusterError as exc:
        if exc.reason != "KubeconfigInvalid":
            raise
        print(f"error: {_no_kubeconfig_hint(args.kubeconfig)}\n  ({exc})", file=sys.stderr)
        return 2
    for c in contexts:
        print(f"{'*' if c.current else ' '} {c.name}\tcluster={c.cluster}\tnamespace={c.namespace}")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from meshlab.meshes.detect import snapshot

    with _cluster(args) as c:
        print(json.dumps(snapshot(c, args.namespaces).to_dict(), indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    from meshlab.meshes.check import check_namespace

    with _cluster(args) as c:
        findings = check_namespace(c, args.namespace)
    for f in findings:
        print(f"{f.severity:8} {f.check:16} {f.subject:40} {f.message}")
    return 1 if any(f.severity == "error" for f in findings) else 0


def _mesh(name: str) -> Any:
    from meshlab.meshes.detect import kubernetes_mesh

    return kubernetes_mesh(name)


def _install(args: argparse.Namespace) -> int:
    return _run_mesh_cli(args, uninstall=False)


def _upgrade(args: argparse.Namespace) -> int:
    from meshlab.meshes.version import upgrade

    mesh = _mesh(args.mesh)
    if args.dry_run:
        lines = upgrade(mesh, None, version=args.mesh_version, dry_run=True)
    else:
        with _cluster(args) as cluster:
            lines = upgrade(mesh, cluster, version=args.mesh_version)
    for line in lines:
        print(line)
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    return _run_mesh_cli(args, uninstall=True)


def _run_mesh_cli(args: argparse.Namespace, *, uninstall: bool) -> int:
    """Install/uninstall a mesh; a failed install was rolled back (MeshError says what)."""
    from meshlab.meshes.version import install

    mesh = _mesh(args.mesh)
    version = getattr(args, "mesh_version", None)
    run = (mesh.uninstall if uninstall else
           lambda cluster, dry_run=False: install(mesh, cluster, version=version,
                                                   dry_run=dry_run))
    if args.dry_run:
        lines = run(None, dry_run=True)
    else:
        with _cluster(args) as cluster:
            lines = run(cluster)
    for line in lines:
        print(line)
    return 0


def _render(args: argparse.Namespace) -> int:
    from meshlab.meshes.kubernetes import RenderContext
    from meshlab.policy import TrafficPolicy

    with open(args.policy, encoding="utf-8") as fh:
        policy = TrafficPolicy.model_validate(yaml.safe_load(fh))
    port = args.port or (8079 if args.protocol == "grpc" else 8080)
    docs = _mesh(args.mesh).render(policy, RenderContext(
        namespace=args.namespace, service=args.service, port=port, protocol=args.protocol))
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return 0
