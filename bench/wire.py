"""A referee for latency benchmarks: tcpdump on loopback times each request on the wire, from the
client's request segment to the server's response segment, so no client's own cost is in it.

    with WireCapture(port) as wire:
        ...run a load generator against 127.0.0.1:port...
    wire.latencies_us()      # one value per request/response pair, in capture order

Needs tcpdump (apt-get install tcpdump) and the right to capture (root, or CAP_NET_RAW).
Pairs requests and responses per client port in order, so it assumes HTTP/1.1 without
pipelining and responses that fit one segment (true for small responses on loopback's 64 KiB
MTU). Use it at moderate rates: tcpdump itself takes CPU on a 2-core machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict, deque
from types import TracebackType
from typing import IO

# `tcpdump -n -tt -q` prints: 1796235960.149751 IP 127.0.0.1.55356 > 127.0.0.1.37827: tcp 68
_LINE = re.compile(rb"^(\d+)\.(\d+) IP6? \S+?\.(\d+) > \S+?\.(\d+): tcp (\d+)")
_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")


def wire_available() -> bool:
    return shutil.which("tcpdump") is not None and os.geteuid() == 0


class WireCapture:
    """tcpdump on `lo` for one server port while the `with` block runs."""

    def __init__(self, port: int, *, interface: str = "lo") -> None:
        self.port = port
        self.interface = interface
        self.dropped = 0
        self._out: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._latencies_us: list[float] = []

    def __enter__(self) -> WireCapture:
        # stdout to a file, not a pipe: a full pipe would block tcpdump and drop packets
        self._out = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            ["tcpdump", "-i", self.interface, "-n", "-tt", "-q", "--immediate-mode",
             "-B", "16384", f"tcp port {self.port}"],
            stdout=self._out, stderr=subprocess.PIPE)
        time.sleep(0.5)                     # tcpdump opens the interface before it captures
        if self._proc.poll() is not None:
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            raise RuntimeError(f"tcpdump exited at start: {err.strip()}")
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._proc is not None and self._out is not None
        time.sleep(0.1)                     # the last segments reach the capture buffer
        self._proc.send_signal(signal.SIGINT)
        try:
            _, err = self._proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        m = _DROPPED.search(err or b"")
        self.dropped = int(m.group(1)) if m else 0
        self._out.seek(0)
        self._latencies_us = self._pair(self._out.read())
        self._out.close()

    def _pair(self, text: bytes) -> list[float]:
        sent: defaultdict[int, deque[int]] = defaultdict(deque)
        out: list[float] = []
        for line in text.splitlines():
            m = _LINE.match(line)
            if m is None or m.group(5) == b"0":
                continue                    # a pure ACK, SYN or FIN
            t_us = int(m.group(1)) * 1_000_000 + int(m.group(2).ljust(6, b"0")[:6])
            src, dst = int(m.group(3)), int(m.group(4))
            if dst == self.port:
                sent[src].append(t_us)
            elif src == self.port and sent[dst]:
                out.append(float(t_us - sent[dst].popleft()))
        return out

    def latencies_us(self) -> list[float]:
        return list(self._latencies_us)
