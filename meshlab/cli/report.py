"""Workbench commands: `report` (the HTML comparison report and CI gate) and `dashboard` (the
workbench served by Voila). Thin wrappers over meshlab.report.report_main and
meshlab.widgets.dashboard.dashboard_main; heavy imports happen only when a command runs."""

from __future__ import annotations

import argparse

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
    r.add_argument("--baseline", required=True, metavar="RUN_IDS|FILTER")
    r.add_argument("--candidate", required=True, metavar="RUN_IDS|FILTER")
    r.add_argument("--out", default="report.html", metavar="FILE",
                   help="HTML file to write (default report.html)")
    r.add_argument("--threshold", action="append", default=[], metavar="METRIC=LIMIT",
                   dest="thresholds", help="e.g. p99=10%%, p50=500us, error_rate=1%% "
                   "(repeatable; defaults: p50, p99, throughput 10%%, error_rate 1 point)")
    r.add_argument("--title", default="meshlab report")
    r.add_argument("--no-fail", action="store_true",
                   help="exit 0 even on a regression (still 2 on bad input)")
    r.add_argument("--figures", default=None, metavar="DIR",
                   help="also write every chart to DIR as PNG and SVG (needs kaleido)")
    r.set_defaults(handler=cmd_report)

    d = subparsers.add_parser(
        "dashboard", help="serve the workbench (Voila) on 127.0.0.1",
        description="Serve the workbench notebook with Voila until Ctrl-C. Any address other "
                    "than loopback requires --token.")
    add_store_option(d)
    d.add_argument("--port", type=int, default=8866)
    d.add_argument("--ip", default="127.0.0.1")
    d.add_argument("--token", default=None, metavar="SECRET")
    d.set_defaults(handler=cmd_dashboard)


def cmd_report(args: argparse.Namespace) -> int:
    from meshlab.report import report_main

    return report_main(baseline=args.baseline, candidate=args.candidate, out=args.out,
                       store=store_path(args), thresholds=list(args.thresholds),
                       title=args.title, fail_on_regression=not args.no_fail,
                       figures_dir=args.figures)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from meshlab.widgets.dashboard import dashboard_main

    return dashboard_main(port=args.port, ip=args.ip, token=args.token, store=store_path(args))
