"""The compiled greedy's kernels (:mod:`policies.greedy` calls them; read its docstring), and
the look-ahead's local search (``moves_kernel``, :func:`policies.local_search.improve` calls
it), which takes the greedy's near-ties (``_earliest_in_row``).

Every numba kernel that calls another lives in this one module with it: numba's on-disk cache
(``cache=True``, :mod:`policies.compiled`) tracks only the file of the function it compiles,
so a kernel calling a kernel of another module would keep the callee it was compiled with
after an edit to that module alone (``tests/policies/test_compiled_kernels.py``). Kernels take
arrays, not objects, and mirror the NumPy reference's branches (``greedy_reference.choose``,
``greedy_reference.rescue``, the local search's reference in
``tests/policies/test_lookahead_compiled.py``): hence the noqa.
"""

from __future__ import annotations

import math

import numpy as np

from policies.compiled import compiled
from policies.footprint.accounting import J_PER_KWH

__all__ = ["assign_kernel", "assign_weighted_kernel", "moves_kernel"]


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
def _rescue(r, pools_ok, admissible, duration_s, left_s, inten, inten0, energy, pue, emb,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
            margin, g, offsets, step, count, busy, levels, level_of, widths, size, min_busy,
            first_open, tolerance):  # fmt: skip
    """``greedy_reference.rescue``: (pool, slot) for a job with no free cell before its latest start
    (the earliest start in time with the margin, in its cheapest pool; ``tolerance`` is
    unused, kept for the greedy's call)."""
    n_pools = duration_s.shape[1]
    left = left_s[r]
    for rule in range(2):
        any_cell = False
        end_best, end_p, end_s = np.inf, 0, 0
        first_best, first_p, first_s = np.inf, 0, count  # the first start in time, cheapest
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
                if end + d * margin <= left and s <= first_s:
                    # operational_g: energy_j / J_PER_KWH * intensity * pue, in that order
                    i = inten0[r, p] if s == 0 else inten[r, p, s]
                    grams = energy[r, p] / J_PER_KWH * i * pue[p] + emb[r, p]
                    if s < first_s or grams < first_best:  # np.argmin: the first pool of ties
                        first_best, first_p, first_s = grams, p, s
                soon_any = True
                if end < soon_best:
                    soon_best, soon_p, soon_s = end, p, s
                if not math.isfinite(left):
                    break
        if not math.isfinite(left) and any_cell:
            return end_p, end_s
        if first_s < count:  # a late job does not wait: its first start in time (now if it can)
            return first_p, first_s
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


@compiled
def _earliest_near(r, g, k, by_lower, best, bp, bs, cost, cost0, lower, latest, duration_s,  # type: ignore[no-untyped-def]
                   offsets, step, count, busy, levels, level_of, widths, size, used, min_busy,
                   first_open, herd, tolerance):  # fmt: skip
    """Of the free cells within ``tolerance`` of the cheapest, ``best`` at (``bp``, ``bs``),
    the earliest slot, then the first pool (:func:`policies.near_ties.earliest_near`): its
    (cost, pool, slot). Only a pool whose cheapest cell is within the tolerance can hold one,
    and only its slots up to the candidate's."""
    near = best + tolerance * abs(best)
    for p in by_lower[k]:
        lb = lower[r, p]
        if not lb < np.inf or (lb >= 0.0 and lb > near):
            break  # this pool and the rest have no cell within the tolerance
        if min_busy[p] + g > size[p]:
            continue
        d = duration_s[r, p]
        for s in range(first_open[p] if g >= 1 else 0, bs + 1):
            if (s == bs and p >= bp) or offsets[s] > latest[r, p]:
                break  # not before the candidate, or past the latest safe start
            c = cost0[r, p] if s == 0 else cost[r, p, s]
            if not c < np.inf:
                continue
            pen = c * (1.0 + herd * used[p, s]) if herd > 0 else c
            if pen <= near and _feasible(
                p, s, d, g, offsets, step, busy, levels, level_of, widths, size
            ):
                best, bp, bs = pen, p, s
                break  # this pool's earliest
    return best, bp, bs


@compiled
def _earliest_in_row(row, best, count, tolerance):  # type: ignore[no-untyped-def]
    """:func:`_earliest_near` over a row of free costs (``inf``: not free) whose cheapest is
    ``best``: the first (slot, pool) within the tolerance, as (cost, pool, slot)."""
    near = best + tolerance * abs(best)
    for s in range(count):
        for p in range(row.shape[0]):
            if row[p, s] <= near:
                return row[p, s], p, s
    return best, -1, -1  # not reached: the cheapest cell is within


@compiled
def assign_kernel(rows, by_lower, cost, cost0, inten, inten0, energy, pue, emb, lower, latest,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
            allowed, admissible, duration_s, left_s, gpus, offsets, hi, step, count, busy, levels,
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
            if lb >= 0.0 and lb >= best:
                break  # the penalty never lowers a cost: no later pool is cheaper (a tie:
                # _earliest_near below)
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
                if pen < best and _feasible(
                    p, s, d, g, offsets, step, busy, levels, level_of, widths, size
                ):
                    best, bp, bs = pen, p, s
        if bp >= 0:
            best, bp, bs = _earliest_near(
                r, g, k, by_lower, best, bp, bs, cost, cost0, lower, latest, duration_s,
                offsets, step, count, busy, levels, level_of, widths, size, used, min_busy,
                first_open, herd, tolerance,
            )  # fmt: skip
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
                            pue, emb, margin, g, offsets, step, count, busy, levels, level_of,
                            widths, size, min_busy, first_open, tolerance)  # fmt: skip
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
def assign_weighted_kernel(rows, cost, cost0, inten, inten0, energy, pue, emb, allowed, admissible,  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
                     duration_s, left_s, gpus, weights, offsets, hi, step, count, busy, levels,
                     level_of, widths, size, load, used, full, min_busy, first_open, herd,
                     min_saving, tolerance, weight_tie, margin, row, out_pool, out_slot,
                     out_note):  # fmt: skip
    """``greedy_reference.choose`` with weights, job after job: its row of free costs (``inf``: not
    allowed or not free), the cheapest cell (near-ties: the earliest); with a weight above
    ``1e-6`` on a free cell, the free cells of weight within ``weight_tie`` of the heaviest
    (the others set to ``inf`` in ``row``), of those the cheapest (near-ties: the earliest);
    the ``min_saving`` rule."""
    n_pools = cost.shape[1]
    keep = 1.0 - min_saving - tolerance
    for k in range(len(rows)):
        r = rows[k]
        g = gpus[r]
        best, bp, bs = np.inf, -1, -1
        heaviest = 0.0  # the free cells' largest weight (initial 0)
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
                    heaviest = max(heaviest, weights[r, p, s])
        if bp < 0:
            bp, bs = _rescue(r, allowed, admissible, duration_s, left_s, inten, inten0, energy,
                            pue, emb, margin, g, offsets, step, count, busy, levels, level_of,
                            widths, size, min_busy, first_open, tolerance)  # fmt: skip
            out_note[k] = 2 if allowed[r].any() else 1
        else:
            best, bp, bs = _earliest_in_row(row, best, count, tolerance)
            if heaviest > 1e-6:  # of the heaviest cells, the cheapest (near-ties: earliest)
                floor = heaviest - weight_tie
                best = np.inf
                for p in range(n_pools):
                    for s in range(count):
                        if not weights[r, p, s] >= floor:
                            row[p, s] = np.inf
                        best = min(best, row[p, s])
                best, bp, bs = _earliest_in_row(row, best, count, tolerance)
            if bs > 0:
                now, now_p = _cheapest_now(r, g, cost0, used, herd, duration_s, offsets, step,
                                           busy, levels, level_of, widths, size)  # fmt: skip
                if now_p >= 0 and best >= now * keep:
                    bp, bs = now_p, 0
        out_pool[k], out_slot[k] = bp, bs
        _reserve(bp, bs, duration_s[r, bp], g, offsets, hi, step, count, busy, levels, widths,
                 size, load, used, full, min_busy, first_open)  # fmt: skip


@compiled
def moves_kernel(cost, ends, gpus, busy, size, min_saving, passes, pool, slot, tolerance):  # type: ignore[no-untyped-def]  # noqa: C901, PLR0912
    """:func:`policies.local_search.improve`'s passes over the movable jobs (row ``m``: its cost
    ``(P, S)``, the ends of its runs, its devices; its cell in ``pool[m], slot[m]``, updated in
    place) on ``busy``, the devices in use per (pool, instant), updated in place. Returns the
    moves.

    The reference it replaced, per job: take its run off ``busy``; the cells whose run finds
    ``gpus`` devices free at every instant it covers keep their cost, the others ``inf``; from
    a start now, later cells not below ``(1 - min_saving - tolerance)`` x the cheapest
    free start-now cost become ``inf``; ``np.argmin`` over the (pool, slot) row (the first of equal
    costs, or the first NaN); where that is finite, of the cells within ``tolerance``
    (relative) of it the earliest slot, then the first pool (``_earliest_in_row``); a move
    when that cell is below ``cost * (1 - tolerance)``; the run put back where it is."""
    n_pools, n_slots = cost.shape[1], cost.shape[2]
    row = np.empty((n_pools, n_slots))
    moves = 0
    for _ in range(passes):
        moved = False
        for m in range(len(pool)):
            p, s, g = pool[m], slot[m], gpus[m]
            for i in range(s, ends[m, p, s]):
                busy[p, i] -= g
            for q in range(n_pools):
                for t in range(n_slots):
                    in_use = 0
                    for i in range(t, ends[m, q, t]):
                        in_use = max(in_use, busy[q, i])
                    row[q, t] = cost[m, q, t] if in_use + g <= size[q] else np.inf
            hold_below = np.inf
            if s == 0:  # a later slot must beat the cheapest free start now (none: any)
                hold_below = row[0, 0]
                for q in range(1, n_pools):
                    c = row[q, 0]
                    if c < hold_below or math.isnan(c):
                        hold_below = c
                        if math.isnan(c):
                            break
                hold_below = (1.0 - min_saving - tolerance) * hold_below
            best, bq, bt = np.inf, 0, 0
            first = True
            for q in range(n_pools):
                for t in range(n_slots):
                    v = row[q, t]
                    if s == 0 and t > 0 and not v < hold_below:
                        v = np.inf
                        row[q, t] = v
                    if first or v < best or (math.isnan(v) and not math.isnan(best)):
                        best, bq, bt = v, q, t
                        first = False
            if best < np.inf:  # finite (no NaN in the row): a near-tie goes to the earlier start
                best, bq, bt = _earliest_in_row(row, best, n_slots, tolerance)
            if best < cost[m, p, s] * (1.0 - tolerance):
                pool[m], slot[m] = bq, bt
                moves += 1
                moved = True
            p, s = pool[m], slot[m]
            for i in range(s, ends[m, p, s]):
                busy[p, i] += g
        if not moved:
            break
    return moves
