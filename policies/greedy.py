"""The planner's greedy assignment, compiled: each job in order takes its cheapest free cell.

This is :func:`policies.planner._choose` and :func:`policies.planner._rescue` (the reference
the tests compare it with, decision by decision) as one numba loop over the jobs, reserving on
the :class:`~policies.capacity.CapacityTimeline`'s own arrays. Per job:

- the cheapest (pool, slot) that the devices allow for the whole run, each cell's cost raised
  by ``herd_penalty`` x the slot's used share; ties go to the first cell in (pool, slot) order,
  as ``np.argmin`` over the flattened row does. Pools are visited by their cheapest cell, and a
  pool whose cheapest cell costs more than the best found is skipped (the penalty factor is at
  least 1, so it cannot win), as is a pool busy at every start instant;
- the job's planned cell instead, if it is free and costs at most ``replan_margin`` more;
- the ``min_saving`` rule: a later start that does not beat the best start now by that share
  becomes the start now;
- with no free cell before the latest safe start, the rescue path (see ``_rescue``).

Costs, feasibility and reservations are computed with the same floating-point operations in the
same order as the NumPy reference, so the two agree exactly.

:func:`assign_weighted` is the look-ahead's rounding (:mod:`policies.lookahead`): ``_choose``
given the LP's weights, which takes the free cell of largest weight instead of the cheapest
(ties: the cheaper), with the same ``min_saving`` rule and rescue path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policies.capacity import CapacityTimeline
from policies.compiled import compiled
from policies.footprint.accounting import J_PER_KWH

__all__ = ["NOTE_HOME", "NOTE_LATE", "NOTE_NONE", "GreedyInputs", "assign", "assign_weighted"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NOTE_NONE, NOTE_HOME, NOTE_LATE = 0, 1, 2  # why: plain choice, home cannot run it, past latest


@dataclass(frozen=True, slots=True)
class GreedyInputs:
    """The scored jobs the greedy reads. Rows are indexed by ``rows[k]`` for the k-th job.

    ``cost`` ``(N, P, S)``: the planning cost, ``inf`` where not allowed (pool not allowed,
    slot after the latest safe start), except slot 0, read from ``cost_now`` ``(N, P)`` (it
    moves every tick: a separate array is cheaper to rewrite); ``intensity_g_per_kwh``
    ``(N, P, S)`` and ``intensity_now`` ``(N, P)`` likewise; ``energy_j``,
    ``embodied_g`` ``(N, P)`` and ``pue`` ``(P,)``: the grams the rescue path ranks by
    (operational as :func:`~policies.footprint.accounting.operational_g` computes it);
    ``lower`` ``(N, P)``: each pool's cheapest ``cost``; ``latest_start_s`` ``(N, P)``: the
    latest safe start (no slot after it is allowed); ``duration_s`` ``(N, P)`` (``inf``
    where inadmissible); ``left_s`` ``(N,)``: seconds from the grid's start to the deadline
    (``inf``: none); ``gpus`` ``(N,)``.
    """

    cost: FloatArray
    cost_now: FloatArray
    intensity_g_per_kwh: FloatArray
    intensity_now: FloatArray
    energy_j: FloatArray
    pue: FloatArray
    embodied_g: FloatArray
    lower: FloatArray
    latest_start_s: FloatArray
    allowed: BoolArray
    admissible: BoolArray
    duration_s: FloatArray
    left_s: FloatArray
    gpus: IntArray


def assign(
    rows: IntArray,
    inputs: GreedyInputs,
    capacity: CapacityTimeline,
    herd_penalty: float,
    min_saving: float,
    tolerance: float,
    duration_margin: float,
    planned: tuple[IntArray, IntArray] | None = None,
    replan_margin: float = 0.0,
) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """Assign the jobs ``rows`` in that order; returns (pool, slot, note) per job (``NOTE_*``)
    and leaves their runs reserved on ``capacity``. ``planned``: each job's plan as (pool,
    slot), in the order of ``rows`` (``-1``: none; :func:`policies.planner.planned_cells`)."""
    n = len(rows)
    if planned is None:
        planned = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    pool = np.zeros(n, dtype=np.int64)
    slot = np.zeros(n, dtype=np.int64)
    note = np.zeros(n, dtype=np.int8)
    c = capacity.kernel_arrays()
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    # Each job's pools by their cheapest cell, sorted for all jobs in one NumPy call (a sort
    # per job inside the loop took most of its time); the order of equal bounds does not
    # matter: a tie goes to the first cell whatever the visiting order.
    by_lower = np.argsort(inputs.lower[rows], axis=1)
    _assign(
        rows, by_lower, inputs.cost, inputs.cost_now,
        inputs.intensity_g_per_kwh, inputs.intensity_now,
        inputs.energy_j, inputs.pue, inputs.embodied_g, inputs.lower, inputs.latest_start_s,
        inputs.allowed, inputs.admissible, inputs.duration_s, inputs.left_s, inputs.gpus,
        c.offsets_s, c.hi_s, float(c.step_s), c.count, c.busy, c.levels, c.level_of, c.widths,
        c.size, c.load_gpu_s, c.used, c.full_gpu_s, c.min_busy, c.first_open,
        float(herd_penalty), float(min_saving), float(tolerance), float(duration_margin),
        np.ascontiguousarray(planned[0], dtype=np.int64),
        np.ascontiguousarray(planned[1], dtype=np.int64), float(replan_margin),
        pool, slot, note,
    )  # fmt: skip
    return pool, slot, note


def assign_weighted(
    rows: IntArray,
    inputs: GreedyInputs,
    weights: FloatArray,
    capacity: CapacityTimeline,
    herd_penalty: float,
    min_saving: float,
    tolerance: float,
    duration_margin: float,
) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """Assign the jobs ``rows`` in that order by the LP's ``weights`` (``(N, P, S)``, rows as
    ``inputs``'): each takes the free cell of largest weight, less ``1e-9`` x its cost over
    (the row's dearest free cost + 1), so that equal weights go to the cheaper cell (the first
    in (pool, slot) order when all is equal); with no weight above ``1e-6`` on a free cell, the
    cheapest free cell (no ``replan_margin``: the LP decides). Then the ``min_saving`` rule and
    the rescue path as :func:`assign`. Returns (pool, slot, note) per job and leaves their
    runs reserved on ``capacity``. Unlike :func:`assign` it scans every slot: ``inputs.cost``
    must be ``inf`` after each latest safe start, as the cost cube's planning cost is."""
    n = len(rows)
    pool = np.zeros(n, dtype=np.int64)
    slot = np.zeros(n, dtype=np.int64)
    note = np.zeros(n, dtype=np.int8)
    c = capacity.kernel_arrays()
    row = np.empty((inputs.cost.shape[1], c.count))  # one job's free costs, reused
    _assign_weighted(
        np.ascontiguousarray(rows, dtype=np.int64), inputs.cost, inputs.cost_now,
        inputs.intensity_g_per_kwh, inputs.intensity_now, inputs.energy_j, inputs.pue,
        inputs.embodied_g, inputs.allowed, inputs.admissible, inputs.duration_s, inputs.left_s,
        inputs.gpus, weights,
        c.offsets_s, c.hi_s, float(c.step_s), c.count, c.busy, c.levels, c.level_of, c.widths,
        c.size, c.load_gpu_s, c.used, c.full_gpu_s, c.min_busy, c.first_open,
        float(herd_penalty), float(min_saving), float(tolerance), float(duration_margin),
        row, pool, slot, note,
    )  # fmt: skip
    return pool, slot, note


@compiled
def _feasible(p, s, d, g, offsets, step, busy, levels, level_of, widths, size):  # type: ignore[no-untyped-def]
    """``CapacityTimeline.feasible`` for one cell."""
    fin = d if math.isfinite(d) else 0.0
    end = np.int64(math.ceil((offsets[s] + fin) / step))
    end = max(end, s + 1)
    end = min(end, busy.shape[1])
    level = level_of[end - s]
    left = levels[level, p, s]
    right = levels[level, p, end - widths[level]]
    return max(left, right) + g <= size[p]


@compiled
def _reserve(p, s, d, g, offsets, hi, step, count, busy, levels, widths, size, load, used, full,  # type: ignore[no-untyped-def]
             min_busy, first_open):  # fmt: skip
    """``CapacityTimeline.reserve`` (and the pool's least busy start instant), computed
    where the run changes them: the instants it covers, the window maxima over them (the
    table's level ``k`` at ``i`` reads level ``k - 1`` at ``i`` and ``i + half``), the slots
    it overlaps (elsewhere the reference adds ``0.0``, which leaves a load unchanged)."""
    n = busy.shape[1]
    start_s = offsets[s]
    fin = d if math.isfinite(d) else 0.0
    end = min(max(np.int64(math.ceil((start_s + fin) / step)), s + 1), n)
    for i in range(s, end):
        busy[p, i] += g
        levels[0, p, i] = busy[p, i]
    first_changed = s
    for k in range(1, len(widths)):
        half = widths[k - 1]
        first_changed = max(first_changed - half, 0)
        for i in range(first_changed, end):
            levels[k, p, i] = levels[k - 1, p, i]
            if i < n - half:
                levels[k, p, i] = max(levels[k - 1, p, i], levels[k - 1, p, i + half])
    end_s = start_s + fin
    for i in range(s, n):  # before s, a slot ends by the run's start: no overlap
        if offsets[i] >= end_s and i > s:
            break  # this slot and the later start after the run's end
        seconds = min(hi[i], end_s) - max(offsets[i], start_s)
        load[p, i] += g * max(seconds, 0.0)
        if i < count:
            f = full[p, i]
            used[p, i] = min(load[p, i] / f, 1.0) if f > 0 else 1.0
    lowest, first = busy[p, 0], count
    for i in range(count):
        lowest = min(lowest, busy[p, i])
        if first == count and busy[p, i] < size[p]:
            first = i
    min_busy[p] = lowest
    first_open[p] = first


@compiled
def _cheapest_now(r, g, cost0, used, herd, duration_s, offsets, step, busy, levels, level_of,  # type: ignore[no-untyped-def]
                  widths, size):  # fmt: skip
    """The cheapest start now that the devices allow (the cost raised by the herd penalty) and
    its pool (``inf, -1``: none): what a later start must beat by ``min_saving``."""
    now, now_p = np.inf, -1
    for p in range(cost0.shape[1]):
        c = cost0[r, p]
        if not c < np.inf:
            continue
        pen = c * (1.0 + herd * used[p, 0]) if herd > 0 else c
        if pen < now and _feasible(
            p, 0, duration_s[r, p], g, offsets, step, busy, levels, level_of, widths, size
        ):
            now, now_p = pen, p
    return now, now_p


# Kernels take arrays, not objects, and mirror the reference's branches: hence the noqa.
@compiled
def _rescue(r, pools_ok, admissible, duration_s, left_s, inten, inten0, energy, pue, emb,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912, PLR0915
            margin, g, offsets, step, count, busy, levels, level_of, widths, size, min_busy,
            first_open):  # fmt: skip
    """``planner._rescue``: (pool, slot) for a job with no free cell before its latest start."""
    n_pools = duration_s.shape[1]
    left = left_s[r]
    for rule in range(2):
        any_cell = False
        end_best, end_p, end_s = np.inf, 0, 0
        late_best, late_p, late_s, late_any = np.inf, 0, 0, False
        now_best, now_p, now_any = np.inf, 0, False  # the same, at slot 0 only
        soon_best, soon_p, soon_s, soon_any = np.inf, 0, 0, False
        for p in range(n_pools):
            ok = pools_ok[r, p] if rule == 0 else admissible[r, p]
            d = duration_s[r, p]
            if not ok or not math.isfinite(d) or min_busy[p] + g > size[p]:
                continue
            for s in range(first_open[p] if g >= 1 else 0, count):
                end = offsets[s] + d  # rises with s: the first free start ends soonest
                if end > left:
                    break  # no later start ends in time (and ends soonest is only asked
                    # of jobs without a deadline)
                if not _feasible(p, s, d, g, offsets, step, busy, levels, level_of, widths, size):
                    continue
                any_cell = True
                if end < end_best:
                    end_best, end_p, end_s = end, p, s
                if end + d * margin <= left:
                    late_any = True
                    # operational_g: energy_j / J_PER_KWH * intensity * pue, in that order
                    i = inten0[r, p] if s == 0 else inten[r, p, s]
                    grams = energy[r, p] / J_PER_KWH * i * pue[p] + emb[r, p]
                    if grams < late_best:
                        late_best, late_p, late_s = grams, p, s
                    if s == 0 and grams < now_best:
                        now_best, now_p, now_any = grams, p, True
                soon_any = True
                if end < soon_best:
                    soon_best, soon_p, soon_s = end, p, s
                if not math.isfinite(left):
                    break
        if not math.isfinite(left) and any_cell:
            return end_p, end_s
        if now_any:  # free now and in time with the margin: a late job does not wait
            return now_p, 0
        if late_any:
            return late_p, late_s
        if soon_any:
            return soon_p, soon_s
    # Any admissible pool, ending soonest; else the fastest admissible pool now.
    end_best, end_p, end_s, any_cell = np.inf, 0, 0, False
    for p in range(n_pools):
        d = duration_s[r, p]
        if not admissible[r, p] or not math.isfinite(d) or min_busy[p] + g > size[p]:
            continue
        for s in range(first_open[p] if g >= 1 else 0, count):
            end = offsets[s] + d
            if _feasible(p, s, d, g, offsets, step, busy, levels, level_of, widths, size):
                any_cell = True
                if end < end_best:
                    end_best, end_p, end_s = end, p, s
                break  # later starts in this pool end later
    if any_cell:
        return end_p, end_s
    fastest, fastest_p = np.inf, 0
    for p in range(n_pools):
        if admissible[r, p] and duration_s[r, p] < fastest:
            fastest, fastest_p = duration_s[r, p], p
    return fastest_p, 0


@compiled
def _assign(rows, by_lower, cost, cost0, inten, inten0, energy, pue, emb, lower, latest, allowed,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
            admissible, duration_s, left_s, gpus, offsets, hi, step, count, busy, levels,
            level_of, widths, size, load, used, full, min_busy, first_open, herd, min_saving,
            tolerance, margin, kept_pool, kept_slot, replan, out_pool, out_slot,
            out_note):  # fmt: skip
    keep = 1.0 - min_saving - tolerance
    for k in range(len(rows)):
        r = rows[k]
        g = gpus[r]
        best, bp, bs = np.inf, -1, -1
        for p in by_lower[k]:
            lb = lower[r, p]
            if not lb < np.inf:
                break  # this pool and the rest have no allowed cell
            if lb >= 0.0 and lb > best:
                break  # the penalty never lowers a cost: no later pool can win
            if lb == best and p > bp:
                continue  # at best a tie, which the earlier cell wins
            if min_busy[p] + g > size[p]:
                continue  # busy at every start instant
            d = duration_s[r, p]
            for s in range(first_open[p] if g >= 1 else 0, count):
                if offsets[s] > latest[r, p]:
                    break  # past the latest safe start: this slot and the later not allowed
                c = cost0[r, p] if s == 0 else cost[r, p, s]
                if not c < np.inf:
                    continue
                pen = c * (1.0 + herd * used[p, s]) if herd > 0 else c
                better = pen < best or (pen == best and (p < bp or (p == bp and s < bs)))
                if better and _feasible(
                    p, s, d, g, offsets, step, busy, levels, level_of, widths, size
                ):
                    best, bp, bs = pen, p, s
        kp, ks = kept_pool[k], kept_slot[k]
        if (
            replan > 0
            and bp >= 0
            and ks > 0
            and (kp != bp or ks != bs)
            and (offsets[ks] <= latest[r, kp])
        ):
            c = cost[r, kp, ks]
            pen = c * (1.0 + herd * used[kp, ks]) if herd > 0 else c
            if pen <= best * (1.0 + replan) and _feasible(
                kp, ks, duration_s[r, kp], g, offsets, step, busy, levels, level_of, widths, size
            ):
                best, bp, bs = pen, kp, ks  # the plan it has: not moved for a near-equal cell
        if bp < 0:
            bp, bs = _rescue(r, allowed, admissible, duration_s, left_s, inten, inten0, energy,
                             pue, emb,
                             margin, g,
                             offsets, step, count, busy, levels, level_of, widths, size,
                             min_busy, first_open)  # fmt: skip
            out_note[k] = 2 if allowed[r].any() else 1
        elif bs > 0:
            now, now_p = _cheapest_now(r, g, cost0, used, herd, duration_s, offsets, step, busy,
                                       levels, level_of, widths, size)  # fmt: skip
            if now_p >= 0 and best >= now * keep:
                bp, bs = now_p, 0
        out_pool[k], out_slot[k] = bp, bs
        _reserve(bp, bs, duration_s[r, bp], g, offsets, hi, step, count, busy, levels, widths,
                 size, load, used, full, min_busy, first_open)  # fmt: skip


@compiled
def _assign_weighted(rows, cost, cost0, inten, inten0, energy, pue, emb, allowed, admissible,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
                     duration_s, left_s, gpus, weights, offsets, hi, step, count, busy, levels,
                     level_of, widths, size, load, used, full, min_busy, first_open, herd,
                     min_saving, tolerance, margin, row, out_pool, out_slot,
                     out_note):  # fmt: skip
    """``planner._choose`` with weights, job after job: its row of free costs (``inf``: not
    allowed or not free), the cheapest cell (``np.argmin``: the first), the weighted choice
    over the whole row (``np.argmax`` of the score: the first), the ``min_saving`` rule."""
    n_pools = cost.shape[1]
    keep = 1.0 - min_saving - tolerance
    for k in range(len(rows)):
        r = rows[k]
        g = gpus[r]
        best, bp, bs = np.inf, -1, -1
        dearest, heaviest = 0.0, 0.0  # the free costs' and their weights' maxima (initial 0)
        for p in range(n_pools):
            d = duration_s[r, p]
            for s in range(count):
                c = cost0[r, p] if s == 0 else cost[r, p, s]
                v = np.inf
                if c < np.inf:
                    pen = c * (1.0 + herd * used[p, s]) if herd > 0 else c
                    if _feasible(p, s, d, g, offsets, step, busy, levels, level_of, widths, size):
                        v = pen
                row[p, s] = v
                if v < best:
                    best, bp, bs = v, p, s
                if v < np.inf:
                    dearest = max(dearest, v)
                    heaviest = max(heaviest, weights[r, p, s])
        if bp < 0:
            bp, bs = _rescue(r, allowed, admissible, duration_s, left_s, inten, inten0, energy,
                             pue, emb, margin, g, offsets, step, count, busy, levels, level_of,
                             widths, size, min_busy, first_open)  # fmt: skip
            out_note[k] = 2 if allowed[r].any() else 1
        else:
            if heaviest > 1e-6:
                top = -np.inf
                for p in range(n_pools):
                    for s in range(count):
                        v = row[p, s]
                        w, f = (weights[r, p, s], v) if v < np.inf else (0.0, 0.0)
                        score = w - 1e-9 * f / (dearest + 1.0)
                        if score > top or (p == 0 and s == 0):
                            top, bp, bs = score, p, s
                best = row[bp, bs]
            if bs > 0:
                now, now_p = _cheapest_now(r, g, cost0, used, herd, duration_s, offsets, step,
                                           busy, levels, level_of, widths, size)  # fmt: skip
                if now_p >= 0 and best >= now * keep:
                    bp, bs = now_p, 0
        out_pool[k], out_slot[k] = bp, bs
        _reserve(bp, bs, duration_s[r, bp], g, offsets, hi, step, count, busy, levels, widths,
                 size, load, used, full, min_busy, first_open)  # fmt: skip
