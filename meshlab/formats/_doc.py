"""Reading foreign documents defensively: bytes to JSON/YAML values, typed field access that
raises OutputParseError naming the bad path, RFC 3339 timestamps and Go duration strings.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import yaml

from meshlab._limits import MAX_NODES, MAX_YAML_BYTES, document_problems, mib
from meshlab.errors import OutputParseError
from meshlab.profile import load_yaml

MAX_COUNT = 1 << 53          # counts beyond this are not exact in float64, and never real


def fail(path: str, message: str, value: object = "") -> NoReturn:
    """Raise OutputParseError for `path` with an excerpt of the offending value."""
    excerpt = value if isinstance(value, str | bytes) else _short_repr(value)
    raise OutputParseError(f"{path}: {message}", excerpt=excerpt)


def _short_repr(value: object) -> str:
    try:
        return repr(value)[:300]
    except Exception:  # a pathological object: the path alone still says what failed
        return f"<{type(value).__name__}>"


# --- bytes -> value ---------------------------------------------------------------------------

def parse_bytes(data: bytes, *, source: str = "document") -> object:
    """JSON (when it starts with `{` or `[`) or YAML; empty, binary, broken, too deeply nested
    or alias-bomb input raises. Non-finite numbers are left to the field checks."""
    doc = _parse(data, source)
    # without aliases (JSON) a document holds fewer values than bytes; YAML aliases can hold more
    shape = document_problems(doc, finite=False, max_nodes=max(MAX_NODES, len(data)), limit=1)
    if shape:
        raise OutputParseError(f"{source}: {shape[0]}")
    return doc


def _parse(data: bytes, source: str) -> object:
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OutputParseError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                               excerpt=bytes(data)[:120]) from None
    stripped = text.strip()
    if not stripped:
        raise OutputParseError(f"{source}: empty document; expected fortio/Nighthawk/Meshery "
                               "JSON or SMP YAML")
    if "\x00" in stripped:
        raise OutputParseError(f"{source}: binary data (NUL bytes); expected JSON or YAML",
                               excerpt=stripped[:120])
    if stripped[0] in "{[":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            lo = max(exc.pos - 60, 0)
            raise OutputParseError(
                f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} "
                "(truncated or corrupted file?)", excerpt=stripped[lo:exc.pos + 60]) from None
        except (RecursionError, ValueError) as exc:
            raise OutputParseError(f"{source}: unreadable JSON: {exc}",
                                   excerpt=stripped[:120]) from None
    if len(stripped) > MAX_YAML_BYTES:
        raise OutputParseError(f"{source}: a YAML document is limited to {mib(MAX_YAML_BYTES)} "
                               f"({MAX_YAML_BYTES:,} characters; reading YAML is slow); convert "
                               "it to JSON, which may be up to 64 MiB", excerpt=stripped[:120])
    try:
        return load_yaml(stripped)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise OutputParseError(f"{source}: invalid YAML{where}: {problem}",
                               excerpt=stripped[:120]) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise OutputParseError(f"{source}: unreadable YAML: {exc}",
                               excerpt=stripped[:120]) from None


def digest(data: bytes | str) -> str:
    """Short stable hash of a document (makes run ids of imports reproducible)."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


# --- typed access -----------------------------------------------------------------------------

def as_map(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(path, f"expected an object, got {type(value).__name__}", value)
    return value


def as_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        fail(path, f"expected a list, got {type(value).__name__}", value)
    return list(value)


def opt_list(value: object, path: str) -> list[Any]:
    """A list, or [] for a JSON null (fortio writes `"Data": null` for empty histograms)."""
    return [] if value is None else as_list(value, path)


def text(value: object, path: str) -> str:
    if not isinstance(value, str):
        fail(path, f"expected a string, got {type(value).__name__}", value)
    return value


def opt_text(value: object, path: str) -> str:
    return "" if value is None else text(value, path)


def num(value: object, path: str, *, minimum: float | None = None) -> float:
    """A finite number; numeric strings are accepted (Nighthawk writes uint64 as strings)."""
    if isinstance(value, bool):
        fail(path, "expected a number, got a boolean", value)
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            fail(path, "expected a number", value)
    elif isinstance(value, int | float):
        try:
            out = float(value)
        except OverflowError:
            fail(path, "number out of range", value)
    else:
        fail(path, f"expected a number, got {type(value).__name__}", value)
    if not math.isfinite(out):
        fail(path, "expected a finite number", value)
    if minimum is not None and out < minimum:
        fail(path, f"must be >= {minimum:g}", value)
    return out


def count(value: object, path: str) -> int:
    """A non-negative integer count (int, integral float or numeric string)."""
    f = num(value, path, minimum=0)
    if f != int(f):
        fail(path, "expected a whole count", value)
    if f > MAX_COUNT:
        fail(path, f"count above {MAX_COUNT} is not plausible", value)
    return int(f)


def opt_num(m: Mapping[str, Any], key: str, path: str, default: float) -> float:
    v = m.get(key)
    return default if v is None else num(v, f"{path}.{key}" if path else key)


# --- keys -------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(key: str) -> str:
    """`loadGenerators` -> `load_generators`; `endpoint_urls` stays as is."""
    return _CAMEL.sub(r"_\1", key).lower()


def snake_keys(m: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(mapping with snake_case keys, snake key -> original key for messages)."""
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    for k, v in m.items():
        s = snake(str(k))
        out[s] = v
        names[s] = str(k)
    return out, names


# --- time -------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?"
                      r"([Zz]|[+-]\d{2}:?\d{2})?$")


def timestamp(value: object, path: str) -> datetime:
    """RFC 3339 with any number of fraction digits (Go writes nanoseconds), or a YAML datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    s = text(value, path).strip()
    m = _RFC3339.match(s)
    if not m:
        fail(path, "expected an RFC 3339 timestamp like 2022-03-19T15:34:23.279389-07:00", value)
    date, clock, frac, tz = m.groups()
    frac = (frac or "")[:7]                  # Python keeps microseconds: '.' + 6 digits
    tz = "+00:00" if tz in (None, "Z", "z") else tz
    try:
        out = datetime.fromisoformat(f"{date}T{clock}{frac}{tz}")
    except ValueError as exc:
        fail(path, f"invalid timestamp: {exc}", value)
    return out.astimezone(UTC)


def rfc3339(dt: datetime) -> str:
    """UTC timestamp as Go's time.RFC3339Nano writes it (`...Z`)."""
    s = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        s += f".{dt.microsecond:06d}".rstrip("0")
    return s + "Z"


_GO_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
               "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration_s(value: object, path: str) -> float:
    """Seconds in a Go duration string (`30s`, `1m`, `1h30m`, `250ms`); a bare number is s."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return num(value, path, minimum=0)
    s = text(value, path).strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if not m:
            fail(path, "not a Go duration; use e.g. 30s, 1m, 1h30m, 500ms", value)
        total += float(m.group(1)) * _GO_UNIT_NS[m.group(2)] / 1e9
        pos = m.end()
    if not s or not math.isfinite(total):
        fail(path, "not a Go duration; use e.g. 30s, 1m, 1h30m, 500ms", value)
    return total


def go_duration_text(ns: int) -> str:
    """A duration formatted like Go's time.Duration.String() (`100ms`, `1m0s`, `1h2m3.5s`)."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 1_000)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 1_000_000)}ms"
    h, rem = divmod(u, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    secs = _frac(rem, 1_000_000_000) + "s"
    if h:
        return f"{sign}{h}h{m}m{secs}"
    if m:
        return f"{sign}{m}m{secs}"
    return sign + secs


def _frac(v: int, unit: int) -> str:
    whole, part = divmod(v, unit)
    if not part:
        return str(whole)
    digits = str(part).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def import_run_id(started_at: datetime, doc_digest: str, index: int = 0) -> str:
    """`20220319T223423-1a2b3c`: like `new_run_id`, but derived from the document, so importing
    the same file twice gives the same ids (and a store can refuse the duplicate)."""
    suffix = digest(f"{doc_digest}:{index}")[:6]
    return started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + "-" + suffix
