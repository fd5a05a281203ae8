"""`meshlab search PROFILE`: the highest open-loop rate that holds the profile's SLO, found per
configuration (mesh, mode, policy, connections) by doubling then bisecting; every probe stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from meshlab.cli._common import (
    add_store_option,
    console,
    load_profile_file,
    print_json,
    store_path,
    table,
)

if TYPE_CHECKING:
    from meshlab.analysis.slo import SloSearchOutcome
    from meshlab.profile import Profile
    from meshlab.results import RunResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "search", help="find the highest open-loop rate that holds the profile's SLO",
        description="For each configuration of PROFILE (mesh, mode, policy, connections), run "
                    "open-loop probes, doubling the rate while the SLO holds and then bisecting, "
                    "and report the highest rate that held. The SLO is the profile's slo: block "
                    "(without one: at most 1 %% errors and at least 95 %% of the rate). Every "
                    "probe run is stored.",
        epilog="exit status: 0 every configuration held the SLO at some rate, 1 a "
               "configuration held it at no probed rate, 2 a profile or usage error, "
               "130 interrupted (the probe in flight is stored as aborted).")
    p.add_argument("profile", metavar="PROFILE")
    add_store_option(p)
    p.add_argument("--start-rps", type=float, default=None, metavar="RATE",
                   help="first probe rate (default: the profile's highest rate_rps, else 100)")
    p.add_argument("--max-rps", type=float, default=20_000.0, metavar="RATE",
                   help="never probe above this rate (default 20000)")
    p.add_argument("--precision", type=float, default=0.05,
                   help="stop bisecting when the bounds are this close, relatively (0.05)")
    p.add_argument("--max-probes", type=int, default=12, help="probes per configuration (12)")
    p.add_argument("--runner", metavar="NAME", help="use this runner instead of the profile's")
    p.add_argument("--json", action="store_true", help="one JSON object per configuration")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(handler=cmd_search)


def _configurations(profile: Profile) -> list[Profile]:
    """One single-run profile per distinct (mesh, mode, policy, connections) of `profile`."""
    out: list[Profile] = []
    seen: set[tuple[str, str, str, int]] = set()
    policies = {p.name: p for p in profile.policies}
    for spec in profile.expand():
        key = (spec.mesh, spec.dim("mode", "both"), spec.dim("policy", "none"), spec.connections)
        if key in seen:
            continue
        seen.add(key)
        pol = policies.get(key[2])
        out.append(profile.model_copy(update={
            "meshes": [key[0]], "modes": [key[1]], "policies": [pol] if pol else [],
            "repeats": 1, "loads": profile.loads.model_copy(update={"connections": [key[3]]})}))
    return out


def _label(p: Profile) -> dict[str, Any]:
    return {"mesh": p.meshes[0], "mode": p.modes[0],
            "policy": p.policies[0].name if p.policies else "none",
            "connections": p.loads.connections[0]}


def cmd_search(args: argparse.Namespace) -> int:
    from meshlab.experiment import shared_load_worker
    from meshlab.slo import SloSpec

    profile = load_profile_file(args.profile)
    if args.max_probes < 1 or args.precision <= 0 or args.max_rps <= 0:
        from meshlab.errors import ProfileError

        raise ProfileError("--max-probes must be >= 1, --precision and --max-rps > 0")
    rates = [r for r in profile.loads.rate_rps if r > 0]
    start = args.start_rps or (max(rates) if rates else 100.0)
    slo = profile.slo or SloSpec()
    path = store_path(args)
    rows: list[dict[str, Any]] = []
    with shared_load_worker():            # one load worker for every probe, not one each
        for config in _configurations(profile):
            label = _label(config)
            outcome = asyncio.run(_search(config, slo, start, args, path, label))
            rows.append(_row(label, outcome))
            if args.json:
                print_json(rows[-1])
    if not args.json:
        _print_table(profile.name, rows, slo.model_dump(exclude_none=True), path)
    return 1 if any(r["max_rate_rps"] <= 0 for r in rows) else 0


async def _search(config: Profile, slo: Any, start: float, args: argparse.Namespace,
                  path: str, label: dict[str, Any]) -> SloSearchOutcome:
    from meshlab.analysis.slo import search_max_rate
    from meshlab.experiment import ExperimentStatus, arun_profile
    from meshlab.progress import TerminalProgress

    where = " ".join(f"{k}={v}" for k, v in label.items())
    count = 0

    async def probe(rate: float) -> RunResult:
        nonlocal count
        count += 1
        one = config.model_copy(update={
            "loads": config.loads.model_copy(update={"rate_rps": [rate]})})
        outcome = await arun_profile(one, store=path, runner_override=args.runner,
                                     progress=None if args.quiet else TerminalProgress())
        if outcome.status == ExperimentStatus.ABORTED or not outcome.results:
            raise KeyboardInterrupt
        result = outcome.results[0]
        ok, why = slo.check(result)
        if not args.quiet:
            print(f"search {where}: probe {count} at {rate:,.0f} req/s: "
                  f"{'holds' if ok else 'breaks: ' + why} (run {result.run_id})",
                  file=sys.stderr, flush=True)
        return result

    return await search_max_rate(probe, slo=slo, start_rps=min(start, args.max_rps),
                                 max_rps=args.max_rps, precision=args.precision,
                                 max_probes=args.max_probes)


def _row(label: dict[str, Any], outcome: SloSearchOutcome) -> dict[str, Any]:
    failing = [p for p in outcome.probes if not p.passed]
    lowest = min(failing, key=lambda p: p.rate_rps) if failing else None
    return {**label, "max_rate_rps": outcome.max_rate_rps,
            "first_failing_rate_rps": lowest.rate_rps if lowest else None,
            "failing_reason": lowest.reason if lowest else None,
            "probes": [{"rate_rps": p.rate_rps, "run_id": p.run_id, "pass": p.passed,
                        "reason": p.reason} for p in outcome.probes]}


def _print_table(name: str, rows: list[dict[str, Any]], slo: dict[str, Any], path: str) -> None:
    limits = ", ".join(f"{k} {v:g}" for k, v in slo.items()) or "defaults (errors <= 1 %, " \
                                                                  "achieved >= 95 %)"
    tab = table(f"{name}: highest rate holding the SLO ({limits})")
    for col in ("mesh", "mode", "policy", "conns", "max req/s", "probes", "breaks at", "why"):
        tab.add_column(col, justify="right" if col in ("conns", "max req/s", "probes",
                                                       "breaks at") else "left")
    for r in rows:
        held = r["max_rate_rps"]
        tab.add_row(r["mesh"], r["mode"], r["policy"], str(r["connections"]),
                    f"{held:,.0f}" if held > 0 else "none held", str(len(r["probes"])),
                    "-" if r["first_failing_rate_rps"] is None
                    else f"{r['first_failing_rate_rps']:,.0f}", r["failing_reason"] or "")
    out = console()
    out.print(tab)
    out.print(f"every probe is stored in {path}; see one with: meshlab show RUN_ID "
              f"--store {path}")
