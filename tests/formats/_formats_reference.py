"""Where the golden reference files are (tests/fixtures/, copied from upstream: see SOURCE.md in
each folder); fails loudly if any is missing, because these tests must not skip."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures"

FORTIO_FILES = sorted((REFERENCE / "fortio").glob("*.json"))
NIGHTHAWK_NATIVE = REFERENCE / "nighthawk" / "output_formatter.json.gold.json"
MESHERY_RESULTS = REFERENCE / "smp" / "meshery-test-results.json"
SMP_RESULT = REFERENCE / "smp" / "service-mesh-performance-result.yaml"
SMP_PROTO = REFERENCE / "smp" / "service_mesh_performance.proto"
MESHERY_SCHEMA = REFERENCE / "meshery-schemas" / "performance_profile.yaml"
MESHERY_API = REFERENCE / "meshery-schemas" / "api.yml"
ALL_RESULT_FILES = [*FORTIO_FILES, NIGHTHAWK_NATIVE, MESHERY_RESULTS, SMP_RESULT]


def _check_reference() -> None:
    missing = [p for p in [*ALL_RESULT_FILES, SMP_PROTO, MESHERY_SCHEMA, MESHERY_API]
               if not p.is_file()]
    if not REFERENCE.is_dir() or len(FORTIO_FILES) < 5 or missing:
        raise RuntimeError(
            f"golden reference files missing under {REFERENCE} (they are part of the repository; "
            f"missing: {[str(p) for p in missing] or 'fortio/*.json'})")


def fortio_docs(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every fortio-shaped result object inside a golden file."""
    doc = json.loads(path.read_text())
    if path.name.startswith("iter8"):
        for url, inner in doc.items():
            yield url, inner
            yield url + "#ConnectionStats", {"DurationHistogram": inner["ConnectionStats"]}
    elif path == MESHERY_RESULTS:
        for i, entry in enumerate(doc):
            for j, rr in enumerate(entry["runner_results"]):
                yield f"[{i}].runner_results[{j}]", rr
    else:
        yield path.name, doc


_check_reference()
