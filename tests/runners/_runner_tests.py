"""Helpers the external-runner tests share: golden outputs, a spec builder, sanity checks."""

from __future__ import annotations

from pathlib import Path

from meshlab.profile import RunSpec
from meshlab.results import RunResult

GOLDEN = Path(__file__).parent / "golden"
PS = (50.0, 90.0, 99.0, 99.9)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def spec(**kw: object) -> RunSpec:
    base: dict[str, object] = {"target": "http://127.0.0.1:8080/", "connections": 4,
                               "duration_s": 1.0}
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def assert_sane(r: RunResult) -> None:
    """Percentiles positive, monotonic and within the histogram's min and max."""
    ps = [r.latency.percentile_us(p) for p in PS]
    assert ps == sorted(ps) and ps[0] > 0
    assert r.latency.min_us <= ps[0] and ps[-1] <= r.latency.max_us
