"""Pooling stores: copy another store's experiments and runs into this one by id, idempotently,
with each copied run's provenance (`context.merged_from`, `context.merged_at`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from meshlab.errors import StoreError
from meshlab.results import RunResult
from meshlab.store import _rows as rows

if TYPE_CHECKING:
    from meshlab.store import Store

PROVENANCE_KEYS = ("merged_from", "merged_at")


@dataclass(slots=True)
class MergeReport:
    """What `Store.merge_from` did: run ids added, skipped (already here, same content) and in
    conflict (already here with other content: left as it was), experiments added."""

    source: str
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    experiments_added: list[str] = field(default_factory=list)


def _content(r: RunResult) -> dict[str, Any]:
    d = r.to_dict()
    d["context"] = {k: v for k, v in d["context"].items() if k not in PROVENANCE_KEYS}
    return d


def _json(v: object) -> Any:
    return json.loads(v) if isinstance(v, str) else (v if v is not None else {})


def _iso(v: object) -> str | None:
    if v is None or bool(pd.isna(v)):  # type: ignore[call-overload]
        return None
    t = v.to_pydatetime() if isinstance(v, pd.Timestamp) else datetime.fromisoformat(str(v))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def merge_into(dest: Store, source_path: str | Path) -> MergeReport:
    from meshlab.store import Store

    src_path = Path(source_path).expanduser()
    if not src_path.is_file():
        raise StoreError(f"cannot merge {src_path}: no such store file")
    if dest.path != Path(":memory:") and src_path.resolve() == dest.path.resolve():
        raise StoreError(f"cannot merge {src_path} into itself")
    src = Store(src_path, read_only=True)
    report = MergeReport(source=src_path.name)
    merged_at = datetime.now(UTC).isoformat()
    with dest._connect() as con:
        for e in src.experiments().to_dict("records"):
            eid = str(e["experiment_id"])
            if con.execute("SELECT 1 FROM experiments WHERE experiment_id = ?",
                           [eid]).fetchone():
                continue
            rows.insert_experiment(con, {
                "experiment_id": eid, "name": e["name"], "description": e["description"] or "",
                "labels": {**_json(e["labels"]), "merged_from": report.source},
                "profile": _json(e["profile"]), "created_at": _iso(e["created_at"])})
            finished = _iso(e["finished_at"])
            if str(e["status"]) != "running" or finished:
                rows.finish_experiment(con, {"experiment_id": eid, "status": str(e["status"]),
                                             "finished_at": finished or merged_at})
            report.experiments_added.append(eid)
    src_runs = src.runs()
    present = set(dest.runs(run_ids=list(src_runs["run_id"]))["run_id"]) if len(src_runs) else set()
    by_experiment: dict[str | None, list[RunResult]] = {}
    for run_id, exp in zip(src_runs["run_id"], src_runs["experiment_id"], strict=True):
        run = src.load(str(run_id))
        if run_id in present:
            same = _content(dest.load(str(run_id))) == _content(run)
            (report.skipped if same else report.conflicts).append(str(run_id))
            continue
        run.context.setdefault("merged_from", report.source)
        run.context.setdefault("merged_at", merged_at)
        key = None if exp is None or (isinstance(exp, float) and math.isnan(exp)) else str(exp)
        by_experiment.setdefault(key, []).append(run)
        report.added.append(str(run_id))
    for exp_id, batch in by_experiment.items():
        dest.save_many(batch, experiment_id=exp_id)
    return report
