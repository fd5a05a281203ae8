"""Hostile input against every parser (the profile loader, the CLI's profile reader, each import
format): very long strings, deep nesting, control characters, non-finite and huge numbers. Every
failure is a MeshlabError subclass, never another exception, never a hang (per-example deadline);
what is accepted holds no non-finite number, no control character in a header or the target."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from _store_data import make_result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.cli._common import load_profile_file
from meshlab.errors import MeshlabError
from meshlab.formats import export_run, import_results
from meshlab.profile import Profile, RunSpec

PIECES = ["a", "://", "@", "http://u:p@h/?token=", "&key=", "\r\n", "\x00", "\x1b[2J",
          "\u202e", "[", "{", "- ", ": ", "&a ", "*a ", "\ud800", "é", " "]
# Generous (the machine may be busy): a quadratic or exponential path takes minutes or hours.
DEADLINE = timedelta(seconds=30)
SETTINGS = settings(max_examples=40, deadline=DEADLINE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

long_text = st.builds(lambda p, n: p * n, st.sampled_from(PIECES), st.integers(1, 100_000))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), long_text,
    st.sampled_from(["nan", "-Infinity", "1e999", "0x10", "2024-13-45", "http://h/a b",
                     "Authorization: Bearer x", "10ms", "-1", "1" * 400]))


DEEP = "__deep__"


def _deep(depth: int, as_dict: bool) -> str:
    """A placeholder `_dumps` expands to `depth` nested lists or objects (deeper than the
    interpreter's recursion limit, which json.dumps of a real structure would hit)."""
    return f"{DEEP}{'d' if as_dict else 'l'}{depth}"


hostile = st.one_of(
    leaves,
    st.recursive(leaves, lambda c: st.lists(c, max_size=4)
                 | st.dictionaries(st.text(max_size=12), c, max_size=4), max_leaves=12),
    st.builds(_deep, st.sampled_from([40, 400, 1_500, 5_000]), st.booleans()),
)


def _seed_docs() -> dict[str, Any]:
    run = make_result("20261122T100000-bbbbbb", n=300, telemetry_n=2)
    run.spec = {**run.spec, **RunSpec(target="http://127.0.0.1:8080/x", rate_rps=100.0,
                                      connections=4).to_dict()}
    fortio = json.loads(export_run(run, "fortio"))
    return {
        "fortio": fortio,
        "nighthawk-fortio": fortio,
        "fortio-map": {"http://127.0.0.1:8080/x": fortio},
        "meshery": {"name": "m", "runner_results": fortio, "kubernetes": {"nodes": 1},
                    "detected-meshes": {"istio": ["1.20"]}},
        "nighthawk": {"options": {"requests_per_second": 10, "connections": 2, "duration": "1s",
                                  "uri": "http://127.0.0.1/"},
                      "results": [{"name": "global", "execution_start": "2022-03-19T15:34:23Z",
                                   "execution_duration": "1s", "statistics": [
                                       {"id": "benchmark_http_client.request_to_response",
                                        "count": "2", "percentiles": []}],
                                   "counters": [{"name": "benchmark.http_2xx", "value": "2"}]}]},
        "smp": yaml.safe_load(export_run(run, "smp")),
        "meshlab": json.loads(export_run(run, "meshlab")),
        "k6": json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "k6"
                          / "k6_handle_summary_http.json").read_text()),
    }


SEEDS = _seed_docs()
PROFILE_SEED: dict[str, Any] = {
    "name": "hostile", "target": "http://127.0.0.1:8080/", "runner": "native",
    "loads": {"rate_rps": [100, 200], "connections": 2, "duration_s": 1, "warmup_s": 0},
    "request": {"method": "GET", "headers": {"X-A": "b"}, "cookies": {"c": "d"}},
    "labels": {"team": "a"}, "policies": [{"name": "p", "rate_limit": {"requests_per_s": 5}}],
}


def _mutate(data: st.DataObject, doc: Any, value: Any) -> Any:
    """`doc` with one node, chosen by hypothesis along a random path, replaced by `value` (or
    `value` added under a new key)."""
    doc = json.loads(json.dumps(doc))
    node, parent, key = doc, None, None
    for _ in range(data.draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            k = data.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            k = data.draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, key, node = node, k, node[k]
    if parent is None:
        return value
    if isinstance(parent, dict) and data.draw(st.booleans()):
        parent[data.draw(st.text(max_size=8))] = value
    else:
        parent[key] = value
    return doc


def _dumps(doc: Any) -> bytes:
    text = json.dumps(doc, allow_nan=True)
    while (i := text.find(f'"{DEEP}')) != -1:
        end = text.index('"', i + 1)
        kind, depth = text[i + 1 + len(DEEP)], int(text[i + 2 + len(DEEP):end])
        opener, closer = ('{"k": ', "}") if kind == "d" else ("[", "]")
        text = text[:i] + opener * depth + "1" + closer * depth + text[end + 1:]
    return text.encode("utf-8", "surrogatepass")


def _load(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        return [[[]]]


@SETTINGS
@given(st.data(), st.sampled_from(sorted(SEEDS)), hostile)
def test_every_importer_raises_only_meshlab_errors(data: st.DataObject, fmt: str,
                                                   value: Any) -> None:
    raw = _dumps(_mutate(data, SEEDS[fmt], value))
    for forced in (fmt, None):
        try:
            results = import_results(raw, fmt=forced)
        except MeshlabError:
            continue
        for r in results:
            assert math.isfinite(r.requested_rate_rps) and math.isfinite(r.duration_s)


@SETTINGS
@given(st.sampled_from([b"[", b"{\"a\": ", b"- ", b"a:\n  ", b"&x [", b"!!python/object "]),
       st.integers(1, 40_000), st.sampled_from([b"", b"\xff", b"\x00", b"]"]))
def test_raw_bytes_of_any_depth(prefix: bytes, n: int, tail: bytes) -> None:
    with contextlib.suppress(MeshlabError):
        import_results(prefix * n + tail)


def _accepted_is_clean(p: Profile) -> None:
    def walk(v: Any) -> None:
        if isinstance(v, float):
            assert math.isfinite(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(p.model_dump(mode="python"))
    assert not any(c.isspace() or ord(c) < 0x20 for c in p.target)
    for name, value in [*p.request.headers.items(), *p.request.cookies.items()]:
        assert "\r" not in name + value and "\n" not in name + value and "\x00" not in value


@SETTINGS
@given(st.data(), hostile)
def test_profile_parsers_raise_only_meshlab_errors(data: st.DataObject, value: Any) -> None:
    raw = _dumps(_mutate(data, PROFILE_SEED, value))
    doc = _load(raw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_bytes(raw)
        for parse in (lambda: Profile.from_dict(doc), lambda: Profile.load(path),
                      lambda: load_profile_file(str(path))):
            try:
                profile = parse()
            except MeshlabError:
                continue
            _accepted_is_clean(profile)


NUMBERS = ["loads.rate_rps", "loads.rate_rps[1]", "loads.duration_s", "loads.warmup_s",
           "request.timeout_s", "policies[0].rate_limit.requests_per_s", "repeats"]


@SETTINGS
@given(st.sampled_from(NUMBERS), st.sampled_from([math.nan, math.inf, -math.inf]),
       st.sampled_from(["float", "yaml", "text"]))
def test_no_non_finite_number_anywhere_in_a_profile(path: str, value: float, how: str) -> None:
    doc: dict[str, Any] = json.loads(json.dumps(PROFILE_SEED))
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    spelled = {"float": value, "yaml": {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan"),
               "text": str(value)}[how]
    node[int(last) if last.isdigit() else last] = "X" if how == "yaml" else spelled
    with pytest.raises(MeshlabError) as ei:
        if how == "yaml":   # `.nan` / `.inf` as a YAML author writes them
            Profile.from_yaml(yaml.safe_dump(doc).replace(" X\n", f" {spelled}\n"))
        else:
            Profile.from_dict(doc)
    assert path.split("[")[0].split(".")[0] in str(ei.value)


@SETTINGS
@given(long_text, st.sampled_from(["name", "description", "target", "labels", "headers"]))
def test_long_strings_in_a_profile(text: str, where: str) -> None:
    doc: dict[str, Any] = json.loads(json.dumps(PROFILE_SEED))
    if where == "labels":
        doc["labels"] = {"x": text}
    elif where == "headers":
        doc["request"]["headers"] = {"X-Long": text}
    else:
        doc[where] = text
    with contextlib.suppress(MeshlabError):
        _accepted_is_clean(Profile.from_yaml(yaml.safe_dump(doc)))


@pytest.mark.parametrize("field", ["duration_s", "requested_rate_rps", "achieved_rate_rps"])
@pytest.mark.parametrize("spelled", ["NaN", "inf", "-Infinity"])
def test_meshlab_document_with_a_non_finite_number_is_refused(field: str, spelled: str) -> None:
    doc = dict(SEEDS["meshlab"], **{field: spelled})     # found by the importer test above
    with pytest.raises(MeshlabError, match=field):
        import_results(json.dumps(doc).encode(), fmt="meshlab")
