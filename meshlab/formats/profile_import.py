"""Meshery performance profiles (camelCase or older snake_case) and SMP / Meshery
`PerformanceTestConfig` documents as `Profile`s: one per endpoint (and client)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from meshlab.errors import OutputParseError, ProfileError
from meshlab.formats._doc import go_duration_s, snake_keys
from meshlab.profile import Profile
from meshlab.registry import RUNNERS

MESHERY_KEYS = frozenset({
    "id", "name", "owner", "user_id", "schedule", "load_generators", "endpoints", "service_mesh",
    "concurrent_request", "qps", "duration", "request_headers", "request_cookies",
    "request_body", "content_type", "metadata", "last_run", "total_results", "created_at",
    "updated_at",
})
TEST_CONFIG_KEYS = frozenset({"smp_version", "smps_version", "id", "name", "labels", "clients",
                              "duration"})
CLIENT_KEYS = frozenset({"internal", "load_generator", "protocol", "connections", "rps",
                         "headers", "cookies", "body", "content_type", "endpoint_urls",
                         "endpoint_url", "ssl_certificate", "additional_options"})
_MESHLAB_KEYS = frozenset(Profile.model_fields)
_HTTP_PROTOCOLS = {"", "0", "1", "http", "https", "protocol_http", "protocol_invalid"}


def profile_kind(doc: object) -> str | None:
    """"meshlab", "meshery-profile", "meshery-page" or "smp-config"; None when unknown."""
    if not isinstance(doc, Mapping):
        return None
    keys, _ = snake_keys(doc)
    if "target" in doc or ({"loads", "meshes", "runner", "request", "repeats"} & set(doc)
                           and set(doc) <= _MESHLAB_KEYS):
        return "meshlab"
    if "clients" in keys:
        return "smp-config"
    if isinstance(keys.get("profiles"), list):
        return "meshery-page"
    if {"endpoints", "load_generators", "concurrent_request", "service_mesh", "qps"} & set(keys):
        return "meshery-profile"
    # Most keys are meshlab's: a meshlab profile with a typo (`runer: wrk`), which then gets
    # meshlab's own problem list rather than "not a profile".
    if len({str(k) for k in doc} & _MESHLAB_KEYS) * 2 > len(doc):
        return "meshlab"
    return None


def profiles_from_doc(doc: object, *, source: str | None = None) -> list[Profile]:
    """Every profile a document describes (one per endpoint); ProfileError lists all problems."""
    kind = profile_kind(doc)
    if kind == "meshlab":
        return [Profile.from_dict(doc, source=source)]
    if kind is None:
        keys = sorted(str(k) for k in doc) if isinstance(doc, Mapping) else []
        raise ProfileError(
            "(root): not a meshlab profile (target: ...), a Meshery performance profile "
            "(endpoints, loadGenerators, qps ...) or an SMP PerformanceTestConfig (clients: ...)"
            + (f"; found keys {', '.join(keys[:12])}" if keys else
               f"; found a {type(doc).__name__}"), source=source)
    assert isinstance(doc, Mapping)
    if kind == "meshery-page":
        out: list[Profile] = []
        problems: list[str] = []
        for i, item in enumerate(snake_keys(doc)[0]["profiles"]):
            try:
                out.extend(_meshery(item, prefix=f"profiles[{i}].", source=source))
            except ProfileError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ProfileError(problems, source=source)
        if not out:
            raise ProfileError("profiles: empty; nothing to import", source=source)
        return out
    if kind == "smp-config":
        return _test_config(doc, source=source)
    return _meshery(doc, prefix="", source=source)


def profile_from_doc(doc: object, *, source: str | None = None) -> Profile:
    """The first profile of a document (other endpoints are named in description and labels)."""
    profiles = profiles_from_doc(doc, source=source)
    first = profiles[0]
    if len(profiles) == 1:
        return first
    others = [p.target for p in profiles[1:]]
    note = (f" Imported {len(profiles)} endpoints/clients; this profile targets the first, "
            f"the others are: {', '.join(others)} (use import_profiles for one profile each).")
    labels = {**first.labels, "imported.other_targets": " ".join(others)}
    return first.model_copy(update={"description": (first.description + note).strip(),
                                    "labels": labels})


# --- Meshery performance profile ---------------------------------------------------------------

def _meshery(raw: object, *, prefix: str, source: str | None) -> list[Profile]:
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{prefix or '(root)'}: expected an object", source=source)
    d, names = snake_keys(raw)

    def nm(key: str) -> str:
        return prefix + names.get(key, key)

    problems = [f"{prefix}{names[k]}: unknown key for a Meshery performance profile; remove it "
                "or check its spelling" for k in d if k not in MESHERY_KEYS]
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{prefix}name: required; add the profile name")
    endpoints = d.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints or not all(
            isinstance(e, str) and e for e in endpoints):
        problems.append(f"{nm('endpoints')}: required; give a "
                        "non-empty list of URLs")
        endpoints = []
    gens = d.get("load_generators") or []
    if not isinstance(gens, list) or not all(isinstance(g, str) for g in gens):
        problems.append(f"{nm('load_generators')}: expected a list of names")
        gens = []
    rate = _number(d.get("qps", 0), f"{prefix}qps", problems)
    conns = _number(d.get("concurrent_request"), nm('concurrent_request'),
                    problems)
    duration = _duration(d.get("duration"), f"{prefix}duration", problems, required=True)
    headers = _string_map(d.get("request_headers"), nm('request_headers'),
                          problems)
    cookies = _string_map(d.get("request_cookies"), nm('request_cookies'),
                          problems)
    body = _text(d.get("request_body"), nm('request_body'), problems)
    ctype = _text(d.get("content_type"), nm('content_type'), problems)
    mesh_v = d.get("service_mesh")
    if mesh_v is not None and not isinstance(mesh_v, str):
        problems.append(f"{nm('service_mesh')}: expected a string")
    runner, labels = _runner(gens[0] if gens else "", rate or 0.0,
                             nm('load_generators') + '[0]',
                             problems)
    if len(gens) > 1:
        labels["imported.other_load_generators"] = " ".join(gens[1:])
    if problems:
        raise ProfileError(problems, source=source)
    labels["imported.format"] = "meshery-profile"
    if isinstance(d.get("id"), str) and d["id"]:
        labels["meshery.id"] = d["id"]
    base = {
        "name": str(name).strip(), "runner": runner,
        "description": "Imported from a Meshery performance profile.",
        "meshes": [_mesh(mesh_v)],
        "loads": _loads(rate, conns, duration),
        "request": _request(headers, cookies, body, ctype),
        "labels": labels,
    }
    paths = {"target": f"{prefix}endpoints", "name": f"{prefix}name",
             "loads.rate_rps": f"{prefix}qps",
             "loads.connections": nm('concurrent_request'),
             "loads.duration_s": f"{prefix}duration", "request": f"{prefix}request_*"}
    return _build(base, endpoints, paths, source)


# --- SMP / Meshery PerformanceTestConfig ------------------------------------------------------

def _test_config(raw: Mapping[str, Any], *, source: str | None) -> list[Profile]:
    d, names = snake_keys(raw)
    problems = [f"{names[k]}: unknown key for an SMP PerformanceTestConfig; remove it or check "
                "its spelling" for k in d if k not in TEST_CONFIG_KEYS]
    name = d.get("name") or d.get("id")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required; add the test name")
    duration = _duration(d.get("duration"), "duration", problems, required=True)
    labels_raw = d.get("labels") or {}
    if not isinstance(labels_raw, Mapping):
        problems.append("labels: expected a mapping of strings")
        labels_raw = {}
    labels = {str(k): str(v) for k, v in labels_raw.items()}
    clients = d.get("clients")
    if not isinstance(clients, list) or not clients:
        problems.append(f"{names.get('clients', 'clients')}: required; give at least one client")
        clients = []
    profiles: list[tuple[dict[str, Any], list[str], dict[str, str]]] = []
    for i, c in enumerate(clients):
        p = f"{names.get('clients', 'clients')}[{i}]."
        if not isinstance(c, Mapping):
            problems.append(f"{p.rstrip('.')}: expected an object")
            continue
        cd, cn = snake_keys(c)
        problems += [f"{p}{cn[k]}: unknown key for a client; remove it or check its spelling"
                     for k in cd if k not in CLIENT_KEYS]
        urls = cd.get("endpoint_urls", cd.get("endpoint_url"))
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u
                                                             for u in urls):
            problems.append(f"{p}{cn.get('endpoint_urls', 'endpoint_urls')}: required; give a "
                            "non-empty list of URLs")
            urls = []
        proto = str(cd.get("protocol", "")).strip().lower()
        if proto not in _HTTP_PROTOCOLS:
            problems.append(f"{p}{cn.get('protocol')}: {cd.get('protocol')!r} is not HTTP; "
                            "meshlab drives HTTP(S) load only")
        rate = _number(cd.get("rps", 0), f"{p}rps", problems)
        conns = _number(cd.get("connections") or None, f"{p}connections", problems)
        runner, clabels = _runner(_text(cd.get("load_generator"), f"{p}load_generator",
                                        problems) or "", rate or 0.0, f"{p}load_generator",
                                  problems)
        req = _request(_string_map(cd.get("headers"), f"{p}headers", problems),
                       _string_map(cd.get("cookies"), f"{p}cookies", problems),
                       _text(cd.get("body"), f"{p}body", problems),
                       _text(cd.get("content_type"), f"{p}content_type", problems))
        for key in ("additional_options", "internal"):
            if cd.get(key) not in (None, "", False):
                clabels[f"smp.{key}"] = str(cd[key])
        if cd.get("ssl_certificate"):
            clabels["smp.ssl_certificate"] = "provided (not used by meshlab)"
        profiles.append(({"runner": runner, "loads": _loads(rate, conns, duration),
                          "request": req}, urls, clabels))
    if problems:
        raise ProfileError(problems, source=source)
    mesh = labels.get("mesh") or labels.get("service_mesh") or ""
    out: list[Profile] = []
    for i, (part, urls, clabels) in enumerate(profiles):
        base = {"name": str(name).strip() + (f"-client{i + 1}" if len(profiles) > 1 else ""),
                "description": "Imported from an SMP PerformanceTestConfig.",
                "meshes": [_mesh(mesh)],
                "labels": {**labels, **clabels, "imported.format": "smp-config"}, **part}
        paths = {"target": f"clients[{i}].endpoint_urls", "loads.rate_rps": f"clients[{i}].rps",
                 "loads.connections": f"clients[{i}].connections",
                 "loads.duration_s": "duration", "name": "name"}
        out.extend(_build(base, urls, paths, source))
    return out


# --- shared -----------------------------------------------------------------------------------

def _build(base: dict[str, Any], targets: list[str], paths: Mapping[str, str],
           source: str | None) -> list[Profile]:
    out = []
    for i, target in enumerate(targets):
        data = dict(base, target=target)
        if len(targets) > 1:
            data["name"] = f"{base['name']}-{i + 1}"
        try:
            out.append(Profile.from_dict(data, source=source))
        except ProfileError as exc:
            raise ProfileError([_source_path(p, paths) for p in exc.problems],
                               source=source) from None
    return out


def _source_path(problem: str, paths: Mapping[str, str]) -> str:
    """`loads.rate_rps[0]: rate -5 ...` -> `qps (meshlab loads.rate_rps[0]): rate -5 ...`."""
    mpath, _, msg = problem.partition(": ")
    for prefix, src in paths.items():
        if mpath == prefix or mpath.startswith(prefix + ".") or mpath.startswith(prefix + "["):
            return f"{src} (meshlab {mpath}): {msg}"
    return problem


def _runner(gen: str, rate: float, path: str, problems: list[str]) -> tuple[str, dict[str, str]]:
    """Closest meshlab runner for a Meshery/SMP load generator; substitutions go in labels."""
    g = gen.strip().lower()
    if not g:
        return "fortio", {"imported.load_generator": "fortio (Meshery's default)"}
    labels = {"imported.load_generator": g}
    if g in RUNNERS:
        return g, labels
    if g == "wrk2":
        # wrk2 = wrk + a constant request rate with latency corrected for coordinated
        # omission: meshlab's native open-loop runner does both; plain wrk cannot pace.
        sub = "native" if rate > 0 else "wrk"
    elif g == "nighthawk":
        sub = "native"          # open loop, HDR-style histogram, corrected latency
    else:
        problems.append(f"{path}: unknown load generator {gen!r}; meshlab maps fortio, wrk2, "
                        f"nighthawk and {', '.join(RUNNERS.names())}")
        return "native", labels
    labels["imported.runner_substitution"] = f"{g} -> {sub}"
    return sub, labels


def _mesh(v: object) -> str:
    s = v.strip().lower() if isinstance(v, str) else ""
    if s in ("", "none", "no mesh", "no_mesh", "nomesh"):
        return "none"
    return re.sub(r"[\s_]+", "-", s)


def _loads(rate: float | None, conns: float | None, duration_s: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rate_rps": [rate or 0.0]}
    if conns is not None:
        out["connections"] = [int(conns)] if conns == int(conns) else [conns]
    if duration_s is not None:
        out["duration_s"] = duration_s
    return out


def _request(headers: dict[str, str], cookies: dict[str, str], body: str | None,
             ctype: str | None) -> dict[str, Any]:
    req: dict[str, Any] = {"headers": headers, "cookies": cookies}
    if body:
        req["body"] = body
        req["method"] = "POST"         # Meshery's generators send the body with POST
    if ctype:
        req["content_type"] = ctype
    return req


def _number(v: object, path: str, problems: list[str]) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        problems.append(f"{path}: expected a number, got {type(v).__name__}")
        return None
    try:
        out = float(v)
    except (ValueError, OverflowError):
        problems.append(f"{path}: {v!r} is not a number")
        return None
    if out != out or out in (float("inf"), float("-inf")):
        problems.append(f"{path}: {v!r} is not a finite number")
        return None
    return out


def _duration(v: object, path: str, problems: list[str], *, required: bool) -> float | None:
    if v is None or v == "":
        if required:
            problems.append(f"{path}: required; give a Go duration like 30s, 1m or 1h30m")
        return None
    try:
        return go_duration_s(v, path)
    except OutputParseError as exc:
        problems.append(str(exc).split(" (excerpt:")[0])
        return None


def _text(v: object, path: str, problems: list[str]) -> str | None:
    if v is None or isinstance(v, str):
        return v or None
    problems.append(f"{path}: expected a string, got {type(v).__name__}")
    return None


def _string_map(v: object, path: str, problems: list[str]) -> dict[str, str]:
    """Headers/cookies: a mapping, or Meshery's JSON-serialized object string."""
    if v is None or v == "":
        return {}
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            problems.append(f"{path}: expected a JSON object of name/value strings, got {v!r}")
            return {}
    if not isinstance(v, Mapping):
        problems.append(f"{path}: expected an object of name/value strings")
        return {}
    return {str(k): v2 if isinstance(v2, str) else json.dumps(v2) for k, v2 in v.items()}
