"""A planning round's decisions built from the kept rows (:mod:`policies.incremental`), with
the fields and reasons ``planner._decide`` gives them: a job started now (its devices, the
best other pools as alternatives) or held (its plan; last round's decision or reason where
they read the same)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from policies.decisions import free_devices
from policies.kept_rows import KeptRows, alternative
from policies.round_alternatives import Ready
from policies.scoring import Pool, SlotGrid
from policies.types import Alternative, Decision, JobSpec

__all__ = ["held", "saving", "savings", "start_now"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    blocked, ready_at = ready.blocked(times[0], need)
    masked = np.where(ready.offsets_s[None, :] > rows.latest[r][:, None], np.inf, rows.cost[r])
    masked[:, 0] = rows.cost_now[r]
    masked[blocked] = np.inf
    best_slot = np.argmin(masked, axis=1)
    best_cost = masked[np.arange(masked.shape[0]), best_slot]
    finite = np.isfinite(best_cost).tolist()
    order = [q for q in np.argsort(best_cost).tolist() if q != exclude and finite[q]]
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


def savings(
    plans: Sequence[Alternative], run_now: Sequence[Alternative | None], texts: dict[float, str]
) -> list[str]:
    """:func:`saving` of each ``(plans[k], run_now[k])``, the figure computed for all at once.

    ``format(x, ".0%")`` formats ``x * 100`` rounded half to even, so its text depends only on
    that integer (``np.rint``, the same double arithmetic) and the sign of a zero ("-0%");
    ``texts`` keeps the text of each such key between calls (NaN is never a key).
    """
    if not plans:
        return []
    plan_g = np.array([p.operational_g + p.embodied_g for p in plans])  # total_g, its order
    now_g = np.array([math.nan if a is None else a.operational_g + a.embodied_g for a in run_now])
    with np.errstate(all="ignore"):  # inf and NaN figures read as their texts
        percent = np.rint((1 - plan_g / now_g) * 100)
    percent = np.where((percent == 0) & np.signbit(percent), 0.5, percent)  # -0%: its own key
    out = []
    for k, (key, quoted) in enumerate(zip(percent.tolist(), (now_g > 0).tolist(), strict=True)):
        if not quoted:
            out.append("")
            continue
        text = texts.get(key)
        if text is None:
            text = saving(plans[k], run_now[k])
            if not math.isnan(key):
                texts[key] = text
        out.append(text)
    return out


def held(
    rows: KeptRows, at: IntArray, jobs: Sequence[JobSpec], plans: Sequence[Alternative],
    slot: IntArray, latest: FloatArray, grid: SlotGrid, run_now: Sequence[Alternative | None],
    policy: str, texts: dict[float, str],
) -> list[Decision]:  # fmt: skip
    """:func:`_hold` for each held job ``k`` (row ``at[k]``, planned on ``plans[k]`` at slot
    ``slot[k]``, its latest safe start there ``latest[k]``), or last round's decision for the
    row when it would be the same (its plan object, latest safe start and policy the same): the
    very object when run-now is too, else its reason when the run-now figure it quotes reads
    the same. ``texts``: see :func:`savings`."""
    quoted = savings(plans, run_now, texts)
    same = ((slot > 0) & (rows.held_latest[at] == latest)).tolist()
    kept, kept_saving = rows.held, rows.held_saving
    out = []
    cells = zip(at.tolist(), slot.tolist(), latest.tolist(), same, strict=True)
    for k, (r, s, last, maybe) in enumerate(cells):
        plan, now_alt = plans[k], run_now[k]
        seen = kept[r]
        if maybe and seen is not None and seen.chosen is plan and seen.policy == policy:
            if seen.run_now is now_alt:
                out.append(seen)
                continue
            if quoted[k] == kept_saving[r]:
                decision = Decision(jobs[k].job_id, "hold", seen.reason, policy, plan, now_alt)
            else:
                decision = _hold(rows, jobs[k], plan, s, last, grid, now_alt, policy, quoted[k])
        else:
            decision = _hold(rows, jobs[k], plan, s, last, grid, now_alt, policy, quoted[k])
        kept[r] = decision if s > 0 else None
        kept_saving[r] = quoted[k]
        out.append(decision)
    rows.held_latest[at] = latest
    return out
