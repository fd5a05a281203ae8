"""Native runner vs wrk -t1 (and hey) on loopback, interleaved, as ratios.

    .venv/bin/python bench/runner_vs_wrk.py            # ~6 min: 3 rounds, 5 s runs, 60 s RSS check
    .venv/bin/python bench/runner_vs_wrk.py --quick    # ~1 min smoke run

Starts nginx (1 worker, `return 200`, keepalive_requests 1e9: nginx's default of 1,000 would
make every generator reconnect) and the meshlab echo server, then prints closed-loop throughput
at 16 and 64 connections (native/wrk), client CPU seconds per 100k requests, open-loop
achieved/requested at 1k, 10k and 30k req/s, p50/p99 side by side, and the RSS growth of a long
max-rate run over a short one. Run it on a quiet machine; it reports medians of interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meshlab.playground.echo import start_echo_process
from meshlab.playground.ports import free_ports, port_open
from meshlab.profile import RunSpec
from meshlab.runners.native import NativeRunner

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

RSS_SCRIPT = """
import asyncio, json, resource, sys
from meshlab.profile import RunSpec
from meshlab.runners.native import NativeRunner
spec = RunSpec(target=sys.argv[1], connections=64, duration_s=float(sys.argv[2]), warmup_s=0.5)
r = asyncio.run(NativeRunner().run(spec))
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "requests": r.requests}))
"""


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


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def native(url: str, conns: int, dur: float, rate: float = 0.0) -> dict[str, float]:
    # closed loop: no warm-up, like wrk and hey, so CPU per request compares like for like
    spec = RunSpec(target=url, connections=conns, duration_s=dur, warmup_s=0.5 if rate else 0.0,
                   rate_rps=rate)
    c0 = cpu_self()
    r = asyncio.run(NativeRunner().run(spec))
    cpu = cpu_self() - c0
    return {"rps": r.achieved_rate_rps, "cpu_per_100k": cpu / max(r.requests, 1) * 1e5,
            "p50_us": r.latency.percentile_us(50), "p99_us": r.latency.percentile_us(99),
            "svc_p50_us": r.service_time.percentile_us(50),
            "svc_p99_us": r.service_time.percentile_us(99), "errors": r.errors}


_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def wrk(url: str, conns: int, dur: float) -> dict[str, float]:
    c0 = cpu_children()
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{dur:g}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_children() - c0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = {p: float(v) * _UNIT_US[u] for p, v, u in
           re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    return {"rps": rps, "cpu_per_100k": cpu / max(reqs, 1) * 1e5,
            "p50_us": lat.get("50", float("nan")), "p99_us": lat.get("99", float("nan"))}


def hey(url: str, conns: int, dur: float) -> dict[str, float]:
    c0 = cpu_children()
    out = subprocess.run(["hey", "-z", f"{dur:g}s", "-c", str(conns), url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_children() - c0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    n = int(re.search(r"\[200\]\s+(\d+) responses", out).group(1))  # type: ignore[union-attr]
    lat = {p: float(v) * 1e6 for p, v in re.findall(r"(50|99)%+ in ([\d.]+) secs", out)}
    return {"rps": rps, "cpu_per_100k": cpu / max(n, 1) * 1e5,
            "p50_us": lat.get("50", float("nan")), "p99_us": lat.get("99", float("nan"))}


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def closed_loop(url: str, conns: int, rounds: int, dur: float, tools: list[str]) -> None:
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in ["native", *tools]}
    ratios = []
    for _ in range(rounds):                     # interleaved: native, wrk, hey, native, ...
        n = native(url, conns, dur)
        runs["native"].append(n)
        for t in tools:
            runs[t].append((wrk if t == "wrk" else hey)(url, conns, dur))
        if "wrk" in tools:
            ratios.append(n["rps"] / runs["wrk"][-1]["rps"])
    print(f"\nclosed loop, {conns} connections, {rounds} x {dur:g} s (medians)")
    print(f"  {'tool':8} {'req/s':>10} {'cpu s/100k':>11} {'p50 us':>9} {'p99 us':>9}")
    for t, rows in runs.items():
        print(f"  {t:8} {med(rows, 'rps'):10.0f} {med(rows, 'cpu_per_100k'):11.2f} "
              f"{med(rows, 'p50_us'):9.0f} {med(rows, 'p99_us'):9.0f}")
    if ratios:
        print(f"  native/wrk throughput: median {statistics.median(ratios):.2f}x "
              f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})")


def open_loop(url: str, rates: list[float], dur: float, rounds: int) -> None:
    print(f"\nopen loop (native), 32 connections, {rounds} x {dur:g} s")
    print(f"  {'rate':>7} {'achieved/requested':>19} {'p50 us':>8} {'p99 us':>8} "
          f"{'svc p50':>8} {'svc p99':>8}")
    for rate in rates:
        for _ in range(rounds):
            r = native(url, 32, dur, rate)
            print(f"  {rate:7.0f} {r['rps'] / rate:19.4f} {r['p50_us']:8.0f} {r['p99_us']:8.0f} "
                  f"{r['svc_p50_us']:8.0f} {r['svc_p99_us']:8.0f}")


def memory(url: str, short_s: float, long_s: float) -> None:
    out = {}
    for d in (short_s, long_s):
        p = subprocess.run([sys.executable, "-c", RSS_SCRIPT, url, str(d)], capture_output=True,
                           text=True, check=True)
        out[d] = json.loads(p.stdout.strip().splitlines()[-1])
    grow_mb = (out[long_s]["maxrss_kb"] - out[short_s]["maxrss_kb"]) / 1024
    print(f"\nmemory: max RSS {out[short_s]['maxrss_kb'] / 1024:.1f} MB after {short_s:g} s, "
          f"{out[long_s]['maxrss_kb'] / 1024:.1f} MB after {long_s:g} s "
          f"({out[long_s]['requests']} requests): +{grow_mb:.1f} MB (limit +20 MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--conns", default="16,64", help="closed-loop connection counts")
    ap.add_argument("--only", choices=["closed", "open", "memory", "echo"], default=None)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    dur = 2.0 if args.quick else 5.0
    tools = [t for t in ("wrk", "hey") if shutil.which(t)]
    with tempfile.TemporaryDirectory(prefix="meshlab-bench-") as tmp:
        proc, url = start_nginx(Path(tmp))
        echo = start_echo_process(name="bench-echo")
        try:
            print(f"nginx {url}  echo {echo.url}  tools {tools}")
            if args.only in (None, "closed"):
                for conns in (int(c) for c in args.conns.split(",")):
                    closed_loop(url, conns, rounds, dur, tools)
            if args.only in (None, "echo"):
                print("\n(echo server, Python: the target is the bottleneck here)")
                closed_loop(echo.url, 16, 1, dur, tools[:1])
            if args.only in (None, "open"):
                open_loop(url, [1000, 10000, 30000], dur, 1 if args.quick else 2)
            if args.only in (None, "memory"):
                memory(url, 2.0 if args.quick else 5.0, 10.0 if args.quick else 60.0)
        finally:
            echo.stop()
            proc.terminate()
            proc.wait(5)


if __name__ == "__main__":
    main()
