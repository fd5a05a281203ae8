"""The local playground: echo workload, real Envoy/nginx/haproxy sidecars on loopback.
`from meshlab.playground import Playground` is resolved lazily (the echo and relay processes
import this package and must start fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlab.playground.playground import Playground

__all__ = ["Playground"]


def __getattr__(name: str) -> Any:
    if name == "Playground":
        from meshlab.playground.playground import Playground

        return Playground
    raise AttributeError(f"module 'meshlab.playground' has no attribute {name!r}")
