"""Bad input: truncated, empty and garbage documents raise OutputParseError, and (hypothesis)
the importers raise nothing else on arbitrary bytes or arbitrarily mangled golden documents."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _formats_reference import ALL_RESULT_FILES, SMP_RESULT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlab.errors import OutputParseError
from meshlab.formats import detect_format, import_results

JSON_FILES = [p for p in ALL_RESULT_FILES if p.suffix == ".json"]
GOLDEN_DOCS = [json.loads(p.read_text()) for p in JSON_FILES]


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_json_raises(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    cut = data[: int(len(data) * fraction)] if fraction else data[:1]
    with pytest.raises(OutputParseError) as ei:
        import_results(cut)
    assert ("invalid JSON" in str(ei.value) or "empty" in str(ei.value)
            or "not a recognised" in str(ei.value)), str(ei.value)


def test_truncated_smp_yaml_raises() -> None:
    text = SMP_RESULT.read_text()
    with pytest.raises(OutputParseError):
        import_results(text[: text.index("client:")].encode())        # no latencies at all
    with pytest.raises(OutputParseError):
        import_results(text[: text.index("2020-03-17T17")].encode())  # end_time cut


@pytest.mark.parametrize("data", [
    b"", b"   \n\t", b"\x00\x01\x02binary\xff\xfe", b"\xff\xfe\xfd", b"hello world",
    b"null", b"42", b"[]", b"{}", b"[1, 2]", b'{"a": 1}', b"- just\n- a list\n",
    b'{"DurationHistogram": {}, "RunType": "HTTP"}',          # no StartTime
    b'{"RunType": "HTTP", "StartTime": "yesterday", "DurationHistogram": {}}',
    b'{"RunType": "HTTP", "StartTime": "2022-03-19T15:34:23Z", "DurationHistogram": '
    b'{"Count": 2, "Data": [{"Start": 0.2, "End": 0.1, "Percent": 100, "Count": 2}]}}',
    b'{"RunType": "HTTP", "StartTime": "2022-03-19T15:34:23Z", "DurationHistogram": '
    b'{"Count": "many"}}',
    b'{"RunType": "HTTP", "StartTime": "2022-03-19T15:34:23Z", "DurationHistogram": {},'
    b' "RetCodes": {"OK": 3}}',
    b'{"results": [{"name": "global", "statistics": [], "counters": []}]}',
    b'{"name": "p", "endpoints": ["http://a/"], "qps": 1}',   # a profile, not a result
    b"[" * 100_000,
    b"start_time: 2020-03-17T14:53:05Z\nlatencies_ms: oops\n",
])
def test_garbage_raises_output_parse_error(data: bytes) -> None:
    with pytest.raises(OutputParseError) as ei:
        import_results(data)
    assert str(ei.value)


def test_profile_document_gets_a_hint() -> None:
    with pytest.raises(OutputParseError, match="load_profile_any"):
        import_results(b'{"name": "p", "endpoints": ["http://a/"], "loadGenerators": ["x"]}')


def test_missing_file_raises_output_parse_error(tmp_path: Path) -> None:
    with pytest.raises(OutputParseError, match="cannot read"):
        import_results(tmp_path / "none.json")


def test_error_names_the_field_and_file(tmp_path: Path) -> None:
    doc = copy.deepcopy(GOLDEN_DOCS[0])
    doc["DurationHistogram"]["Data"][0]["Count"] = -4
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(OutputParseError) as ei:
        import_results(path)
    assert str(path) in str(ei.value) and "DurationHistogram.Data[0].Count" in str(ei.value)
    assert ei.value.excerpt == "-4"


def _check(data: bytes) -> None:
    try:
        runs = import_results(data)
    except OutputParseError:
        return
    for r in runs:                                  # whatever imports is a coherent run
        assert r.latency.total == int(r.latency.counts.sum())
        assert (r.latency.counts >= 0).all()
        json.dumps(r.to_dict())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["200", "-1", "max", "30s", "exactly 5 calls", "1.5",
                                     "2022-03-19T15:34:23Z", "global", "0.001s", "SERVING"]))
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _mangle(doc: Any, data: st.DataObject) -> Any:
    """Replace one randomly chosen node of a golden document with arbitrary JSON-ish data."""
    doc = copy.deepcopy(doc)
    node, depth = doc, 0
    while isinstance(node, dict | list) and node and depth < 6:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or not child or data.draw(st.booleans()):
            if data.draw(st.integers(0, 4)) == 0 and isinstance(node, dict):
                del node[key]
            else:
                node[key] = data.draw(JSONISH)
            return doc
        node, depth = child, depth + 1
    return data.draw(JSONISH)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_golden_documents(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(GOLDEN_DOCS))
    mangled = _mangle(doc, data)
    _check(json.dumps(mangled, allow_nan=True).encode())


@settings(max_examples=150, deadline=None)
@given(JSONISH)
def test_detect_format_only_raises_output_parse_error(doc: Any) -> None:
    with contextlib.suppress(OutputParseError):
        detect_format(doc)
