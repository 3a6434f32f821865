"""``carbond demo``: the real daemon on the paper's simulated setup, in a few seconds."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon.cli.context import number_within
from daemon.cli.demo import (
    DEMO_REGIONS,
    DEMO_START,
    DemoResult,
    refuse_used_state_dir,
    run_demo,
)
from daemon.cli.output import print_json, print_table
from daemon.logs import configure_logging
from daemon.reports.render import share
from daemon.settings.sections import MAX_INTERVAL_S
from policies import get_policy

__all__ = ["print_demo", "register"]


# With 0 the simulated clock would never move on; a microsecond tick would take ~10^11 ticks.
_TICK_S = number_within(1, MAX_INTERVAL_S, "a number of seconds")  # the daemon's longest


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    demo = subparsers.add_parser(
        "demo",
        help="run the daemon on simulated GPUs (T4 in CA-QC, RTX 6000 Ada in US-CAL-CISO "
        "and US-NW-PACE) with a handful of jobs; print decisions, outcomes and grams saved",
        description="Run the daemon's own Service on an embedded configuration (the paper's "
        "regions with simulated GPUs, a synthetic diurnal intensity per zone, seven jobs through "
        "the queue file) on a simulated clock from 2026-03-02 00:00 UTC until every job is "
        "final, then the same jobs with run-now as the baseline; print each decision, outcome "
        "and the grams (expected gCO2e) saved. Exit 0 when every job succeeded.",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep each run's queue files and ledger in DIR/<policy>/ and DIR/run-now/, "
        "for carbond jobs, status and report (no job logs: the simulated executor writes "
        "none; default: a temporary directory, removed)",
    )
    demo.add_argument("--policy", default="carbon-window", help="planner (default carbon-window)")
    demo.add_argument(
        "--tick-s",
        type=_TICK_S,
        default=300.0,
        help=f"simulated seconds per tick, 1 to {MAX_INTERVAL_S:g} (default 300)",
    )
    demo.add_argument("--verbose", action="store_true", help="show the daemon's log events")
    demo.add_argument("--json", action="store_true", help="print JSON, not tables")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    get_policy(args.policy)  # a misspelt name: one line, exit 2, before any work
    if args.state_dir is not None:  # an earlier demo's state dir too
        refuse_used_state_dir(args.state_dir, args.policy)
    configure_logging(level="INFO" if args.verbose else "WARNING", json=args.json or None)
    started = time.monotonic()
    if args.state_dir is not None:
        result = _run(args, args.state_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="carbond-demo-") as tmp:
            result = _run(args, Path(tmp))
    wall_s = time.monotonic() - started
    kept = args.state_dir is not None  # else the temporary directory is gone by now
    if args.json:
        print_json(_payload(result, wall_s, kept=kept))
    else:
        print_demo(result, wall_s, kept=kept)
    return 0 if all(j.state == "succeeded" for j in result.jobs) else 1


def _run(args: argparse.Namespace, state_dir: Path) -> DemoResult:
    if args.json or not sys.stdout.isatty():
        return run_demo(state_dir, policy=args.policy, tick_s=args.tick_s)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("simulating", total=None)

        def show(policy: str, simulated_s: float) -> None:
            bar.update(task, description=f"{policy}: simulated {simulated_s / 3600:.1f} h")

        return run_demo(state_dir, policy=args.policy, tick_s=args.tick_s, progress=show)


def _offset(at: Any) -> str:
    if at is None:
        return "-"
    hours = (at - DEMO_START).total_seconds() / 3600
    return f"+{hours:.1f} h"


def _payload(result: DemoResult, wall_s: float, *, kept: bool) -> dict[str, Any]:
    return {
        "policy": result.policy,
        "start": DEMO_START.isoformat(),
        "simulated_s": result.simulated_s,
        "ticks": result.ticks,
        "wall_s": round(wall_s, 3),
        "state_dirs": [str(path) for path in result.run_dirs] if kept else None,
        "regions": [{"name": r.name, "zone": r.zone, "gpus": list(r.gpus)} for r in DEMO_REGIONS],
        "jobs": [
            {
                "job_id": j.job_id,
                "model": j.model,
                "state": j.state,
                "region": j.region,
                "gpu": j.gpu,
                "submitted_at": j.submitted_at.isoformat(),
                "started_at": j.started_at.isoformat() if j.started_at else None,
                "finished_at": j.finished_at.isoformat() if j.finished_at else None,
                "waited_s": j.waited_s,
                "expected_total_g": j.expected_total_g,
                "run_now_total_g": j.run_now_total_g,
                "reason": j.reason,
            }
            for j in result.jobs
        ],
        "total_g": result.total_g,
        "run_now_total_g": result.run_now_total_g,
        "saved_g": result.saved_g,
    }


def _where(result: DemoResult, kept: bool) -> str:
    """Where the runs' state is: each ledger's own dir (`carbond jobs --state-dir` reads it,
    not their parent), or that it was a temporary directory, removed by now."""
    if not kept:
        return "state in a temporary directory, removed (--state-dir DIR keeps it)"
    where = f"state in {result.run_dirs[0]}"
    return where + "".join(f", the baseline's in {path}" for path in result.run_dirs[1:])


def print_demo(result: DemoResult, wall_s: float, *, kept: bool = True) -> None:
    """What `carbond demo` prints (docs/operations.md shows it; a test keeps the two equal);
    ``kept``: whether its state dir is still there (``--state-dir``)."""
    regions = ", ".join(f"{r.name} = {r.zone} ({len(r.gpus)}x {r.gpus[0]})" for r in DEMO_REGIONS)
    print(f"carbond demo: the daemon's Service with policy {result.policy!r}, simulated GPUs and "
          "the embedded diurnal intensity (LCA average signal)")  # fmt: skip
    print(f"  regions: {regions}")
    hours = result.simulated_s / 3600
    print(
        f"  {hours:.1f} simulated hours from {DEMO_START:%Y-%m-%d %H:%M} UTC in {result.ticks} "
        f"ticks, {wall_s:.1f} s wall; {_where(result, kept)}"
    )
    print_table(
        "Jobs: each decision and its outcome (grams: expected gCO2e, operational + embodied)",
        ("job", "model", "submitted", "decision", "started", "outcome", "g", "run-now g",
         "reason"),
        [
            (j.job_id, j.model, _offset(j.submitted_at),
             f"{j.gpu} in {j.region}" if j.region else "-", _offset(j.started_at),
             f"{j.state} {_offset(j.finished_at)}" if j.finished_at else j.state,
             j.expected_total_g, j.run_now_total_g, j.reason)
            for j in result.jobs
        ],
    )  # fmt: skip
    saved = result.saved_g / result.run_now_total_g if result.run_now_total_g else 0.0
    print(f"Total: {result.total_g:.2f} g with {result.policy} vs {result.run_now_total_g:.2f} g "
          "running everything at once on the fastest free GPU (the same jobs through the daemon "
          f"with run-now): saved {result.saved_g:.2f} g ({share(saved)}).")  # fmt: skip
