"""Core commands: `run` a profile (storing each run), serve the `echo` workload, and
`crosscheck` the load generators against each other.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from meshlab.cli._common import (
    VARYING_DIMENSIONS,
    add_store_option,
    console,
    dimension_text,
    fmt_us,
    load_profile_file,
    open_store,
    print_json,
    shown,
    store_path,
    table,
    varying_dimensions,
)

if TYPE_CHECKING:
    from meshlab.experiment import ExperimentOutcome
    from meshlab.profile import Profile
    from meshlab.results import RunResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run", help="run a profile and store every run",
        description="Run every run of PROFILE (a meshlab YAML, a Meshery JSON or an SMP YAML "
                    "profile) and store each result as it ends. Ctrl-C stores the run in "
                    "flight as aborted and exits 130.",
        epilog="exit status: 0 every run completed and held its SLO, 1 a run failed, was "
               "degraded (errors above 1 %% or below 95 %% of the requested rate, unless the "
               "profile's slo: says otherwise), breached its SLO or was aborted, 2 a profile "
               "or usage error, 130 interrupted. With --json: one JSON object per run on stdout "
               "(run_id, status, requested_rate_rps, achieved_rate_rps, requests, errors, "
               "unsent_requests, p50_us ... max_us, uncorrected_p99_us, slo, warnings).")
    p.add_argument("profile", metavar="PROFILE")
    add_store_option(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per run (one per line) on stdout")
    p.add_argument("--runner", metavar="NAME", help="use this runner instead of the profile's")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--stop-on-failure", action="store_true", default=None,
                      help="stop after the first broken run (the default unless the profile "
                           "says on_failure: continue)")
    stop.add_argument("--continue-on-failure", dest="stop_on_failure", action="store_false",
                      help="store a broken run and go on; later runs carry a warning")
    p.set_defaults(handler=cmd_run)

    e = subparsers.add_parser("echo", help="serve the echo workload until interrupted",
                              description="An HTTP/1.1 echo server steered by fortio's query "
                                          "parameters (?delay=10ms:20&status=503:5&size=1024).")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8080)
    e.add_argument("--name", default="echo")
    e.add_argument("--defaults", default="", metavar="QUERY",
                   help="query applied when a request does not set it, e.g. status=503:50")
    e.set_defaults(handler=cmd_echo)

    c = subparsers.add_parser(
        "crosscheck", help="run a profile with every available runner and compare what they "
                           "measured",
        description="Run each load point of PROFILE with every runner in turn and compare them "
                    "side by side. The runs are stored (like `meshlab run`) in one experiment "
                    "labelled crosscheck=true; --from-store rebuilds the table from it.",
        epilog="examples: meshlab crosscheck p.yaml --store cc.duckdb; later: meshlab "
               "crosscheck --from-store latest --store cc.duckdb; the runs: meshlab runs "
               "label.crosscheck=true --store cc.duckdb")
    c.add_argument("profile", metavar="PROFILE", nargs="?",
                   help="the profile to run (omit with --from-store)")
    add_store_option(c)
    c.add_argument("--from-store", metavar="EXPERIMENT|latest", dest="from_store",
                   help="run nothing: print the stored cross-check EXPERIMENT again")
    c.add_argument("--runners", metavar="NAMES",
                   help="comma-separated runners (default: every registered runner; missing "
                        "tools are reported as skipped)")
    c.add_argument("--json", action="store_true", help="one JSON object per row")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    c.set_defaults(handler=cmd_crosscheck)


# --- run ---------------------------------------------------------------------------------------

def _json_line(result: RunResult) -> dict[str, Any]:
    out = result.summary()
    out["experiment_id"] = result.context.get("experiment_id")
    dims = result.dimensions
    out["profile"] = dims.profile
    out["mesh"] = dims.mesh
    out["repeat"] = dims.repeat
    out["error"] = result.error
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """`--json` prints one JSON object per run as it ends (a contract scripts and CI rely on:
    run_id, status, requested/achieved rate, requests, errors, corrected p50..max_us and
    uncorrected_p99_us, unsent_requests, slo, warnings). Exit 0 when every run completed and
    held its SLO, 1 when a run failed, was degraded, breached its SLO or was aborted, 2 for a
    profile error (main), 130 on Ctrl-C once the run in flight is stored as aborted."""
    from meshlab.experiment import ExperimentStatus, run_profile
    from meshlab.progress import TerminalProgress
    from meshlab.results import RunStatus
    from meshlab.slo import breaches

    profile = _through_running_playground(load_profile_file(args.profile))
    path = store_path(args)
    progress = None if args.quiet else TerminalProgress()
    outcome = run_profile(profile, store=path, progress=progress, runner_override=args.runner,
                          on_result=(lambda r: print_json(_json_line(r))) if args.json else None,
                          stop_on_failure=args.stop_on_failure)
    if not args.json:
        _print_outcome(outcome, path)
    if outcome.reason:
        print(f"experiment {outcome.status}: {outcome.reason}", file=sys.stderr)
    if outcome.status == ExperimentStatus.ABORTED:
        print(f"interrupted: the run in flight is stored as aborted in {path}", file=sys.stderr)
        return 130
    bad = [r for r in outcome.results if r.status != RunStatus.COMPLETED or breaches(r)]
    for r in bad:
        why = r.error or _slo_reason(r)
        print(f"run {r.run_id} {r.status}: {shown(why, markup=False)}".rstrip(": "),
              file=sys.stderr)
    return 1 if bad or outcome.status != ExperimentStatus.COMPLETED else 0


def _slo_reason(result: RunResult) -> str:
    """`p99_ms 12.3 > 10` for each criterion a run's stored check failed."""
    check = result.context.get("slo")
    if not isinstance(check, dict):
        return ""
    out = []
    for name, c in (check.get("criteria") or {}).items():
        if isinstance(c, dict) and c.get("pass") is False:
            op = ">=" if name == "achieved_ratio" else "<="
            out.append(f"{name} {c.get('measured')} (must be {op} {c.get('limit')})")
    return "; ".join(out)


def _slo_cell(result: RunResult) -> str:
    check = result.context.get("slo")
    if not isinstance(check, dict):
        return "-"
    return "pass" if check.get("pass") else "FAIL"


def _through_running_playground(profile: Profile) -> Profile:
    """A direct profile whose target is a running playground's entry point (`meshlab playground
    up --data-plane envoy+mtls`) and that names no mesh measures that playground's data plane:
    its runs are stored as that mesh (the environment records data plane, mode and mTLS). A
    profile naming another mesh is refused by the environment's check, with the reason."""
    import os
    from pathlib import Path

    from meshlab.playground.process import default_state_dir
    from meshlab.playground.state import playground_at

    if profile.environment != "direct" or profile.meshes != ["none"]:
        return profile
    chosen = os.environ.get("MESHLAB_STATE_DIR")       # as `meshlab playground up` does
    pg = playground_at(profile.target, [Path(chosen) if chosen else default_state_dir()])
    if pg is None or pg.data_plane in ("", "none"):
        return profile
    print(f"note: {profile.target} is the entry point of the running playground {pg.name!r}: "
          f"the runs are stored as mesh {pg.data_plane} (mode {pg.mode})", file=sys.stderr)
    return profile.model_copy(update={"meshes": [pg.data_plane]})


def _print_outcome(outcome: ExperimentOutcome, path: str) -> None:
    tab = table(f"{shown(outcome.profile)}: experiment {outcome.experiment_id} "
                        f"({outcome.status})")
    dims = [{col: getattr(r.dimensions, col) for col in (*VARYING_DIMENSIONS, "shape")}
            for r in outcome.results]
    extra = varying_dimensions(dims)
    if any(d["shape"] != "constant" for d in dims):    # a shaped run's rate is its mean
        extra.append("shape")
    left = ("run_id", "mesh", "status", "slo", *extra)
    for col in ("run_id", "mesh", *extra, "rate", "conns", "status", "slo", "req/s", "requests",
                "unsent", "errors", "p50", "p90", "p99", "p99.9", "max"):
        tab.add_column(col, justify="left" if col in left else "right",
                         no_wrap=True, min_width=22 if col == "run_id" else None)
    for r, d in zip(outcome.results, dims, strict=True):
        s = r.summary()
        rate = r.requested_rate_rps
        tab.add_row(r.run_id, shown(r.dimensions.mesh or ""),
                      *(shown(dimension_text(d[col])) for col in extra),
                      "max" if rate <= 0 else f"{rate:g}",
                      str(s["connections"]), s["status"], _slo_cell(r),
                      f"{s['achieved_rate_rps']:,.0f}", f"{s['requests']:,}",
                      f"{r.unsent_requests:,}", f"{s['errors']:,}", fmt_us(s["p50_us"]),
                      fmt_us(s["p90_us"]), fmt_us(s["p99_us"]), fmt_us(s["p999_us"]),
                      fmt_us(s["max_us"]))
    out = console()
    out.print(tab)
    for r in outcome.results:
        for w in r.warnings:
            out.print(f"[yellow]warning:[/yellow] {r.run_id}: {w}")
    out.print(f"stored in {path}; see one run with: meshlab show RUN_ID --store {path}")


# --- echo --------------------------------------------------------------------------------------

def cmd_echo(args: argparse.Namespace) -> int:
    from meshlab.playground.echo import serve

    try:
        serve(args.host, args.port, name=args.name, defaults=args.defaults)
    except ValueError as exc:               # a bad --defaults query
        print(f"error: --defaults: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0


# --- crosscheck --------------------------------------------------------------------------------

def cmd_crosscheck(args: argparse.Namespace) -> int:
    """Exit 1 when a runner failed; a runner whose tool is missing is a skipped row."""
    from meshlab.crosscheck import crosscheck, crosscheck_from_store, render_crosscheck

    if (args.profile is None) == (args.from_store is None):
        print("error: crosscheck takes a PROFILE to run, or --from-store EXPERIMENT to print a "
              "stored cross-check again (not both)", file=sys.stderr)
        return 2
    path = store_path(args)
    if args.from_store:
        df = crosscheck_from_store(open_store(args, read_only=True), args.from_store)
    else:
        profile = load_profile_file(args.profile)
        runners = ([r.strip() for r in args.runners.split(",") if r.strip()]
                   if args.runners else None)
        progress = (None if args.quiet else
                    (lambda line: print(line, file=sys.stderr, flush=True)))
        df = crosscheck(profile, runners=runners, progress=progress, store=path)
    exp_id = df.attrs.get("experiment_id")
    if args.json:
        for row in df.to_dict(orient="records"):
            print_json({**row, "experiment_id": exp_id})
    else:
        out = console()
        out.print(render_crosscheck(df))
        done = "read from" if args.from_store else "stored in"
        out.print(f"{done} {path} as experiment {exp_id}; print it again with: meshlab "
                  f"crosscheck --from-store {exp_id} --store {path}")
    return 1 if (df["status"] == "failed").any() else 0
