"""Workbench commands: `report` (the HTML comparison report and CI gate) and `dashboard` (the
workbench served by Voila). Thin wrappers over meshlab.report.report_main and
meshlab.widgets.dashboard.dashboard_main; heavy imports happen only when a command runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from meshlab.cli._common import add_store_option, store_path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser(
        "report", help="write an HTML report comparing two run groups; exit 1 on a regression",
        description="Compare a candidate run group with a baseline and write a standalone HTML "
                    "report. Groups are run ids (id1,id2) or filters: mesh=none, 'mesh!=none', "
                    "mesh=envoy|nginx, label.build=candidate, experiment=ID|latest. Exit "
                    "codes: 0 no regression, 1 regression, 2 bad input (the report explains "
                    "it).")
    add_store_option(r)
    r.add_argument("--baseline", metavar="RUN_IDS|FILTER")
    r.add_argument("--candidate", metavar="RUN_IDS|FILTER")
    r.add_argument("--run", default=None, metavar="RUN_ID",
                   help="instead of a comparison: the page of one run (spectrum, histogram, "
                        "timeline, status codes, errors, warnings, SLO checks, context)")
    r.add_argument("--out", default=None, metavar="FILE",
                   help="HTML file to write (default report.html, or run-RUN_ID.html)")
    r.add_argument("--threshold", action="append", default=[], metavar="METRIC=LIMIT",
                   dest="thresholds", help="e.g. p99=10%%, p50=500us, error_rate=1%% "
                   "(repeatable; defaults: p50, p99, throughput 10%%, error_rate 1 point)")
    r.add_argument("--title", default="meshlab report")
    r.add_argument("--no-fail", action="store_true",
                   help="exit 0 even on a regression (still 2 on bad input)")
    r.add_argument("--figures", default=None, metavar="DIR",
                   help="also write every chart to DIR as PNG and SVG (needs kaleido)")
    r.add_argument("--trend-over", default="experiment", metavar="experiment|day|label.NAME",
                   help="points of the trend section (default experiment)")
    r.set_defaults(handler=cmd_report)

    t = subparsers.add_parser(
        "trend", help="p50/p99/error rate/throughput per run group over time or over a label",
        description="One row per run group and point (each experiment, each day, or each "
                    "value of a label such as label.build), in time order, with the range "
                    "of the previous points and the points that left it marked. Exit 1 when "
                    "the latest point of a group regressed (CI), 0 otherwise.")
    add_store_option(t)
    t.add_argument("--over", default="experiment", metavar="experiment|day|label.NAME",
                   help="what a point is (default experiment)")
    t.add_argument("--by", default="mesh", metavar="COLS",
                   help="run groups, comma-separated run columns (default mesh)")
    t.add_argument("--where", default=None, metavar="FILTER",
                   help="only these runs, e.g. profile=quickstart")
    t.add_argument("--window", type=int, default=5, metavar="N",
                   help="the band is the range of the previous N points (default 5)")
    t.add_argument("--tolerance", type=float, default=10.0, metavar="PCT",
                   help="how far beyond the band is a regression (default 10)")
    t.add_argument("--last", type=int, default=20, metavar="N",
                   help="show the last N points per group (default 20)")
    t.add_argument("--json", action="store_true", help="one JSON object per row")
    t.set_defaults(handler=cmd_trend)

    d = subparsers.add_parser(
        "dashboard", help="serve the workbench (Voila) on 127.0.0.1",
        description="Serve the workbench notebook with Voila until Ctrl-C. Any address other "
                    "than loopback requires --token.")
    add_store_option(d)
    d.add_argument("--port", type=int, default=8866)
    d.add_argument("--ip", default="127.0.0.1")
    d.add_argument("--token", default=None, metavar="SECRET",
                   help="visible to every local user in `ps`: prefer --token-file or "
                        "$MESHLAB_DASHBOARD_TOKEN")
    d.add_argument("--token-file", default=None, metavar="FILE",
                   help="read the token from FILE (its first line)")
    d.set_defaults(handler=cmd_dashboard)


def cmd_report(args: argparse.Namespace) -> int:
    import sys

    if args.run:
        from meshlab.report.run_page import run_page_main

        return run_page_main(run_id=args.run, store=store_path(args),
                             out=args.out or f"run-{args.run}.html")
    if not args.baseline or not args.candidate:
        print("meshlab report: give --baseline and --candidate (or --run RUN_ID for the page "
              "of one run)", file=sys.stderr)
        return 2
    from meshlab.report import report_main

    return report_main(baseline=args.baseline, candidate=args.candidate,
                       out=args.out or "report.html",
                       store=store_path(args), thresholds=list(args.thresholds),
                       title=args.title, fail_on_regression=not args.no_fail,
                       figures_dir=args.figures, trend_over=args.trend_over)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from meshlab.errors import ProfileError
    from meshlab.widgets.dashboard import dashboard_main

    token = args.token or os.environ.get("MESHLAB_DASHBOARD_TOKEN") or None
    if args.token_file:
        try:
            lines = Path(args.token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"--token-file: cannot read {args.token_file}: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ProfileError(f"--token-file: {args.token_file} is empty")
    return dashboard_main(port=args.port, ip=args.ip, token=token, store=store_path(args))


def cmd_trend(args: argparse.Namespace) -> int:
    from meshlab.analysis import parse_selector, select_runs
    from meshlab.analysis.trend import trend
    from meshlab.cli._common import console, open_store, print_json, table
    from meshlab.report.tables import metric_name
    from meshlab.report.trends import trend_table

    store = open_store(args, read_only=True)
    runs = store.runs()
    if args.where:
        runs = runs[runs["run_id"].isin(select_runs(runs, parse_selector(args.where)))]
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    rows = trend(runs, store.buckets(list(runs["run_id"])) if len(runs) else store.buckets([]),
                 over=args.over, group_by=by, window=args.window,
                 tolerance_pct=args.tolerance)
    rows = rows.groupby(by, dropna=False, sort=False).tail(args.last) if by else \
        rows.tail(args.last)
    latest = rows.groupby(by, dropna=False, sort=False).tail(1) if by else rows.tail(1)
    failed = latest[latest["regressions"] != ""]
    if args.json:
        for r in rows.to_dict("records"):
            print_json(r)
    else:
        t = trend_table(rows, group_by=by)
        out = table(f"trend over {args.over} ({len(runs)} runs)")
        for c in t.frame.columns:
            out.add_column(str(c), justify="left" if c in ("Mesh", "Point", "Status") else "right")
        for cells in t.frame.itertuples(index=False):
            out.add_row(*(f"[red]{v}[/red]" if str(v).startswith("regression") else str(v)
                          for v in cells))
        console().print(out)
        for r in failed.to_dict("records"):
            worse = ", ".join(metric_name(m.strip()) for m in str(r["regressions"]).split(","))
            group = " ".join(str(r[k]) for k in by)
            print(f"REGRESSION at {r['point']} ({group}): {worse}")
    return 1 if len(failed) else 0
