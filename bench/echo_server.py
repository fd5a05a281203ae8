"""How fast the echo workload serves, next to nginx, both loaded by `wrk -t1 -c16` on loopback.

    .venv/bin/python bench/echo_server.py            # 3 interleaved rounds of 5 s
    .venv/bin/python bench/echo_server.py --quick    # 1 round of 2 s

The issue's bar: at least 50,000 req/s on one core. The echo server is one process (one core);
nginx runs one worker, so the ratio echo/nginx compares like with like on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from runner_vs_wrk import start_nginx, wrk

from meshlab.playground.echo import start_echo_process

TARGET_RPS = 50_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, dur = (1, 2.0) if args.quick else (3, 5.0)
    with tempfile.TemporaryDirectory() as tmp:
        nginx, nginx_url = start_nginx(Path(tmp))
        echo = start_echo_process(name="bench")
        try:
            rows: dict[str, list[float]] = {"echo": [], "echo ?size=1024": [], "nginx": []}
            for _ in range(rounds):
                rows["echo"].append(wrk(echo.url, 16, dur)["rps"])
                rows["echo ?size=1024"].append(wrk(echo.url + "?size=1024", 16, dur)["rps"])
                rows["nginx"].append(wrk(nginx_url, 16, dur)["rps"])
        finally:
            echo.stop()
            nginx.terminate()
            nginx.wait(5)
    ref = statistics.median(rows["nginx"])
    print(f"{'server':<18}{'median req/s':>14}{'vs nginx':>10}"
          f"   (wrk -t1 -c16, {rounds}x{dur:.0f} s)")
    for name, values in rows.items():
        m = statistics.median(values)
        print(f"{name:<18}{m:>14,.0f}{m / ref:>9.2f}x")
    echo_rps = statistics.median(rows["echo"])
    verdict = "meets" if echo_rps >= TARGET_RPS else "MISSES"
    print(f"echo {verdict} the {TARGET_RPS:,} req/s bar ({echo_rps / TARGET_RPS:.2f}x of it)")


if __name__ == "__main__":
    main()
