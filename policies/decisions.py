"""Turning scored cells into decisions: alternatives, free devices, immediate placement.

Shared by the built-in policies; everything here reads a :class:`~policies.scoring.CostCube`
and the devices, never the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.candidates import unfit_reason
from policies.scoring import CostCube, Pool
from policies.types import Alternative, Decision, Device, JobSpec

__all__ = [
    "alternative_at",
    "best_alternatives",
    "fifo_order",
    "free_devices",
    "plan_immediately",
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
    cube: CostCube, j: int, p: int, s: int, devices: Iterable[Device] | None = None
) -> Alternative:
    """The scored cell (job ``j``, pool ``p``, slot ``s``) as an :class:`Alternative`.

    Without ``devices`` the first ``tensor_parallel`` devices of the pool are named.
    """
    pool = cube.pools[p]
    need = cube.jobs[j].workload.tensor_parallel
    chosen = tuple(devices) if devices is not None else pool.devices[:need]
    return Alternative(
        device_ids=tuple(d.device_id for d in chosen),
        region=pool.region,
        gpu=pool.gpu.name,
        start=cube.grid.time(s),
        duration_s=float(cube.duration_s[j, p]),
        energy_j=float(cube.energy_j[j, p]),
        intensity_g_per_kwh=float(cube.intensity_g_per_kwh[j, p, s]),
        operational_g=float(cube.operational_g[j, p, s]),
        embodied_g=float(cube.embodied_g[j, p]),
    )


def run_now_alternative(cube: CostCube, j: int) -> Alternative | None:
    """The counterfactual: start at once on the fastest admissible pool (None: none fits)."""
    admissible = np.flatnonzero(cube.admissible[j])
    if admissible.size == 0:
        return None
    p = int(admissible[np.argmin(cube.duration_s[j, admissible])])
    return alternative_at(cube, j, p, 0)


def best_alternatives(
    cube: CostCube, j: int, cost: FloatArray, exclude: int, limit: int
) -> tuple[Alternative, ...]:
    """The best slot of each of the ``limit`` cheapest other pools, by ``cost`` ``(P, S)``."""
    if limit <= 0:
        return ()
    best_slot = np.argmin(cost, axis=1)
    best_cost = cost[np.arange(cost.shape[0]), best_slot]
    order = [int(p) for p in np.argsort(best_cost) if p != exclude and np.isfinite(best_cost[p])]
    return tuple(alternative_at(cube, j, p, int(best_slot[p])) for p in order[:limit])


def plan_immediately(
    policy: str,
    cube: CostCube,
    metric: FloatArray,
    now: datetime,
    what: str,
    alternatives: int = 3,
) -> list[Decision]:
    """Start each job now on the free admissible pool with the least ``metric`` ``(J, P)``.

    Jobs are taken in FIFO order (:func:`fifo_order`); a job with no free fitting GPU is held,
    one that fits nowhere is rejected. ``what`` names the metric in reasons.
    """
    taken: set[str] = set()
    decisions: dict[int, Decision] = {}
    for j in fifo_order(cube.jobs):
        job = cube.jobs[j]
        row = np.where(cube.admissible[j], metric[j], np.inf)
        run_now = run_now_alternative(cube, j)
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
