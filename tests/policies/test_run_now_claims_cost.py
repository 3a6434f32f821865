"""The run-now claims at less cost (policies/run_now_claims.py): the same cells as the
straightforward code they replaced, kept here as the reference.

A job whose own recorded run holds a GPU sees its pool free earlier than the other jobs do,
but only that pool: its readiness elsewhere is the other jobs', computed once a round, not
once per such job (the bench planner's steady tick had 64 of them on 64 pools: 4,181
readiness look-ups for 114 jobs). Each device's free time is computed in one loop, the
slot of a start found by bisection in a list, the jobs' admissible pools and durations read
as Python values once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from policies import Device, JobSpec
from policies import run_now_claims as claims
from policies.run_now_claims import claimed_cells, run_now_ready, slot_at
from policies.scoring import Pool, SlotGrid, make_pools
from tests.policies.conftest import NOW, devices, job

GPUS = ("T4", "RTX6000-Ada")


def _reference_slot_at(grid: SlotGrid, offsets_s: np.ndarray, at: datetime) -> int:  # type: ignore[type-arg]
    offset_s = (at - grid.start).total_seconds()
    first = int(np.searchsorted(offsets_s, offset_s - 1e-6))
    if first < len(offsets_s):
        return first
    return max(grid.count, math.ceil((offset_s - 1e-6) / grid.step_s))


def _reference_free_at(
    device: Device, at: datetime, claimed: Mapping[str, datetime], job_id: str | None
) -> datetime:
    free = at
    busy, held = device.busy_until, device.run_now_busy_until
    if job_id is not None and device.run_now_holder == job_id:
        held = device.run_now_others_until
    if busy is not None and busy > free:
        free = busy
    if held is not None and held > free:
        free = held
    if claimed and (mine := claimed.get(device.device_id)) is not None and mine > free:
        free = mine
    return free


def _reference_ready(
    pool: Pool, at: datetime, need: int, claimed: Mapping[str, datetime],
    job_id: str | None = None,
) -> tuple[datetime, tuple[Device, ...]] | None:  # fmt: skip
    available = [
        (_reference_free_at(d, at, claimed, job_id), d.device_id, d)
        for d in pool.devices
        if d.available
    ]
    if len(available) < need or need < 1:
        return None
    if need == 1:
        free, _, device = min(available, key=lambda x: (x[0], x[1]))
        return free, (device,)
    chosen = sorted(available, key=lambda x: (x[0], x[1]))[:need]
    return chosen[-1][0], tuple(x[2] for x in chosen)


def _reference_cells(
    pools: Sequence[Pool], grid: SlotGrid, jobs: Sequence[JobSpec], duration: np.ndarray,  # type: ignore[type-arg]
    ok: np.ndarray, ks: Sequence[int], claim: bool = True,  # type: ignore[type-arg]
) -> dict[int, claims.RunNowCell]:  # fmt: skip
    """claimed_cells as it was (a4f47a5..9322427)."""
    now = grid.time(0)
    order = sorted(ks, key=lambda j: (-jobs[j].priority, jobs[j].submitted_at, jobs[j].job_id))
    claimed: dict[str, datetime] = {}
    seen: dict[tuple[int, int, str | None], tuple[datetime, tuple[Device, ...]] | None] = {}
    out: dict[int, claims.RunNowCell] = {}
    holders = {d.run_now_holder for p in pools for d in p.devices if d.run_now_holder}
    for j in order:
        need = jobs[j].workload.tensor_parallel
        mine = jobs[j].job_id if jobs[j].job_id in holders else None
        best: tuple[datetime, float, int, tuple[Device, ...]] | None = None
        for p in np.flatnonzero(ok[j]).tolist():
            key = (p, need, mine)
            if key not in seen:
                seen[key] = _reference_ready(pools[p], now, need, claimed, mine)
            ready = seen[key]
            if ready is None:
                continue
            d = float(duration[j, p])
            if best is None or (ready[0], d) < (best[0], best[1]):
                best = (ready[0], d, p, ready[1])
        if best is None:
            continue
        start, d, p, chosen = best
        out[j] = (p, start, chosen)
        if not claim or claims.expires_unstarted(jobs[j].deadline, start):
            continue
        until = start + timedelta(seconds=d)
        for device in chosen:
            claimed[device.device_id] = until
        for key in [k for k in seen if k[0] == p]:
            del seen[key]
    return out


_minutes = st.one_of(st.none(), st.integers(-30, 300))


def _at(minutes: int | None) -> datetime | None:
    return None if minutes is None else NOW + timedelta(minutes=minutes)


@st.composite
def _rounds(draw: st.DrawFn) -> tuple[list[Pool], list[JobSpec], np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Pools of 1-4 GPUs, some busy, some held by earlier copies (of the round's jobs or
    others), some lost; jobs of 1-2 GPUs; random admissibility and durations (a few equal,
    NaN or infinite)."""
    n_jobs = draw(st.integers(1, 8))
    ids = [f"j{i}" for i in range(n_jobs)]
    devs: list[Device] = []
    for r in range(draw(st.integers(1, 4))):
        gpu = draw(st.sampled_from(GPUS))
        for d in devices(f"r{r}", "CA-QC", gpu, draw(st.integers(1, 4))):
            holder = draw(st.one_of(st.none(), st.sampled_from([*ids, "gone"])))
            devs.append(replace(
                d, busy_until=_at(draw(_minutes)), available=draw(st.booleans()) or
                draw(st.booleans()), run_now_busy_until=_at(draw(_minutes)),
                run_now_holder=holder, run_now_others_until=_at(draw(_minutes)),
            ))  # fmt: skip
    pools = list(make_pools(devs))
    jobs = []
    for i, job_id in enumerate(ids):
        spec = job(job_id, hours=draw(st.sampled_from([None, 0.5, 2.0, 12.0])),
                   priority=draw(st.integers(0, 1)),
                   submitted=NOW - timedelta(seconds=draw(st.integers(0, 3)) + i % 2))  # fmt: skip
        workload = replace(spec.workload, tensor_parallel=draw(st.integers(1, 2)))
        jobs.append(replace(spec, workload=workload))
    shape = (n_jobs, len(pools))
    ok = np.array(draw(st.lists(st.booleans(), min_size=math.prod(shape),
                                max_size=math.prod(shape)))).reshape(shape)  # fmt: skip
    seconds = st.one_of(st.sampled_from([60.0, 600.0, math.nan, math.inf]),
                        st.floats(1.0, 20_000.0))  # fmt: skip
    duration = np.array(draw(st.lists(seconds, min_size=math.prod(shape),
                                      max_size=math.prod(shape)))).reshape(shape)  # fmt: skip
    return pools, jobs, duration, ok


@given(_rounds(), st.booleans(), st.data())
def test_claimed_cells_as_the_reference(
    round_: tuple[list[Pool], list[JobSpec], np.ndarray, np.ndarray],  # type: ignore[type-arg]
    claim: bool, data: st.DataObject,
) -> None:  # fmt: skip
    pools, jobs, duration, ok = round_
    ks = data.draw(st.lists(st.sampled_from(range(len(jobs))), unique=True))
    grid = SlotGrid(NOW, 900, 8)
    try:  # a claim over a NaN or infinite duration has no end: the same error
        want: object = _reference_cells(pools, grid, jobs, duration, ok, ks, claim)
    except (ValueError, OverflowError) as exc:
        want = type(exc)
    try:
        got: object = claimed_cells(pools, grid, jobs, duration, ok, ks, claim)
    except (ValueError, OverflowError) as exc:
        got = type(exc)
    assert got == want


@given(_rounds(), st.integers(0, 2), st.data())
def test_run_now_ready_as_the_reference(
    round_: tuple[list[Pool], list[JobSpec], np.ndarray, np.ndarray],  # type: ignore[type-arg]
    need: int, data: st.DataObject,
) -> None:  # fmt: skip
    pools, jobs, _, _ = round_
    pool = data.draw(st.sampled_from(pools))
    claimed = {d.device_id: _at(data.draw(st.integers(-30, 300))) for d in pool.devices
               if data.draw(st.booleans())}  # fmt: skip
    job_id = data.draw(st.one_of(st.none(), st.sampled_from([j.job_id for j in jobs])))
    at = _at(data.draw(st.integers(-10, 10)))
    assert at is not None
    assert run_now_ready(pool, at, need, claimed, job_id) == _reference_ready(  # type: ignore[arg-type]
        pool,
        at,
        need,
        claimed,
        job_id,  # type: ignore[arg-type]
    )


@given(st.integers(1, 100), st.integers(-(10**7), 10**8), st.sampled_from([60, 900, 3600]))
def test_slot_at_as_the_reference(count: int, offset_us: int, step_s: int) -> None:
    """Bisection in a list (or in the array) finds the slot numpy's searchsorted did, at
    and around every boundary and past the horizon."""
    grid = SlotGrid(NOW - timedelta(seconds=7), step_s, count)
    offsets = grid.offsets_s
    for at in (NOW + timedelta(microseconds=offset_us), grid.time(offset_us % count),
               grid.time(offset_us % count) - timedelta(microseconds=1)):  # fmt: skip
        want = _reference_slot_at(grid, offsets, at)
        assert slot_at(grid, offsets.tolist(), at) == want
        assert slot_at(grid, offsets, at) == want


def test_a_holders_readiness_elsewhere_is_computed_once(monkeypatch: object) -> None:
    """64 single-GPU pools, each held longest by one of 64 waiting jobs' own copies: each
    job's counterfactual asks for its own pool's readiness, and all share the other 63.
    Each job used to ask for every pool: 4,096 look-ups instead of 128."""
    held = [
        replace(d, run_now_busy_until=NOW + timedelta(hours=1), run_now_holder=f"j{i}")
        for i in range(64)
        for d in devices(f"r{i:02d}", "CA-QC", "T4", 1)
    ]
    pools = list(make_pools(held))
    jobs = [job(f"j{i}") for i in range(64)]
    calls = []

    def counted(*args: object) -> object:
        calls.append(args)
        return run_now_ready(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(claims, "run_now_ready", counted)  # type: ignore[attr-defined]
    shape = (len(jobs), len(pools))
    ok, duration = np.ones(shape, dtype=np.bool_), np.full(shape, 600.0)
    grid = SlotGrid(NOW, 900, 8)
    got = claimed_cells(pools, grid, jobs, duration, ok, range(len(jobs)), claim=False)
    assert len(calls) == 64 + 64
    assert got == _reference_cells(pools, grid, jobs, duration, ok, range(len(jobs)), False)
    assert {cell[0] for cell in got.values()} == set(range(64))  # each its own GPU, free now
