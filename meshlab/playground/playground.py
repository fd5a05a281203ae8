"""`Playground`: bring a topology up on loopback (echo replicas, relays, real proxies), wait until
every process is ready, and always tear it down: `with Playground(topology) as pg: ...`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from meshlab.errors import MeshError, PlaygroundError, ProfileError
from meshlab.playground import process as _proc
from meshlab.playground._support import FieldSupport, describe_problems, used_fields
from meshlab.playground.certs import CertFiles, CertificateAuthority
from meshlab.playground.plan import Plan, ProxySpec, build_plan, for_protocol
from meshlab.playground.ports import hold_port
from meshlab.policy import MtlsMode, TrafficPolicy, protocol_problems
from meshlab.registry import DATA_PLANES
from meshlab.topology import DataPlane, DataPlaneKind, Mode, Topology, parse_mesh


def data_plane_module(kind: str) -> ModuleType:
    """The compiler module of a data plane, looked up in `meshlab.registry.DATA_PLANES` and
    imported now (envoy, nginx, haproxy and any registered one)."""
    module = DATA_PLANES.load(kind)
    if not isinstance(module, ModuleType):
        raise MeshError(f"data plane {kind!r}: {DATA_PLANES.target(kind)} is not a module")
    return module


def field_support(kind: str, *, l4: bool = False, tcp: bool = False) -> FieldSupport | None:
    """The field-level support table of a data plane (None for `none`: nothing is rendered).
    `tcp`: the load speaks protocol tcp, so every listener is a TCP proxy; a plane without an
    L4 table (nginx stream, haproxy mode tcp) checks its own table, whose `by_protocol` names
    what its TCP proxy leaves out."""
    if kind == DataPlaneKind.NONE:
        return None
    mod = data_plane_module(kind)
    if tcp and l4 and not hasattr(mod, "FIELDS_L4"):
        l4 = False
    support = getattr(mod, "FIELDS_L4" if l4 else "FIELDS", None)
    if not isinstance(support, FieldSupport):
        raise MeshError(f"data plane {kind} has no {'L4 ' if l4 else ''}policy field table")
    return support


def supported_features(kind: str, *, l4: bool = False) -> frozenset[str]:
    """Coarse feature names (MeshInfo.supported) the data plane renders; checks are per field."""
    support = field_support(kind, l4=l4)
    return support.features() if support is not None else frozenset()


def resolve_topology(topology: Topology | dict[str, Any] | None = None, *,
                     mesh: str | None = None, mode: str | None = None,
                     policy: TrafficPolicy | None = None) -> Topology:
    """A Topology from a model or mapping, with the data plane given as a mesh string
    (`envoy+mtls`) and mode, and the policy (whose `mtls`, when set, wins)."""
    if topology is None:
        topo = Topology()
    elif isinstance(topology, Topology):
        topo = topology
    else:
        from pydantic import ValidationError

        from meshlab.profile import validation_problems
        try:
            topo = Topology.model_validate(topology)
        except ValidationError as exc:
            raise ProfileError([f"topology{_path(p)}" for p in validation_problems(exc)]) \
                from None
    dp = topo.data_plane
    if mesh is not None or mode is not None:
        try:
            dp = parse_mesh(mesh or dp.label, mode=mode or str(dp.mode))
        except ValueError as exc:
            raise ProfileError(str(exc).splitlines()[0] if "\n" not in str(exc) else
                               str(exc)) from None
        dp = dp.model_copy(update={"concurrency": topo.data_plane.concurrency})
    pol = policy if policy is not None else topo.policy
    # a policy for one service cannot switch the whole data plane: check_topology rejects it
    if pol is not None and pol.mtls is not None and pol.service is None and \
            dp.kind != DataPlaneKind.NONE:
        dp = dp.model_copy(update={"mtls": pol.mtls})
    return topo.with_data_plane(dp, pol)


def _path(problem: str) -> str:
    """`services[0].name: ...` -> `.services[0].name: ...`; `(root): services[0].calls: ...`
    (a check across fields, which pydantic places at the root) -> `.services[0].calls: ...`."""
    if problem.startswith("(root): "):
        rest = problem[len("(root): "):]
        head, sep, _ = rest.partition(": ")
        return f".{rest}" if sep and " " not in head else f": {rest}"
    return f".{problem}"


def check_topology(topology: Topology, protocol: str = "http1") -> Plan:
    """Lay the topology out for traffic of `protocol` without starting anything; raise
    MeshError when its data plane cannot express its policy on that protocol (naming the data
    plane, the policy, the protocol and the fields)."""
    counter = iter(range(20_000, 65_000))
    fake = Path("/nonexistent")

    def certs(identity: str) -> CertFiles:
        return CertFiles(identity, fake, fake, fake, fake)

    for pol in topology.all_policies():
        _check_mtls_scope(topology, pol)
    plan = for_protocol(build_plan(topology, port=lambda: next(counter), certs=certs),
                        protocol)
    for pol in topology.all_policies():
        _check_one_policy(topology, plan, pol, protocol)
    dp = topology.data_plane
    if dp.kind != DataPlaneKind.NONE and plan.proxies:
        modes = getattr(data_plane_module(dp.kind), "MTLS_MODES", None)
        if modes is not None and dp.mtls not in modes:
            raise MeshError(f"data plane {dp.kind} cannot express mtls {dp.mtls}: it supports "
                            f"{', '.join(sorted(str(m) for m in modes))}")
    return plan


def _check_mtls_scope(topology: Topology, pol: TrafficPolicy) -> None:
    dp = topology.data_plane
    if pol.mtls is None:
        return
    standing = pol is not topology.policy
    if standing or pol.service is not None:
        raise MeshError(
            f"data plane {dp.kind} cannot express policy {pol.name!r}: mtls for service "
            f"{pol.service!r} only (the playground sets mTLS for the whole data plane); move "
            f"mtls to the run's policy without `service`, or use a mesh string like "
            f"{dp.kind if dp.kind != DataPlaneKind.NONE else 'envoy'}+mtls")
    if dp.kind == DataPlaneKind.NONE and pol.mtls != MtlsMode.OFF:
        proxies = ", ".join(k for k in DATA_PLANES.names() if k != DataPlaneKind.NONE)
        raise MeshError(f"data plane none cannot express policy {pol.name!r}: mtls "
                        f"{pol.mtls} (there is no proxy to carry it); use one of {proxies}")


def _check_one_policy(topology: Topology, plan: Plan, pol: TrafficPolicy,
                      protocol: str) -> None:
    dp = topology.data_plane
    used = [f for f in used_fields(pol) if f not in ("name", "service", "mtls")]
    if dp.kind == DataPlaneKind.NONE:
        if used:
            raise MeshError(f"data plane none cannot express policy {pol.name!r}: "
                            f"{', '.join(used)} (there is no proxy to apply it); use envoy, "
                            f"nginx or haproxy")
        return
    if pol.load_balancing is not None and dp.mode == Mode.SERVER_ONLY:
        raise MeshError(f"data plane {dp.kind} in mode server-only cannot express policy "
                        f"{pol.name!r}: load_balancing.algorithm (no client-side proxy chooses "
                        f"replicas); use mode both, client-only or ingress")
    # the proxy flavours (HTTP, L4) holding the policy; mTLS is carried by every proxy
    flavours = {lst.l4 for proxy in plan.proxies for lst in proxy.listeners
                if lst.policy is pol}
    placed = bool(flavours)
    on = "" if protocol == "http1" else f" on protocol {protocol}"
    if placed and (problems := protocol_problems(pol, protocol)):
        raise MeshError(f"data plane {dp.kind} cannot express policy {pol.name!r}{on}: "
                        f"{describe_problems(problems)}")
    if pol.mtls is not None:
        flavours.add(protocol == "tcp")
    for l4 in sorted(flavours):
        support = field_support(dp.kind, l4=l4, tcp=protocol == "tcp")
        assert support is not None
        problems = support.problems(pol, protocol)
        if problems:
            where = " (an L4 node proxy)" if l4 and dp.mode == Mode.NODE_PROXY else ""
            raise MeshError(f"data plane {dp.kind}{where} cannot express policy {pol.name!r}"
                            f"{on}: {describe_problems(problems)}")
    if not placed and used:
        raise MeshError(f"policy {pol.name!r} targets service {pol.service!r}, which no "
                        f"{dp.kind} proxy in mode {dp.mode} sits in front of")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    name: str
    kind: str
    role: str
    pid: int
    alive: bool
    ports: dict[str, int]


class Playground:
    """A topology running on loopback. Sync and async context manager; `stop()` is idempotent
    and also runs at interpreter exit, and children die with this process (Linux)."""

    def __init__(self, topology: Topology | dict[str, Any] | None = None, *,
                 mesh: str | None = None, mode: str | None = None,
                 policy: TrafficPolicy | None = None, state_dir: str | Path | None = None,
                 name: str | None = None, ready_timeout_s: float = 15.0,
                 protocol: str = "http1") -> None:
        self.topology = resolve_topology(topology, mesh=mesh, mode=mode, policy=policy)
        self.protocol = protocol        # what the load speaks: http1, h2c or grpc
        # fail before starting anything
        self.plan = check_topology(self.topology, protocol)
        self.state_dir = Path(state_dir) if state_dir else _proc.default_state_dir()
        self.name = name or f"pg-{uuid.uuid4().hex[:8]}"
        self.ready_timeout_s = ready_timeout_s
        self.workdir = self.state_dir / self.name
        self.pidfile = self.state_dir / f"{self.name}.json"
        self.processes: list[_proc.ManagedProcess] = []
        self.proxies: dict[str, ProxySpec] = {}
        self.startup_s = 0.0
        self.data_plane_version = ""
        self.data_plane_binary = ""
        self.data_plane_source = ""
        self._started = False
        self._held: dict[int, socket.socket] = {}     # ports chosen, not yet handed over

    # -- properties ---------------------------------------------------------------------
    @property
    def data_plane(self) -> DataPlane:
        return self.topology.data_plane

    @property
    def url(self) -> str:
        """Where the client sends requests (the client sidecar, gateway or the entry app)."""
        return self.plan.entry_url

    def process(self, name: str) -> _proc.ManagedProcess:
        for p in self.processes:
            if p.name == name:
                return p
        have = ", ".join(p.name for p in self.processes) or "none (not started)"
        raise PlaygroundError(f"playground {self.name}: no process named {name!r}; it has "
                              f"{have}")

    def proxy_processes(self) -> list[_proc.ManagedProcess]:
        return [p for p in self.processes if p.role != "app"]

    def admin_port(self, name: str) -> int:
        return self.proxies[name].admin_port

    def dead(self) -> list[str]:
        """Processes that exited although nobody asked them to (a crashed sidecar)."""
        return [p.name for p in self.processes if not p.stopping and not p.alive()]

    def info(self) -> list[ProcessInfo]:
        return [ProcessInfo(p.name, p.kind, p.role, p.pid, p.alive(), p.ports)
                for p in self.processes]

    def context(self) -> dict[str, Any]:
        """What a stored run records about this playground."""
        dp = self.data_plane
        pol = self.topology.policy
        return {
            "environment": "local", "data_plane": str(dp.kind), "mesh": dp.label,
            "data_plane_version": self.data_plane_version,
            "data_plane_binary": self.data_plane_source, "mode": str(dp.mode),
            "mtls": str(dp.mtls), "http2": dp.http2, "waypoint": dp.waypoint,
            "policy": pol.model_dump(mode="json", exclude_none=True) if pol else None,
            "topology": self.topology.model_dump(mode="json", exclude={"policy"}),
            "proxies": [p.name for p in self.proxy_processes()],
            "startup_s": round(self.startup_s, 3),
        }

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Playground:
        if self._started:
            return self
        t0 = time.perf_counter()
        for attempt in range(2):
            self._started = True
            _proc.register_for_exit(self)
            try:
                try:
                    self._spawn_all()
                finally:
                    self._release_ports()
                self._write_pidfile("starting")
                _proc.wait_ready(self._probes(), timeout_s=self.ready_timeout_s)
                break
            except PlaygroundError as exc:
                self.stop()
                self.processes, self.proxies = [], {}
                # a free port taken by someone else between choosing and binding it: once more
                if attempt or "in use" not in str(exc).lower():
                    raise
            except BaseException:
                self.stop()
                raise
        self.startup_s = time.perf_counter() - t0
        self._write_pidfile("ready")
        return self

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 1 s) and remove the work files."""
        if not self._started:
            return
        _proc.stop_processes(self.processes)
        with contextlib.suppress(OSError):
            self.pidfile.unlink()
        shutil.rmtree(self.workdir, ignore_errors=True)
        _proc.unregister_for_exit(self)
        self._started = False

    def reconfigure(self, mesh: str, *, mode: str | None = None,
                    policy: TrafficPolicy | None = None) -> Playground:
        """Restart with another data plane (a mesh string like `envoy+mtls`), mode or policy;
        the new layout is checked before the running one is stopped."""
        topology = resolve_topology(self.topology.with_data_plane(self.data_plane, None),
                                    mesh=mesh, mode=mode, policy=policy)
        plan = check_topology(topology, self.protocol)
        was_running = self._started
        self.stop()
        self.topology, self.plan = topology, plan
        self.processes, self.proxies = [], {}
        return self.start() if was_running else self

    def kill(self, name: str) -> None:
        """Kill one process abruptly (SIGKILL), as a crash would: for failure experiments."""
        import signal
        self.process(name).signal_group(signal.SIGKILL)

    def __enter__(self) -> Playground:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def astart(self) -> Playground:
        # spawned from the loop's own thread, not a worker: Linux delivers the parent-death
        # signal when the forking *thread* exits, and executor threads come and go
        return self.start()

    async def __aenter__(self) -> Playground:
        return await self.astart()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------
    def _write_pidfile(self, state: str) -> None:
        _proc.write_pidfile(self.pidfile, {
            "name": self.name, "state": state, "url": self.url,
            "data_plane": self.data_plane.label, "mode": str(self.data_plane.mode),
            "supervisor": _proc.supervisor_record(), "workdir": str(self.workdir),
            "processes": [p.record() for p in self.processes]})

    def _spawn_all(self) -> None:
        topo = self.topology
        # real ports: the plan was laid out with placeholders by check_topology. Each stays
        # bound here until just before its process starts (issuing mTLS certificates and
        # starting the other processes take long enough for another program to take it).
        def port() -> int:
            p, sock = hold_port()
            self._held[p] = sock
            return p

        _proc.private_dir(self.workdir)       # 0700: it holds the mTLS keys
        ca = CertificateAuthority(self.workdir / "certs") if topo.data_plane.mtls != "off" \
            else None

        def certs(identity: str) -> CertFiles:
            assert ca is not None
            return ca.issue(identity)

        self.plan = for_protocol(build_plan(topo, port=port, certs=certs), self.protocol)
        logs = self.workdir / "logs"
        for app in self.plan.apps:
            if app.forward_port is None:
                argv = [sys.executable, "-m", "meshlab.playground.echo", "--port", str(app.port),
                        "--name", app.name]
                if app.defaults:
                    argv += ["--defaults", app.defaults]
                if app.tcp:
                    argv.append("--tcp-only")
                kind = "echo"
            else:
                argv = [sys.executable, "-m", "meshlab.playground.relay", "--port",
                        str(app.port), "--upstream-port", str(app.forward_port), "--name",
                        app.name, *(["--raw"] if app.raw else [])]
                kind = "relay"
            self._launch(_proc.ManagedProcess(app.name, argv, log_path=logs / f"{app.name}.log",
                                              kind=kind, role="app", ports={"http": app.port}))
        if self.plan.proxies:
            mod = data_plane_module(topo.data_plane.kind)
            binary = mod.find_binary()
            self.data_plane_binary = binary.path
            self.data_plane_source = f"{binary.source}:{binary.path}"
            self.data_plane_version = binary.version
        for proxy in self.plan.proxies:
            self.proxies[proxy.name] = proxy
            pdir = self.workdir / proxy.name
            pdir.mkdir(parents=True, exist_ok=True)
            _config_path, argv = mod.prepare(proxy, pdir, binary=binary.path)
            ports = {lst.name: lst.port for lst in proxy.listeners}
            ports["admin"] = proxy.admin_port
            self._launch(_proc.ManagedProcess(
                proxy.name, argv, log_path=logs / f"{proxy.name}.log", kind=str(proxy.kind),
                role=proxy.role, ports=ports, cwd=pdir))

    def _launch(self, proc: _proc.ManagedProcess) -> None:
        for port in proc.ports.values():
            sock = self._held.pop(port, None)
            if sock is not None:
                sock.close()
        self.processes.append(proc)
        proc.start()

    def _release_ports(self) -> None:
        for sock in self._held.values():
            sock.close()
        self._held.clear()

    def _probes(self) -> list[tuple[_proc.ManagedProcess, _proc.Probe]]:
        out: list[tuple[_proc.ManagedProcess, _proc.Probe]] = []
        for p in self.processes:
            if p.kind == "envoy":
                out.append((p, _proc.http_probe(p.ports["admin"], "/ready")))
            for key, port in p.ports.items():
                if key != "admin":
                    out.append((p, _proc.tcp_probe(port)))
        return out

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "data_plane": self.data_plane.label,
                "mode": str(self.data_plane.mode), "startup_s": round(self.startup_s, 3),
                "processes": [dataclasses.asdict(i) for i in self.info()]}
