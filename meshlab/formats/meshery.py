"""Meshery performance results: a result (or a list, or a `PerformanceResultPage`) whose
`runner_results` is fortio JSON plus Meshery's `load-generator`, `kubernetes` and
`detected-meshes` keys; each runner result becomes one `RunResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlab.formats._doc import as_list, as_map, fail, import_run_id
from meshlab.formats._mesh_claim import DECLARED_MESH_LABEL, target_could_be_mesh
from meshlab.formats.fortio import is_fortio, run_from_fortio
from meshlab.results import RunResult

_RUNNER_KEYS = ("runner_results", "runnerResults")
_MESHERY_EXTRAS = ("load-generator", "kubernetes", "detected-meshes")


def _is_entry(x: object) -> bool:
    return isinstance(x, Mapping) and any(k in x for k in _RUNNER_KEYS)


def is_meshery(doc: object) -> bool:
    if isinstance(doc, list):
        return bool(doc) and all(_is_entry(x) for x in doc)
    if not isinstance(doc, Mapping):
        return False
    if _is_entry(doc):
        return True
    if isinstance(doc.get("results"), list) and all(_is_entry(x) for x in doc["results"]):
        return "page" in doc or "total_count" in doc or "totalCount" in doc or bool(
            doc["results"])
    return is_fortio(doc) and any(k in doc for k in _MESHERY_EXTRAS)


def runs_from_meshery(doc: object, *, doc_digest: str) -> list[RunResult]:
    if isinstance(doc, list):
        entries = [(as_map(x, f"[{i}]"), f"[{i}].") for i, x in enumerate(doc)]
    elif isinstance(doc, Mapping) and not _is_entry(doc) and isinstance(doc.get("results"), list):
        entries = [(as_map(x, f"results[{i}]"), f"results[{i}].")
                   for i, x in enumerate(doc["results"])]
    elif isinstance(doc, Mapping) and _is_entry(doc):
        entries = [(doc, "")]
    elif isinstance(doc, Mapping):          # a bare runner_results object
        return [_one(doc, {}, path="", doc_digest=doc_digest, index=0, raw=dict(doc))]
    else:
        fail("(root)", "not a Meshery result", doc)
    out: list[RunResult] = []
    for entry, path in entries:
        key = next(k for k in _RUNNER_KEYS if k in entry)
        rr = entry[key]
        items = ([(rr, f"{path}{key}.")] if isinstance(rr, Mapping) else
                 [(x, f"{path}{key}[{i}].") for i, x in enumerate(as_list(rr, path + key))])
        for item, ipath in items:
            out.append(_one(item, entry, path=ipath, doc_digest=doc_digest, index=len(out),
                            raw=dict(entry)))
    return out


def _one(item: object, entry: Mapping[str, Any], *, path: str, doc_digest: str, index: int,
         raw: dict[str, Any]) -> RunResult:
    r = as_map(item, path.rstrip(".") or "(root)")
    if not is_fortio(r):
        fail(path.rstrip(".") or "(root)", "runner result is not fortio-compatible JSON "
             "(no DurationHistogram/StartTime)", r)
    meshery: dict[str, Any] = {}
    for src, dst in (("meshery_id", "id"), ("mesheryId", "id"), ("name", "name"),
                     ("performance_profile", "performance_profile"),
                     ("performanceProfile", "performance_profile"), ("test_id", "test_id"),
                     ("testId", "test_id"), ("user_id", "user_id"), ("owner", "user_id"),
                     ("test_start_time", "test_start_time"), ("testStartTime", "test_start_time")):
        v = entry.get(src)
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            meshery[dst] = v
    ctx: dict[str, Any] = {"meshery": meshery}
    if entry.get("server_metrics") or entry.get("serverMetrics"):
        ctx["server_metrics"] = entry.get("server_metrics") or entry.get("serverMetrics")
    if r.get("kubernetes") is not None:
        ctx["kubernetes"] = r["kubernetes"]
    if r.get("detected-meshes") is not None:
        ctx["detected_meshes"] = r["detected-meshes"]
    generator = r.get("load-generator")
    runner = generator.lower() if isinstance(generator, str) and generator else "fortio"
    mesh_v = entry.get("mesh")
    mesh = mesh_v.strip().lower() if isinstance(mesh_v, str) and mesh_v.strip() else "none"
    url = r.get("URL")
    declared = None
    if mesh != "none" and isinstance(url, str) and not target_could_be_mesh(url, mesh):
        declared, mesh = mesh, "none"
    name = entry.get("name")
    profile = name if isinstance(name, str) and name else "meshery"
    result = run_from_fortio(r, run_id_for=lambda t: import_run_id(t, doc_digest, index),
                             fmt="meshery", path=path, runner=runner,
                             mesh=mesh, profile=profile, context=ctx, raw=raw)
    if declared is not None:
        # the document's word is kept, as a label: `meshlab runs label.declared_mesh=linkerd`
        result.spec["labels"] = {**result.spec.get("labels", {}), DECLARED_MESH_LABEL: declared}
        result.warnings.append(
            f"{path}mesh: the document declares mesh {declared!r} but its target {url} is on "
            f"the load generator's loopback, where no {declared} sidecar can be on the path; "
            f"stored as mesh 'none' with label {DECLARED_MESH_LABEL}={declared}")
    return result
