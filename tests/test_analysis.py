"""Analysis on stored fixtures with known answers: a 20% slower candidate is flagged, an
identical one is not; context diffs, selectors and the SLO search controller."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pandas as pd
import pytest

from meshlab.analysis import (
    NOT_DISTINGUISHABLE,
    Difference,
    Frames,
    Selection,
    RateSearch,
    Slo,
    Threshold,
    Verdict,
    answer,
    compare_by,
    compare_groups,
    context_diff,
    difference,
    load_frames,
    missing_runs,
    overhead,
    overhead_by,
    parse_selector,
    parse_threshold,
    parse_thresholds,
    regression_verdict,
    search_max_rate,
    select_runs,
    synthetic_result,
)
from meshlab.errors import ProfileError
from meshlab.results import RunResult
from meshlab.store import Store

BASE = ["base-0", "base-1", "base-2"]
SLOW = ["slow-0", "slow-1", "slow-2"]
SAME = ["same-0", "same-1", "same-2"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Frames:
    """A real DuckDB store: 3 baseline runs, 3 runs 20% slower (with mTLS), 3 identical ones."""
    path = Path(tmp_path_factory.mktemp("store")) / "meshlab.duckdb"
    store = Store(path)
    for i in range(3):
        store.save(synthetic_result(run_id=BASE[i], seed=i, requests=30_000, cpu_percent=10.0))
        store.save(synthetic_result(run_id=SLOW[i], seed=10 + i, requests=30_000, slowdown=1.2,
                                    mesh="envoy", cpu_percent=25.0,
                                    context={"mesh_config": {"mtls": "strict"}}))
        store.save(synthetic_result(run_id=SAME[i], seed=20 + i, requests=30_000,
                                    cpu_percent=10.0))
    return load_frames(Store(path, read_only=True))


def _lat(f: Frames) -> pd.DataFrame:
    return f.buckets[f.buckets["kind"] == "latency"]


def _row(table: pd.DataFrame, metric: str) -> dict[str, object]:
    return dict(table.set_index("metric").loc[metric])


def test_twenty_percent_slower_candidate_is_flagged(frames: Frames) -> None:
    table = overhead(frames.runs, _lat(frames), baseline=BASE, candidate=SLOW,
                     telemetry=frames.telemetry)
    for metric in ("p50_us", "p90_us", "p99_us"):
        row = _row(table, metric)
        assert 15.0 < float(row["delta_pct"]) < 25.0, row                    # type: ignore[arg-type]
        assert float(row["ci_low_pct"]) <= float(row["delta_pct"]) <= float(row["ci_high_pct"])  # type: ignore[arg-type]
        assert int(row["n_baseline"]) == 3                                      # type: ignore[call-overload]
    cpu = _row(table, "cpu_percent")
    assert float(cpu["candidate"]) / float(cpu["baseline"]) == pytest.approx(2.5, rel=0.1)  # type: ignore[arg-type]
    verdict = regression_verdict(table, parse_thresholds(["p99=10%"]))
    assert verdict.verdict is Verdict.REGRESSION
    assert "p99_us" in verdict.regressions and "p50_us" in verdict.regressions


def test_identical_candidate_is_not_flagged(frames: Frames) -> None:
    table = overhead(frames.runs, _lat(frames), baseline=BASE, candidate=SAME)
    verdict = regression_verdict(table)
    assert not verdict.is_regression
    assert verdict.verdict is Verdict.WITHIN_THRESHOLD
    assert abs(float(_row(table, "p50_us")["delta_pct"])) < 3.0             # type: ignore[arg-type]


def test_pooled_and_per_run_percentiles_agree_on_repeats(frames: Frames) -> None:
    table = overhead(frames.runs, _lat(frames), baseline=BASE, candidate=SLOW)
    row = _row(table, "p50_us")
    assert float(row["baseline_run_mean"]) == pytest.approx(float(row["baseline"]), rel=0.03)  # type: ignore[arg-type]
    assert float(row["baseline_run_sd"]) >= 0.0                              # type: ignore[arg-type]


def test_interval_straddling_threshold_is_no_significant_change() -> None:
    row = {"ci_low_pct": 5.0, "ci_high_pct": 15.0, "higher_is_better": False}
    table = pd.DataFrame([{"metric": "p99_us", **row}])
    v = regression_verdict(table, [Threshold("p99_us", 10.0)])
    assert v.verdict is Verdict.NO_SIGNIFICANT_CHANGE
    # throughput is better when higher: a 20% drop regresses
    drop = pd.DataFrame([{"metric": "throughput_rps", "ci_low_pct": -25.0, "ci_high_pct": -18.0,
                          "higher_is_better": True}])
    assert regression_verdict(drop, [Threshold("throughput_rps", 10.0)]).is_regression


def test_empty_or_unknown_groups_give_no_data(frames: Frames) -> None:
    table = overhead(frames.runs, _lat(frames), baseline=["nope"], candidate=SLOW)
    assert table.empty
    assert regression_verdict(table).verdict is Verdict.NO_DATA
    empty = Frames.empty()
    assert overhead(empty.runs, empty.buckets, baseline=BASE, candidate=SLOW).empty


@pytest.mark.parametrize(("text", "expected"), [
    ("p99=10%", Threshold("p99_us", 10.0)),
    ("p99.9=2ms", Threshold("p999_us", 2000.0, relative=False)),
    ("error_rate=1%", Threshold("error_rate", 0.01, relative=False)),
    ("throughput=5%", Threshold("throughput_rps", 5.0)),
])
def test_parse_threshold(text: str, expected: Threshold) -> None:
    assert parse_threshold(text) == expected


def test_bad_thresholds_are_listed_together() -> None:
    with pytest.raises(ProfileError) as info:
        parse_thresholds(["p99", "p50=abc"])
    assert len(info.value.problems) == 2


def test_context_diff_lists_differences_next_to_latency(frames: Frames) -> None:
    diff = context_diff(frames.runs, baseline=BASE, candidate=SLOW, buckets=_lat(frames))
    keys = set(diff["key"])
    assert {"mesh", "context.mesh_config.mtls", "p99_us"} <= keys
    assert "run_id" not in keys and "spec.repeat" not in keys
    lat = diff[diff["section"] == "latency"].set_index("key")
    assert float(lat.loc["p50_us", "delta_pct"]) > 10.0
    same = context_diff(frames.runs, baseline=BASE, candidate=SAME)
    assert same.empty


def test_selectors(frames: Frames) -> None:
    assert select_runs(frames.runs, "mesh=envoy") == SLOW
    assert select_runs(frames.runs, f"{BASE[0]},unknown") == [BASE[0]]
    assert missing_runs(frames.runs, f"{BASE[0]},unknown") == ["unknown"]
    assert select_runs(frames.runs, {"mesh": "istio"}) == []
    assert select_runs(frames.runs, "mesh!=none") == SLOW
    assert select_runs(frames.runs, {"mesh!": "envoy"}) == sorted(BASE + SAME)
    assert select_runs(frames.runs, "mesh!=none,mesh!=envoy") == []
    assert select_runs(frames.runs, "nosuchcolumn!=x") == []
    assert select_runs(frames.runs, "mesh=envoy|none") == BASE + SLOW + SAME


def test_overhead_by_mesh_within_each_rate(frames: Frames) -> None:
    table = overhead_by(frames.runs, _lat(frames), by=("rate_rps",), n_boot=100)
    assert set(table["candidate_group"]) == {"envoy"}
    assert float(table.set_index("metric").loc["p50_us", "delta_pct"]) > 10.0


def _fake_probe(capacity_rps: float) -> tuple[list[RunResult], object]:
    seen: list[RunResult] = []

    async def probe(rate: float) -> RunResult:
        # latency explodes past capacity, like a saturated proxy
        slow = 1.0 if rate <= capacity_rps else 20.0
        r = synthetic_result(run_id=f"probe-{len(seen)}", rate_rps=rate, duration_s=1.0,
                             requests=int(rate), slowdown=slow, seed=len(seen))
        seen.append(r)
        return r

    return seen, probe


def test_max_rate_search_brackets_capacity_and_keeps_every_probe() -> None:
    saved: list[str] = []
    seen, probe = _fake_probe(3_000.0)
    outcome = asyncio.run(search_max_rate(probe, slo=Slo(p99_us=5_000.0), start_rps=500.0,  # type: ignore[arg-type]
                                          max_rps=100_000.0, save=lambda r: saved.append(r.run_id)))
    assert 3_000.0 * 0.9 <= outcome.max_rate_rps <= 3_000.0
    assert saved == [r.run_id for r in seen] == [p.run_id for p in outcome.probes]
    assert any(not p.passed for p in outcome.probes)


def test_rate_search_stops_at_max_and_when_nothing_passes() -> None:
    s = RateSearch(start_rps=100.0, max_rps=300.0)
    while (r := s.next_rate()) is not None:
        s.observe(r, "x", True, "ok")
    assert s.max_rate_rps == 300.0
    s = RateSearch(start_rps=100.0, max_rps=300.0, max_probes=20)
    while (r := s.next_rate()) is not None:
        s.observe(r, "x", False, "p99 too high")
    assert s.max_rate_rps == 0.0 and len(s.probes) < 20
    assert not math.isnan(s.max_rate_rps)


def _telemetry_rows() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two runs (policies a, b); cumulative Envoy counters sampled at three instants."""
    rows = []
    for run, retry_end in (("ra", 0.0), ("rb", 30.0)):
        for t, frac in ((0.0, 0.0), (1.0, 0.5), (2.0, 1.0)):
            client, rq = "envoy:client-sidecar", "envoy.downstream_rq_total"
            rows += [(run, t, client, rq, 1000 + 100 * frac),
                     (run, t, client, "envoy.upstream_rq_retry", 7 + retry_end * frac),
                     (run, t, "envoy:backend-0-sidecar", rq, 80 * frac),
                     (run, t, "envoy:backend-1-sidecar", rq, 20 * frac),
                     (run, t, client, "cpu_percent", 50.0)]
    tel = pd.DataFrame(rows, columns=["run_id", "t_s", "source", "metric", "value"])
    runs = pd.DataFrame({"run_id": ["ra", "rb"], "policy": ["a", "b"]})
    codes = pd.DataFrame({"run_id": ["ra", "ra", "rb"], "code": [200, 503, 200],
                          "count": [80, 20, 100]})
    return tel, runs, codes


def test_counters_are_increases_per_group_and_source() -> None:
    from meshlab.analysis import counter_increase, counter_ratio, counters_by, status_shares

    tel, runs, codes = _telemetry_rows()
    inc = counter_increase(tel, "envoy.upstream_rq_retry", source="envoy:client-sidecar")
    assert dict(zip(inc["run_id"], inc["increase"], strict=True)) == {"ra": 0.0, "rb": 30.0}
    per_replica = counters_by(tel, runs, "envoy.downstream_rq_total", by="policy",
                              source="envoy:backend-*-sidecar", per_source=True)
    a = per_replica[per_replica["policy"] == "a"].set_index("source")["share"]
    assert a.to_dict() == {"envoy:backend-0-sidecar": 0.8, "envoy:backend-1-sidecar": 0.2}
    table = counters_by(tel, runs, ["envoy.downstream_rq_total", "envoy.upstream_rq_retry"],
                        source="envoy:client-sidecar")
    ratio = counter_ratio(table, "envoy.upstream_rq_retry", "envoy.downstream_rq_total")
    assert ratio.to_dict() == {"a": 0.0, "b": 0.3}
    shares = status_shares(codes, runs).set_index(["policy", "code"])["share"]
    assert shares[("a", 503)] == 0.2 and shares[("b", 200)] == 1.0
    empty = counters_by(tel.iloc[0:0], runs, "envoy.upstream_rq_retry")
    assert empty.empty and list(empty.columns) == ["policy", "metric", "value", "share"]


def test_experiment_latest_selects_the_most_recent_experiment() -> None:
    runs = pd.DataFrame({
        "run_id": ["a1", "a2", "b1", "b2", "x"],
        "experiment_id": ["exp-a", "exp-a", "exp-b", "exp-b", None],
        "mesh": ["none", "envoy", "none", "envoy", "none"],
        "started_at": pd.to_datetime(["2026-01-01T00:00", "2026-01-01T00:01",
                                      "2026-01-02T00:00", "2026-01-02T00:01",
                                      "2025-12-31T00:00"]),
    })
    assert select_runs(runs, "mesh=none,experiment=latest") == ["b1"]
    assert select_runs(runs, "mesh!=none,experiment=latest") == ["b2"]
    assert select_runs(runs, "experiment=exp-a") == ["a1", "a2"]


def test_selector_grammar() -> None:
    sel = parse_selector("mesh=envoy|nginx, mesh=istio,mesh!=none,label.build=v2,experiment_id=e1")
    assert str(sel) == "mesh=envoy|nginx|istio,mesh!=none,label.build=v2,experiment=e1"
    assert parse_selector({"mesh!": "none", "policy": "a|b"}) == parse_selector(
        "mesh!=none,policy=a|b")
    assert parse_selector(["id1", "id2", "id1"]) == Selection(("id1", "id2"))
    scoped = parse_selector("id1,id2") & parse_selector("experiment=latest")
    assert scoped.run_ids == ("id1", "id2") and scoped.keys == ("experiment",)
    base, rest = parse_selector("mesh=none,policy=retry3").split(["mesh"])
    assert str(base) == "mesh=none" and str(rest) == "policy=retry3"
    for bad in ("", " , ", "id1,mesh=none", "mesh=", "=none", "mesh=a||b"):
        with pytest.raises(ProfileError):
            parse_selector(bad)


def test_selector_values_numbers_and_null() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "rate_rps": [1000.0, 500.0, 1000.0],
                         "policy": ["retry3", None, "default"],
                         "labels": ['{"build": "v2"}', "{}", '{"build": "v1"}']})
    assert select_runs(runs, "rate_rps=1000") == ["a", "c"]
    assert select_runs(runs, "rate_rps=1e3,policy!=default") == ["a"]
    assert select_runs(runs, "policy=null") == ["b"]
    assert select_runs(runs, "label.build=v2|v1") == ["a", "c"]
    assert select_runs(runs, "c,a") == ["c", "a"]                     # ids in the order given
    assert select_runs(runs, parse_selector("c,a,b") & parse_selector("policy!=default")) == [
        "a", "b"]


def test_difference_never_ranks_inside_the_noise() -> None:
    assert difference("p99_us", -3.0, 40.0) is Difference.INDISTINGUISHABLE
    assert difference("p99_us", 5.0, 40.0) is Difference.SLOWER
    assert difference("p50_us", -9.0, -1.0) is Difference.FASTER
    assert difference("throughput_rps", 10.0, 20.0, higher_is_better=True) is Difference.FASTER
    assert difference("error_rate", 0.01, 0.02) is Difference.HIGHER
    assert difference("p50_us", math.nan, math.nan) is Difference.NOT_JUDGED


def test_compare_groups_and_by_judge_with_intervals(frames: Frames) -> None:
    lat = _lat(frames)
    cmp = compare_groups(frames.runs, lat, baseline="mesh=none", candidate="mesh=envoy",
                         n_boot=200)
    row = cmp.table.set_index("metric").loc["p50_us"]
    assert row["difference"] == "slower" and 0 < row["ci_low"] <= row["delta"]
    assert "pooled over repeats only" in cmp.header()
    same = compare_groups(frames.runs, lat, baseline=BASE, candidate=SAME, n_boot=200)
    assert same.table.set_index("metric").loc["p50_us", "difference"] == "indistinguishable"
    fast = compare_groups(frames.runs, lat, baseline=BASE, candidate=SLOW, n_boot=0)
    assert set(fast.table["difference"]) == {"not judged"} and "not judged" in fast.header()
    by = compare_by(frames.runs, lat, by=["mesh"], baseline="mesh=none", n_boot=100)
    assert list(by.groups["role"]) == ["baseline", "candidate"]
    assert set(by.table["mesh"]) == {"envoy"}
    with pytest.raises(ProfileError, match="matched no runs"):
        compare_groups(frames.runs, lat, baseline="mesh=kuma", candidate="mesh=envoy")


def test_answer_says_not_distinguishable_instead_of_a_number_inside_the_noise(
        frames: Frames) -> None:
    lat = _lat(frames)
    slow = compare_groups(frames.runs, lat, baseline=BASE, candidate=SLOW,
                          telemetry=frames.telemetry, n_boot=200)
    added = answer(slow, "p50_us", subject="what envoy adds at p50")
    assert added.distinguishable and 0 < added.ci_low <= added.estimate <= added.ci_high
    assert added.text.startswith("what envoy adds at p50: +")
    assert "(95% interval +" in added.text and added.said != NOT_DISTINGUISHABLE
    noise = answer(compare_groups(frames.runs, lat, baseline=BASE, candidate=SAME, n_boot=200),
                   "p50_us", subject="what nothing adds at p50")
    assert noise.ci_low <= 0 <= noise.ci_high and noise.said == NOT_DISTINGUISHABLE
    assert noise.text.startswith("what nothing adds at p50: not distinguishable here (95% ")
    share = answer(slow, "cpu_percent", subject="")
    cpu = share.scaled(1e4 / 200.0, metric="cpu_us", subject="CPU per request")
    assert (cpu.estimate, cpu.ci_low, cpu.ci_high) == pytest.approx(
        (share.estimate * 50.0, share.ci_low * 50.0, share.ci_high * 50.0))
    assert cpu.text.startswith("CPU per request: +") and " us (95% interval +" in cpu.text
    assert "percentage points" in answer(slow, "error_rate", subject="errors").text
    by = compare_by(frames.runs, lat, by=["mesh"], baseline="mesh=none", n_boot=100)
    assert answer(by, "p50_us", subject="x", mesh="envoy").difference is Difference.SLOWER
    with pytest.raises(ProfileError, match="no single p50_us row for mesh=kuma"):
        answer(by, "p50_us", subject="x", mesh="kuma")


def test_intervals_on_per_run_means_cover_what_they_claim_with_few_runs() -> None:
    """CPU and throughput intervals come from a handful of runs' means. The plain percentile
    bootstrap of 3 runs per side covers ~85% instead of 95% (three lab executions gave CPU intervals
    that excluded each other); the expanded interval keeps its promise, and one run per side
    gives no interval at all rather than a zero-width one."""
    import numpy as np

    from meshlab.analysis.overhead import _boot_mean, _interval, expansion

    assert expansion(3, 0.95) == pytest.approx(2.689, abs=0.002)      # sqrt(3/2) t(2) / z
    assert expansion(30, 0.95) == pytest.approx(1.061, abs=0.002)
    rng = np.random.default_rng(7)
    trials, hit = 400, 0
    for _ in range(trials):                   # true difference 5, each run's sd 2
        b, c = rng.normal(20.0, 2.0, 3), rng.normal(25.0, 2.0, 3)
        lo, hi, _, _ = _interval(_boot_mean(rng, b, 400, 0.95), _boot_mean(rng, c, 400, 0.95),
                                 0.95)
        hit += lo <= 5.0 <= hi
    assert 0.92 <= hit / trials <= 0.995
    one = _boot_mean(rng, np.array([20.0]), 100, 0.95)
    assert math.isnan(_interval(one, one, 0.95)[0])
