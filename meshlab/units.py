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


# --- formatting: the one place numbers become text for people (CLI, report, widgets) -------

def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if x != x or x in (float("inf"), float("-inf")) else x


def format_us(value: object, *, signed: bool = False) -> str:
    """`1.23 ms` style text of a microsecond value (us, ms or s); `-` when missing."""
    us = _finite(value)
    if us is None:
        return "-"
    sign = ("+" if us > 0 else "-" if us < 0 else "") if signed else ("-" if us < 0 else "")
    mag = abs(us)
    if mag >= US_PER_S:
        return f"{sign}{mag / US_PER_S:.2f} s"
    if mag >= US_PER_MS:
        return f"{sign}{mag / US_PER_MS:.2f} ms"
    return f"{sign}{mag:.0f} us"


def format_number(value: object, *, signed: bool = False) -> str:
    """A plain number for people: thousands separators, about 3 significant digits, never
    scientific notation (`1,234`, `12.3`, `0.0042`); `-` when missing."""
    x = _finite(value)
    if x is None:
        return "-"
    plus = "+" if signed and x > 0 else ""
    mag = abs(x)
    if mag >= 100 or mag == int(mag):
        return f"{plus}{x:,.0f}"
    if mag >= 1:
        return f"{plus}{x:,.{3 - len(str(int(mag)))}f}".rstrip("0").rstrip(".")
    digits = 2
    while digits < 9 and mag < 10 ** -(digits - 2):
        digits += 1
    text = f"{plus}{x:.{digits + 1}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0", "+0") else text


def format_rate_rps(value: object, *, signed: bool = False) -> str:
    """`1,234 req/s`, `12.5 req/s`; `-` when missing."""
    text = format_number(value, signed=signed)
    return text if text == "-" else f"{text} req/s"


def format_percent(value: object, *, signed: bool = False, fraction: bool = False) -> str:
    """`12.3%` of a percent value (or of a fraction with `fraction=True`); `-` when missing."""
    x = _finite(value)
    if x is None:
        return "-"
    if fraction:
        x *= 100.0
    plus = "+" if signed and x > 0 else ""
    mag = abs(x)
    if mag >= 10 or mag == 0:
        return f"{plus}{x:,.0f}%"
    if mag >= 0.1:
        return f"{plus}{x:.1f}%"
    return f"{plus}{format_number(x)}%"


def format_bytes(value: object, *, signed: bool = False) -> str:
    """`512 B`, `4.0 KiB`, `163.3 MiB`, `1.20 GiB` (binary prefixes); `-` when missing."""
    x = _finite(value)
    if x is None:
        return "-"
    sign = ("+" if x > 0 else "-" if x < 0 else "") if signed else ("-" if x < 0 else "")
    mag = abs(x)
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if mag >= scale:
            return f"{sign}{mag / scale:.1f} {unit}"
    return f"{sign}{mag:.0f} B"


def format_seconds(value: object) -> str:
    """`12 s`, `1.5 s`, `250 ms` of a value in seconds; `-` when missing."""
    x = _finite(value)
    if x is None:
        return "-"
    return format_us(x * US_PER_S) if abs(x) < 1 else f"{format_number(x)} s"


def format_value(column: str, value: object, *, signed: bool = False) -> str:
    """Text of `value` by the unit its name carries (`p99_us`, `rate_rps`, `rss_bytes`,
    `delta_pct`, `error_rate`, `duration_s`, `cpu_percent`); other numbers plainly."""
    name = column.lower()
    if name.endswith("_us"):
        return format_us(value, signed=signed)
    if name.endswith("_rps"):
        return format_rate_rps(value, signed=signed)
    if name.endswith("_bytes"):
        return format_bytes(value, signed=signed)
    if name.endswith(("_pct", "_percent")):
        return format_percent(value, signed=signed)
    if name in ("error_rate", "share") or name.endswith(("_rate", "_share", "_fraction")):
        return format_percent(value, signed=signed, fraction=True)
    if name.endswith("_s"):
        return format_seconds(value)
    return format_number(value, signed=signed)
