"""Free loopback ports for playground processes: held bound until just before the process that
listens on them starts, so no other process can take one in between."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int, *, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free TCP ports on `host`.

    All sockets are held open until every port is chosen, so one call never returns a port
    twice; another process may still take one before we bind it (the readiness probe then
    reports the process that failed to listen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()


def hold_port(*, host: str = "127.0.0.1") -> tuple[int, socket.socket]:
    """A free TCP port on `host` and the socket that keeps it taken (bound, not listening):
    close the socket right before starting the process that binds the port, not earlier."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
    except OSError:
        s.close()
        raise
    return int(s.getsockname()[1]), s


def port_open(host: str, port: int, *, timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
