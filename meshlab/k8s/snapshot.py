"""The cluster context stored with every run (what Meshery leaves out): server version, nodes,
benchmark workloads with restarts and sidecars, the mesh state the mesh layer probes (this module
knows no mesh), proxy resources; and the diff of two snapshots around a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from meshlab.errors import ClusterError
from meshlab.k8s._api import Manifest
from meshlab.k8s.cluster import Cluster

_ZONE = "topology.kubernetes.io/zone"
NODES_HIDDEN = "nodes: not visible with these rights"


@dataclass(frozen=True, slots=True)
class ProxyFacts:
    """What tells a mesh proxy from an app container: sidecar container names and the pod
    annotations that size a proxy. The mesh layer supplies them; empty means "no proxies"."""

    sidecars: frozenset[str] = frozenset()
    concurrency_annotations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MeshState:
    """The mesh in charge as the mesh layer probed it; the default is "no mesh"."""

    mesh: str = "none"
    version: str = ""
    namespace: str = ""
    mtls: str = ""                          # effective mode seen in the cluster, "" = unknown


MeshProbe = Callable[[Cluster, Sequence[str]], MeshState]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    internal_ip: str
    cpu_allocatable: str
    cpu_capacity: str
    memory_allocatable: str
    memory_capacity: str
    os_image: str
    kernel: str
    kubelet: str
    container_runtime: str
    architecture: str
    zone: str


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    name: str
    image: str
    sidecar: bool
    restarts: int
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    node: str
    phase: str
    owner: str                       # "Deployment/server", "Job/load" ... ("" when bare)
    containers: tuple[ContainerInfo, ...]
    proxy_concurrency: str = ""      # from the mesh's annotation, when set

    @property
    def meshed(self) -> bool:
        return any(c.sidecar for c in self.containers)

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """A point-in-time description of the cluster a run used."""

    context: str
    server_version: str
    nodes: tuple[NodeInfo, ...]
    pods: tuple[PodInfo, ...]
    replicas: Mapping[str, int]             # "ns/Deployment/name" -> spec.replicas
    mesh: str = "none"
    mesh_version: str = ""
    mesh_namespace: str = ""
    mtls: str = ""                          # effective mode seen in the cluster, "" = unknown
    notes: tuple[str, ...] = ()             # what could not be seen (NODES_HIDDEN ...)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["replicas"] = dict(self.replicas)
        d["pods"] = [{**asdict(p), "meshed": p.meshed} for p in self.pods]
        return d

    def to_smp(self) -> dict[str, Any]:
        """SMP's `EnvironmentConfig` and `ServiceMeshConfig`, filled from the snapshot."""
        proxies = [c for p in self.pods for c in p.containers if c.sidecar]
        return {
            "env": {"kubernetes": self.server_version, "nodes": len(self.nodes),
                    "node_details": [asdict(n) for n in self.nodes]},
            "mesh_config": {"mesh": self.mesh, "version": self.mesh_version,
                            "mtls": self.mtls, "proxies": len(proxies),
                            "proxy_resources": [{"requests": dict(c.requests),
                                                 "limits": dict(c.limits)}
                                                for c in proxies[:1]]},
        }


@dataclass(frozen=True, slots=True)
class SnapshotChange:
    """Something that changed during a run (a run with a restarted proxy is not comparable)."""

    kind: str          # container_restart | pod_rescheduled | pod_added | pod_removed | replicas
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


def _node(n: Manifest) -> NodeInfo:
    st = n.get("status") or {}
    info = st.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    alloc, cap = st.get("allocatable") or {}, st.get("capacity") or {}
    return NodeInfo(
        name=n["metadata"]["name"], internal_ip=str(addrs.get("InternalIP", "")),
        cpu_allocatable=str(alloc.get("cpu", "")), cpu_capacity=str(cap.get("cpu", "")),
        memory_allocatable=str(alloc.get("memory", "")),
        memory_capacity=str(cap.get("memory", "")), os_image=str(info.get("osImage", "")),
        kernel=str(info.get("kernelVersion", "")), kubelet=str(info.get("kubeletVersion", "")),
        container_runtime=str(info.get("containerRuntimeVersion", "")),
        architecture=str(info.get("architecture", "")),
        zone=str((n["metadata"].get("labels") or {}).get(_ZONE, "")))


def pod_info(p: Manifest, proxies: ProxyFacts | None = None) -> PodInfo:
    """One pod; containers named in `proxies.sidecars` count as sidecars."""
    proxies = proxies or ProxyFacts()
    spec, st, meta = p.get("spec") or {}, p.get("status") or {}, p["metadata"]
    restarts = {c.get("name"): int(c.get("restartCount", 0))
                for c in [*(st.get("containerStatuses") or []),
                          *(st.get("initContainerStatuses") or [])]}
    containers = []
    # native sidecars (init containers with restartPolicy Always) count as sidecars too
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c in (spec.get("initContainers") or []) and c.get("restartPolicy") != "Always":
            continue
        res = c.get("resources") or {}
        containers.append(ContainerInfo(
            name=c["name"], image=str(c.get("image", "")), sidecar=c["name"] in proxies.sidecars,
            restarts=restarts.get(c["name"], 0),
            requests={k: str(v) for k, v in (res.get("requests") or {}).items()},
            limits={k: str(v) for k, v in (res.get("limits") or {}).items()}))
    owners = meta.get("ownerReferences") or []
    ann = meta.get("annotations") or {}
    conc = next((ann[k] for k in proxies.concurrency_annotations if ann.get(k)), "")
    return PodInfo(namespace=meta.get("namespace", ""), name=meta["name"],
                   node=str(spec.get("nodeName", "")), phase=str(st.get("phase", "")),
                   owner=f"{owners[0]['kind']}/{owners[0]['name']}" if owners else "",
                   containers=tuple(containers), proxy_concurrency=str(conc))


def take_snapshot(cluster: Cluster, namespaces: Iterable[str], *,
                  proxies: ProxyFacts | None = None,
                  probe: MeshProbe | None = None) -> ClusterSnapshot:
    """Describe the cluster and the benchmark namespaces now; `proxies` marks sidecars, `probe`
    names the mesh in charge (both from the mesh layer: `meshlab.meshes.detect.snapshot`)."""
    nss = list(namespaces)
    version = cluster.server_version().get("gitVersion", "")
    notes: list[str] = []
    try:
        nodes = tuple(_node(n) for n in cluster.nodes())
    except ClusterError as exc:     # a user with rights in one namespace only
        if exc.status != 403:
            raise
        nodes, notes = (), [f"{NODES_HIDDEN} (listing nodes is forbidden for context "
                            f"{cluster.context!r}; node facts are not recorded)"]
    pods: list[PodInfo] = []
    replicas: dict[str, int] = {}
    for ns in nss:
        pods += [pod_info(p, proxies) for p in cluster.pods(namespace=ns)]
        for d in cluster.list_objects("apps/v1", "Deployment", namespace=ns):
            replicas[f"{ns}/Deployment/{d['metadata']['name']}"] = int(
                (d.get("spec") or {}).get("replicas", 1))
    state = probe(cluster, nss) if probe is not None else MeshState()
    return ClusterSnapshot(context=cluster.context, server_version=version, nodes=nodes,
                           pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
                           replicas=replicas, mesh=state.mesh, mesh_version=state.version,
                           mesh_namespace=state.namespace, mtls=state.mtls,
                           notes=tuple(notes))


def diff_snapshots(before: ClusterSnapshot, after: ClusterSnapshot) -> list[SnapshotChange]:
    """What changed between two snapshots: restarts, pods moved, added, removed, replicas."""
    out: list[SnapshotChange] = []
    b = {(p.namespace, p.name): p for p in before.pods}
    a = {(p.namespace, p.name): p for p in after.pods}
    for key in sorted(b.keys() & a.keys()):
        pb, pa = b[key], a[key]
        subject = f"{key[0]}/{key[1]}"
        cb = {c.name: c.restarts for c in pb.containers}
        for c in pa.containers:
            if c.restarts > cb.get(c.name, 0):
                role = "sidecar " if c.sidecar else ""
                n = c.restarts - cb.get(c.name, 0)
                out.append(SnapshotChange("container_restart", subject,
                                          f"{role}{c.name} restarted {n} time(s)"))
        if pb.node != pa.node:
            out.append(SnapshotChange("pod_rescheduled", subject, f"{pb.node} -> {pa.node}"))
    for key in sorted(b.keys() - a.keys()):
        out.append(SnapshotChange("pod_removed", f"{key[0]}/{key[1]}", f"was on {b[key].node}"))
    for key in sorted(a.keys() - b.keys()):
        if a[key].owner.startswith("Job/"):
            continue       # the load generator's own pods come and go by design
        out.append(SnapshotChange("pod_added", f"{key[0]}/{key[1]}", f"on {a[key].node}"))
    for k in sorted(before.replicas.keys() | after.replicas.keys()):
        rb, ra = before.replicas.get(k), after.replicas.get(k)
        if rb != ra:
            out.append(SnapshotChange("replicas", k, f"{rb} -> {ra}"))
    return out
