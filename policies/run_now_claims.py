"""The run-now counterfactual of a planning round: where and when each job would have started
under ``run-now`` with the same arrivals, as closely as the planner can know it.

``run-now`` takes the jobs first come, first served (:func:`policies.decisions.fifo_order`)
and gives each the fastest fitting pool among those whose GPUs free up first. So the
counterfactual does the same, and **the jobs of one round claim GPUs from each other**: the
first job takes the free GPU, the next one the next free GPU or waits for one to free up
(priced at that later start); a job whose copy would start at or after its deadline claims
nothing, as ``run-now`` expires it waiting. A GPU is free in the counterfactual from the later
of its ``busy_until`` (what holds it now) and its ``run_now_busy_until`` (the counterfactual
runs of jobs decided in earlier rounds, kept by the daemon from the decisions it recorded).

A copy starts at a **planning round**: ``run-now`` starts a waiting job only when the daemon
plans (every ``intervals.plan_s``; the replay's tick), so with ``round_s`` (that interval) a
copy starts at the first round at or after its GPUs free up, ``now`` (the round that builds
it, at or after its job's arrival) plus a whole number of ``round_s``
(:func:`run_now_ready`); its claim on them, and the deadline it is compared with
(:func:`expires_unstarted`), run from there. Without (None), from the moment they free up.

A job whose counterfactual is recorded already (:attr:`JobSpec.run_now_recorded`: its run
holds its GPUs through ``run_now_busy_until``) claims nothing: its counterfactual this round
(for the "% below run-now" of its reason) sees only the earlier rounds' runs, except its own
(:attr:`Device.run_now_holder`: a job does not wait for its own run to end).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from policies.scoring import Pool, SlotGrid
from policies.types import Device, JobSpec

__all__ = [
    "RunNowCell",
    "claimed_cells",
    "expires_unstarted",
    "run_now_cells",
    "run_now_holders",
    "run_now_ready",
    "slot_at",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# A job's counterfactual: its pool, its start and the devices it takes.
RunNowCell = tuple[int, datetime, tuple[Device, ...]]

# The order of a pool's (free, device id, device): by when free, then by id.
_BY_TIME_AND_ID = itemgetter(0, 1)


def slot_at(grid: SlotGrid, offsets_s: Sequence[float] | FloatArray, at: datetime) -> int:
    """The first slot of ``grid`` (whose ``offsets_s``: a list is quickest) starting at or
    after ``at``, counted on past the horizon's last slot as the grid's steps go on."""
    offset_s = (at - grid.start).total_seconds()
    first = bisect_left(offsets_s, offset_s - 1e-6)  # the offsets never decrease
    if first < len(offsets_s):
        return first
    return max(grid.count, math.ceil((offset_s - 1e-6) / grid.step_s))


def run_now_ready(
    pool: Pool, at: datetime, need: int, claimed: Mapping[str, datetime],
    job_id: str | None = None, round_s: float | None = None,
) -> tuple[datetime, tuple[Device, ...]] | None:  # fmt: skip
    """:func:`policies.decisions.ready_devices` in the counterfactual: when ``need`` of the
    pool's available devices are all free there (``claimed``: this round's claims, by device
    id; ``job_id``: whose counterfactual, its own recorded run not holding any), and which
    (those free first, then by id); None with fewer than ``need``. With ``round_s``, a
    device is free from the first planning round at or after it frees up, ``at`` (a round)
    plus a whole number of ``round_s``, to the microsecond: ``run-now`` starts a job only
    when it plans, and finds the devices freed since its last round free together."""
    step = timedelta(seconds=round_s) if round_s else None
    available = []
    for d in pool.devices:  # when each is free, at ``at`` or later (one loop: no call each)
        if not d.available:
            continue
        free, busy, held = at, d.busy_until, d.run_now_busy_until
        if job_id is not None and d.run_now_holder == job_id:  # not its own run
            held = d.run_now_others_until
        if busy is not None and busy > free:
            free = busy
        if held is not None and held > free:
            free = held
        if claimed and (mine := claimed.get(d.device_id)) is not None and mine > free:
            free = mine
        if step is not None and free > at:  # the first round from then (-floor: ceiling)
            free = at - ((at - free) // step) * step
        available.append((free, d.device_id, d))
    if len(available) < need or need < 1:
        return None
    if need == 1:  # the usual case: the first to free up (then by id)
        free, _, device = min(available, key=_BY_TIME_AND_ID)
        return free, (device,)
    chosen = sorted(available, key=_BY_TIME_AND_ID)[:need]
    return chosen[-1][0], tuple(x[2] for x in chosen)


def run_now_holders(pools: Sequence[Pool]) -> frozenset[str]:
    """The jobs whose recorded counterfactual runs hold a GPU of ``pools`` the longest
    (:attr:`Device.run_now_holder`): their own counterfactuals see a GPU free earlier."""
    return frozenset(
        d.run_now_holder for pool in pools for d in pool.devices if d.run_now_holder is not None
    )


def expires_unstarted(deadline: datetime | None, start: datetime) -> bool:
    """Whether a counterfactual run from ``start`` is one ``run-now`` never starts: at or
    after its job's ``deadline`` the job expires waiting (the daemon ends a waiting job whose
    deadline has come before it plans), so its copy claims and holds no GPU. ``start`` is the
    copy's as built, at a planning round where the policy knows its interval
    (:func:`run_now_ready`): the round ``run-now`` would find the deadline passed at. The run
    priced stays the job's counterfactual (what its start would have cost)."""
    return deadline is not None and start >= deadline


def claimed_cells(
    pools: Sequence[Pool], grid: SlotGrid, jobs: Sequence[JobSpec], duration: FloatArray,
    ok: BoolArray, ks: Sequence[int], claim: bool = True, round_s: float | None = None,
) -> dict[int, RunNowCell]:  # fmt: skip
    """The counterfactual cells of the jobs ``ks`` (indices into ``jobs``, ``duration`` and
    ``ok`` ``(J, P)``): the admissible pool whose devices are free first, the fastest of those
    (ties: the first pool), starting when they are (``grid``'s slot 0 is now; a start between
    its slots is priced at the first slot from it, :func:`slot_at`; with ``round_s``, at the
    first planning round from when they are, :func:`run_now_ready`). With ``claim``, the jobs
    are taken in FIFO order and each claims its devices from the later ones until its run
    ends, but one whose run would start at or after its deadline (:func:`expires_unstarted`);
    without, none claims any. A job that fits no pool has none (and claims nothing)."""
    now = grid.time(0)
    order = sorted(ks, key=lambda j: (-jobs[j].priority, jobs[j].submitted_at, jobs[j].job_id))
    claimed: dict[str, datetime] = {}
    seen: dict[tuple[int, int, str | None], tuple[datetime, tuple[Device, ...]] | None] = {}
    out: dict[int, RunNowCell] = {}
    # A job's own run changes a pool's readiness only where it holds one of its GPUs: in
    # the others its counterfactual sees what any job's does (shared, computed once).
    held = [{d.run_now_holder for d in pool.devices} for pool in pools]
    rows = list(ks)  # their admissible pools and durations as Python values, read once
    fits = dict(zip(rows, ok[rows].tolist(), strict=True))
    seconds = dict(zip(rows, duration[rows].tolist(), strict=True))
    for j in order:
        need, mine = jobs[j].workload.tensor_parallel, jobs[j].job_id
        best: tuple[datetime, float, int, tuple[Device, ...]] | None = None
        for p, admissible in enumerate(fits[j]):
            if not admissible:
                continue
            key = (p, need, mine if mine in held[p] else None)
            if key not in seen:
                seen[key] = run_now_ready(pools[p], now, need, claimed, key[2], round_s)
            ready = seen[key]
            if ready is None:
                continue
            d = seconds[j][p]
            if best is None or (ready[0], d) < (best[0], best[1]):
                best = (ready[0], d, p, ready[1])
        if best is None:
            continue
        start, d, p, devices = best  # from when its devices are free (at a round: round_s)
        out[j] = (p, start, devices)
        if not claim or expires_unstarted(jobs[j].deadline, start):
            continue
        until = start + timedelta(seconds=d)
        for device in devices:
            claimed[device.device_id] = until
        for key in [k for k in seen if k[0] == p]:  # the pool's readiness moved
            del seen[key]
    return out


def run_now_cells(
    pools: Sequence[Pool], grid: SlotGrid, jobs: Sequence[JobSpec], duration: FloatArray,
    ok: BoolArray, round_s: float | None = None,
) -> dict[int, RunNowCell]:  # fmt: skip
    """Every job's counterfactual cell (see the module docstring): the jobs without a
    recorded counterfactual claim GPUs first come, first served; the others claim none and
    see none of this round's claims. ``round_s``: the planning interval (starts at rounds)."""
    new = [j for j, job in enumerate(jobs) if not job.run_now_recorded]
    known = [j for j, job in enumerate(jobs) if job.run_now_recorded]
    cells = claimed_cells(pools, grid, jobs, duration, ok, new, round_s=round_s)
    cells.update(
        claimed_cells(pools, grid, jobs, duration, ok, known, claim=False, round_s=round_s)
    )
    return cells
