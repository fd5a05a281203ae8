"""Credentials out of what meshlab stores, prints and exports: secret-named headers and fields,
URL userinfo and secret-named query parameters; linear time, with a size limit per string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "<redacted>"
MAX_REDACT_CHARS = 1 << 20     # a longer string is replaced whole: never scanned, never kept

# Literal alternatives only (no nested quantifier): one pass over the name. `sig` and `key` alone
# are whole names (Azure SAS `sig=`, Google `key=`); `signature` covers X-Amz-Signature.
_SECRET_NAME = re.compile(r"(authorization|cookie|token|secret|password|passwd|pwd|api[-_]?key|"
                          r"[-_]key$|^key$|auth|credential|session|signature|^sig$)", re.IGNORECASE)
_TOKEN_CHARS = frozenset("!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_WORD = re.compile(r"[^\s\"'`]+")          # a URL ends at whitespace or a quote
_AUTHORITY_END = re.compile(r"[/?#]")
_QUERY_START = re.compile(r"[?#]")
_QUERY_SEP = re.compile(r"([?&#;])")


def is_secret_name(name: str) -> bool:
    """True for header/parameter names that carry credentials (Authorization, X-Api-Key,
    access_token, X-Amz-Signature ...)."""
    return bool(_SECRET_NAME.search(name))


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy with the values of secret-bearing names replaced by `<redacted>`."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in values.items()}


def redact_url(url: str) -> str:
    """`url` with its userinfo and the values of secret-named query (and fragment) parameters
    replaced: `http://u:p@h/?access_token=x&n=1` -> `http://<redacted>@h/?access_token=
    <redacted>&n=1`. Also URLs inside free text (an error message, a label); linear time."""
    if len(url) > MAX_REDACT_CHARS:
        return f"<redacted: {len(url)} characters, above the {MAX_REDACT_CHARS} limit>"
    if "://" not in url:
        return url
    return _WORD.sub(lambda m: _redact_word(m.group(0)) if "://" in m.group(0) else m.group(0),
                     url)


def _redact_word(word: str) -> str:
    # userinfo after every `scheme://` (a nested `?next=http://u:p@h/` included)
    parts: list[str] = []
    pos = 0
    i = word.find("://")
    while i != -1:
        start = i + 3
        m = _AUTHORITY_END.search(word, start)
        end = m.start() if m else len(word)
        at = word.rfind("@", start, end)
        if at != -1 and i > 0 and word[i - 1] in _SCHEME_CHARS:
            parts += [word[pos:start], REDACTED]
            pos = at
        i = word.find("://", end)
    parts.append(word[pos:])
    word = "".join(parts)
    # query parameters: every `name=value` piece after the first `?` or `#`, split on ?&#;
    q = _QUERY_START.search(word, word.find("://") + 3)
    if q is None:
        return word
    pieces = _QUERY_SEP.split(word[q.start():])
    for n, piece in enumerate(pieces):
        name, eq, value = piece.partition("=")
        if eq and value and value != REDACTED and is_secret_name(unquote_plus(name)):
            pieces[n] = f"{name}={REDACTED}"
    return word[:q.start()] + "".join(pieces)


def redact_header_line(text: str) -> str | None:
    """`Authorization: Bearer x` -> `Authorization: <redacted>`; None if `text` is not a
    `Name: value` line with a secret name."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if (sep and name and value.strip() and all(c in _TOKEN_CHARS for c in name)
            and is_secret_name(name)):
        return f"{name}: {REDACTED}"
    return None


def redact_document(value: Any, *, by_name: bool = True) -> Any:
    """A deep copy of a JSON-like document with credentials replaced by `<redacted>`: values
    under secret-bearing keys (Authorization, UserCredentials, api_key ...), `Name: value`
    header strings with a secret name, and userinfo and secret query parameters in URLs. For
    imported documents (fortio, Meshery ...) that are stored as they came, and for exports.
    `by_name=False` redacts URLs only (a run's context, where `endpoint_key` names no secret)."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            secret = by_name and isinstance(k, str) and is_secret_name(k)
            if secret and isinstance(v, str) and v:
                out[k] = REDACTED
            elif secret and isinstance(v, list | tuple) and v:
                out[k] = [REDACTED for _ in v]
            else:
                out[redact_url(k) if isinstance(k, str) else k] = redact_document(
                    v, by_name=by_name)
        return out
    if isinstance(value, list | tuple):
        return [redact_document(v, by_name=by_name) for v in value]
    if isinstance(value, str):
        if len(value) > MAX_REDACT_CHARS or not by_name:
            return redact_url(value)
        line = redact_header_line(value)
        return line if line is not None else redact_url(value)
    return value


__all__ = ["MAX_REDACT_CHARS", "REDACTED", "is_secret_name", "redact_document",
           "redact_header_line", "redact_mapping", "redact_url"]
