"""Import of k6 summaries and h2load text output: real outputs in tests/fixtures/{k6,h2load}/
(see SOURCE.md there), percentiles-only and summary-only runs marked as such, and malformed
files rejected naming the field."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.errors import OutputParseError
from meshlab.formats import detect_format, import_results
from meshlab.profile import RunSpec
from meshlab.run_schema import DEFAULT_PS, percentile_column
from meshlab.run_schema import run_row as run_row_of
from meshlab.runners._tool import split_output
from meshlab.runners.k6 import K6Runner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
K6 = FIXTURES / "k6"
H2LOAD = FIXTURES / "h2load"
GOLDEN = Path(__file__).resolve().parents[1] / "runners" / "golden"


def _values(doc: dict[str, Any], name: str) -> dict[str, Any]:
    m = doc["metrics"][name]
    return dict(m["values"]) if "values" in m else dict(m)


@pytest.mark.parametrize("name", ["k6_summary_export_http.json", "k6_handle_summary_http.json"])
def test_k6_http_summary(name: str) -> None:
    doc = json.loads((K6 / name).read_text())
    assert detect_format(doc) == "k6"
    [run] = import_results(K6 / name)
    reqs, failed = _values(doc, "http_reqs"), _values(doc, "http_req_failed")
    trend = _values(doc, "http_req_duration")
    assert run.runner == "k6" and run.dimensions.protocol == "http1"
    assert run.requests == reqs["count"]
    assert run.errors == failed["passes"]            # k6's Rate: true (a pass) = failed
    assert 0.1 < run.errors / run.requests < 0.3      # the echo answered 503 to 20 %
    assert run.status_codes == {}                     # k6 keeps no per-status count
    # percentiles only: marked exactly like the k6 runner, and the reported values are kept
    assert run.context["percentiles_only"] is True and run.raw is not None
    assert run.raw["percentiles_only"] is True
    assert run.warnings[0].startswith("k6 reports percentiles only (min, p50, p90, p95, max)")
    assert run.latency.total == run.requests
    assert run.headline_percentile_us(50) == pytest.approx(trend["med"] * 1e3)
    assert run.headline_percentile_us(90) == pytest.approx(trend["p(90)"] * 1e3)
    assert trend["min"] * 1e3 <= run.latency.percentile_us(50) <= trend["max"] * 1e3 * 1.01
    assert run.latency.percentile_us(90) <= run.latency.percentile_us(99)
    rate = reqs["count"] / reqs["rate"]
    assert run.duration_s == pytest.approx(
        doc["state"]["testRunDurationMs"] / 1e3 if "state" in doc else rate)


@pytest.mark.parametrize("name", ["k6_summary_export_grpc.json", "k6_handle_summary_grpc.json"])
def test_k6_grpc_summary(name: str) -> None:
    doc = json.loads((K6 / name).read_text())
    [run] = import_results(K6 / name)
    assert run.dimensions.protocol == "grpc"
    assert run.requests == _values(doc, "iterations")["count"]   # one call per iteration
    assert run.dimensions.connections == 4                       # vus_max
    assert run.status_codes == {} and run.errors == 0
    assert any("does not count gRPC status codes" in w for w in run.warnings)
    assert run.context["percentiles_only"] is True
    assert run.headline_percentile_us(50) == pytest.approx(
        _values(doc, "grpc_req_duration")["med"] * 1e3)


@pytest.mark.parametrize("golden", ["k6_mix.txt", "k6_grpc_mix.txt"])
def test_meshlab_k6_summary_imports_like_the_runner_parses_it(golden: str,
                                                              tmp_path: Path) -> None:
    """The summary meshlab's own k6 script writes (status-tagged counters) imports with the
    same counts the runner reads from it."""
    text = (GOLDEN / golden).read_text()
    _, files = split_output(text)
    path = tmp_path / "summary.json"
    path.write_text(files["summary.json"])
    [run] = import_results(path)
    protocol = "grpc" if "grpc" in golden else "http1"
    parsed = K6Runner().parse_output(text, spec=RunSpec(target="http://127.0.0.1:1/",
                                                        protocol=protocol))
    assert (run.requests, run.errors) == (parsed.requests, parsed.errors)
    assert run.status_codes == parsed.status_codes
    assert run.dimensions.protocol == protocol
    assert run.status_codes                          # tagged statuses were read
    assert run.context["percentiles_only"] is parsed.context["percentiles_only"] is True


@pytest.mark.parametrize("golden", ["k6_mix.txt", "k6_grpc_mix.txt", "k6_open.txt",
                                    "k6_refused.txt"])
def test_a_k6_summary_stores_the_same_histogram_run_or_imported(golden: str,
                                                                 tmp_path: Path) -> None:
    """One reading of the summary: the runner's parse and `meshlab import` of the same file
    give the same histogram, the same stored percentiles and the same error kinds, and the
    histogram keeps k6's own numbers (its percentile points, mean and response count)."""
    text = (GOLDEN / golden).read_text()
    _, files = split_output(text)
    path = tmp_path / "summary.json"
    path.write_text(files["summary.json"])
    [imported] = import_results(path)
    protocol = "grpc" if "grpc" in golden else "http1"
    parsed = K6Runner().parse_output(text, spec=RunSpec(target="http://127.0.0.1:1/",
                                                        protocol=protocol))
    assert parsed.latency.to_dict() == imported.latency.to_dict()
    ran, stored = run_row_of(parsed), run_row_of(imported)
    for p in DEFAULT_PS:
        col = percentile_column(p)
        assert ran[col] == stored[col], col
    assert parsed.error_kinds == imported.error_kinds
    # the histogram holds the responses: a refused request (k6 times it as 0 ms) is not one
    responses = sum(parsed.status_codes.values()) + sum(
        n for k, n in parsed.error_kinds.items() if k.startswith("grpc_"))
    assert parsed.latency.total == responses
    if responses:
        trend = json.loads(files["summary.json"])["metrics"][
            "grpc_req_duration" if protocol == "grpc" else "http_req_duration"]["values"]
        for p in DEFAULT_PS:
            assert ran[percentile_column(p)] == pytest.approx(trend[f"p({p:g})"] * 1e3)
        assert parsed.latency.mean_us == pytest.approx(trend["avg"] * 1e3)
        assert (parsed.latency.min_us, parsed.latency.max_us) == pytest.approx(
            (trend["min"] * 1e3, trend["max"] * 1e3))


@pytest.mark.parametrize(("name", "protocol", "requests", "errors", "codes"), [
    ("h2load_h2c.txt", "h2c", 400, 87, {200: 313, 500: 87}),
    ("h2load_h1.txt", "http1", 400, 84, {200: 316, 500: 84}),
    ("h2load_refused.txt", "h2c", 10, 10, {}),
    ("h2load_duration.txt", "h2c", 103512, 0, {200: 103512}),
])
def test_h2load_text(name: str, protocol: str, requests: int, errors: int,
                     codes: dict[int, int]) -> None:
    [run] = import_results(H2LOAD / name)
    assert run.runner == "h2load" and run.dimensions.protocol == protocol
    assert (run.requests, run.errors, run.status_codes) == (requests, errors, codes)
    # summary only: no invented histogram; the tool's own numbers are kept and labelled
    assert run.latency.total == 0 and run.context["summary_only"] is True
    assert run.context["status_codes_grouped_by_class"] is True
    assert run.warnings[0].startswith("h2load's text output is a summary")
    if requests - errors:
        rep = run.context["reported_percentiles_us"]
        assert rep["0"] <= run.context["reported_mean_us"] <= rep["100"]
    if name == "h2load_refused.txt":
        assert run.error_kinds == {"other": 10}


def test_a_file_is_dated_by_its_modification_time(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_bytes((H2LOAD / "h2load_h2c.txt").read_bytes())
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    os.utime(path, (when.timestamp(), when.timestamp()))
    [run] = import_results(path)
    assert run.ended_at == when and run.run_id.startswith("20261130T1159")
    [again] = import_results(path)
    assert again.run_id == run.run_id                  # the same file, the same run
    [undated] = import_results(path.read_bytes())
    assert undated.ended_at.year == 1970 and any("epoch" in w for w in undated.warnings)


def _k6(mutate: Any) -> bytes:
    doc = json.loads((K6 / "k6_summary_export_http.json").read_text())
    mutate(doc["metrics"])
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda m: m.pop("http_reqs"), "metrics.http_reqs.count"),
    (lambda m: m.pop("http_req_failed"), "metrics.http_req_failed"),
    (lambda m: m.pop("http_req_duration"), "metrics.http_req_duration"),
    (lambda m: m["http_req_duration"].update({"p(90)": "fast"}), "metrics.http_req_duration.p(90)"),
    (lambda m: m["http_reqs"].update({"count": -3}), "metrics.http_reqs.count"),
    (lambda m: m["http_req_failed"].update({"passes": 10**6}), "metrics.http_req_failed.passes"),
    (lambda m: m.update({"http_req_duration": [1, 2]}), "metrics.http_req_duration"),
])
def test_malformed_k6_summary_names_the_field(mutate: Any, field: str) -> None:
    with pytest.raises(OutputParseError, match=f"^{field.replace('(', '[(]').replace(')', '[)]')}"):
        import_results(_k6(mutate), fmt="k6")


@pytest.mark.parametrize(("cut", "line"), [
    ("status codes:", "status codes:"),
    ("time for request:", "time for request:"),
    ("requests:", "requests:"),
])
def test_truncated_h2load_output_names_the_missing_line(cut: str, line: str) -> None:
    text = (H2LOAD / "h2load_h2c.txt").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith(cut)]
    with pytest.raises(OutputParseError, match=f"`{line}`"):
        import_results("\n".join(lines).encode(), fmt="h2load")


def test_h2load_counts_that_do_not_add_up_are_refused() -> None:
    text = (H2LOAD / "h2load_h2c.txt").read_text().replace("313 2xx", "300 2xx")
    with pytest.raises(OutputParseError, match="`status codes:` add up to 387"):
        import_results(text.encode())


def test_not_h2load_text_is_not_taken_for_it() -> None:
    with pytest.raises(OutputParseError, match="h2load output has no `finished in`"):
        import_results(b"hello: world\n", fmt="h2load")


def test_cli_imports_both_and_names_the_field_of_a_bad_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meshlab.cli import main
    from meshlab.store import Store

    db = tmp_path / "m.duckdb"
    for path in (K6 / "k6_summary_export_http.json", H2LOAD / "h2load_h2c.txt"):
        assert main(["import", str(path), "--store", str(db)]) == 0
    runs = Store(db, read_only=True).runs()
    assert sorted(zip(runs["runner"], runs["protocol"], runs["format"], strict=True)) == [
        ("h2load", "h2c", "h2load"), ("k6", "http1", "k6")]
    bad = tmp_path / "summary.json"
    bad.write_bytes(_k6(lambda m: m.pop("http_reqs")))
    capsys.readouterr()
    assert main(["import", str(bad), "--store", str(db)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "metrics.http_reqs.count" in err


@settings(max_examples=60, deadline=10_000, derandomize=True)
@given(st.data())
def test_mangled_h2load_output_raises_only_output_parse_error(data: st.DataObject) -> None:
    lines = (H2LOAD / "h2load_h2c.txt").read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["drop", "digits", "text"]))
        if how == "drop":
            lines.pop(i)
        elif how == "digits":
            lines[i] = "".join(data.draw(st.sampled_from("9876543210.e-x ")) if c.isdigit()
                               else c for c in lines[i])
        else:
            lines[i] = data.draw(st.text(max_size=40))
        if not lines:
            break
    try:
        runs = import_results("\n".join(lines).encode(), fmt="h2load")
    except OutputParseError:
        return
    for r in runs:
        assert r.requests >= r.errors >= 0 and r.duration_s >= 0


def test_a_number_that_is_not_one_is_named() -> None:
    text = (H2LOAD / "h2load_h2c.txt").read_text().replace("117us", "1.1.7us")
    with pytest.raises(OutputParseError, match="`time for request:` holds '1.1.7'"):
        import_results(text.encode())
