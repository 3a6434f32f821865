"""``carbond replay`` and ``carbond tune``: policies replayed on real traces through the
daemon's tick loop (see :mod:`daemon.replay`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from daemon.cli.output import print_json, print_table, stderr_line, writable
from daemon.cli.replay_common import (
    add_inputs,
    check_grid,
    check_policies,
    inputs_from,
    parse_slacks,
    print_notes,
    progress,
    quiet_logs,
)
from daemon.errors import UsageError
from daemon.replay.attribution import policy_rows, temporal_potential
from daemon.replay.driver import PolicyRun, ReplaySetup
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import (
    PolicySpec,
    build_setup,
    load_setup,
    parse_duration_s,
    parse_grid,
    parse_policies,
    read_inputs,
)
from daemon.replay.ledger_jobs import count_unfit
from daemon.replay.parallel import Replays, beside
from daemon.replay.plots import plot_runs, plot_sites
from daemon.replay.report import write_jobs_csv, write_optimum_csv
from daemon.replay.solvers import (
    Solved,
    bound_row,
    no_bound_row,
    optimum_row,
    require_exact_runs,
    solve_bound,
    solve_optimum,
)
from daemon.reports.pareto import mark_front
from daemon.reports.render import share
from policies import policy_names
from policies.bound import BoundInfeasibleError, LowerBound
from policies.optimum import IntegerOptimum

__all__ = ["register"]

DEFAULT_POLICIES = "run-now,lowest-energy,spatial,wait-awhile,carbon-window,oracle"


def _span(text: str) -> float:
    """A window length for ``--bound-window``: ``parse_duration_s``, more than 0, its errors as
    argparse's (which prints only its own error types as one line)."""
    try:
        span_s = parse_duration_s(text)
    except ReplayInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if span_s <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a window must be longer than 0")
    return span_s


def register(subparsers: Any) -> None:
    """Add ``replay`` and ``tune``."""
    replay = subparsers.add_parser(
        "replay",
        help="replay traces under several policies",
        description="Drive the daemon's own Service with a simulated clock, the simulated "
        "executor and CSV intensity traces over a request trace, once per policy and slack, "
        "and print each one's total gCO2e, energy, waiting and missed deadlines.",
    )
    add_inputs(replay)
    replay.add_argument(
        "--slack",
        default="4h",
        help="deadline slack after arrival (default 4h); a comma list runs each, e.g. 0,4h,12h",
    )
    replay.add_argument(
        "--policy",
        default=DEFAULT_POLICIES,
        help="comma list; parameters as name:key=value:key=value "
        f"(default {DEFAULT_POLICIES}; known: {', '.join(policy_names())})",
    )
    replay.add_argument("--bound", action="store_true",
                        help="also solve the LP lower bound (HiGHS) with the realised intensity "
                        "and report each policy's gap to it")  # fmt: skip
    replay.add_argument("--bound-window", type=_span, default=None, metavar="SPAN",
                        help="solve the bound on windows of SPAN by arrival (default: one LP, "
                        "one-day windows when too large), then tighten it with the whole "
                        "span's Lagrangian dual")  # fmt: skip
    replay.add_argument("--optimum", action="store_true",
                        help="also solve the best offline schedule with starts every 5 minutes "
                        "(HiGHS MIP, at most 5 minutes; for a day or less of jobs)")  # fmt: skip
    replay.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write jobs.csv (and the best schedule's optimum.csv with "
                        "--optimum) and PNG figures, one folder slack_<H>h per slack (a "
                        "ledger's jobs: in DIR itself)")  # fmt: skip
    replay.set_defaults(func=_replay)

    tune = subparsers.add_parser(
        "tune",
        help="sweep a policy's parameters: carbon vs waiting",
        description="Replay the traces once per combination of --grid values for one policy "
        "and print each one's gCO2e and mean wait, marking the carbon / waiting Pareto front.",
    )
    add_inputs(tune)
    tune.add_argument("--slack", default="4h", help="deadline slack after arrival (default 4h)")
    tune.add_argument(
        "--policy", default="carbon-window", help="the policy to tune (default carbon-window)"
    )
    tune.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                      help="values to sweep for one parameter (repeat for more)")  # fmt: skip
    tune.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                      help="draw carbon vs mean wait with the Pareto front")  # fmt: skip
    tune.set_defaults(func=_tune)


def _solve(
    setup: ReplaySetup, args: argparse.Namespace
) -> tuple[Solved[LowerBound] | BoundInfeasibleError | None, Solved[IntegerOptimum] | None]:
    """What ``--bound`` and ``--optimum`` ask for (None where not asked; the bound's error
    where no schedule meets every deadline)."""
    bound: Solved[LowerBound] | BoundInfeasibleError | None
    try:
        bound = solve_bound(setup, args.bound_window) if args.bound else None
    except BoundInfeasibleError as exc:
        bound = exc
    optimum = solve_optimum(setup) if args.optimum else None
    return bound, optimum


def _replay(args: argparse.Namespace) -> int:
    quiet_logs()
    _check_bound_options(args)
    inputs = inputs_from(args)
    specs = parse_policies(args.policy)
    check_policies(specs)
    slacks, own = _replay_slacks(args)
    writable(args.out, make=True)
    rows: list[dict[str, Any]] = []
    shown: set[str] = set()  # the same files for every slack: each note once
    read = read_inputs(inputs)  # once, each slack's replay built from it
    for slack_s in slacks:
        setup = build_setup(read, slack_s)
        print_notes(setup, shown)
        label = "ledger" if own else f"slack {_slack_hours(slack_s)} h"
        solving = [name for name, asked in (("--bound", args.bound), ("--optimum", args.optimum))
                   if asked]  # fmt: skip
        for option in solving:
            require_exact_runs(setup, option)  # before the replays, not after them
        with (
            Replays(setup, specs, args.workers) as replays,
            progress(specs, label, setup) as (bar, status),
            beside(partial(_solve, setup, args)) as solved,  # needs no replay: solved meanwhile
        ):
            runs = replays.results(bar)
            if not solved.done():
                status("waiting for " + " and ".join(solving))
            bound, optimum = solved.result()
            potential = None
            if isinstance(bound, Solved):  # the bound again, each job kept where run-now put it
                status("the temporal-only potential")
                potential = temporal_potential(setup, runs)
        summaries = policy_rows(setup, runs)
        if bound is not None:
            row = (
                bound_row(bound, summaries)
                if isinstance(bound, Solved)
                else no_bound_row(bound, summaries, len(setup.jobs))
            )
            row["temporal_only_potential"] = potential
            summaries.append(row)
        if optimum is not None:
            ticks = (setup.start, float(setup.tick_s))  # where the replays start jobs
            summaries.append(optimum_row(optimum, summaries, ticks=ticks))
        for summary in summaries:
            summary["slack_s"] = None if own else slack_s
        rows.extend(summaries)
        if args.out is not None:
            _write_out(args.out, None if own else slack_s, setup, runs, optimum)
    if args.json:
        print_json(_with_json_params(rows))
        return 0
    optimum_column = ("gap_to_optimum",) if args.optimum else ()
    columns = ("slack_h", "policy", "total_g", "operational_g", "embodied_g", "energy_kwh",
               "jobs_run", "rejected", "unfinished", "misses", "g_per_job", "mean_wait_s",
               "p95_wait_s", "vs_run_now", "spatial", "temporal", "of_oracle", "gap_to_bound",
               *optimum_column, "regions")  # fmt: skip
    print_table("Replay (realised lifecycle intensity; savings per job run vs run-now)", columns, [
        (_hours(r["slack_s"]), _name(r), r["total_g"], r.get("operational_g"),
         r.get("embodied_g"), r.get("energy_kwh"), r["jobs"], r["rejected"], r.get("unfinished"),
         r.get("deadline_misses"), r["g_per_job"], r.get("mean_wait_s"), r.get("p95_wait_s"),
         _pct(r["savings_vs_run_now"]), _pct(r.get("spatial_saving")),
         _pct(r.get("temporal_saving", r.get("temporal_only_potential"))),
         _pct(r.get("oracle_savings_captured")), _pct(r.get("gap_to_bound")),
         *(_pct(r.get("gap_to_optimum")) for _ in optimum_column),
         _regions(r.get("region_share", {})))
        for r in rows
    ], unfolded=True)  # fmt: skip
    notes = [r["note"] for r in rows if r.get("note")]
    for note in notes:
        print(note)
    if any("offset_share_by_day" in r for r in rows):
        _print_sites(rows)
    return 0


def _check_bound_options(args: argparse.Namespace) -> None:
    """``--bound-window`` shapes ``--bound``'s LP: alone it is refused, before any input is read
    (until 2026-12-07 it was ignored, the replays printed with no bound and no word)."""
    if args.bound_window is not None and not args.bound:
        raise ReplayInputError(
            "--bound-window: the windows of --bound's LP; give --bound too", field="--bound-window"
        )


def _replay_slacks(args: argparse.Namespace) -> tuple[list[float], bool]:
    """``replay``'s slacks, and whether the jobs keep their own deadlines instead (a ledger's:
    ``--slack`` does not apply, so one replay, its rows' ``slack_s`` None)."""
    slacks = parse_slacks(args.slack, several=True)
    own = args.jobs_format == "ledger"
    if own and len(slacks) > 1:
        raise ReplayInputError(
            "--slack: a ledger's jobs keep their own deadlines (one replay)", field="--slack"
        )
    return slacks, own


def _write_out(
    out: Path, slack_s: float | None, setup: ReplaySetup, runs: Sequence[PolicyRun],
    optimum: Solved[IntegerOptimum] | None,
) -> None:  # fmt: skip
    """``--out``: one slack's jobs.csv, optimum.csv (with ``--optimum``) and figures, in
    ``slack_<hours>h`` under ``out`` (in ``out`` itself for a ledger's jobs, ``slack_s`` None).
    """
    folder = out if slack_s is None else out / _slack_folder(slack_s)
    write_jobs_csv(folder / "jobs.csv", runs)
    if optimum is not None:
        write_optimum_csv(folder / "optimum.csv", optimum.value)
    plot_runs(folder, runs, setup.actuals())
    plot_sites(folder, runs)


def _slack_folder(slack_s: float) -> str:
    """``--out``'s folder for a slack: ``slack_4h``, ``slack_0.5h``, its hours in fixed
    notation with every digit that tells two slacks apart (until 2026-12-07 ``:g``: a slack of
    0.1 s wrote ``slack_2.77778e-05h``, and 1234567 h and 1234568 h shared a folder)."""
    return f"slack_{_slack_hours(slack_s)}h"


def _slack_hours(slack_s: float) -> str:
    """A slack's hours as ``--out``'s folders and the progress label write them: ``4``,
    ``0.5``, ``0.00002777777777777778`` (0.1 s), fixed notation with every digit that tells two
    slacks apart (until 2026-12-07 the label wrote ``:g``, ``2.77778e-05``)."""
    return str(np.format_float_positional(slack_s / 3600, trim="-"))


def _print_sites(rows: Sequence[dict[str, Any]]) -> None:
    """The on-site energy table: grid energy and grams, PV and battery energy, the offset."""
    print_table("On-site energy (facility kWh; offset = share covered by PV and battery)",
                ("slack_h", "policy", "grid_kwh", "pv_kwh", "battery_kwh", "offset",
                 "operational_g", "total_g"),
                [(_hours(r["slack_s"]), _name(r), r["grid_kwh"], r["pv_kwh"], r["battery_kwh"],
                  _pct(r["offset_share"]), r["operational_g"], r["total_g"])
                 for r in rows if "grid_kwh" in r], unfolded=True)  # fmt: skip


def _name(row: dict[str, Any]) -> str:
    """A row's policy as ``--policy`` names it (``carbon-window:min_saving=0.1``), so that two
    settings of one policy are told apart; the solvers' rows by their name alone."""
    if row["policy"] in ("lp-bound", "mip-optimum"):
        return str(row["policy"])
    return PolicySpec(row["policy"], row["params"]).label


def _with_json_params(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` for ``--json``, each parameter that is not a finite number written as
    ``--policy`` takes it (``"urgent_s": "inf"``): the JSON's cleaning writes such a float as
    ``null``, which read as the parameter left at its default (until 2026-12-07)."""
    return [
        {**row, "params": {key: value if not isinstance(value, float) or math.isfinite(value)
                           else str(value) for key, value in row["params"].items()}}
        for row in rows
    ]  # fmt: skip


def _hours(seconds: float | None) -> float | str:
    """A slack in hours for the tables; ``-`` for a ledger's jobs (their own deadlines)."""
    return "-" if seconds is None else seconds / 3600


def _pct(value: float | None) -> str:
    """A share as ``carbond report`` shows one (:func:`share`): to one decimal, more where one
    would hide it (a gap of -0.03 % read ``0.0%`` until 2026-12-07), zero unsigned."""
    return "-" if value is None else share(value)


def _regions(shares: dict[str, float]) -> str:
    """The regions column: each region's share of the jobs in whole percents, more where a
    whole percent would hide one (a 0.4 % share read ``0%`` until 2026-12-07)."""
    return " ".join(f"{region}:{share(value, places=0)}" for region, value in shares.items())


def _tune(args: argparse.Namespace) -> int:
    quiet_logs()
    if "," in args.policy:
        raise ReplayInputError("--policy: tune sweeps one policy", field="--policy")
    base = parse_policies(args.policy)[0]
    grid = parse_grid(args.grid) if args.grid else [{}]
    twice = sorted(set(base.params) & set(grid[0]))  # the grid's value silently won
    if twice:
        raise ReplayInputError(
            f"--policy {base.label} and --grid both give {', '.join(twice)} (give each once)"
        )
    baseline = PolicySpec("run-now", {})
    tuned = [PolicySpec(base.name, {**base.params, **combo}) for combo in grid]
    # `--policy run-now` is the baseline itself: replayed once, not twice
    specs = [baseline, *(spec for spec in tuned if spec.label != baseline.label)]
    check_grid(base, grid)  # before reading the inputs (a minute for a large trace), as replay does
    if args.plot is not None:  # a format matplotlib cannot draw, or a folder: before any replay
        from daemon.reports.plots import image_format

        image_format(args.plot)
        if args.plot.is_dir():
            raise UsageError(f"--plot {args.plot}: a folder, not a file to draw in")
    writable(args.plot)
    slack_s = parse_slacks(args.slack, several=False)[0]
    setup = load_setup(inputs_from(args), slack_s)
    print_notes(setup)
    with (
        Replays(setup, specs, args.workers) as replays,
        progress(specs, "tune", setup) as (bar, _),
    ):
        runs = replays.results(bar)
    summary = policy_rows(setup, runs)
    rows = summary[1:] if len(specs) > len(tuned) else summary
    # the jobs no GPU can run, counted only where some setting rejected a job (a fit test per job)
    unfit = (
        count_unfit(setup.jobs, setup.cluster.devices()) if any(r["rejected"] for r in rows) else 0
    )
    mark_front(rows, unrunnable=unfit)
    for row in rows:  # as replay's rows (a ledger's jobs keep their own deadlines: None)
        row["slack_s"] = None if args.jobs_format == "ledger" else slack_s
    if args.plot is not None:
        from daemon.reports.pareto import plot_pareto

        plot_pareto(rows, args.plot, title=f"Tuning {base.name}: carbon vs waiting",
                    run_now_g=summary[0]["total_g"])  # fmt: skip
        stderr_line(f"wrote {args.plot}")
    if args.json:
        print_json(_with_json_params(rows))
        return 0
    keys = sorted({k for r in rows for k in r["params"]})
    print_table(
        f"Tuning {base.name}: carbon vs waiting (* = Pareto front of the settings that ran "
        "every job by its deadline)",
        (*keys, "total_g", "jobs_run", "rejected", "unfinished", "vs_run_now", "mean_wait_s",
         "p95_wait_s", "misses", "pareto"),
        [(*(r["params"].get(k) for k in keys), r["total_g"], r["jobs"], r["rejected"],
          r["unfinished"], _pct(r["savings_vs_run_now"]), r["mean_wait_s"], r["p95_wait_s"],
          r["deadline_misses"],
          "*" if r["pareto"] else (f"no: {r['excluded']}" if r["excluded"] else ""))
         for r in sorted(rows, key=lambda r: r["total_g"])],
        unfolded=True,
    )  # fmt: skip
    return 0
