"""The fast path (rows kept between ticks, compiled greedy) decides exactly as a full re-plan.

Each test drives one policy object through ticks where the world changes as it does in the
daemon (jobs arrive, started jobs leave the queue and hold their GPUs, held jobs carry their
plans, runs end, forecasts are replaced, a device is lost, the grid crosses slot boundaries)
and compares every field of every decision with :func:`policies.planner.plan_window` planning
the same inputs from scratch, with its NumPy greedy, but one: a held decision the fast path
repeats (the very object it returned for the job the tick before) keeps the run-now
counterfactual it was built with, where the full re-plan builds this tick's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from policies import get_policy, with_recalibration
from policies.estimates import estimate_matrix
from policies.footprint.recalibration import Recalibration, RecalibrationFactor
from policies.planner import WindowParameters, _regret, plan_window, planning_order
from policies.scoring import make_pools
from policies.types import Decision
from tests.policies.conftest import NOW
from tests.policies.random_cluster import World, world


def _full(policy: object, now: datetime, w: World) -> list[Decision]:
    """A full re-plan: no kept rows, no estimates cached, the NumPy greedy."""
    return plan_window(
        policy.name, now, w.jobs, w.devices, w.forecasts, policy.params,  # type: ignore[attr-defined]
        recalibration=policy.recalibration,  # type: ignore[attr-defined]
    )  # fmt: skip


class _AsFull:
    """Checks a policy's decisions tick after tick against the full re-plan's: every field
    equal, but the run-now counterfactual of a held decision that is the very object the
    policy returned for its job the tick before (then the counterfactual is the one it was
    built with, and every other field still the full re-plan's)."""

    def __init__(self) -> None:
        self.last: dict[str, Decision] = {}
        self.repeated = 0

    def check(self, fast: list[Decision], full: list[Decision], what: str) -> None:
        for got, want in zip(fast, full, strict=True):
            if got is self.last.get(got.job_id) and got.action == "hold":
                self.repeated += 1
                assert replace(got, run_now=want.run_now) == want, f"{what}: {got.job_id} differs"
            else:
                assert got == want, f"{what}: {got.job_id} differs"
        self.last = {d.job_id: d for d in fast}


def _run_started(w: World, decisions: list[Decision], now: datetime) -> None:
    """Started jobs leave the queue and hold their GPUs for their expected duration."""
    started = {d.job_id: d.chosen for d in decisions if d.action == "start" and d.chosen}
    w.jobs = [j for j in w.jobs if j.job_id not in started]
    until = {
        i: now + timedelta(seconds=alt.duration_s)
        for alt in started.values()
        for i in alt.device_ids
    }
    w.devices = [replace(d, busy_until=until.get(d.device_id, d.busy_until)) for d in w.devices]


def _ticks(w: World, hedged: bool) -> list[tuple[datetime, str]]:
    return [
        (NOW + timedelta(minutes=7), "first tick, between slot boundaries"),
        (NOW + timedelta(minutes=8), "a minute later: nothing new"),
        (NOW + timedelta(minutes=10), "arrivals"),
        (NOW + timedelta(minutes=11), "a run ends early"),
        (NOW + timedelta(minutes=16), "the grid crossed a slot boundary"),
        (NOW + timedelta(minutes=17), "a new forecast"),
        (NOW + timedelta(minutes=18), "a device is lost"),
        (NOW + timedelta(minutes=19), "a job is resubmitted with a new deadline"),
        (NOW + timedelta(minutes=45), "half an hour later, more arrivals"),
    ]


def _change(w: World, what: str, now: datetime, hedged: bool) -> None:
    if what.startswith("arrivals") or what.endswith("more arrivals"):
        w.add_jobs(12, now)
    elif what == "a run ends early":
        busy = [d for d in w.devices if d.busy_until is not None and d.busy_until > now]
        if busy:
            gone = busy[0].device_id
            w.devices = [replace(d, busy_until=now) if d.device_id == gone else d
                         for d in w.devices]  # fmt: skip
    elif what == "a new forecast":
        # Unhedged worlds get one starting off the whole second: the rows cannot follow the
        # next slot boundary bit for bit, so that tick scores everything again.
        w.new_forecasts(now, hedged, skew_s=0.0 if hedged else 0.123457)
    elif what == "a device is lost":
        w.devices = [replace(d, available=False) if d.device_id == "d0" else d
                     for d in w.devices]  # fmt: skip
    elif what.startswith("a job is resubmitted"):
        first = w.jobs[0]
        w.jobs[0] = replace(first, deadline=now + timedelta(hours=2))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("name", "params", "hedged"),
    [
        ("carbon-window", {}, True),
        ("carbon-window", {"herd_penalty": 0.3, "chunk_jobs": 7}, False),
        ("wait-awhile", {}, False),
        ("oracle", {"slot_s": 600, "horizon_slots": 30}, True),
        ("carbon-lookahead", {"lookahead_max_cells": 1}, True),  # LP too large: the greedy
        ("carbon-window", {"replan_margin": 0.2}, True),  # most held plans kept
    ],
    ids=[
        "carbon-window",
        "herding-small-chunks",
        "wait-awhile",
        "oracle-short-horizon",
        "lookahead-too-large",
        "wide-replan-margin",
    ],
)
def test_every_tick_decides_as_a_full_replan(
    seed: int, name: str, params: dict[str, object], hedged: bool
) -> None:
    w = world(seed, n_devices=8 + seed, n_jobs=30 + 15 * seed, hedged=hedged)
    policy = get_policy(name, **params)
    actions: set[str] = set()
    as_full = _AsFull()
    for now, what in _ticks(w, hedged):
        _change(w, what, now, hedged)
        fast = policy.plan(now, w.jobs, w.devices, w.forecasts)
        as_full.check(fast, _full(policy, now, w), what)
        actions |= {d.action for d in fast}
        _run_started(w, fast, now)
        w.keep_plans(fast)
    assert {"start", "hold"} <= actions
    assert as_full.repeated > 0  # the fast path repeated some held decisions


def test_a_recalibrated_copy_plans_on_its_own_factors() -> None:
    w = world(11, n_devices=6, n_jobs=40)
    policy = get_policy("carbon-window")
    now = NOW + timedelta(minutes=3)
    as_full = _AsFull()
    first = policy.plan(now, w.jobs, w.devices, w.forecasts)
    as_full.check(first, _full(policy, now, w), "first")
    doubled = Recalibration.from_factors(
        RecalibrationFactor(job.model.name, d.gpu.name, samples=5, energy_log=math.log(2),
                            duration_log=math.log(1.5), measured_s=3600.0)
        for job in w.jobs for d in w.devices
    )  # fmt: skip
    copy = with_recalibration(policy, doubled)
    recalibrated = copy.plan(now, w.jobs, w.devices, w.forecasts)
    as_full.check(recalibrated, _full(copy, now, w), "recalibrated")
    assert recalibrated != first
    again = policy.plan(now, w.jobs, w.devices, w.forecasts)
    as_full.check(again, first, "its own factors again")
    # One more observation, of a pair whose factors are not in use yet: the same estimates.
    fresh = RecalibrationFactor(w.jobs[0].model.name, "H100", samples=1, energy_log=1.0)
    more = Recalibration.from_factors([*doubled.factors.values(), fresh])
    later = now + timedelta(minutes=1)
    more_copy = with_recalibration(policy, more)
    as_full.check(more_copy.plan(later, w.jobs, w.devices, w.forecasts),
                  _full(more_copy, later, w), "a pair not in use")  # fmt: skip


@pytest.mark.parametrize("minutes", [3, 10_000], ids=["ties", "few ties"])
@pytest.mark.parametrize("seed", range(5))
def test_the_planning_order_is_the_tuple_sort(seed: int, minutes: int) -> None:
    """``planning_order`` sorts by arrays (``np.lexsort``, the ids only where the other keys tie);
    the reference is Python's tuple sort."""
    w = world(seed, n_devices=6, n_jobs=80)
    rng = np.random.default_rng(seed)
    w.jobs = [  # ties on priority and submission, some within and some past the urgency window
        replace(j, priority=int(rng.integers(0, 2)), submitted_at=NOW - timedelta(minutes=int(k)))
        for j, k in zip(w.jobs, rng.integers(0, minutes, len(w.jobs)), strict=True)
    ]
    params = WindowParameters(urgent_s=float(rng.choice([0.0, 3600.0, math.inf])))
    pools = make_pools(w.devices)
    duration, _, ok = estimate_matrix(w.jobs, pools)
    regret = np.where(rng.random(len(w.jobs)) < 0.2, np.inf, rng.integers(0, 4, len(w.jobs)))
    now = NOW + timedelta(minutes=7)
    deadline = np.array([np.inf if j.deadline is None else (j.deadline - now).total_seconds()
                         for j in w.jobs])  # fmt: skip
    with np.errstate(invalid="ignore"):
        latest = deadline[:, None] - duration * (1.0 + params.duration_margin) - params.guard_s
    latest = np.where(ok & ~np.isnan(latest), latest, -np.inf).max(axis=1, initial=-np.inf)
    latest = np.where(np.isinf(deadline), np.inf, latest)
    relaxed = latest > params.urgent_s
    loss = np.where(relaxed, -regret, 0.0)
    jobs = w.jobs
    expected = sorted(
        range(len(jobs)),
        key=lambda j: (-jobs[j].priority, bool(relaxed[j]), loss[j], latest[j],
                       jobs[j].submitted_at, jobs[j].job_id),
    )  # fmt: skip
    assert planning_order(jobs, duration, ok, now, params, regret.astype(np.float64)) == expected


def test_a_queue_with_a_repeated_id_is_planned_in_full() -> None:
    w = world(3, n_devices=6, n_jobs=20)
    w.jobs.append(replace(w.jobs[0], deadline=None))
    now = NOW + timedelta(minutes=2)
    policy = get_policy("carbon-window")
    assert policy.plan(now, w.jobs, w.devices, w.forecasts) == _full(policy, now, w)


@pytest.mark.parametrize("seed", range(4))
def test_plans_that_come_back_to_a_cell_decide_as_a_full_replan(seed: int) -> None:
    """Within one slot (hour-long slots: the rows never shift), a device's run ends and another
    starts on it every other minute, so held jobs' plans move between cells and come back to
    cells they had before (what a held job's kept plan, decision and reason must follow), and
    every decision is still the full re-plan's."""
    w = world(seed, n_devices=6 + seed, n_jobs=40 + 10 * seed)
    policy = get_policy("carbon-window", slot_s=3600, horizon_slots=24)
    history: dict[str, list[tuple[str, str, datetime]]] = {}
    came_back = 0
    as_full = _AsFull()
    start = NOW + timedelta(minutes=2)
    for minute in range(40):
        now = start + timedelta(minutes=minute)
        toggled = w.devices[seed % len(w.devices)].device_id
        busy = now + timedelta(minutes=90) if minute % 2 else None
        w.devices = [replace(d, busy_until=busy) if d.device_id == toggled else d
                     for d in w.devices]  # fmt: skip
        if minute % 10 == 5:
            w.add_jobs(6, now)
        fast = policy.plan(now, w.jobs, w.devices, w.forecasts)
        as_full.check(fast, _full(policy, now, w), f"minute {minute}")
        for d in fast:
            if d.action != "hold" or d.chosen is None:
                continue
            cell = (d.chosen.gpu, d.chosen.region, d.chosen.start)
            seen = history.setdefault(d.job_id, [])
            if len(seen) >= 2 and cell != seen[-1]:
                came_back += cell in seen[:-1]
            seen.append(cell)
        _run_started(w, fast, now)
    assert came_back > 0
    assert as_full.repeated > 0


@pytest.mark.parametrize("seed", range(4))
def test_held_decisions_repeat_across_a_slot_boundary(seed: int) -> None:
    """When the grid's anchor moves a slot on and nothing else changes, a held job whose plan
    is the same cell (its start time the same, one slot lower) keeps its plan object and its
    decision (the latest safe start printed the same), still the full re-plan's but for the
    counterfactual."""
    w = world(seed, n_devices=6 + seed, n_jobs=40 + 10 * seed)
    policy = get_policy("carbon-window")
    as_full = _AsFull()
    before = NOW + timedelta(minutes=14)
    first = policy.plan(before, w.jobs, w.devices, w.forecasts)
    as_full.check(first, _full(policy, before, w), "before the boundary")
    _run_started(w, first, before)
    w.keep_plans(first)
    after = NOW + timedelta(minutes=16)  # slots of 15 minutes: the anchor moved one on
    second = policy.plan(after, w.jobs, w.devices, w.forecasts)
    as_full.check(second, _full(policy, after, w), "after the boundary")
    plans = {d.job_id: d.chosen for d in first if d.action == "hold"}
    assert any(d.action == "hold" and d.chosen is plans.get(d.job_id) for d in second)
    assert as_full.repeated > 0  # decisions of the tick before, returned again


@pytest.mark.parametrize("seed", range(3))
def test_a_held_job_without_a_deadline_reads_its_new_latest_start_after_a_boundary(
    seed: int,
) -> None:
    """Jobs without a deadline whose pools are busy for hours are held on a later slot (the
    rescue), their latest safe start being now: ticks one slot apart put it at the same
    seconds after each tick's anchor, and the decision must still print the new one."""
    w = world(seed, n_devices=6, n_jobs=20)
    w.jobs = [replace(j, deadline=None) for j in w.jobs]
    w.devices = [replace(d, busy_until=NOW + timedelta(hours=3)) for d in w.devices]
    policy = get_policy("carbon-window")
    as_full = _AsFull()
    for minutes in (7, 22, 37):  # 15 minutes apart: the same offset into the slot
        now = NOW + timedelta(minutes=minutes)
        fast = policy.plan(now, w.jobs, w.devices, w.forecasts)
        as_full.check(fast, _full(policy, now, w), f"minute {minutes}")
        assert any(d.action == "hold" and d.chosen is not None for d in fast)
        w.keep_plans(fast)


def test_regret_is_the_gap_between_the_two_cheapest_pools() -> None:
    """Per job: second-cheapest minus cheapest typical grams; ``inf`` with one finite pool,
    0 with none (inf - inf), NaN grams read as the dearest; ties give 0."""
    rng = np.random.default_rng(3)
    typical = rng.uniform(0, 100, size=(400, 40))
    typical[rng.random(typical.shape) < 0.3] = np.inf
    typical[rng.random(typical.shape) < 0.05] = np.nan
    typical[0], typical[1], typical[2] = [3.0] + [np.inf] * 39, [np.inf] * 40, [2.0] * 40
    expected = []
    for row in typical.tolist():
        first, second = sorted([*row, math.inf, math.inf], key=lambda x: (math.isnan(x), x))[:2]
        gap = second - first if not (math.isinf(first) and math.isinf(second)) else math.nan
        expected.append(0.0 if math.isnan(gap) else gap)
    regret = _regret(typical)
    assert regret.tolist() == expected
    assert regret[0] == math.inf and regret[1] == 0.0 and regret[2] == 0.0
