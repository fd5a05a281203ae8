"""Unit conversions; every quantity in meshlab carries its unit in its name (`latency_us`)."""

from __future__ import annotations

import re

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
US_PER_S = 1_000_000
US_PER_MS = 1_000


def us_from_s(seconds: float) -> float:
    """Seconds to microseconds."""
    return seconds * US_PER_S


def us_from_ms(milliseconds: float) -> float:
    """Milliseconds to microseconds."""
    return milliseconds * US_PER_MS


def us_from_ns(nanoseconds: float) -> float:
    """Nanoseconds to microseconds."""
    return nanoseconds / NS_PER_US


def s_from_us(microseconds: float) -> float:
    """Microseconds to seconds."""
    return microseconds / US_PER_S


def ms_from_us(microseconds: float) -> float:
    """Microseconds to milliseconds."""
    return microseconds / US_PER_MS


def ns_from_s(seconds: float) -> int:
    """Seconds to whole nanoseconds."""
    return round(seconds * NS_PER_S)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_SCALE_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str | float | int) -> float:
    """Parse `"10ms"`, `"1.5s"`, `"250us"`, `"2m"` or a bare number of seconds into seconds.

    Raises ValueError with the accepted forms when the text is not a duration.
    """
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; use e.g. 250us, 10ms, 1.5s, 2m")
    return float(m.group(1)) * _SCALE_S[m.group(2) or "s"]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]?|[bB])?\s*$")
_SCALE_B = {"": 1, "b": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3,
            "gi": 1024**3}


def parse_size_bytes(text: str | int) -> int:
    """Parse `"1024"`, `"4KiB"`, `"1k"`, `"2MB"` into bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; use e.g. 512, 4KiB, 1MB")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _SCALE_B[unit])
