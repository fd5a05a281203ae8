"""The histogram's accuracy and merge algebra, and RunResult's round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlab.results import (
    BUCKET_COUNT,
    Histogram,
    HostSnapshot,
    RunResult,
    RunStatus,
    TelemetrySample,
    TimeSeriesPoint,
    bucket_bounds_ns,
    bucket_index_ns,
)


def test_buckets_cover_1us_to_100s_within_one_percent() -> None:
    values = np.unique(np.geomspace(1_000, 100_000_000_000, 200_000).astype(np.int64))
    idx = bucket_index_ns(values)
    lo, hi = bucket_bounds_ns(idx)
    assert (lo <= values).all() and (values < hi).all()
    mid = (lo + hi - 1) / 2
    assert np.max(np.abs(mid - values) / values) < 0.01
    assert idx.max() < BUCKET_COUNT
    assert (np.diff(idx) >= 0).all()          # monotonic: larger values never go lower


def test_percentiles_match_numpy_within_one_percent() -> None:
    rng = np.random.default_rng(3)
    data = rng.lognormal(mean=np.log(500_000), sigma=1.0, size=200_000).astype(np.int64)
    h = Histogram()
    h.record_ns(data)
    for p in (1, 50, 90, 99, 99.9):
        exact = np.percentile(data, p, method="inverted_cdf") / 1000
        assert h.percentile_us(p) == pytest.approx(exact, rel=0.01)
    assert h.min_us == data.min() / 1000 and h.max_us == data.max() / 1000
    assert h.mean_us == pytest.approx(data.mean() / 1000, rel=1e-9)
    assert h.stdev_us == pytest.approx(data.std() / 1000, rel=1e-6)


def test_percentiles_are_monotonic() -> None:
    rng = np.random.default_rng(5)
    h = Histogram()
    h.record_ns(rng.exponential(2e6, 50_000).astype(np.int64))
    ps = [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100]
    values = [h.percentile_us(p) for p in ps]
    assert values == sorted(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=0, max_size=300),
       st.lists(st.integers(0, 10**12), min_size=0, max_size=300))
def test_merge_equals_histogram_of_concatenated_data(a: list[int], b: list[int]) -> None:
    ha, hb, hab = Histogram(), Histogram(), Histogram()
    ha.record_ns(a)
    hb.record_ns(b)
    hab.record_ns(a + b)
    merged = Histogram.merged([ha, hb])
    assert merged == hab
    assert merged.total == len(a) + len(b)
    assert merged.sum_ns == pytest.approx(hab.sum_ns)
    if a + b:
        for p in (50, 99, 100):
            assert merged.percentile_us(p) == hab.percentile_us(p)


def test_empty_histogram_reports_nan_not_an_error() -> None:
    h = Histogram()
    assert math.isnan(h.percentile_us(99)) and math.isnan(h.mean_us)
    with pytest.raises(ValueError, match="0..100"):
        h.percentile_us(101)


def test_values_beyond_100s_are_clamped_and_counted() -> None:
    h = Histogram()
    h.record_ns([500 * 10**9, 1_000])
    assert h.overflow == 1 and h.total == 2
    assert h.max_us == 500 * 10**6


def test_bulk_recording_is_well_under_a_microsecond_per_value() -> None:
    # Not a speed assertion on absolute time: a ratio against a pure-Python per-value loop.
    import time

    data = np.random.default_rng(1).integers(1_000, 10**9, 200_000)
    h = Histogram()
    t0 = time.perf_counter()
    h.record_ns(data)
    bulk = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = 0
    for v in data[:20_000].tolist():
        acc += v.bit_length()
    per_value_loop = (time.perf_counter() - t0) * 10
    assert bulk < per_value_loop          # cheaper than even touching each value in Python


def _result() -> RunResult:
    lat, svc = Histogram(), Histogram()
    lat.record_us([100, 200, 300, 5_000])
    svc.record_us([90, 180, 250, 400])
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    return RunResult(
        run_id="r1", spec={"target": "http://127.0.0.1:1/", "connections": 4},
        status=RunStatus.COMPLETED, started_at=now, ended_at=now, duration_s=1.0,
        requested_rate_rps=4.0, achieved_rate_rps=4.0, requests=4, errors=1,
        status_codes={200: 3, 503: 1}, error_kinds={}, latency=lat, service_time=svc,
        timeseries=[TimeSeriesPoint(0, 4, 1, 150.0, 5000.0)],
        host=HostSnapshot("h", "cpu", 2, "6.1", "3.11", "0.1.0", {"wrk": "4.2"}),
        telemetry=[TelemetrySample(0.5, "envoy:a", "cpu_percent", 3.5)],
        context={"data_plane": "envoy"}, warnings=["w"],
    )


def test_run_result_round_trips_through_its_dict() -> None:
    r = _result()
    back = RunResult.from_dict(r.to_dict())
    assert back.to_dict() == r.to_dict()
    assert back.latency == r.latency


def test_summary_reports_corrected_and_uncorrected_tails() -> None:
    s = _result().summary()
    for key in ("run_id", "status", "requested_rate_rps", "achieved_rate_rps", "requests",
                "errors", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
                "uncorrected_p99_us"):
        assert key in s
    assert s["max_us"] == 5000.0
    assert s["uncorrected_p99_us"] < s["p99_us"]
    assert s["error_rate"] == 0.25


def test_degraded_status_and_unsent_requests_round_trip() -> None:
    r = _result()
    r.status, r.unsent_requests = RunStatus.DEGRADED, 1_228
    r.context["slo"] = {"source": "default", "pass": False, "criteria": {
        "achieved_ratio": {"limit": 0.95, "measured": 0.32, "pass": False}}}
    back = RunResult.from_dict(r.to_dict())
    assert back.status is RunStatus.DEGRADED and back.unsent_requests == 1_228
    s = back.summary()
    assert s["status"] == "degraded" and s["unsent_requests"] == 1_228
    assert s["slo"]["criteria"]["achieved_ratio"]["pass"] is False
    old = r.to_dict()
    del old["unsent_requests"]                       # a document written before the field
    assert RunResult.from_dict(old).unsent_requests == 0
