"""Limits on untrusted input (profiles, imported documents): sizes, nesting, node counts,
non-finite numbers and control characters, checked in one linear pass."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MAX_PROFILE_BYTES = 1 << 20          # 1 MiB: a real profile is a few KiB
MAX_IMPORT_BYTES = 64 << 20          # 64 MiB: a fortio result with every bucket is ~1 MiB
MAX_YAML_BYTES = 4 << 20             # PyYAML reads ~0.1-0.3 MB/s: 64 MiB would take minutes
MAX_DEPTH = 64                       # nesting of mappings/lists (real documents: ~10)
MAX_NODES = 2_000_000                # values visited, counting YAML aliases at every use

# RFC 9110 5.5: a field value is VCHAR / obs-text with SP and HTAB inside; CR, LF, NUL and the
# other controls are not allowed (a CR/LF would start a new header line on the wire).
_FIELD_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_URL_BAD = re.compile(r"[\x00-\x20\x7f-\x9f\s]")   # controls and any whitespace, Unicode too


def mib(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):g} MiB"


def field_value_problem(value: str) -> str | None:
    """Why `value` cannot be an HTTP field value (RFC 9110), or None."""
    m = _FIELD_CTL.search(value)
    if m is None:
        return None
    return f"control character {m.group(0)!r} at position {m.start()} (RFC 9110 field values)"


def url_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a request target (a control character or whitespace)."""
    m = _URL_BAD.search(value)
    if m is None:
        return None
    what = "whitespace" if m.group(0).isspace() else "control character"
    return (f"{what} {m.group(0)!r} at position {m.start()}; percent-encode it "
            f"(%{ord(m.group(0)):02X}) if it belongs in the URL")


def document_problems(doc: object, *, max_depth: int = MAX_DEPTH,
                      max_nodes: int = MAX_NODES, finite: bool = True,
                      limit: int = 20) -> list[str]:
    """`path: problem` lines for a parsed document: nesting deeper than `max_depth`, more than
    `max_nodes` values (YAML aliases expand at every use) and (with `finite`) non-finite
    numbers. Iterative, so a hostile document can neither recurse nor loop."""
    problems: list[str] = []
    if not isinstance(doc, Mapping | list | tuple):
        if finite and isinstance(doc, float) and not math.isfinite(doc):
            problems.append(f"(root): {doc} is not a finite number")
        return problems
    # containers only on the stack, as (value, depth, trail): a trail is (key, parent trail),
    # turned into a path string only when a problem is reported
    stack: list[tuple[Any, int, _Trail]] = [(doc, 0, None)]
    nodes = 1
    while stack and len(problems) < limit:
        value, depth, trail = stack.pop()
        if depth >= max_depth:
            problems.append(f"{_path(trail)}: nested deeper than {max_depth} levels")
            continue
        nodes += len(value)
        if nodes > max_nodes:
            problems.append(f"(root): more than {max_nodes:,} values (YAML aliases that expand "
                            "over and over?); simplify the document")
            break
        for k, v in (value.items() if isinstance(value, Mapping) else enumerate(value)):
            if isinstance(v, float):
                if finite and not math.isfinite(v):
                    problems.append(f"{_path((k, trail))}: {v} is not a finite number")
            elif isinstance(v, Mapping | list | tuple):
                stack.append((v, depth + 1, (k, trail)))
    return problems


_Trail = tuple[object, "_Trail"] | None


def _path(trail: _Trail) -> str:
    keys: list[object] = []
    while trail is not None:
        key, trail = trail
        keys.append(key)
    path = ""
    for key in reversed(keys):
        if isinstance(key, int) and not isinstance(key, bool):
            path += f"[{key}]"
        else:
            path += f".{key}" if path else str(key)
    return path or "(root)"
