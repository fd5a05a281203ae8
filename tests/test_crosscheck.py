"""crosscheck: every runner at the same settings, side by side, with coordinated-omission flags;
real runs of wrk, hey, ab and native against the echo server on loopback."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rich.table import Table

from meshlab.crosscheck import (
    COLUMNS,
    crosscheck,
    crosscheck_from_store,
    flag_coordinated_omission,
    render_crosscheck,
)
from meshlab.errors import StoreError
from meshlab.profile import Profile
from meshlab.store import Store

FORTIO = shutil.which("fortio") is not None


def profile(target: str, **loads: object) -> Profile:
    base: dict[str, object] = {"connections": [2], "duration_s": 1, "warmup_s": 0}
    base.update(loads)
    return Profile.from_dict({"name": "cc", "target": target, "loads": base})


def row(runner: str, rate: float, p99: float, p999: float, uncorrected_p99: float,
        status: str = "completed") -> dict[str, object]:
    return {"runner": runner, "rate_rps": rate, "connections": 2, "status": status,
            "reason": "", "achieved_rate_rps": rate, "requests": 1000, "errors": 0,
            "p50_us": 100.0, "p90_us": 200.0, "p99_us": p99, "p999_us": p999,
            "uncorrected_p99_us": uncorrected_p99, "co_distorted": False, "note": ""}


def test_flags_closed_loop_tails_below_the_corrected_open_loop_tail() -> None:
    df = pd.DataFrame([
        row("native", 1000, 90_000, 110_000, 2_000),       # corrected >> uncorrected: stalled
        row("hey", 1000, 1_500, 100_000, 1_500),            # p99 hides the queueing
        row("fortio", 1000, 80_000, 105_000, 80_000),       # comparable
        row("wrk", 1000, math.nan, math.nan, math.nan, status="skipped"),
        row("native", 0, 500, 900, 500),
        row("hey", 0, 600, 1_000, 600),
    ], columns=COLUMNS)
    out = flag_coordinated_omission(df)
    keys = out["runner"] + "@" + out["rate_rps"].astype(float).astype(str)
    flags = dict(zip(keys, out["co_distorted"], strict=True))
    assert flags == {"native@1000.0": False, "hey@1000.0": True, "fortio@1000.0": False,
                     "wrk@1000.0": False, "native@0.0": False, "hey@0.0": False}
    notes = dict(zip(keys, out["note"], strict=True))
    assert "p99 1,500 us vs native corrected 90,000 us" in notes["hey@1000.0"]
    assert "stalled" in notes["native@1000.0"]
    assert "no open-loop reference" in notes["hey@0.0"]
    assert df["co_distorted"].sum() == 0                      # the input is not modified


def test_crosscheck_bars_hatch_the_distorted_runner_and_drop_skipped_rows() -> None:
    from meshlab.report import figures

    df = flag_coordinated_omission(pd.DataFrame([
        row("native", 1000, 90_000, 110_000, 2_000),
        row("hey", 1000, 1_500, 100_000, 1_500),
        row("wrk", 1000, math.nan, math.nan, math.nan, status="skipped"),
    ], columns=COLUMNS))
    fig = figures.crosscheck_bars(df)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"native", "hey (distorted by CO)"}
    assert by_name["hey (distorted by CO)"].marker.pattern.shape == "/"
    assert not by_name["native"].marker.pattern.shape
    assert list(by_name["native"].x) == ["p50", "p90", "p99", "p99.9"]
    assert list(by_name["hey (distorted by CO)"].y) == [100.0, 200.0, 1_500.0, 100_000.0]
    axis = fig.layout.yaxis                 # units in the tick labels of a log axis
    assert axis.type == "log" and any(u in " ".join(axis.ticktext) for u in ("us", "ms"))
    two_points = pd.concat([df, df.assign(rate_rps=0.0)], ignore_index=True)
    xs = list(figures.crosscheck_bars(two_points).data[0].x)
    assert len(xs) == 8 and xs[0] == "p50 @ 1000/s x2" and xs[4] == "p50 @ closed x2"
    empty = figures.crosscheck_bars(df[df["status"] == "skipped"])
    assert not empty.data and "no runner completed" in str(empty.layout.annotations[0].text)


def test_a_one_percent_stall_is_caught_below_the_tail() -> None:
    # measured shape: `?delay=300ms:1` at 200 req/s on one connection. The stall is the
    # uncorrected p99 too (300 ms), so p99 alone sees no queue; the corrected p50 does.
    native = {**row("native", 200, 574_620, 606_957, 299_893), "p50_us": 191_889.0,
              "p90_us": 450_888.0, "uncorrected_p50_us": 180.0, "uncorrected_p90_us": 260.0}
    hey = {**row("hey", 200, 299_893, 299_893, 299_893), "p50_us": 165.0, "p90_us": 264.0}
    out = flag_coordinated_omission(pd.DataFrame([native, hey], columns=COLUMNS))
    assert list(out["co_distorted"]) == [False, True]
    assert out.loc[1, "note"].startswith("p50 165 us vs native corrected 191,889 us")
    assert "stalled" in out.loc[0, "note"] and "corrected p50 191,889 us vs 180 us" in \
        out.loc[0, "note"]


def test_no_flag_when_the_target_did_not_stall() -> None:
    df = pd.DataFrame([row("native", 500, 300, 500, 290), row("hey", 500, 100, 150, 100)],
                      columns=COLUMNS)
    out = flag_coordinated_omission(df)
    assert not out["co_distorted"].any()
    assert "did not stall" in out.loc[1, "note"]


def test_closed_loop_side_by_side(echo_url: str) -> None:
    seen: list[str] = []
    df = crosscheck(profile(echo_url), runners=["wrk", "hey", "ab", "fortio", "native"],
                    progress=seen.append)
    assert list(df.columns) == COLUMNS and list(df["runner"]) == ["wrk", "hey", "ab", "fortio",
                                                                   "native"]
    status = dict(zip(df["runner"], df["status"], strict=True))
    if FORTIO:
        assert status["fortio"] == "completed"
    else:                                         # not packaged: a release binary on PATH
        assert status["fortio"] == "skipped"
        assert "not packaged for Debian" in df.set_index("runner").loc["fortio", "reason"]
    assert all(status[r] == "completed" for r in ("wrk", "hey", "ab", "native"))
    done = df[df["status"] == "completed"]
    assert (done["requests"] > 100).all() and (done["errors"] == 0).all()
    for _, r in done.iterrows():
        assert r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"]
    assert not df["co_distorted"].any()
    assert any("wrk" in line for line in seen)
    table = render_crosscheck(df)
    assert isinstance(table, Table) and table.row_count == 5


def test_rate_skips_closed_loop_tools_and_flags_hey_against_a_stalling_target(
        echo_url: str) -> None:
    # 0.5 % of responses stall 100 ms: open loop, the ~50 requests due on that connection
    # meanwhile queue behind each stall; hey's rate-limited workers just wait and send less.
    p = profile(echo_url + "?delay=100ms:0.5", rate_rps=[1000], duration_s=2)
    df = crosscheck(p, runners=["wrk", "ab", "hey", "native"])
    by = df.set_index("runner")
    assert by.loc["wrk", "status"] == "skipped" and "loads.rate_rps" in by.loc["wrk", "reason"]
    assert by.loc["ab", "status"] == "skipped" and 'runner="native"' in by.loc["ab", "reason"]
    assert by.loc["native", "status"] == "completed" and by.loc["hey", "status"] == "completed"
    assert by.loc["native", "p99_us"] > 2 * by.loc["native", "uncorrected_p99_us"]
    assert bool(by.loc["hey", "co_distorted"]), by.loc["hey", "note"]
    assert not bool(by.loc["native", "co_distorted"])


def test_sync_wrapper_works_inside_a_running_event_loop(echo_url: str) -> None:
    async def notebook_cell() -> pd.DataFrame:
        return crosscheck(profile(echo_url), runners=["fortio"])

    df = asyncio.run(notebook_cell())
    assert list(df["status"]) == ["completed" if FORTIO else "skipped"]


def test_a_stored_crosscheck_is_rebuilt_from_the_store(echo_url: str, tmp_path: Path) -> None:
    """`store=`: the runs land in one labelled experiment; the table comes back from it with
    the same numbers, skipped runners and their reasons included."""
    db = tmp_path / "cc.duckdb"
    live = crosscheck(profile(echo_url, rate_rps=[200], duration_s=0.5),
                      runners=["native", "hey", "nosuchtool"], store=db)
    exp_id = live.attrs["experiment_id"]
    assert list(live["status"]) == ["completed", "completed", "skipped"]
    store = Store(db, read_only=True)
    runs = store.runs(experiment_id=exp_id, label={"crosscheck": "true"})
    assert sorted(runs["runner"]) == ["hey", "native"]
    assert set(runs["run_id"]) == set(live["run_id"].dropna())
    again = crosscheck_from_store(store, "latest")
    assert again.attrs["experiment_id"] == exp_id
    cols = ["runner", "rate_rps", "connections", "status", "reason", "requests", "errors",
            "p50_us", "p99_us", "uncorrected_p99_us", "co_distorted", "note", "run_id"]
    pd.testing.assert_frame_equal(again[cols], live[cols])
    assert crosscheck_from_store(db, exp_id)[cols].equals(again[cols])


def test_from_store_names_what_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    Store(db).close()
    with pytest.raises(StoreError, match="no cross-check stored"):
        crosscheck_from_store(db)


def test_per_protocol_native_against_h2load_and_k6(echo_url: str, tmp_path: Path) -> None:
    """h2c: native against h2load; gRPC: native against k6; every other runner a skipped row
    naming the protocol it cannot speak. Stored, the table comes back with its protocols."""
    p = Profile.from_dict({"name": "cc-proto", "target": echo_url,
                           "request": {"protocol": ["h2c", "grpc"]},
                           "loads": {"connections": [2], "duration_s": 1, "warmup_s": 0}})
    db = tmp_path / "cc.duckdb"
    df = crosscheck(p, runners=["native", "h2load", "k6", "wrk"], store=db)
    assert list(df.columns) == COLUMNS
    by = {(r["protocol"], r["runner"]): r for _, r in df.iterrows()}
    for proto, tool in (("h2c", "h2load"), ("grpc", "k6")):
        for runner in ("native", tool):
            r = by[(proto, runner)]
            assert r["status"] == "completed", (proto, runner, r["reason"])
            assert r["requests"] > 50 and r["errors"] == 0
            assert r["p50_us"] <= r["p99_us"]
    for proto, runner in (("h2c", "k6"), ("h2c", "wrk"), ("grpc", "h2load"), ("grpc", "wrk")):
        r = by[(proto, runner)]
        assert r["status"] == "skipped"
        assert f"runner {runner} cannot speak {proto}" in r["reason"]
    runs = Store(db, read_only=True).runs(experiment_id=df.attrs["experiment_id"])
    assert set(zip(runs["protocol"], runs["runner"], strict=True)) == {
        ("h2c", "native"), ("h2c", "h2load"), ("grpc", "native"), ("grpc", "k6")}
    again = crosscheck_from_store(db, "latest")
    assert list(again["protocol"]) == list(df["protocol"])
    table = render_crosscheck(df)
    assert table.columns[0].header == "protocol" and table.row_count == 8
