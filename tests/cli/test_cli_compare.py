"""`meshlab compare` over a real store of synthetic runs (mesh x policy x repeats, two
experiments): several --by dimensions, extra filters, refusals of hidden pooling, exit 2 on a
selector matching nothing, intervals and verdicts, and one selector grammar with `report`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _cli import cli, lines

from meshlab.analysis import parse_selector, select_runs, synthetic_result
from meshlab.report.sections import resolve_groups
from meshlab.store import Store

SLOWDOWN = {"none": 1.0, "envoy": 1.4, "nginx": 1.0}
POLICY = {"default": 1.0, "retry3": 1.2}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare") / "m.duckdb"
    store = Store(path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    old = store.new_experiment(name="old", profile={})       # an older experiment: all nginx
    store.save_many([synthetic_result(run_id=f"old-{i}", mesh="nginx", seed=90 + i,
                                      started_at=t0 + timedelta(seconds=i))
                     for i in range(2)], experiment_id=old)
    new = store.new_experiment(name="new", profile={})
    runs = []
    for rep in range(2):
        runs.append(synthetic_result(run_id=f"none-{rep}", seed=rep, repeat=rep,
                                     context={"policy": "default"},
                                     started_at=t0 + timedelta(hours=1, seconds=rep)))
        for k, mesh in enumerate(("envoy", "nginx")):
            for j, policy in enumerate(POLICY):
                runs.append(synthetic_result(
                    run_id=f"{mesh}-{policy}-{rep}", mesh=mesh, repeat=rep,
                    slowdown=SLOWDOWN[mesh] * POLICY[policy], seed=10 * k + 3 * j + rep + 1,
                    context={"policy": policy}, labels={"build": f"v{k + 1}"},
                    started_at=t0 + timedelta(hours=1, minutes=1 + 4 * k + 2 * j, seconds=rep)))
    store.save_many(runs, experiment_id=new)
    return path


def test_by_several_dimensions_pairs_every_group_with_the_baseline(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--by", "mesh,policy", "--baseline",
                         "mesh=none,experiment=latest", "--boot", "300", "--json")
    assert code == 0, err
    rows = {(r["mesh"], r["policy"]): r for r in lines(out)}
    assert set(rows) == {("none", "default"), ("envoy", "default"), ("envoy", "retry3"),
                         ("nginx", "default"), ("nginx", "retry3")}
    assert all(r["runs"] == 2 for r in rows.values())
    assert rows[("none", "default")]["role"] == "baseline"
    for key in (("envoy", "default"), ("envoy", "retry3"), ("nginx", "retry3")):
        r = rows[key]
        assert r["difference_p50_us"] == "slower", key
        assert 0 < r["ci_low_p50_us"] <= r["delta_p50_us"] <= r["ci_high_p50_us"]
    same = rows[("nginx", "default")]          # the same distribution as the baseline
    assert same["difference_p50_us"] == "indistinguishable"
    assert same["ci_low_p50_us"] <= 0 <= same["ci_high_p50_us"]
    code, out, _ = cli(capsys, db, "compare", "--by", "mesh,policy", "--baseline",
                       "mesh=none,experiment=latest", "--boot", "200")
    assert code == 0
    assert "pooled over repeats only" in out and "baseline policy=default serves every row" in out


def test_by_with_extra_filters(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a filter in the baseline on a column that is not grouped narrows both sides ...
    code, out, err = cli(capsys, db, "compare", "--by", "mesh", "--baseline",
                         "mesh=none,policy=default,experiment=latest", "--boot", "200",
                         "--json")
    assert code == 0, err
    rows = {r["mesh"]: r for r in lines(out)}
    assert set(rows) == {"none", "envoy", "nginx"} and rows["nginx"]["runs"] == 2
    assert rows["nginx"]["difference_p50_us"] == "indistinguishable"
    # ... and --candidate narrows the candidate groups only (the baseline has no retry3 runs)
    code, out, err = cli(capsys, db, "compare", "--by", "mesh", "--baseline", "mesh=none",
                         "--candidate", "policy=retry3", "--where", "experiment=latest",
                         "--boot", "200", "--json")
    assert code == 0, err
    rows = {r["mesh"]: r for r in lines(out)}
    assert rows["nginx"]["runs"] == 2 and rows["nginx"]["difference_p50_us"] == "slower"


def test_by_refuses_to_pool_other_dimensions_with_a_suggestion_that_runs(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, db, "compare", "--by", "mesh", "--baseline",
                       "mesh=none,experiment=latest")
    assert code == 2
    assert "differ in policy (default, retry3)" in err and "--by mesh,policy" in err
    code, out, err = cli(capsys, db, "compare", "--by", "mesh,policy", "--baseline",
                         "mesh=none,experiment=latest", "--boot", "100")
    assert code == 0, err
    code, out, err = cli(capsys, db, "compare", "--by", "mesh", "--baseline",
                         "mesh=none,experiment=latest", "--pool", "--boot", "100")
    assert code == 0, err
    assert "AND over policy (default, retry3) (--pool)" in out


def test_selector_matching_nothing_exits_two_and_lists_the_store(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, db, "compare", "--baseline", "mesh=kuma", "--candidate",
                       "mesh=envoy,policy=default")
    assert code == 2
    assert "baseline: selector 'mesh=kuma' matched no runs" in err
    assert "meshes in the store: envoy, nginx, none" in err and "retry3" in err
    assert "Store.runs()" not in err
    code, _, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                       "colour=red")
    assert code == 2 and "no key 'colour'" in err
    code, _, err = cli(capsys, db, "compare", "--baseline", "nope-1", "--candidate", "none-0")
    assert code == 2 and "unknown run ids nope-1" in err


def test_output_has_intervals_and_verdicts(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                         "mesh=envoy,policy=default", "--boot", "300")
    assert code == 0, err
    assert "95% interval" in out and "[+" in out and "slower" in out
    assert "2 baseline and 2 candidate run(s), histograms pooled over repeats only" in out
    code, out, _ = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                       "mesh=nginx,policy=default", "--boot", "300", "--json")
    rows = {r["metric"]: r for r in lines(out)}
    assert rows["p50_us"]["difference"] == "indistinguishable"
    for r in rows.values():
        assert r["ci_low"] <= r["delta"] <= r["ci_high"]
    code, out, _ = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                       "mesh=envoy,policy=default", "--fast")
    assert code == 0 and "not judged" in out and "slower" not in out


@pytest.mark.parametrize("selector", ["mesh=envoy|nginx,policy=retry3", "mesh!=none",
                                      "label.build=v2", "experiment=latest,mesh!=envoy",
                                      "mesh=nginx,mesh=envoy,policy!=default"])
def test_one_grammar_in_compare_runs_and_report(
        db: Path, capsys: pytest.CaptureFixture[str], selector: str) -> None:
    all_runs = Store(db, read_only=True).runs()
    expected = select_runs(all_runs, selector)
    assert expected
    _, report_ids, problem = resolve_groups(all_runs, baseline="mesh=none",
                                            candidate=selector)
    assert problem is None and report_ids == expected
    code, out, err = cli(capsys, db, "runs", selector, "--limit", "0", "--json")
    assert code == 0, err
    assert sorted(r["run_id"] for r in lines(out)) == sorted(expected)
    code, out, err = cli(capsys, db, "compare", "--baseline", "mesh=none", "--candidate",
                         selector, "--pool", "--fast", "--json")
    assert code == 0, err
    (p50,) = [r for r in lines(out) if r["metric"] == "p50_us"]
    assert p50["n_candidate"] == len(expected)
    assert p50["candidate_selector"] == str(parse_selector(selector))   # mesh=a,mesh=b: a|b


def test_experiment_flag_is_an_alias_of_the_condition(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = []
    for args in (("--baseline", "mesh=none", "--experiment", "latest"),
                 ("--baseline", "mesh=none,experiment=latest")):
        code, out, err = cli(capsys, db, "compare", "--by", "mesh,policy", *args, "--fast",
                             "--json")
        assert code == 0, err
        outs.append(lines(out))
    assert outs[0] == outs[1]
