"""Turning scored cells into decisions: alternatives, free devices, immediate placement.

Shared by the built-in policies; everything here reads a :class:`~policies.scoring.CostCube`,
the devices and the forecasts, never the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.candidates import unfit_reason
from policies.footprint.accounting import operational_g
from policies.near_ties import TOLERANCE, earliest_near_slots
from policies.placement import mean_intensity_g_per_kwh
from policies.run_now_claims import RunNowCell, run_now_cells, slot_at
from policies.scoring import CostCube, Pool
from policies.types import Alternative, Decision, Device, JobSpec, ZoneIntensity

__all__ = [
    "alternative_at",
    "best_alternatives",
    "fifo_order",
    "free_devices",
    "plan_immediately",
    "priced_at",
    "ready_devices",
    "run_now_alternative",
]

FloatArray = npt.NDArray[np.float64]


def fifo_order(jobs: Sequence[JobSpec]) -> list[int]:
    """Job indices by priority (high first), then submission time, then id."""
    return sorted(
        range(len(jobs)),
        key=lambda j: (-jobs[j].priority, jobs[j].submitted_at, jobs[j].job_id),
    )


def free_devices(pool: Pool, now: datetime, taken: set[str]) -> list[Device]:
    """The pool's devices that are available, idle at ``now`` and not taken this tick."""
    return [
        d
        for d in pool.devices
        if d.available
        and (d.busy_until is None or d.busy_until <= now)
        and d.device_id not in taken
    ]


def alternative_at(
    cube: CostCube, j: int, p: int, s: int, devices: Iterable[Device] | None = None,
    start: datetime | None = None,
) -> Alternative:  # fmt: skip
    """The scored cell (job ``j``, pool ``p``, slot ``s``) as an :class:`Alternative`,
    starting at the slot or at ``start`` (priced at the slot all the same).

    Without ``devices`` the first ``tensor_parallel`` devices of the pool are named.
    """
    pool = cube.pools[p]
    need = cube.jobs[j].workload.tensor_parallel
    chosen = tuple(devices) if devices is not None else pool.devices[:need]
    return Alternative(
        device_ids=tuple(d.device_id for d in chosen),
        region=pool.region,
        gpu=pool.gpu.name,
        start=cube.grid.time(s) if start is None else start,
        duration_s=float(cube.duration_s[j, p]),
        energy_j=float(cube.energy_j[j, p]),
        intensity_g_per_kwh=float(cube.intensity_g_per_kwh[j, p, s]),
        operational_g=float(cube.operational_g[j, p, s]),
        embodied_g=float(cube.embodied_g[j, p]),
    )


def ready_devices(pool: Pool, at: datetime, need: int) -> tuple[datetime, list[Device]] | None:
    """When ``need`` of the pool's available devices are all free, at ``at`` or later, and
    which (those freeing first); None when the pool has fewer than ``need`` available."""
    available = sorted(
        (d for d in pool.devices if d.available),
        key=lambda d: (max(at, d.busy_until or at), d.device_id),
    )
    if len(available) < need or need < 1:
        return None
    chosen = available[:need]
    return max(at, chosen[-1].busy_until or at), chosen


def priced_at(
    alt: Alternative, start: datetime, forecast: ZoneIntensity, pue: float
) -> Alternative:
    """``alt`` moved to ``start`` and priced there as :func:`policies.placement.place` prices
    a run: the forecast's mean over it (the nearest value past its span), at the pool's PUE."""
    intensity = mean_intensity_g_per_kwh(forecast, start, alt.duration_s)
    return replace(
        alt, start=start, intensity_g_per_kwh=intensity,
        operational_g=float(operational_g(alt.energy_j, intensity, pue)),
    )  # fmt: skip


def run_now_alternative(
    cube: CostCube, j: int, cell: RunNowCell | None, forecasts: Mapping[str, ZoneIntensity]
) -> Alternative | None:
    """The counterfactual: job ``j``'s run-now ``cell`` (:mod:`policies.run_now_claims`: the
    start it could have had under ``run-now``, carbon ignored) as an alternative.

    Its start is the cell's (when its devices are free, between slots maybe), priced at the
    first slot from it; a start past the cube's last slot is priced from the zone's forecast
    (``forecasts``), as :func:`policies.placement.place` would. None without a cell (the job
    fits no pool).
    """
    if cell is None:
        return None
    p, free_at, devices = cell
    s = slot_at(cube.grid, cube.grid.offsets_s, free_at)
    last = cube.grid.count - 1
    if s <= last:
        return alternative_at(cube, j, p, s, devices, free_at)
    pool = cube.pools[p]
    alt = priced_at(alternative_at(cube, j, p, last, devices), cube.grid.time(s),
                    forecasts[pool.zone], pool.pue)  # fmt: skip
    return replace(alt, start=free_at)


def best_alternatives(
    cube: CostCube, j: int, cost: FloatArray, exclude: int, limit: int
) -> tuple[Alternative, ...]:
    """The best slot of each of the ``limit`` cheapest other pools, by ``cost`` ``(P, S)``
    (of a pool's slots within :data:`~policies.near_ties.TOLERANCE` of its cheapest, the
    earliest, as the planners take near-ties).

    Only slots at which the pool has enough devices free count, and the devices named are
    free then: an alternative is always a start the job could have had.
    """
    if limit <= 0:
        return ()
    now = cube.grid.time(0)
    need = cube.jobs[j].workload.tensor_parallel
    offsets = cube.grid.offsets_s[: cost.shape[1]]
    masked = np.array(cost, dtype=np.float64, copy=True)
    ready_at: dict[int, datetime] = {}
    for p in range(masked.shape[0]):
        ready = ready_devices(cube.pools[p], now, need)
        if ready is None:
            masked[p] = np.inf
            continue
        ready_at[p] = ready[0]
        masked[p, offsets < (ready[0] - cube.grid.start).total_seconds() - 1e-6] = np.inf
    best_slot = earliest_near_slots(masked, TOLERANCE)  # near-ties: the earliest start
    best_cost = masked[np.arange(masked.shape[0]), best_slot]
    order = [int(p) for p in np.argsort(best_cost) if p != exclude and np.isfinite(best_cost[p])]
    result = []
    for p in order[:limit]:
        s = int(best_slot[p])
        ready = ready_devices(cube.pools[p], max(cube.grid.time(s), ready_at[p]), need)
        assert ready is not None
        result.append(alternative_at(cube, j, p, s, ready[1]))
    return tuple(result)


def plan_immediately(
    policy: str,
    cube: CostCube,
    metric: FloatArray,
    now: datetime,
    what: str,
    forecasts: Mapping[str, ZoneIntensity],
    alternatives: int = 3,
    round_s: float | None = None,
) -> list[Decision]:
    """Start each job now on the free admissible pool with the least ``metric`` ``(J, P)``.

    Jobs are taken in FIFO order (:func:`fifo_order`); a job with no free fitting GPU is held,
    one that fits nowhere is rejected. ``what`` names the metric in reasons. ``round_s``: the
    planning interval, at whose rounds the run-now copies start (:mod:`policies.run_now_claims`).
    """
    taken: set[str] = set()
    decisions: dict[int, Decision] = {}
    cells = run_now_cells(
        cube.pools, cube.grid, cube.jobs, cube.duration_s, cube.admissible, round_s
    )
    for j in fifo_order(cube.jobs):
        job = cube.jobs[j]
        row = np.where(cube.admissible[j], metric[j], np.inf)
        run_now = run_now_alternative(cube, j, cells.get(j), forecasts)
        if not np.isfinite(row).any():
            devices = [d for pool in cube.pools for d in pool.devices]
            decisions[j] = Decision(job.job_id, "reject", unfit_reason(job, devices), policy)
            continue
        need = job.workload.tensor_parallel
        for p in (int(p) for p in np.argsort(row, kind="stable") if np.isfinite(row[p])):
            free = free_devices(cube.pools[p], now, taken)
            if len(free) >= need:
                chosen = free[:need]
                taken.update(d.device_id for d in chosen)
                alt = alternative_at(cube, j, p, 0, chosen)
                others = best_alternatives(cube, j, row[:, None], p, alternatives)
                reason = (
                    f"least {what} free device: {alt.gpu} in {alt.region}, "
                    f"{alt.total_g:.3g} g expected"
                )
                decisions[j] = Decision(job.job_id, "start", reason, policy, alt, run_now, others)
                break
        else:
            decisions[j] = Decision(
                job.job_id, "hold", "waiting for a free fitting GPU", policy, None, run_now
            )
    return [decisions[j] for j in range(len(cube.jobs))]
