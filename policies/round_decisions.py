"""A planning round's decisions built from the kept rows (:mod:`policies.incremental`), with
the fields and reasons ``planner._decide`` gives them: a job started now (its devices, the
best other pools as alternatives) or held (its plan).

A held decision that would read as last round's (the same plan object, latest safe start,
policy, a slot later than 0, and the same rounded "% below run-now") is **last round's
object**, its run-now counterfactual the one stored with it, where a full re-plan builds this
round's (slot 0 starts now, so its figures move every round). Every other field is the full
re-plan's. The daemon stores a decision only when its action, policy, reason, devices or start
change, so a repeated decision's counterfactual is neither stored nor read; the counterfactual
built for it serves nobody, and building it (and a new decision) for each of ~250 held jobs a
round was most of a round's cost per held job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.decisions import free_devices
from policies.kept_rows import KeptRows, alternatives, grams
from policies.near_ties import TOLERANCE, earliest_near_slots
from policies.reasons import hold_reason, latest_text, saving, start_reason, waiting_reason
from policies.round_alternatives import Ready, RunNow
from policies.scoring import Pool, SlotGrid
from policies.types import Alternative, Decision, Device, JobSpec, new_decision

__all__ = ["held", "saving_keys", "saving_text", "started"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def started(
    rows: KeptRows, at: IntArray, jobs: Sequence[JobSpec], pool: IntArray,
    plans: Sequence[Alternative], run_now: RunNow, ks: IntArray, notes: Sequence[str],
    policy: str, limit: int, pools: Sequence[Pool], times: Sequence[datetime], ready: Ready,
) -> list[Decision | None]:  # fmt: skip
    """``planner._decide`` for the jobs planned now, in planning order (row ``at[k]`` on pool
    ``pool[k]``, ``plans[k]`` that cell with the pool's first devices, its run-now
    counterfactual ``run_now``'s job ``ks[k]``), from the stored rows: the same fields,
    without a cube. None for a job that finds too few of the pool's devices free now (the
    devices the earlier jobs took are not free): the caller holds it, and its counterfactual
    is built there (on an overloaded cluster most jobs planned now wait: building theirs here
    too built it twice).

    Each job takes the first free devices that the earlier jobs left (``free_devices`` with
    the devices taken so far: the pool's free devices in order, less those taken, which are
    the first ones); its cell and its alternatives (:func:`_others`) are read for all the
    started jobs at once.
    """
    now = times[0]
    free: dict[int, list[Device]] = {}
    used = [0] * len(pools)
    go: list[int] = []
    chosen: list[tuple[str, ...] | None] = []
    for k, (p, need) in enumerate(zip(pool.tolist(), rows.gpus[at].tolist(), strict=True)):
        devices = free.get(p)
        if devices is None:
            devices = free[p] = free_devices(pools[p], now, set())
        if len(devices) - used[p] < need:  # only when every admissible pool is over-committed
            continue
        go.append(k)
        chosen.append(tuple(d.device_id for d in devices[used[p] : used[p] + need]))
        used[p] += need
    out: list[Decision | None] = [None] * len(at)
    if not go:
        return out
    r, p_go = at[go], pool[go]
    alts = alternatives(rows, r, p_go, np.zeros(len(go), dtype=np.int64), pools, times, chosen)
    others = _others(rows, r, p_go, limit, pools, times, ready)
    counterfactuals = run_now.alternatives(ks[go])
    for k, alt, alt_others, now_alt in zip(go, alts, others, counterfactuals, strict=True):
        reason = start_reason(alt, saving(plans[k], now_alt), notes[k])
        out[k] = new_decision(jobs[k].job_id, "start", reason, policy, alt, now_alt, alt_others)
    return out


def _others(
    rows: KeptRows, r: IntArray, exclude: IntArray, limit: int, pools: Sequence[Pool],
    times: Sequence[datetime], ready: Ready,
) -> list[tuple[Alternative, ...]]:  # fmt: skip
    """:func:`policies.decisions.best_alternatives` for each row ``r[k]`` but pool
    ``exclude[k]`` (its cost, slot 0 now, ``inf`` after each pool's latest safe start), all
    rows in one array pass: per row, the same operations along its last axes."""
    if limit <= 0:
        return [()] * len(r)
    need = rows.gpus[r].tolist()
    blocked = {g: ready.blocked(times[0], g) for g in set(need)}
    masked = np.where(ready.offsets_s[None, None, :] > rows.latest[r][:, :, None], np.inf,
                      rows.cost[r])  # fmt: skip
    masked[:, :, 0] = rows.cost_now[r]
    masked[np.stack([blocked[g][0] for g in need])] = np.inf
    best_slot = earliest_near_slots(masked, TOLERANCE)  # near-ties: the earliest start
    best_cost = np.take_along_axis(masked, best_slot[:, :, None], axis=2)[:, :, 0]
    finite = np.isfinite(best_cost).tolist()
    ranked = np.argsort(best_cost, axis=1).tolist()
    slots = best_slot.tolist()
    ks: list[int] = []
    qs: list[int] = []
    ss: list[int] = []
    ids: list[tuple[str, ...] | None] = []
    counts = []
    for k, (x, g) in enumerate(zip(exclude.tolist(), need, strict=True)):
        order = [q for q in ranked[k] if q != x and finite[k][q]][:limit]
        ready_at = blocked[g][1]
        for q in order:
            s = slots[k][q]
            then = ready(q, max(times[s], ready_at[q]), g)
            assert then is not None
            ks.append(k)
            qs.append(q)
            ss.append(s)
            ids.append(tuple(d.device_id for d in then[1]))
        counts.append(len(order))
    built = alternatives(rows, r[ks], np.array(qs, dtype=np.int64), np.array(ss, dtype=np.int64),
                         pools, times, ids)  # fmt: skip
    out = []
    first = 0
    for n in counts:
        out.append(tuple(built[first : first + n]))
        first += n
    return out


def _hold(
    rows: KeptRows, job: JobSpec, plan: Alternative, s: int, latest_txt: str,
    run_now: Alternative | None, policy: str, quoted: str,
) -> Decision:  # fmt: skip
    """``planner._decide`` for a job held with a plan later than now (slot ``s``);
    ``quoted`` is :func:`saving` of ``plan`` and ``run_now``, ``latest_txt``
    :func:`_latest_text` of its latest safe start."""
    start = rows.start_txt.get(s)
    if start is None:
        start = rows.start_txt[s] = plan.start.isoformat(timespec="minutes")
    reason = hold_reason(plan, start, quoted, latest_txt, job)
    return new_decision(job.job_id, "hold", reason, policy, plan, run_now)


def _latest_text(rows: KeptRows, latest: float, grid: SlotGrid) -> str:
    """A latest safe start (seconds after ``grid.start``) as the held jobs' reasons print it,
    kept per value in the rows while the grid keeps its anchor."""
    texts = rows.latest_txt
    text = texts.get(latest)
    if text is None:
        text = texts[latest] = latest_text(grid.start, latest)
    return text


def saving_keys(plan_g: FloatArray, run_now_g: FloatArray) -> list[float | None]:
    """What :func:`saving`'s text of a plan and its run-now counterfactual depends on, given
    their grams (``total_g``; NaN for no run-now), computed for all at once: None where it
    quotes nothing (no run-now, or run-now's grams not above 0), else the share as
    ``format(x, ".0%")`` rounds it (``x * 100`` rounded half to even: ``np.rint``, the same
    double arithmetic); None too where it rounds to 0% of either sign (not quoted). Equal keys
    read the same text; NaN equals no key, itself included."""
    if not len(plan_g):
        return []
    with np.errstate(all="ignore"):  # inf and NaN figures read as their texts
        percent = np.rint((1 - plan_g / run_now_g) * 100)
    quoted = ((run_now_g > 0) & (percent != 0)).tolist()  # a 0% share is not quoted
    return [key if q else None for key, q in zip(percent.tolist(), quoted, strict=True)]


def saving_text(
    key: float | None, plan: Alternative, run_now: Alternative | None, texts: dict[float, str]
) -> str:
    """:func:`saving` of ``plan`` and ``run_now``, whose :func:`saving_keys` key is ``key``:
    ``texts`` keeps the text of each key between calls (NaN is never one)."""
    if key is None:
        return ""
    text = texts.get(key)
    if text is None:
        text = saving(plan, run_now)
        if not math.isnan(key):
            texts[key] = text
    return text


def held(
    rows: KeptRows, at: IntArray, jobs: Sequence[JobSpec], plans: Sequence[Alternative],
    pool: IntArray, slot: IntArray, latest: FloatArray, grid: SlotGrid, run_now: RunNow,
    ks: IntArray, policy: str, texts: dict[float, str], pue: FloatArray,
) -> list[Decision]:  # fmt: skip
    """The decision of each held job ``k`` (:func:`_hold`; ``reasons.waiting_reason`` for
    one planned now, one text per pool a round) (row ``at[k]``, planned on ``plans[k]``, the cell
    ``(pool[k], slot[k])``, its latest safe start there ``latest[k]``, its run-now
    counterfactual ``run_now``'s job ``ks[k]``), or **last round's decision object** for the
    row when it would read the same: its plan object and policy the same, a slot later than 0,
    its latest safe start the same (or printed the same: the grid's anchor moved on, or the
    start moved within the minute) and the same :func:`saving_keys` key for the "% below
    run-now" it quotes.
    Such a repeated decision keeps the run-now counterfactual it was built with (the service
    stores a decision only when its action, policy, reason, devices or start change, so a
    repeated one's counterfactual is neither stored nor read); the keys come from the grams in
    the rows, and the counterfactual is built only for the decisions built again. ``texts``:
    see :func:`saving_text`."""
    keys = saving_keys(grams(rows, at, pool, slot, pue), run_now.total_g(ks))
    later_mask = slot > 0
    later, same = later_mask.tolist(), (later_mask & (rows.held_latest[at] == latest)).tolist()
    slots, lasts, rs, pool_ids = slot.tolist(), latest.tolist(), at.tolist(), pool.tolist()
    kept, kept_key, kept_txt = rows.held, rows.held_key, rows.held_txt
    out: list[Decision | None] = [None] * len(at)
    todo = []
    for k, r in enumerate(rs):
        seen = kept[r]
        if (seen is not None and seen.chosen is plans[k] and seen.policy == policy
                and keys[k] == kept_key[r] and (same[k] or (
                    later[k] and _latest_text(rows, lasts[k], grid) == kept_txt[r]))):  # fmt: skip
            out[k] = seen
        else:
            todo.append(k)
    waiting: dict[int, str] = {}  # the reasons of the jobs planned now, by pool
    for k, now_alt in zip(todo, run_now.alternatives(ks[todo]), strict=True):
        s, plan = slots[k], plans[k]
        if s == 0:  # waiting for devices: its plan moves with now, so it is built every round
            reason = waiting.get(pool_ids[k])
            if reason is None:
                reason = waiting[pool_ids[k]] = waiting_reason(plan)
            out[k] = new_decision(jobs[k].job_id, "hold", reason, policy, plan, now_alt)
            kept[rs[k]], kept_key[rs[k]], kept_txt[rs[k]] = None, keys[k], ""
            continue
        quoted = saving_text(keys[k], plan, now_alt, texts)
        latest_txt = _latest_text(rows, lasts[k], grid)
        decision = _hold(rows, jobs[k], plan, s, latest_txt, now_alt, policy, quoted)
        kept[rs[k]], kept_key[rs[k]], kept_txt[rs[k]] = decision, keys[k], latest_txt
        out[k] = decision
    rows.held_latest[at] = latest
    return [d for d in out if d is not None]
