"""`meshlab playground up|down|status`: echo services and real proxies on 127.0.0.1, kept up in
the background (or --foreground) until `down`. State (PID files, configs, logs): --state-dir,
$MESHLAB_STATE_DIR, or $XDG_RUNTIME_DIR/meshlab/playground (else <tmp>/meshlab-<uid>/playground)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlab.playground.state import PlaygroundStatus

CLI_NAME = "cli"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from meshlab.registry import DATA_PLANES

    p = subparsers.add_parser("playground", help="a local service topology with real proxies",
                              description=__doc__)
    sub = p.add_subparsers(dest="playground_command", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="start a playground (in the background unless --foreground)")
    up.add_argument("--topology", metavar="FILE",
                    help="YAML topology: services, replicas, calls, workload (default: one "
                         "backend service)")
    up.add_argument("--data-plane", default=None, metavar="MESH",
                    help=f"{', '.join(DATA_PLANES.names())}, optionally with +mtls, "
                         "+mtls-permissive, +h2 (default: the topology's, else envoy)")
    up.add_argument("--mode", default=None,
                    choices=["both", "client-only", "server-only", "ingress", "node-proxy",
                             "node-proxy+waypoint"])
    up.add_argument("--mtls", choices=["off", "permissive", "strict"], default=None)
    up.add_argument("--foreground", action="store_true",
                    help="stay attached; Ctrl-C tears the playground down")
    up.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="seconds to wait until every process is ready (default 30)")
    _state_option(up)
    up.set_defaults(handler=cmd_up)

    down = sub.add_parser("down", help="stop the CLI playground and any orphaned one")
    down.add_argument("--all", action="store_true",
                      help="also stop playgrounds owned by running notebooks or scripts")
    _state_option(down)
    down.set_defaults(handler=cmd_down)

    st = sub.add_parser("status", help="list playgrounds and their processes")
    st.add_argument("--json", action="store_true", help="one JSON object per playground")
    _state_option(st)
    st.set_defaults(handler=cmd_status)


def _state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help="PID files, configs and logs (default: $MESHLAB_STATE_DIR or "
                        "$XDG_RUNTIME_DIR/meshlab/playground)")


def _state_dir(args: argparse.Namespace) -> Path:
    from meshlab.playground.process import default_state_dir

    chosen = args.state_dir or os.environ.get("MESHLAB_STATE_DIR")
    return Path(chosen) if chosen else default_state_dir()


def _mesh(args: argparse.Namespace, topology: Any) -> str | None:
    mesh: str | None = args.data_plane
    if args.mtls is None:
        return mesh
    base = (mesh or topology.data_plane.label).split("+")
    opts = [o for o in base[1:] if not o.startswith("mtls")]
    if args.mtls != "off":
        opts.append("mtls" if args.mtls == "strict" else "mtls-permissive")
    return "+".join([base[0], *opts])


def _build(args: argparse.Namespace) -> Any:
    from meshlab.errors import ProfileError
    from meshlab.playground.playground import Playground, resolve_topology

    raw: Any = None
    if args.topology:
        import yaml
        try:
            raw = yaml.safe_load(Path(args.topology).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ProfileError(f"--topology: cannot read {args.topology}: {exc}") from None
    topology = resolve_topology(raw)
    return Playground(topology, mesh=_mesh(args, topology), mode=args.mode,
                      state_dir=_state_dir(args), name=CLI_NAME, ready_timeout_s=args.timeout)


def cmd_up(args: argparse.Namespace) -> int:
    from meshlab.errors import PlaygroundError
    from meshlab.playground.state import running_playground, status_of

    state = _state_dir(args)
    if running_playground(state, CLI_NAME):
        raise PlaygroundError(f"a CLI playground is already up (state in {state}); run "
                              f"`meshlab playground down` first")
    pg = _build(args)          # validates topology, data plane and policy before anything runs
    if not args.foreground:
        return _detach(args, state)
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    with pg:
        _print_up(status_of(pg))
        try:
            while not stop.wait(0.5):
                dead = pg.dead()
                if dead:
                    print(f"error: {', '.join(dead)} died; tearing the playground down",
                          file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
    return 0


def _detach(args: argparse.Namespace, state: Path) -> int:
    """Re-run `up --foreground` as a session leader; wait until its PID file says ready."""
    from meshlab.playground.process import private_dir

    argv = [sys.executable, "-m", "meshlab.cli", "playground", "up", "--foreground",
            "--state-dir", str(state), "--timeout", str(args.timeout)]
    for flag, value in (("--topology", args.topology), ("--data-plane", args.data_plane),
                        ("--mode", args.mode), ("--mtls", args.mtls)):
        if value is not None:
            argv += [flag, str(Path(value).resolve()) if flag == "--topology" else value]
    private_dir(state)
    log = state / f"{CLI_NAME}.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_detached(child, args, state, log)
    except KeyboardInterrupt:       # Ctrl-C, SIGTERM or SIGHUP during start-up: no playground
        child.terminate()           # its own handler tears the playground down
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(args.timeout)
        raise


def _wait_detached(child: subprocess.Popen[bytes], args: argparse.Namespace, state: Path,
                   log: Path) -> int:
    from meshlab.errors import PlaygroundError
    from meshlab.playground.state import playground_statuses

    deadline = time.monotonic() + args.timeout + 10
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise PlaygroundError(f"the playground exited during start-up:\n{tail.strip()}")
        for status in playground_statuses(state):
            if status.pidfile.stem == CLI_NAME and status.state == "ready" and \
                    status.owner_pid == child.pid:
                _print_up(status)
                print(f"stop it with: meshlab playground down  (log: {log})")
                return 0
        time.sleep(0.05)
    child.terminate()
    raise PlaygroundError(f"the playground was not ready within {args.timeout + 10:.0f} s; "
                          f"see {log}")


def _print_up(status: PlaygroundStatus) -> None:
    print(f"playground {status.name} up: {status.data_plane} mode {status.mode}")
    print(f"  send requests to {status.url}")
    for p in status.processes:
        ports = ", ".join(f"{k}={v}" for k, v in p.ports.items())
        print(f"  {p.name:<28} {p.kind:<8} pid {p.pid:<8} {ports}")
    sys.stdout.flush()


def cmd_status(args: argparse.Namespace) -> int:
    from meshlab.playground.state import playground_statuses

    statuses = playground_statuses(_state_dir(args))
    if args.json:
        for st in statuses:
            print(json.dumps(st.to_dict()))
        return 0
    if not statuses:
        print("no playground is up")
        return 0
    for st in statuses:
        owner = "ORPHANED (owner gone)" if st.orphaned else "owner alive"
        print(f"{st.name}: {st.state}, {st.data_plane} mode {st.mode}, "
              f"{st.alive_count}/{len(st.processes)} processes alive ({st.member_count} in "
              f"their process groups), {owner}, {st.url}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop every process group a record names; a record is deleted only once its groups are
    empty, so a group that survives (another user's?) can be stopped by a later `down`."""
    from meshlab.playground.state import stop_playgrounds

    t0 = time.perf_counter()
    # the CLI's own playground is owned by its detached supervisor: stop it; a notebook's
    # playground only with --all (its owner tears it down)
    stopped = len(stop_playgrounds(_state_dir(args), names=[CLI_NAME], include_owned=args.all))
    print(f"stopped {stopped} playground{'s' if stopped != 1 else ''} "
          f"in {time.perf_counter() - t0:.2f} s")
    return 0
