"""`Store.merge_from` / `meshlab merge`: pooling real DuckDB stores by run id, idempotently,
with conflicts reported and provenance kept per run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_formats_roundtrip import _fixed_run

from meshlab.cli import main
from meshlab.results import RunResult
from meshlab.store import Store


def _run(n: int) -> RunResult:
    return dataclasses.replace(_fixed_run(), run_id=f"20261122T024131-mg{n:04d}")


def test_merge_pools_stores_idempotently_with_provenance(tmp_path: Path) -> None:
    a, b, into = tmp_path / "alice.duckdb", tmp_path / "bob.duckdb", tmp_path / "team.duckdb"
    sa, sb = Store(a), Store(b)
    exp = sa.new_experiment(name="overhead", profile={"name": "overhead"})
    sa.save(_run(1), experiment_id=exp)
    sa.finish_experiment(exp, status="completed")
    sb.save(_run(2))
    sb.save(_run(1), experiment_id=None)          # the same run, copied by hand earlier
    team = Store(into)
    ra = team.merge_from(a)
    assert (ra.added, ra.experiments_added, ra.conflicts) == ([_run(1).run_id], [exp], [])
    rb = team.merge_from(b)
    assert rb.added == [_run(2).run_id] and rb.skipped == [_run(1).run_id]
    again = team.merge_from(a)                     # idempotent
    assert (again.added, again.skipped, again.experiments_added) == ([], [_run(1).run_id], [])
    got = team.load(_run(1).run_id)
    assert got.context["merged_from"] == "alice.duckdb" and "merged_at" in got.context
    assert team.load(_run(2).run_id).context["merged_from"] == "bob.duckdb"
    runs = team.runs()
    assert sorted(runs["run_id"]) == [_run(1).run_id, _run(2).run_id]
    assert runs.set_index("run_id").loc[_run(1).run_id, "experiment_id"] == exp
    exps = team.experiments()
    assert list(exps["experiment_id"]) == [exp] and list(exps["status"]) == ["completed"]


def test_merge_reports_a_conflict_and_keeps_the_stored_run(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    a, into = tmp_path / "a.duckdb", tmp_path / "into.duckdb"
    Store(into).save(_run(1))
    Store(a).save(dataclasses.replace(_run(1), requests=1))
    assert main(["merge", str(a), "--into", str(into)]) == 1
    assert "conflict: run 20261122T024131-mg0001" in capsys.readouterr().err
    assert Store(into).load(_run(1).run_id).requests == _run(1).requests
    assert main(["merge", str(a), "--into", str(a)]) != 0       # never into itself
