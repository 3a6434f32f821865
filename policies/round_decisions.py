"""A planning round's decisions built from the kept rows (:mod:`policies.incremental`), with
the fields and reasons ``planner._decide`` gives them: a job started now (its devices, the
best other pools as alternatives) or held (its plan; last round's decision or reason where
they read the same)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from policies.decisions import free_devices
from policies.kept_rows import KeptRows, alternative
from policies.round_alternatives import Ready
from policies.scoring import Pool, SlotGrid
from policies.types import Alternative, Decision, JobSpec

__all__ = ["held", "saving", "start_now"]


def saving(plan: Alternative, run_now: Alternative | None) -> str:
    """The reasons' " (N% below run-now)", as ``planner._decide`` words it."""
    if run_now is not None and run_now.total_g > 0:
        return f" ({1 - plan.total_g / run_now.total_g:.0%} below run-now)"
    return ""


def start_now(
    rows: KeptRows, r: int, job: JobSpec, p: int, plan: Alternative, run_now: Alternative | None,
    note: str, policy: str, limit: int, pools: Sequence[Pool], grid: SlotGrid,
    times: Sequence[datetime], taken: set[str], ready: Ready,
) -> Decision:  # fmt: skip
    """``planner._decide`` for row ``r`` planned now on pool ``p`` (``plan``: that cell
    with the pool's first devices), from the stored row: the same fields, without a cube."""
    now = times[0]
    quoted = saving(plan, run_now)
    need = int(rows.gpus[r])
    free = free_devices(pools[p], now, taken)
    if len(free) < need:  # only when every admissible pool is over-committed
        reason = f"hold: planned now on {plan.gpu} in {plan.region}, waiting for a free GPU"
        return Decision(job.job_id, "hold", reason, policy, plan, run_now)
    chosen = tuple(d.device_id for d in free[:need])
    taken.update(chosen)
    alt = alternative(rows, r, p, 0, pools, times, chosen)
    others = _others(rows, r, p, need, limit, pools, grid, times, ready)
    why = note or "cheapest feasible (device, region, start) over the horizon"
    reason = f"start now on {alt.gpu} in {alt.region}: {alt.total_g:.3g} g{quoted}; {why}"
    return Decision(job.job_id, "start", reason, policy, alt, run_now, others)


def _others(
    rows: KeptRows, r: int, exclude: int, need: int, limit: int, pools: Sequence[Pool],
    grid: SlotGrid, times: Sequence[datetime], ready: Ready,
) -> tuple[Alternative, ...]:  # fmt: skip
    """:func:`policies.decisions.best_alternatives` for row ``r`` (its cost, slot 0 now,
    ``inf`` after each pool's latest safe start)."""
    if limit <= 0:
        return ()
    offsets = grid.offsets_s
    masked = np.where(offsets[None, :] > rows.latest[r][:, None], np.inf, rows.cost[r])
    masked[:, 0] = rows.cost_now[r]
    ready_at: dict[int, datetime] = {}
    for q in range(len(pools)):
        first = ready(q, times[0], need)
        if first is None:
            masked[q] = np.inf
            continue
        ready_at[q] = first[0]
        masked[q, offsets < (first[0] - grid.start).total_seconds() - 1e-6] = np.inf
    best_slot = np.argmin(masked, axis=1)
    best_cost = masked[np.arange(masked.shape[0]), best_slot]
    order = [int(q) for q in np.argsort(best_cost) if q != exclude and np.isfinite(best_cost[q])]
    out = []
    for q, s in [(q, int(best_slot[q])) for q in order[:limit]]:
        then = ready(q, max(times[s], ready_at[q]), need)
        assert then is not None
        ids = tuple(d.device_id for d in then[1])
        out.append(alternative(rows, r, q, s, pools, times, ids))
    return tuple(out)


def _hold(
    rows: KeptRows, job: JobSpec, plan: Alternative, s: int, latest: float, grid: SlotGrid,
    run_now: Alternative | None, policy: str, quoted: str,
) -> Decision:  # fmt: skip
    """``planner._decide`` for a job held: planned later, or now with too few GPUs free;
    ``quoted`` is :func:`saving` of ``plan`` and ``run_now``."""
    if s == 0:
        reason = f"hold: planned now on {plan.gpu} in {plan.region}, waiting for a free GPU"
        return Decision(job.job_id, "hold", reason, policy, plan, run_now)
    texts = rows.latest_txt
    latest_txt = texts.get(latest)
    if latest_txt is None:
        latest_txt = "none"
        if np.isfinite(latest):
            at = grid.start + timedelta(seconds=latest)
            latest_txt = at.isoformat(timespec="minutes")
        texts[latest] = latest_txt
    start = rows.start_txt.get(s)
    if start is None:
        start = rows.start_txt[s] = plan.start.isoformat(timespec="minutes")
    reason = (
        f"hold: plan {plan.gpu} in {plan.region} at {start}"
        f" for {plan.total_g:.3g} g{quoted}; latest safe start {latest_txt}"
    )
    return Decision(job.job_id, "hold", reason, policy, plan, run_now)


def held(
    rows: KeptRows, r: int, job: JobSpec, plan: Alternative, s: int, latest: float,
    grid: SlotGrid, run_now: Alternative | None, policy: str,
) -> Decision:  # fmt: skip
    """:func:`_hold`, or last round's decision for row ``r`` when it would be the same
    (its plan object, latest safe start and policy the same): the very object when
    run-now is too, else its reason when the run-now figure it quotes reads the same."""
    seen = rows.held[r]
    same = (
        s > 0 and seen is not None and seen.chosen is plan
        and rows.held_latest[r] == latest and seen.policy == policy
    )  # fmt: skip
    if same and seen is not None and seen.run_now is run_now:
        return seen
    quoted = saving(plan, run_now)
    if same and seen is not None and quoted == rows.held_saving[r]:
        decision = Decision(job.job_id, "hold", seen.reason, policy, plan, run_now)
    else:
        decision = _hold(rows, job, plan, s, latest, grid, run_now, policy, quoted)
    rows.held[r] = decision if s > 0 else None
    rows.held_saving[r] = quoted
    rows.held_latest[r] = latest
    return decision
