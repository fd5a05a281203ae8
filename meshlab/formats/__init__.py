"""Other tools' documents in and out: import fortio / Nighthawk / Meshery / SMP / k6 / h2load
results and profiles (the original kept in `RunResult.raw`; unreadable input raises
OutputParseError), and export runs as fortio JSON, SMP results, CSV and Parquet tables."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from meshlab._limits import MAX_IMPORT_BYTES, MAX_PROFILE_BYTES, mib
from meshlab.errors import OutputParseError, ProfileError
from meshlab.formats._doc import digest, import_run_id, parse_bytes
from meshlab.formats.fortio import fortio_json, is_fortio, is_nighthawk_fortio, run_from_fortio
from meshlab.formats.fortio_histogram import FortioHistogramData, parse_histogram_data
from meshlab.formats.h2load import is_h2load_text, run_from_h2load
from meshlab.formats.k6 import is_k6_summary, run_from_k6
from meshlab.formats.meshery import is_meshery, runs_from_meshery
from meshlab.formats.nighthawk import is_nighthawk, run_from_nighthawk
from meshlab.formats.profile_import import (
    ProfileImportWarning,
    profile_from_doc,
    profile_kind,
    profiles_from_doc,
)
from meshlab.formats.smp import is_smp_result, run_from_smp, smp_result
from meshlab.formats.table import (
    buckets_csv,
    buckets_path,
    is_buckets_csv,
    is_runs_csv,
    read_csv_rows,
    read_parquet_rows,
    runs_csv,
    runs_from_rows,
    write_dataset,
    write_tables,
)
from meshlab.profile import Profile, redact_document
from meshlab.results import RunResult


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """What meshlab can do with a document format."""

    name: str
    description: str
    can_import: bool
    can_export: bool


FORMATS: Mapping[str, FormatInfo] = {f.name: f for f in (
    FormatInfo("fortio", "fortio result JSON (HTTP or gRPC ping; one object or a list)",
               True, True),
    FormatInfo("fortio-map", "fortio results keyed by endpoint URL (iter8's metrics store)",
               True, False),
    FormatInfo("nighthawk-fortio", "Nighthawk --output-format fortio / "
               "experimental_fortio_pedantic", True, False),
    FormatInfo("nighthawk", "Nighthawk native JSON (nighthawk.client.Output)", True, False),
    FormatInfo("meshery", "Meshery performance results: fortio JSON in runner_results, "
               "with kubernetes and detected-meshes", True, False),
    FormatInfo("smp", "SMP PerformanceTestResult (YAML or JSON)", True, True),
    FormatInfo("k6", "k6 end-of-test summary JSON (--summary-export, or handleSummary's data); "
               "percentiles only", True, False),
    FormatInfo("h2load", "h2load's text output (stdout); a summary without percentiles",
               True, False),
    FormatInfo("meshlab", "meshlab RunResult JSON (RunResult.to_dict)", True, True),
    FormatInfo("csv", "runs table as CSV (export_runs also writes a buckets table)", True, True),
    FormatInfo("csv-buckets", "histogram buckets table as CSV", False, True),
    FormatInfo("parquet", "runs and buckets tables as Parquet files (pyarrow)", True, True),
    FormatInfo("parquet-dataset", "runs and buckets as a hive-partitioned Parquet dataset "
               "directory (profile=/mesh=)", True, True),
)}

_DETECTORS: tuple[tuple[str, Callable[[object], bool]], ...] = (
    ("meshlab", lambda d: isinstance(d, Mapping) and {"run_id", "latency", "spec"} <= set(d)),
    ("meshery", is_meshery),
    ("nighthawk-fortio", is_nighthawk_fortio),
    ("fortio", lambda d: is_fortio(d) or (isinstance(d, list) and bool(d)
                                          and all(is_fortio(x) for x in d))),
    ("fortio-map", lambda d: isinstance(d, Mapping) and bool(d)
     and all(is_fortio(v) for v in d.values())),
    ("nighthawk", is_nighthawk),
    ("smp", is_smp_result),
    ("k6", is_k6_summary),
)


def detect_format(doc: object) -> str:
    """The import format of a parsed document (or of raw bytes); OutputParseError if none."""
    if isinstance(doc, bytes | bytearray | memoryview):
        doc = parse_bytes(bytes(doc))
    for name, matches in _DETECTORS:
        if matches(doc):
            return name
    kind = profile_kind(doc)
    hint = (f"; it looks like a {kind} profile: use load_profile_any" if kind else
            "; expected fortio/Nighthawk/Meshery/k6 JSON, an SMP result or h2load's "
            "output")
    keys = f" (keys: {', '.join(sorted(map(str, doc))[:10])})" if isinstance(doc, Mapping) else ""
    raise OutputParseError(f"not a recognised result document{hint}{keys}",
                           excerpt=_excerpt(doc))


def import_results(source: str | os.PathLike[str] | bytes, *,
                   fmt: str | None = None) -> list[RunResult]:
    """Normalized runs from a result file (path) or its bytes; `fmt` skips detection (an
    unknown `fmt` raises ProfileError, an unreadable document OutputParseError).

    Percentiles: a fortio, Nighthawk or SMP run keeps the values its tool reported (fortio's
    interpolation inside its buckets) in `context["headline_percentiles_us"]`; they are the
    run's own p50/p90/p99/p99.9 (`RunResult.headline_percentile_us`, the store's `runs`
    columns) exactly. The histogram spreads each fortio bucket uniformly, as fortio's rule
    assumes, so merged and pooled percentiles (`analysis.pooled_percentiles`, `compare`)
    come from it and agree with fortio's only to within one fortio bucket."""
    table = _table_runs(source)
    if table is not None:
        return [_redact_import(r) for r in table]
    data, name = _read(source)
    if is_runs_csv(data) or is_buckets_csv(data):
        return [_redact_import(r) for r in _csv_runs(data, name, source)]
    if fmt not in (None, *_IMPORTERS, "h2load"):
        raise ProfileError(f"fmt: cannot import {fmt!r}; use one of "
                           f"{', '.join(sorted([*_IMPORTERS, 'h2load']))}, or fmt=None to "
                           "detect it", source=name)
    if fmt == "h2load" or (fmt is None and is_h2load_text(data)):
        try:
            return [_redact_import(run_from_h2load(data, run_id_for=_ids(digest(data))(0),
                                                   ended_at=_modified_at(source)))]
        except OutputParseError as exc:
            if name != "document":
                exc.args = (f"{name}: {exc.args[0] if exc.args else exc}",)
            raise
    doc = parse_bytes(data, source=name)
    fmt = fmt or detect_format(doc)
    try:
        if fmt == "k6":       # k6 writes no time: the file's modification time dates the run
            results = [run_from_k6(doc, run_id_for=_ids(digest(data))(0),
                                   ended_at=_modified_at(source))]
        else:
            results = _IMPORTERS[fmt](doc, digest(data))
    except OutputParseError as exc:
        if name != "document" and not str(exc).startswith(name):
            exc.args = (f"{name}: {exc.args[0] if exc.args else exc}",)
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            ZeroDivisionError, RecursionError) as exc:
        # the last line of defence: the field checks should have caught this with a path
        raise OutputParseError(f"{name}: malformed {fmt} document ({type(exc).__name__}: {exc})",
                               excerpt=_excerpt(doc)) from exc
    return [_redact_import(r) for r in results]


def _redact_import(r: RunResult) -> RunResult:
    """The raw document and the spec echo the request: keep no credential."""
    r.raw = redact_document(r.raw) if r.raw is not None else None
    r.spec = redact_document(r.spec)
    r.context = redact_document(r.context, by_name=False)
    return r


def _table_runs(source: str | os.PathLike[str] | bytes) -> list[RunResult] | None:
    """meshlab's Parquet export (a file, or a dataset directory); None for anything else."""
    if isinstance(source, bytes | bytearray | memoryview):
        return None
    p = Path(source)
    try:
        if p.is_dir():
            runs, bpath = p / "runs", p / "buckets"
            if not runs.is_dir():
                raise OutputParseError(f"{p}: a directory, but not a parquet-dataset export "
                                       "(no runs/ inside)")
            buckets = read_parquet_rows(bpath) if bpath.is_dir() else []
            return runs_from_rows(read_parquet_rows(runs), buckets)
        with p.open("rb") as f:
            if f.read(4) != b"PAR1":
                return None
        if p.stat().st_size > MAX_IMPORT_BYTES:
            raise OutputParseError(f"{p}: larger than the import size limit of "
                                   f"{mib(MAX_IMPORT_BYTES)}")
        rows = read_parquet_rows(p)
        if rows and "bucket" in rows[0] and "spec" not in rows[0]:
            return []                       # a buckets table: read with its runs table
        bpath = buckets_path(p)
        return runs_from_rows(rows, read_parquet_rows(bpath) if bpath.is_file() else [])
    except OSError:
        return None                         # _read reports it
    except (KeyError, TypeError, ValueError) as exc:
        raise OutputParseError(f"{p}: malformed meshlab Parquet export "
                               f"({type(exc).__name__}: {exc})") from None


def _csv_runs(data: bytes, name: str, source: str | os.PathLike[str] | bytes
              ) -> list[RunResult]:
    if is_buckets_csv(data):
        return []                           # a buckets table: read with its runs table
    buckets: list[dict[str, Any]] = []
    if not isinstance(source, bytes | bytearray | memoryview):
        bpath = buckets_path(Path(source))
        if bpath.is_file():
            buckets = read_csv_rows(_read(bpath)[0])
    try:
        return runs_from_rows(read_csv_rows(data), buckets)
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise OutputParseError(f"{name}: malformed meshlab CSV export "
                               f"({type(exc).__name__}: {exc})") from None


def export_run(result: RunResult, fmt: str) -> str:
    """One run as text: "fortio" (JSON), "smp" (YAML), "meshlab" (JSON), "csv" or
    "csv-buckets". Credentials are redacted (a run stored before redaction covered URLs too)."""
    result = _redacted(result)
    if fmt == "fortio":
        return json.dumps(fortio_json(result), indent=2) + "\n"
    if fmt == "smp":
        return yaml.safe_dump(smp_result(result), sort_keys=False, allow_unicode=True)
    if fmt == "meshlab":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    if fmt == "csv":
        return runs_csv([result])
    if fmt == "csv-buckets":
        return buckets_csv([result])
    raise ProfileError(f"fmt: cannot export one run as {fmt!r}; use fortio, smp, meshlab, csv "
                       "or csv-buckets (for parquet: export_runs)")


def export_runs(results: Sequence[RunResult], fmt: str, path: str | os.PathLike[str]
                ) -> list[Path]:
    """Write the runs table to `path` and the buckets table beside it (`<stem>_buckets<ext>`)
    as "csv" or "parquet", or both as a hive-partitioned "parquet-dataset" in the new or empty
    directory `path` (`runs/`, `buckets/`); returns the two paths."""
    if fmt == "parquet-dataset":
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise ProfileError(f"path: {p} exists and is not an empty directory; a "
                               "parquet-dataset export needs a new or empty directory")
        return write_dataset([_redacted(r) for r in results], p)
    if fmt not in ("csv", "parquet"):
        raise ProfileError(f"fmt: export_runs writes parquet-dataset, csv or parquet, not "
                           f"{fmt!r}; use export_run for one document per run (fortio, smp, "
                           "meshlab)")
    return write_tables([_redacted(r) for r in results], fmt, Path(path))


def load_profile_any(path: str | os.PathLike[str]) -> Profile:
    """A meshlab profile YAML, a Meshery performance profile (JSON, camelCase or snake_case) or
    an SMP PerformanceTestConfig (YAML/JSON), detected from its keys. With several endpoints
    or clients the profile targets the first (see `import_profiles` for all of them)."""
    doc, source = _profile_doc(path)
    return profile_from_doc(doc, source=source)


def import_profiles(path: str | os.PathLike[str]) -> list[Profile]:
    """Every profile in a profile document: one per endpoint (and per SMP client)."""
    doc, source = _profile_doc(path)
    return profiles_from_doc(doc, source=source)


def fortio_histogram_data(doc: Mapping[str, Any], key: str = "DurationHistogram"
                          ) -> FortioHistogramData:
    """fortio's histogram `doc[key]`, typed, with fortio's own `calc_percentile`."""
    return parse_histogram_data(doc.get(key), key)


# --- internals ----------------------------------------------------------------------------------

def _redacted(result: RunResult) -> RunResult:
    return dataclasses.replace(
        result, spec=redact_document(result.spec),
        context=redact_document(result.context, by_name=False),
        raw=redact_document(result.raw) if result.raw is not None else None)


def _read(source: str | os.PathLike[str] | bytes, *, limit: int = MAX_IMPORT_BYTES,
          what: str = "import") -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), "document"
    else:
        p = Path(source)
        try:
            with p.open("rb") as f:
                data, name = f.read(limit + 1), str(p)
        except OSError as exc:
            raise OutputParseError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise OutputParseError(f"{name}: larger than the {what} size limit of {mib(limit)} "
                               f"({limit:,} bytes); split it into several files")
    return data, name


def _modified_at(source: str | os.PathLike[str] | bytes) -> datetime | None:
    """When a result file was last written (k6 and h2load write theirs at the end of the test);
    None for bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return None
    try:
        return datetime.fromtimestamp(Path(source).stat().st_mtime, UTC)
    except OSError:
        return None


def _profile_doc(path: str | os.PathLike[str]) -> tuple[object, str]:
    p = Path(path)
    try:
        data, _ = _read(p, limit=MAX_PROFILE_BYTES, what="profile")
    except OutputParseError as exc:
        raise ProfileError(f"(file): {exc}", source=str(p)) from None
    try:
        return parse_bytes(data, source="(document)"), str(p)
    except OutputParseError as exc:
        raise ProfileError(str(exc), source=str(p)) from None


def _excerpt(doc: object) -> str:
    try:
        return json.dumps(doc, default=str)[:300]
    except (TypeError, ValueError, RecursionError):
        return repr(doc)[:300]


def _ids(d: str) -> Callable[[int], Callable[[datetime], str]]:
    return lambda i: (lambda t: import_run_id(t, d, i))


def _fortio_docs(doc: object, d: str, fmt: str) -> list[RunResult]:
    docs = doc if isinstance(doc, list) else [doc]
    ids = _ids(d)
    return [run_from_fortio(x, run_id_for=ids(i), fmt=fmt,
                            path=f"[{i}]." if isinstance(doc, list) else "")
            for i, x in enumerate(docs)]


def _fortio_map(doc: object, d: str) -> list[RunResult]:
    if not isinstance(doc, Mapping):
        raise OutputParseError("expected an object of fortio results keyed by endpoint")
    ids = _ids(d)
    return [run_from_fortio(v, run_id_for=ids(i), fmt="fortio-map", path=f"{k}.",
                            context={"endpoint_key": str(k)})
            for i, (k, v) in enumerate(doc.items())]


def _meshlab(doc: object, d: str) -> list[RunResult]:
    if not isinstance(doc, Mapping):
        raise OutputParseError("expected a meshlab RunResult object")
    try:
        r = RunResult.from_dict(doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise OutputParseError(f"malformed meshlab run ({type(exc).__name__}: {exc})",
                               excerpt=_excerpt(doc)) from None
    for kind, h in (("latency", r.latency), ("service_time", r.service_time)):
        if (h.counts < 0).any() or h.total != int(h.counts.sum()):
            raise OutputParseError(f"{kind}: bucket counts are negative or do not add up",
                                   excerpt=_excerpt(doc.get(kind)))
    for name in ("requested_rate_rps", "achieved_rate_rps", "duration_s"):
        if not math.isfinite(getattr(r, name)):      # from_dict takes "NaN" for a number
            raise OutputParseError(f"{name}: expected a finite number",
                                   excerpt=_excerpt(doc.get(name)))
    r.context.setdefault("format", "meshlab")
    return [r]


_IMPORTERS: dict[str, Callable[[object, str], list[RunResult]]] = {
    "fortio": lambda doc, d: _fortio_docs(doc, d, "fortio"),
    "nighthawk-fortio": lambda doc, d: _fortio_docs(doc, d, "nighthawk-fortio"),
    "fortio-map": _fortio_map,
    "meshery": lambda doc, d: runs_from_meshery(doc, doc_digest=d),
    "nighthawk": lambda doc, d: [run_from_nighthawk(doc, run_id_for=_ids(d)(0))],
    "smp": lambda doc, d: [run_from_smp(doc, run_id_for=_ids(d)(0))],
    "k6": lambda doc, d: [run_from_k6(doc, run_id_for=_ids(d)(0))],
    "meshlab": _meshlab,
}

__all__ = [
    "FORMATS",
    "FormatInfo",
    "FortioHistogramData",
    "ProfileImportWarning",
    "detect_format",
    "export_run",
    "export_runs",
    "fortio_histogram_data",
    "import_profiles",
    "import_results",
    "load_profile_any",
]
