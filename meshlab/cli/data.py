"""Commands over stored runs: `runs` (list), `show`, `import` and `export` (`compare` has a
module of its own).

With `--json` every command prints one JSON object per line (a run, a comparison row ...).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshlab.cli._common import (
    add_store_option,
    console,
    fmt_us,
    open_store,
    print_json,
    shown,
    store_path,
    table,
    varying_dimensions,
    write_output,
)

if TYPE_CHECKING:
    import pandas as pd

    from meshlab.results import RunResult
    from meshlab.store import Store

# column -> header of the `runs` table (the run id starts with its UTC start time)
_LIST_COLUMNS = {"run_id": "run_id", "profile": "profile", "mesh": "mesh", "runner": "runner",
                 "rate_rps": "rate", "connections": "conns", "status": "status",
                 "achieved_rate_rps": "req/s", "requests": "requests", "errors": "errors",
                 "p50_us": "p50", "p99_us": "p99", "p999_us": "p99.9"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "runs", help="list stored runs, newest first",
        description="List stored runs, newest first. SELECTOR narrows them with the grammar "
                    "of compare and report: run ids, or conditions such as "
                    "'mesh!=none,experiment=latest', 'mesh=envoy|nginx', label.build=v2.")
    p.add_argument("selector", nargs="?", metavar="SELECTOR", help="only runs it selects")
    add_store_option(p)
    p.add_argument("--profile", help="only runs of this profile")
    p.add_argument("--mesh", help="only runs with this mesh / data plane")
    p.add_argument("--experiment", metavar="ID|latest",
                   help="only runs of this experiment (= SELECTOR experiment=ID)")
    p.add_argument("--status", choices=("completed", "degraded", "aborted", "failed"))
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20, 0=all)")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.set_defaults(handler=cmd_runs)

    s = subparsers.add_parser("show", help="one run: summary, percentiles, status codes, errors")
    s.add_argument("run_id", metavar="RUN_ID")
    add_store_option(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_show)

    i = subparsers.add_parser("import", help="store runs from a fortio, Nighthawk, Meshery or "
                                             "SMP result document (the original is kept)")
    i.add_argument("file", metavar="FILE", nargs="+",
                   help="result files, directories (their *.json/*.yaml/*.yml) or quoted globs")
    add_store_option(i)
    i.add_argument("--json", action="store_true", help="one JSON summary per imported run")
    i.set_defaults(handler=cmd_import)

    m = subparsers.add_parser(
        "merge", help="pool runs and experiments of other stores into one",
        description="Copy every experiment and run of each SRC store into --into. A run id "
                    "already there is skipped when identical, else reported as a conflict "
                    "and left as it was (exit 1); copied runs record merged_from/merged_at.")
    m.add_argument("sources", metavar="SRC", nargs="+", help="DuckDB store files to copy from")
    m.add_argument("--into", metavar="STORE", required=True, help="the store to copy into")
    m.add_argument("--json", action="store_true", help="one JSON report per SRC")
    m.set_defaults(handler=cmd_merge)

    e = subparsers.add_parser("export", help="write a stored run as fortio JSON, SMP or CSV, "
                              "or stored runs as a hive-partitioned Parquet dataset")
    e.add_argument("run_id", metavar="RUN_ID", nargs="?",
                   help="the run (parquet-dataset: optional, default every stored run)")
    e.add_argument("--format", required=True,
                   choices=("fortio", "smp", "csv", "parquet-dataset"))
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout (never over "
                   "the store, a DuckDB file or a symlink; parquet-dataset: a new or empty "
                   "directory, required)")
    e.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_store_option(e)
    e.set_defaults(handler=cmd_export)


# --- runs --------------------------------------------------------------------------------------

def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args, read_only=True)
    df = store.runs(profile=args.profile, mesh=args.mesh, status=args.status)
    if args.selector or args.experiment:
        from meshlab.analysis.selection import Selection, parse_selector, select_runs

        sel = parse_selector(args.selector) if args.selector else Selection()
        if args.experiment:
            sel = sel & parse_selector(f"experiment={args.experiment}")
        df = df[df["run_id"].isin(select_runs(df, sel))]
    df = df.sort_values(["started_at", "run_id"], ascending=False)
    if args.limit > 0:
        df = df.head(args.limit)
    if args.json:
        for row in df.to_dict(orient="records"):
            print_json({str(k): _json_field(str(k), v) for k, v in row.items()})
        return 0
    extra = varying_dimensions(df.to_dict(orient="records"))
    columns = [c for c in _LIST_COLUMNS if c in df.columns]
    columns[columns.index("mesh") + 1:columns.index("mesh") + 1] = extra
    _print_frame(df, columns, title=f"{len(df)} run(s) in {store.path}")
    return 0


def _json_field(key: str, value: Any) -> Any:
    # Stored JSON text columns (spec, context, labels, host) come back as objects; credentials
    # are redacted again (a store written before URL redaction may still hold some).
    from meshlab.profile import redact_document

    by_name = key != "context"        # `endpoint_key` in a context names no secret
    if key in ("spec", "context", "labels", "host") and isinstance(value, str):
        try:
            return redact_document(json.loads(value), by_name=by_name)
        except ValueError:
            return redact_document(value, by_name=by_name)
    return redact_document(value) if isinstance(value, str) else value


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key.endswith("_us"):
        return fmt_us(value)
    if key == "started_at":
        return str(value)[:19]
    if key == "rate_rps":
        return "max" if float(value) <= 0 else f"{float(value):g}"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return shown(value)


def _print_frame(df: pd.DataFrame, columns: list[str], *, title: str) -> None:
    tab = table(title)
    left = ("run_id", "profile", "mesh", "runner", "status", "started_at", "metric",
            "policy", "mode", "mtls", "protocol")
    for col in columns:
        tab.add_column(_LIST_COLUMNS.get(col, col), justify="left" if col in left else "right",
                         no_wrap=True, min_width=22 if col == "run_id" else None)
    for row in df[columns].itertuples(index=False):
        tab.add_row(*(_cell(c, v) for c, v in zip(columns, row, strict=True)))
    console().print(tab)


# --- show --------------------------------------------------------------------------------------

_SHOW_PS = (50, 75, 90, 99, 99.9, 99.99)


def _latency_corrected(result: RunResult) -> bool:
    """False when the run's tool timed each request from its actual send (fortio, Nighthawk and
    SMP imports say so with `latency_corrected: false`): its latency is not corrected for
    coordinated omission, whatever histogram it is stored in."""
    return result.context.get("latency_corrected") is not False


def _show_doc(result: RunResult, experiment_id: Any) -> dict[str, Any]:
    from meshlab.profile import redact_document

    # The same percentiles as `runs`, `run --json` and the store's p50_us.. columns: the
    # tool's own values for fortio/Nighthawk imports (`headline_percentile_us`).
    corrected = _latency_corrected(result)
    uncorrected = {str(p): result.headline_percentile_us(p, kind="service_time")
                   for p in _SHOW_PS}
    doc = result.summary()
    doc.update(
        experiment_id=experiment_id,
        started_at=result.started_at.isoformat(),
        ended_at=result.ended_at.isoformat(),
        error=result.error,
        latency_corrected=corrected,
        percentiles_us={
            # null for a run whose tool never measured from the intended send time
            "corrected": ({str(p): result.headline_percentile_us(p) for p in _SHOW_PS}
                          if corrected else None),
            "uncorrected": (uncorrected if corrected else
                            {str(p): result.headline_percentile_us(p) for p in _SHOW_PS}),
        },
        spec=redact_document(result.spec),
        context=redact_document(result.context, by_name=False),
        host=result.host.to_dict() if result.host else None,
        runner_version=result.runner_version,
    )
    return doc


def _print_slo(result: RunResult) -> None:
    """The run's stored check: each criterion's limit, measured value and pass."""
    check = result.context.get("slo")
    if not isinstance(check, dict) or not isinstance(check.get("criteria"), dict):
        return
    t = table(f"SLO ({check.get('source', 'default')}): "
              f"{'holds' if check.get('pass') else 'BREACHED'}")
    for col in ("criterion", "limit", "measured", "pass"):
        t.add_column(col, justify="left" if col == "criterion" else "right")
    for name, c in check["criteria"].items():
        if isinstance(c, dict):
            measured = c.get("measured")
            t.add_row(name, f"{c.get('limit'):g}" if isinstance(c.get("limit"), int | float)
                      else str(c.get("limit")), "-" if measured is None else f"{measured:g}",
                      "yes" if c.get("pass") else "NO")
    console().print(t)


def _load_run(store: Store, run_id: str) -> RunResult:
    """The stored run; an unknown id is an input error (exit 2), a broken store a failure."""
    from meshlab.errors import ProfileError, StoreError

    try:
        return store.load(run_id)
    except StoreError as exc:
        if store.runs(run_ids=[run_id]).empty:
            raise ProfileError(f"RUN_ID: {exc}") from None
        raise


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args, read_only=True)
    result = _load_run(store, args.run_id)
    doc = _show_doc(result, result.context.get("experiment_id"))
    if args.json:
        print_json(doc)
        return 0
    out = console()
    spec = doc["spec"]                   # redacted: the target prints without credentials
    dims = result.dimensions
    out.print(f"[bold]run {shown(result.run_id)}[/bold]  {shown(doc['status'])}  runner "
              f"{shown(result.runner)} {shown(result.runner_version)}".rstrip())
    out.print(f"profile {shown(dims.profile)}  mesh {shown(dims.mesh)}  protocol "
              f"{shown(dims.protocol)}  target {shown(spec.get('target'))}  "
              f"{doc['started_at'][:19]} .. "
              f"{doc['ended_at'][:19]}")
    rate = result.requested_rate_rps
    out.print(f"requested {'max' if rate <= 0 else f'{rate:g} req/s'}  achieved "
              f"{result.achieved_rate_rps:,.1f} req/s  {result.requests:,} requests  "
              f"{result.errors:,} errors ({result.error_rate:.2%})  "
              f"{shown(dims.connections)} connections  {result.duration_s:g} s")
    if dims.shape != "constant":
        out.print(f"shape {shown(dims.shape)}  (the requested rate is the shape's mean over "
                  f"the window; the per-second timeline follows the shape)")
    if result.error:
        out.print(f"[red]error:[/red] {shown(result.error)}")
    if result.unsent_requests:
        out.print(f"[yellow]{result.unsent_requests:,} requests came due and were never sent; "
                  f"they are counted in the corrected latency at their age at the end of the "
                  f"window (a lower bound)[/yellow]")
    if not doc["latency_corrected"]:
        source = (f"as {shown(result.runner)} reported them"
                  if result.context.get("percentile_rule") else "from the stored histogram")
        out.print(f"latency NOT corrected for coordinated omission: {shown(result.runner)} timed "
                  f"each request from its actual send; percentiles {source} (as in `meshlab "
                  f"runs`)")
    out.print(_percentile_table(result, doc["percentiles_us"]))
    for title, counts in (("status codes", doc["status_codes"]), ("errors", doc["error_kinds"])):
        if counts:
            t = table(title)
            t.add_column("value")
            t.add_column("count", justify="right")
            for k, v in counts.items():
                t.add_row(shown(k), f"{v:,}")
            out.print(t)
    _print_slo(result)
    for w in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {shown(w)}")
    out.print("spec:", shown(json.dumps(spec, sort_keys=True)))
    out.print("context:", shown(json.dumps(doc["context"], sort_keys=True, default=str)))
    return 0


def _percentile_table(result: RunResult, percentiles_us: dict[str, Any]) -> Any:
    pct = table("latency percentiles")
    pct.add_column("percentile")
    uncorrected = percentiles_us["uncorrected"]
    if percentiles_us["corrected"] is None:
        pct.add_column("uncorrected (from actual send)", justify="right")
        for p, v in uncorrected.items():
            pct.add_row(f"p{p}", fmt_us(v))
        pct.add_row("max", fmt_us(result.latency.max_us))
        return pct
    pct.add_column("corrected (from intended send)", justify="right")
    pct.add_column("uncorrected (service time)", justify="right")
    for p, v in percentiles_us["corrected"].items():
        pct.add_row(f"p{p}", fmt_us(v), fmt_us(uncorrected[p]))
    pct.add_row("max", fmt_us(result.latency.max_us), fmt_us(result.service_time.max_us))
    return pct


# --- import / export ---------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    from meshlab.errors import OutputParseError, ProfileError
    from meshlab.formats import import_results

    paths = _result_paths(args.file)
    results: list[RunResult] = []
    for path in paths:
        try:
            results += import_results(path)
        except OutputParseError as exc:   # a bad input file is an input error (exit 2)
            text = str(exc)
            raise ProfileError(text if str(path) in text else f"{path}: {text}") from None
    store = open_store(args)
    # a run already stored (meshlab's own export read back keeps its run id) is skipped
    ids = [r.run_id for r in results]
    present = set(store.runs(run_ids=ids)["run_id"]) if ids else set()
    for run_id in sorted(present):
        print(f"run {shown(run_id, markup=False)} is already in {store.path}; skipped",
              file=sys.stderr)
    results = [r for r in results if r.run_id not in present]
    written = store.save_many(results)     # one connection, 200 runs per transaction
    for r in results:
        if args.json:
            print_json(r.summary())
        else:
            print(f"imported {shown(r.run_id, markup=False)} ({shown(r.runner, markup=False)}, "
                  f"{r.requests:,} requests)")
    if not args.json:
        source = shown(paths[0] if len(paths) == 1 else f"{len(paths)} files", markup=False)
        print(f"{len(results)} run(s) from {source} stored in {store.path} ({written} new)")
    return 0


_RESULT_SUFFIXES = (".json", ".yaml", ".yml", ".csv", ".parquet")


def _result_paths(args: list[str]) -> list[Path]:
    """FILE arguments as files: a directory gives its result files, a quoted glob its matches
    (a name matching nothing is kept, so reading it reports the missing file)."""
    import glob

    from meshlab.errors import ProfileError

    out: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir() and (p / "runs").is_dir():
            out.append(p)                   # a parquet-dataset export
        elif p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in _RESULT_SUFFIXES)
            if not found:
                raise ProfileError(f"FILE: {p}: no *.json, *.yaml, *.yml, *.csv or *.parquet "
                                   "files in this directory")
            out += found
        elif not p.exists() and any(c in arg for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))]
            out += [m for m in matches if m.is_file()] or [p]
        else:
            out.append(p)
    return out


def cmd_merge(args: argparse.Namespace) -> int:
    import dataclasses

    from meshlab.store import Store

    into = Store(args.into)
    conflicts = 0
    for src in args.sources:
        rep = into.merge_from(src)
        conflicts += len(rep.conflicts)
        if args.json:
            print_json(dataclasses.asdict(rep))
            continue
        print(f"{shown(src, markup=False)}: {len(rep.added)} run(s) added, {len(rep.skipped)} "
              f"already present, {len(rep.conflicts)} conflict(s), "
              f"{len(rep.experiments_added)} experiment(s) added")
        for run_id in rep.conflicts:
            print(f"  conflict: run {shown(run_id, markup=False)} differs from the one in "
                  f"{shown(args.into, markup=False)}; kept as it was", file=sys.stderr)
    return 1 if conflicts else 0


def cmd_export(args: argparse.Namespace) -> int:
    from meshlab.errors import ProfileError
    from meshlab.formats import export_run, export_runs

    store = open_store(args, read_only=True)
    if args.format == "parquet-dataset":
        if not args.out:
            raise ProfileError("--out: parquet-dataset needs a directory to write")
        ids = [args.run_id] if args.run_id else [str(i) for i in store.runs()["run_id"]]
        paths = export_runs([_load_run(store, i) for i in ids], args.format, args.out)
        print(f"wrote {len(ids)} run(s) as a Parquet dataset to "
              f"{shown(args.out, markup=False)} ({', '.join(p.name for p in paths)})",
              file=sys.stderr)
        return 0
    if not args.run_id:
        raise ProfileError(f"RUN_ID: required for --format {args.format}")
    result = _load_run(store, args.run_id)
    text = export_run(result, args.format)
    if args.out:
        write_output(args.out, text, force=args.force, protect=[store_path(args)])
        print(f"wrote {args.format} of run {shown(args.run_id, markup=False)} to "
              f"{shown(args.out, markup=False)}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
