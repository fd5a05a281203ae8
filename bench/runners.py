"""Every runner's throughput and client CPU per 100k requests against nginx on loopback, as
ratios to plain `wrk -t1` (no Lua script), interleaved, medians over rounds.

    .venv/bin/python bench/runners.py            # ~2 min: 3 rounds x 5 s x 6 generators
    .venv/bin/python bench/runners.py --quick    # ~15 s smoke run: 1 round x 1 s

`wrk (meshlab)` is the WrkRunner with its Lua reporter (a response() hook counts every status,
which costs wrk some throughput; `wrk (no statuses)` drops that hook); the others are meshlab's
hey, ab, native and, when its binary is on PATH, fortio runners. CPU counts the tool process
plus meshlab's own parsing and bookkeeping. Run it on a quiet machine: on a 2-core box the
generator and nginx share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from meshlab.errors import MeshlabError
from meshlab.playground.ports import free_ports, port_open
from meshlab.profile import RunSpec
from meshlab.runners.base import Runner, get_runner
from meshlab.runners.wrk import WrkRunner

NGINX_CONF = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  keepalive_requests 1000000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello\\n"; }} }}
}}
"""

Sample = tuple[float, float]        # (requests per second, CPU seconds per 100k requests)


def start_nginx(d: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_ports(1)[0]
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port))
    proc = subprocess.Popen(["/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf")])
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"nginx did not start: {(d / 'error.log').read_text()}")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/"


def cpu_s() -> float:
    """CPU of this process plus its waited-for children (the tools)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def plain_wrk(url: str, conns: int, dur: int) -> Sample:
    c0 = cpu_s()
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{dur}s", url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_s() - c0
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m_n = re.search(r"(\d+) requests in", out)
    if not m_rps or not m_n:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(m_rps.group(1)), cpu / max(int(m_n.group(1)), 1) * 1e5


def meshlab_runner(name: str, runner: Runner | None = None) -> Callable[[str, int, int], Sample]:
    def run(url: str, conns: int, dur: int) -> Sample:
        spec = RunSpec(target=url, connections=conns, duration_s=float(dur), runner=name)
        c0 = cpu_s()
        r = asyncio.run((runner or get_runner(name)).run(spec))
        cpu = cpu_s() - c0
        return r.achieved_rate_rps, cpu / max(r.requests, 1) * 1e5
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s runs (smoke test)")
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    rounds, dur = (1, 1) if args.quick else (3, 5)

    tools: dict[str, Callable[[str, int, int], Sample]] = {"wrk -t1 (plain)": plain_wrk}
    for name in ("wrk", "hey", "ab", "native", "fortio"):
        try:
            available = get_runner(name).is_available()
        except MeshlabError:
            available = False
        if not available:
            print(f"skipping {name}: not available on this machine", file=sys.stderr)
            continue
        tools[f"{name} (meshlab)"] = meshlab_runner(name)
        if name == "wrk":
            tools["wrk (no statuses)"] = meshlab_runner(name, WrkRunner(count_statuses=False))

    samples: dict[str, list[Sample]] = {t: [] for t in tools}
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-") as tmp:
        nginx, url = start_nginx(Path(tmp))
        try:
            for _ in range(rounds):           # interleaved: every tool once per round
                for label, fn in tools.items():
                    samples[label].append(fn(url, args.connections, dur))
        finally:
            nginx.terminate()
            nginx.wait(10)

    ref_rps = statistics.median(s[0] for s in samples["wrk -t1 (plain)"])
    ref_cpu = statistics.median(s[1] for s in samples["wrk -t1 (plain)"])
    print(f"\n{args.connections} connections, closed loop, {rounds} x {dur} s, nginx `return 200`"
          f" (medians; ratios to plain wrk)")
    print(f"  {'generator':18} {'req/s':>10} {'x wrk':>7} {'cpu s/100k':>11} {'x wrk':>7}")
    for label, rows in samples.items():
        rps = statistics.median(s[0] for s in rows)
        cpu = statistics.median(s[1] for s in rows)
        print(f"  {label:18} {rps:10.0f} {rps / ref_rps:7.2f} {cpu:11.3f} {cpu / ref_cpu:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
