"""The offline references a replay is compared with: the LP lower bound and the MIP optimum
(solved beside the replays), and their rows in the summary table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from daemon.replay.driver import ReplaySetup
from daemon.replay.errors import ReplayInputError
from daemon.replay.summary import baseline_index, placement_fields
from policies.bound import BoundInfeasibleError, LowerBound, lower_bound
from policies.optimum import GRID_S, IntegerOptimum, integer_optimum

__all__ = [
    "Solved",
    "bound_row",
    "no_bound_row",
    "on_grid",
    "optimum_row",
    "require_exact_runs",
    "solve_bound",
    "solve_optimum",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Solved(Generic[T]):
    """A solver's answer (:func:`solve_bound`, :func:`solve_optimum`) and the CPU seconds it
    took in the thread that solved it (``carbond replay`` solves beside its replays)."""

    value: T
    cpu_s: float


def solve_bound(setup: ReplaySetup, window_s: float | None = None) -> Solved[LowerBound]:
    """The LP lower bound (:mod:`policies.bound`) of ``setup`` on the realised intensity
    (it needs no replay: ``carbond replay`` solves it while its workers replay).

    Raises:
        ReplayInputError: runs have random duration noise (the bound needs each run's length).
    """
    require_exact_runs(setup, "--bound")
    actuals = setup.actuals()
    started = time.thread_time()  # policies has no clock: the solve is timed here
    bound = lower_bound(setup.jobs, setup.cluster.devices(), actuals,
                        lifetime_years=setup.lifetime_years, duration_factor=setup.truth_factor,
                        window_s=window_s)  # fmt: skip
    return Solved(bound, time.thread_time() - started)


def require_exact_runs(setup: ReplaySetup, option: str) -> None:
    """``option`` (``--bound``, ``--optimum``) needs each run's length, so no random noise.

    Raises:
        ReplayInputError: ``setup`` has duration noise.
    """
    if setup.duration_noise > 0:
        raise ReplayInputError(
            f"{option}: not defined with --duration-noise (random run times)", field=option
        )


def bound_row(solved: Solved[LowerBound], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The bound as a row named ``lp-bound``; adds ``gap_to_bound`` (grams over the bound,
    minus 1) to every row of a policy that ran every job the bound covers by its deadline
    (None otherwise: its total is over other jobs, or over a schedule the bound does not
    cover)."""
    bound = solved.value
    for row in rows:
        complete = _feasible(row, bound.jobs, len(bound.unschedulable)) and bound.total_g > 0
        row["gap_to_bound"] = row["total_g"] / bound.total_g - 1.0 if complete else None
    how = "one LP" if bound.windows == 1 else f"{bound.windows} windows of {bound.window_s}s"
    how += f", {bound.variables:,} variables, {bound.constraints:,} rows"
    if bound.windows_g is not None and bound.dual_g is not None:
        how += (f": {_g(bound.windows_g)} g; the whole span's Lagrangian dual:"
                f" {_g(bound.dual_g)} g after {bound.dual_steps} steps;")  # fmt: skip
    elif bound.windows_g is not None:
        how += "; the whole span too large for its Lagrangian dual,"
    else:
        how += ","
    note = (f"lp-bound: {_g(bound.total_g)} g over {bound.jobs} jobs ({how}"
            f" {solved.cpu_s:.1f} s CPU)")  # fmt: skip
    if bound.unschedulable:
        n = len(bound.unschedulable)
        note += f"; {n} job{'s' if n > 1 else ''} cannot meet {'their' if n > 1 else 'its'} "
        note += "deadline even alone (or fit no GPU): left out"
    return {
        "policy": "lp-bound",
        "params": {},
        "total_g": bound.total_g,
        "jobs": bound.jobs,
        "rejected": len(bound.unschedulable),
        "g_per_job": bound.total_g / max(bound.jobs, 1),
        "savings_vs_run_now": _bound_saving(rows, bound.total_g, bound.jobs),
        "bound_windows": bound.windows,
        "bound_window_s": bound.window_s,
        "bound_variables": bound.variables,
        "bound_windows_g": bound.windows_g,
        "bound_dual_g": bound.dual_g,
        "bound_dual_steps": bound.dual_steps,
        "note": note,
    }


def _g(grams: float) -> str:
    """Grams in a solver's note as the tables show a policy's: one decimal from 100 g, four
    significant digits below (a bound of 0.02 g read "0.0 g")."""
    return f"{grams:,.1f}" if abs(grams) >= 100 else f"{grams:.4g}"


def _feasible(row: dict[str, Any], jobs: int, left_out: int) -> bool:
    """Whether a policy's row is a schedule that the bound and the optimum compare with: it
    ran all ``jobs``, rejected only as many as the solver left out (those that cannot meet
    their deadline even alone, or fit no GPU: every policy rejects them or runs them late) and
    missed no deadline (a late run can emit less than any schedule that meets every deadline,
    so its gap would read as beating the bound). Run by their deadlines, its ``jobs`` are then
    the solver's. Until 2026-12-07 a single job that no GPU could run (a ledger's, for a region
    the cluster lacks) left every policy without a gap."""
    return row["jobs"] == jobs and row["rejected"] == left_out and not row.get("deadline_misses")


def no_bound_row(
    error: BoundInfeasibleError, rows: list[dict[str, Any]], jobs: int
) -> dict[str, Any]:
    """The ``lp-bound`` row where the LP is infeasible: no schedule of the ``jobs`` meets every
    deadline within the devices, so there is no bound (its grams None) and no gap."""
    for row in rows:
        row["gap_to_bound"] = None
    return {
        "policy": "lp-bound",
        "params": {},
        "total_g": None,
        "jobs": jobs,
        "rejected": None,
        "g_per_job": None,
        "savings_vs_run_now": None,
        "bound_windows": None,
        "bound_window_s": None,
        "bound_variables": None,
        "bound_windows_g": None,
        "bound_dual_g": None,
        "bound_dual_steps": 0,
        "note": f"lp-bound: none over {jobs} jobs: {error}; more slack or GPUs would give one",
    }


def solve_optimum(
    setup: ReplaySetup, grid_s: float = GRID_S, time_limit_s: float = 300.0
) -> Solved[IntegerOptimum]:
    """The best offline schedule with starts on a ``grid_s`` grid (:mod:`policies.optimum`,
    HiGHS MIP) of ``setup`` on the realised intensity.

    Raises:
        ReplayInputError: runs have random duration noise (the MIP needs each run's length).
    """
    require_exact_runs(setup, "--optimum")
    actuals = setup.actuals()
    started = time.thread_time()
    best = integer_optimum(setup.jobs, setup.cluster.devices(), actuals, grid_s=grid_s,
                           time_limit_s=time_limit_s, lifetime_years=setup.lifetime_years,
                           duration_factor=setup.truth_factor)  # fmt: skip
    return Solved(best, time.thread_time() - started)


def optimum_row(
    solved: Solved[IntegerOptimum],
    rows: list[dict[str, Any]],
    *,
    ticks: tuple[datetime, float] | None = None,
) -> dict[str, Any]:
    """The optimum as a row named ``mip-optimum``; adds ``gap_to_optimum`` to every row of a
    policy that ran every job it covers by its deadline. Its ``dual_g`` is HiGHS's lower bound
    for grid schedules (= ``total_g`` when optimal).

    ``ticks``: the replays' clock (its start and tick, s), where jobs start. The row's
    ``like_for_like`` says whether every tick is a grid instant, so every policy's schedule is
    one the MIP could have chosen and no gap is below 0 (None: not known). Where not (a 60 s
    tick, starts every 300 s), a policy may start between the grid's instants and come in
    under the grid's best schedule: its note says so, and that ``--tick`` equal to the grid
    (or a multiple of it) compares like for like. Until 2026-12-07 a negative gap at the
    default 60 s tick was printed unexplained, read as a policy beating the optimum."""
    best = solved.value
    total = best.total_g
    for row in rows:
        complete = _feasible(row, best.jobs, len(best.unschedulable)) and total
        row["gap_to_optimum"] = row["total_g"] / total - 1.0 if complete and total else None
    found = "no schedule found" if total is None else f"{_g(total)} g"
    status = (
        "optimal" if best.optimal
        else "no schedule meets every deadline within the devices" if best.infeasible
        else f"time limit, dual bound {_g(best.dual_g)} g"
    )  # fmt: skip
    note = (f"mip-optimum: {found} over {best.jobs} jobs (starts every {best.grid_s:g} s, "
            f"{status}, {best.variables:,} binaries, {solved.cpu_s:.1f} s CPU)")  # fmt: skip
    like = None if ticks is None else on_grid(ticks[0], ticks[1], best.grid_s)
    if ticks is not None and not like:
        note += (f"; the replays start jobs on a {ticks[1]:g} s tick, between this grid's "
                 "instants too, so a policy can come in under it (a negative gap_to_optimum: "
                 "a schedule off the grid, not one below the true optimum); --tick "
                 f"{best.grid_s:g} compares like for like")  # fmt: skip
    schedule = best.schedule
    placement = (
        placement_fields([s.wait_s for s in schedule], [s.region for s in schedule])
        if schedule
        else {}
    )
    return {
        "policy": "mip-optimum",
        "params": {"grid_s": best.grid_s},
        "like_for_like": like,
        "total_g": total,
        "dual_g": best.dual_g,
        "optimal": best.optimal,
        "jobs": best.jobs,
        "rejected": len(best.unschedulable),
        "g_per_job": None if total is None else total / max(best.jobs, 1),
        "savings_vs_run_now": None if total is None else _bound_saving(rows, total, best.jobs),
        **placement,
        "note": note,
    }


def on_grid(start: datetime, tick_s: float, grid_s: float) -> bool:
    """Whether every tick ``start + k * tick_s`` is an instant of the MIP's grid (multiples of
    ``grid_s`` seconds since the epoch, :func:`policies.optimum.integer_optimum`)."""
    return _multiple(tick_s, grid_s) and _multiple(start.timestamp(), grid_s)


def _multiple(value: float, of: float) -> bool:
    return abs(value / of - round(value / of)) < 1e-9


def _bound_saving(rows: list[dict[str, Any]], total_g: float, jobs: int) -> float | None:
    at = baseline_index([(row["policy"], row["params"]) for row in rows])
    base = None if at is None else rows[at]
    if base is None or base["jobs"] != jobs or base["total_g"] <= 0:
        return None
    return 1.0 - total_g / float(base["total_g"])
