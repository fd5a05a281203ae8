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
    table,
    varying_dimensions,
)

if TYPE_CHECKING:
    import pandas as pd

    from meshlab.results import RunResult

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
    p.add_argument("--status", choices=("completed", "aborted", "failed"))
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

    e = subparsers.add_parser("export", help="write a stored run as fortio JSON, SMP or CSV")
    e.add_argument("run_id", metavar="RUN_ID")
    e.add_argument("--format", required=True, choices=("fortio", "smp", "csv"))
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout")
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
    # Stored JSON text columns (spec, context, labels, host) come back as objects.
    if key in ("spec", "context", "labels", "host") and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


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
    return str(value)


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
        spec=result.spec, context=result.context,
        host=result.host.to_dict() if result.host else None,
        runner_version=result.runner_version,
    )
    return doc


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args, read_only=True)
    result = store.load(args.run_id)
    doc = _show_doc(result, result.context.get("experiment_id"))
    if args.json:
        print_json(doc)
        return 0
    out = console()
    out.print(f"[bold]run {result.run_id}[/bold]  {doc['status']}  runner {result.runner} "
              f"{result.runner_version}".rstrip())
    dims = result.dimensions
    out.print(f"profile {dims.profile}  mesh {dims.mesh}  "
              f"target {dims.target}  {doc['started_at'][:19]} .. "
              f"{doc['ended_at'][:19]}")
    rate = result.requested_rate_rps
    out.print(f"requested {'max' if rate <= 0 else f'{rate:g} req/s'}  achieved "
              f"{result.achieved_rate_rps:,.1f} req/s  {result.requests:,} requests  "
              f"{result.errors:,} errors ({result.error_rate:.2%})  "
              f"{dims.connections} connections  {result.duration_s:g} s")
    if result.error:
        out.print(f"[red]error:[/red] {result.error}")
    if not doc["latency_corrected"]:
        source = (f"as {result.runner} reported them" if result.context.get("percentile_rule")
                  else "from the stored histogram")
        out.print(f"latency NOT corrected for coordinated omission: {result.runner} timed each "
                  f"request from its actual send; percentiles {source} (as in `meshlab runs`)")
    out.print(_percentile_table(result, doc["percentiles_us"]))
    for title, counts in (("status codes", doc["status_codes"]), ("errors", doc["error_kinds"])):
        if counts:
            t = table(title)
            t.add_column("value")
            t.add_column("count", justify="right")
            for k, v in counts.items():
                t.add_row(str(k), f"{v:,}")
            out.print(t)
    for w in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")
    out.print("spec:", json.dumps(result.spec, sort_keys=True))
    out.print("context:", json.dumps(result.context, sort_keys=True, default=str))
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
    from meshlab.formats import import_results

    paths = _result_paths(args.file)
    results = [r for p in paths for r in import_results(p)]
    store = open_store(args)
    written = store.save_many(results)     # one connection, 200 runs per transaction
    for r in results:
        if args.json:
            print_json(r.summary())
        else:
            print(f"imported {r.run_id} ({r.runner}, {r.requests:,} requests)")
    if not args.json:
        source = paths[0] if len(paths) == 1 else f"{len(paths)} files"
        print(f"{len(results)} run(s) from {source} stored in {store.path} ({written} new)")
    return 0


def _result_paths(args: list[str]) -> list[Path]:
    """FILE arguments as files: a directory gives its result files, a quoted glob its matches
    (a name matching nothing is kept, so reading it reports the missing file)."""
    import glob

    from meshlab.errors import OutputParseError

    out: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in (".json", ".yaml", ".yml"))
            if not found:
                raise OutputParseError(f"{p}: no *.json, *.yaml or *.yml files in this directory")
            out += found
        elif not p.exists() and any(c in arg for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))]
            out += [m for m in matches if m.is_file()] or [p]
        else:
            out.append(p)
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from meshlab.formats import export_run

    store = open_store(args, read_only=True)
    result = store.load(args.run_id)
    text = export_run(result, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.format} of run {args.run_id} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
