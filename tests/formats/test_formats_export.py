"""Exports: fortio JSON (field names and JSON types as fortio writes them, round-tripped through
the importer), SMP PerformanceTestResult, CSV and Parquet tables."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _formats_reference import ALL_RESULT_FILES, FORTIO_FILES, MESHERY_RESULTS, SMP_PROTO

from meshlab.errors import ProfileError
from meshlab.formats import FORMATS, export_run, export_runs, import_results
from meshlab.formats._doc import go_duration_s, go_duration_text
from meshlab.formats.fortio import fortio_json
from meshlab.profile import RunSpec
from meshlab.results import Histogram, RunResult, RunStatus
from meshlab.run_schema import BUCKET_COLUMNS
from meshlab.run_schema import RUN_COLUMN_NAMES as RUN_COLUMNS

FORTIO_HTTP = next(p for p in FORTIO_FILES if "rest-run-http" in p.name)
FORTIO_ITER8 = next(p for p in FORTIO_FILES if "iter8" in p.name)


def _run(*, seed: int = 7, n: int = 5000) -> RunResult:
    rng = np.random.default_rng(seed)
    lat = Histogram()
    lat.record_ns(rng.lognormal(mean=np.log(400_000), sigma=0.6, size=n).astype(np.int64))
    svc = Histogram()
    svc.record_ns(rng.lognormal(mean=np.log(300_000), sigma=0.4, size=n).astype(np.int64))
    start = datetime(2026, 11, 22, 2, 41, 31, 123456, tzinfo=UTC)
    spec = RunSpec(target="http://127.0.0.1:8080/echo", rate_rps=1000.0, connections=16,
                   duration_s=5.0, mesh="envoy", profile="overhead", runner="native",
                   headers=(("Content-Type", "application/json"),),
                   labels=(("team", "perf"),))
    return RunResult(
        run_id=f"20261122T024131-abc{seed:03d}", spec=spec.to_dict(), status=RunStatus.COMPLETED,
        started_at=start, ended_at=start + timedelta(seconds=5), duration_s=5.0,
        requested_rate_rps=1000.0, achieved_rate_rps=n / 5.0, requests=n, errors=10,
        status_codes={200: n - 10, 503: 7}, error_kinds={"reset": 3}, latency=lat,
        service_time=svc, runner="native", bytes_received=n * 120,
        context={"mode": "local"},
    )


def _json_kind(v: object) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            type(None): "null"}[type(v)]


def test_fortio_export_uses_fortio_field_names_and_types() -> None:
    out = json.loads(export_run(_run(), "fortio"))
    golden = {**json.loads(FORTIO_HTTP.read_text()),
              **next(iter(json.loads(FORTIO_ITER8.read_text()).values()))}
    # "Meshlab" is meshlab's own record (run id, dimensions) for a lossless re-import; fortio's
    # JSON decoder ignores fields it does not know
    unknown = set(out) - set(golden) - {"Meshlab"}
    assert not unknown, unknown
    for key, value in out.items():
        if key == "Meshlab":
            continue
        g = golden[key]
        if value is None or g is None:
            continue
        kinds = {_json_kind(value), _json_kind(g)}
        assert len(kinds) == 1 or (kinds == {"int", "float"} and key not in (
            "ActualDuration", "NumThreads", "HTTPReqTimeOut", "SocketCount", "Exactly")), key
    assert out["RequestedQPS"] == "1000" and out["RequestedDuration"] == "5s"
    assert isinstance(out["ActualDuration"], int) and out["ActualDuration"] == 5_000_000_000
    assert out["StartTime"] == "2026-11-22T02:41:31.123456Z"
    assert out["RetCodes"] == {"200": 4990, "503": 7, "-1": 3}
    assert out["ContentType"] == "application/json"
    dh = out["DurationHistogram"]
    assert set(dh) == {"Count", "Min", "Max", "Sum", "Avg", "StdDev", "Data", "Percentiles"}
    assert {tuple(sorted(b)) for b in dh["Data"]} == {("Count", "End", "Percent", "Start")}
    assert sum(b["Count"] for b in dh["Data"]) == dh["Count"] == 5000
    assert dh["Data"][-1]["Percent"] == 100.0
    assert [p["Percentile"] for p in dh["Percentiles"]] == [50, 75, 90, 99, 99.9]


def test_fortio_round_trip_keeps_counts_and_percentiles() -> None:
    run = _run()
    doc = export_run(run, "fortio")
    percentiles = {p["Percentile"]: p["Value"]
                   for p in json.loads(doc)["DurationHistogram"]["Percentiles"]}
    for p, v in percentiles.items():                       # meshlab's own numbers, in seconds
        assert v == pytest.approx(run.latency.percentile_us(p) / 1e6, rel=1e-12)
    (back,) = import_results(doc.encode())
    assert back.context["format"] == "fortio"
    assert (back.requests, back.errors) == (run.requests, run.errors)
    assert back.status_codes == run.status_codes
    # fortio has one code (-1) for every transport error; the Meshlab record keeps the kinds
    assert back.error_kinds == run.error_kinds == {"reset": 3}
    assert back.latency == run.latency                    # the very same buckets
    assert back.latency.mean_us == pytest.approx(run.latency.mean_us, rel=1e-9)
    assert back.latency.stdev_us == pytest.approx(run.latency.stdev_us, rel=1e-6)
    for p in (50, 90, 99, 99.9):
        assert back.latency.percentile_us(p) == pytest.approx(run.latency.percentile_us(p))
        assert back.context["reported_percentiles_us"].get(f"{p:g}", 0) in (
            0, pytest.approx(run.latency.percentile_us(p)))
    assert back.spec["target"] == run.spec["target"]
    assert back.spec["rate_rps"] == 1000.0 and back.spec["connections"] == 16
    assert back.started_at == run.started_at
    service = json.loads(json.dumps(fortio_json(run, kind="service_time")))
    assert service["DurationHistogram"]["Count"] == run.service_time.total


@pytest.mark.parametrize("path", ALL_RESULT_FILES, ids=lambda p: p.name)
def test_reimport_of_every_golden_export_is_stable(path: Path) -> None:
    for run in import_results(path):
        (back,) = import_results(export_run(run, "fortio").encode())
        assert back.latency == run.latency
        assert back.latency.total == run.latency.total
        assert back.requests == run.requests and back.errors == run.errors
        assert back.status_codes == run.status_codes


def test_fortio_export_of_exact_count_and_max_rate() -> None:
    (run,) = import_results(FORTIO_ITER8)
    out = json.loads(export_run(run, "fortio"))
    assert out["RequestedDuration"] == "exactly 100 calls" and out["Exactly"] == 100
    (mrun, *_) = import_results(MESHERY_RESULTS)
    assert json.loads(export_run(mrun, "fortio"))["RequestedQPS"] == "max"


def _proto_fields(message: str) -> set[str]:
    proto = SMP_PROTO.read_text()
    body = proto[proto.index(f"message {message} {{"):]
    depth, end = 0, 0
    for i, ch in enumerate(body):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "}" and depth == 0:
            end = i
            break
    body = body[:end]
    # drop nested messages: keep top-level fields only
    top = re.sub(r"\n  message \w+ \{.*?\n  \}", "", body, flags=re.S)
    return set(re.findall(r"^\s+(?:repeated\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+;",
                          top, re.M))


def test_smp_export_matches_the_proto_and_reimports() -> None:
    run = _run()
    text = export_run(run, "smp")
    doc = yaml.safe_load(text)
    assert set(doc) == _proto_fields("PerformanceTestResult")
    assert set(doc["latencies_ms"]) == {"min", "average", "p50", "p90", "p99", "max"}
    assert all(isinstance(v, str) for v in doc["labels"].values())
    assert doc["latencies_ms"]["p99"] == pytest.approx(run.latency.percentile_us(99) / 1e3)
    (back,) = import_results(text.encode())
    assert back.context["format"] == "smp"
    assert back.achieved_rate_rps == run.achieved_rate_rps
    assert back.context["reported_percentiles_us"]["50"] == pytest.approx(
        run.latency.percentile_us(50))
    assert back.requests == run.requests                  # rate x duration, exact here


def test_csv_exports() -> None:
    run = _run()
    rows = list(csv.DictReader(io.StringIO(export_run(run, "csv"))))
    assert len(rows) == 1 and tuple(rows[0]) == RUN_COLUMNS
    assert rows[0]["mesh"] == "envoy" and rows[0]["mode"] == "local"
    assert int(rows[0]["requests"]) == 5000
    assert float(rows[0]["p99_us"]) == pytest.approx(run.latency.percentile_us(99))
    buckets = list(csv.DictReader(io.StringIO(export_run(run, "csv-buckets"))))
    assert tuple(buckets[0]) == BUCKET_COLUMNS
    assert sum(int(b["count"]) for b in buckets if b["kind"] == "latency") == 5000


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_runs_tables(tmp_path: Path, fmt: str) -> None:
    runs = [_run(seed=s) for s in range(3)] + import_results(MESHERY_RESULTS)
    runs_path, buckets_path = export_runs(runs, fmt, tmp_path / f"runs.{fmt}")
    assert buckets_path.name == f"runs_buckets.{fmt}"
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    table, buckets = read(runs_path), read(buckets_path)
    assert list(table.columns) == list(RUN_COLUMNS)
    assert len(table) == 6 and table["requests"].sum() == sum(r.requests for r in runs)
    assert list(buckets.columns) == list(BUCKET_COLUMNS)
    per_run = buckets[buckets["kind"] == "latency"].groupby("run_id")["count"].sum()
    assert per_run.to_dict() == {r.run_id: r.latency.total for r in runs}
    assert (buckets["upper_us"] > buckets["lower_us"]).all()


def test_unknown_export_format() -> None:
    with pytest.raises(ProfileError, match="fmt: cannot export one run as 'xml'; use fortio"):
        export_run(_run(), "xml")
    with pytest.raises(ProfileError, match="csv or parquet, not 'fortio'; use export_run"):
        export_runs([_run()], "fortio", "x.json")
    with pytest.raises(ProfileError, match=r"fmt: cannot import 'xml'; use one of .*fmt=None"):
        import_results(b"{}", fmt="xml")
    with pytest.raises(ProfileError, match="kind: must be"):
        fortio_json(_run(), kind="total")
    assert {n for n, f in FORMATS.items() if f.can_export} == {
        "fortio", "smp", "meshlab", "csv", "csv-buckets", "parquet",
        "parquet-dataset"}


def test_meshlab_json_round_trip() -> None:
    run = _run()
    (back,) = import_results(export_run(run, "meshlab").encode())
    assert back.latency == run.latency and back.service_time == run.service_time
    assert back.run_id == run.run_id


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (999, "999ns"), (1_500, "1.5µs"), (100_000_000, "100ms"),
    (5_000_000_000, "5s"), (60_000_000_000, "1m0s"), (3_723_500_000_000, "1h2m3.5s"),
])
def test_go_duration_text(ns: int, text: str) -> None:
    assert go_duration_text(ns) == text
    assert go_duration_s(text, "d") == pytest.approx(ns / 1e9)
