"""A planning round's alternatives from the kept rows (:mod:`policies.incremental`): each
queued job's run-now counterfactual and its planned cell, last round's objects where the cell
is the same, and each pool's ready devices looked up once per round."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.decisions import ready_devices
from policies.kept_rows import KeptRows, alternatives
from policies.scoring import Pool, SlotGrid
from policies.types import Alternative, Device

__all__ = ["Ready", "planned", "run_now"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Ready:
    """:func:`policies.decisions.ready_devices` of a round's pools, each answer computed once
    (the devices' busy times do not change within a round)."""

    def __init__(self, pools: Sequence[Pool], grid: SlotGrid) -> None:
        self._pools = pools
        self._grid = grid
        self.offsets_s = grid.offsets_s  # the grid's, computed once a round
        self._seen: dict[tuple[int, datetime, int], tuple[datetime, list[Device]] | None] = {}
        self._blocked: dict[int, tuple[BoolArray, dict[int, datetime]]] = {}

    def __call__(self, p: int, at: datetime, need: int) -> tuple[datetime, list[Device]] | None:
        key = (p, at, need)
        if key not in self._seen:
            self._seen[key] = ready_devices(self._pools[p], at, need)
        return self._seen[key]

    def blocked(self, now: datetime, need: int) -> tuple[BoolArray, dict[int, datetime]]:
        """The (pool, slot) cells at which ``need`` of a pool's devices are not all free from
        ``now`` (the round's start) on ``(P, S)``, and when they are, per pool that has them."""
        seen = self._blocked.get(need)
        if seen is None:
            grid = self._grid
            offsets = self.offsets_s
            blocked = np.zeros((len(self._pools), grid.count), dtype=np.bool_)
            ready_at: dict[int, datetime] = {}
            for q in range(len(self._pools)):
                first = self(q, now, need)
                if first is None:
                    blocked[q] = True
                    continue
                ready_at[q] = first[0]
                blocked[q] = offsets < (first[0] - grid.start).total_seconds() - 1e-6
            seen = self._blocked[need] = blocked, ready_at
        return seen


def run_now(
    rows: KeptRows, at: IntArray, pools: Sequence[Pool], grid: SlotGrid,
    times: Sequence[datetime], now: datetime, ready_of: Ready,
) -> list[Alternative | None]:  # fmt: skip
    """:func:`policies.decisions.run_now_alternative` for the rows ``at``: the fastest
    admissible pool among those whose devices are free first (ties: the first pool)."""
    out: list[Alternative | None] = [None] * len(at)
    need = rows.gpus[at]
    for g in np.unique(need):
        sel = np.flatnonzero(need == g)
        ready = [ready_of(p, now, int(g)) for p in range(len(pools))]
        ready_s = np.array(
            [math.inf if x is None else (x[0] - grid.start).total_seconds() for x in ready]
        )
        later = [np.flatnonzero(ready_of.offsets_s >= t - 1e-6) for t in ready_s]
        slot_of = np.array([x[0] if x.size else grid.count - 1 for x in later], dtype=np.int64)
        ids = [None if x is None else tuple(d.device_id for d in x[1]) for x in ready]
        admissible = rows.ok[at[sel]]
        first = np.where(admissible, ready_s[None, :], np.inf)
        cand = admissible & (first == first.min(axis=1, initial=np.inf)[:, None])
        by = np.where(cand, rows.duration[at[sel]], np.inf)
        cand &= by == by.min(axis=1, initial=np.inf)[:, None]
        cand &= np.isfinite(first)
        has = np.flatnonzero(cand.any(axis=1))
        p = cand.argmax(axis=1)[has]
        where = sel[has]
        held = at[where]
        cell = rows.run_now_cell[held]
        same = (slot_of[p] > 0) & (cell[:, 0] == p) & (cell[:, 1] == slot_of[p])
        todo = ~same
        kept = rows.run_now
        for i in np.flatnonzero(same).tolist():  # last round's object, if its devices too
            seen = kept[int(held[i])]
            if seen is not None and seen.device_ids == ids[int(p[i])]:
                out[int(where[i])] = seen
            else:
                todo[i] = True
        r_todo, p_todo = held[todo], p[todo]
        built = alternatives(rows, r_todo, p_todo, slot_of[p_todo], pools, times,
                             [ids[q] for q in p_todo.tolist()])  # fmt: skip
        for k, r, alt in zip(where[todo].tolist(), r_todo.tolist(), built, strict=True):
            out[k] = kept[r] = alt
        rows.run_now_cell[r_todo, 0] = p_todo
        rows.run_now_cell[r_todo, 1] = slot_of[p_todo]
    return out


def planned(
    rows: KeptRows, at: IntArray, pool: IntArray, slot: IntArray, pools: Sequence[Pool],
    times: Sequence[datetime],
) -> list[Alternative]:  # fmt: skip
    """Each job's planned cell as an alternative: last round's object when the cell is the
    same and later than slot 0 (whose values move with now)."""
    cells = rows.plan_cell[at]
    same = (slot > 0) & (cells[:, 0] == pool) & (cells[:, 1] == slot)
    kept = rows.plan
    plans = [kept[r] if ok else None for r, ok in zip(at.tolist(), same.tolist(), strict=True)]
    todo = np.array([k for k, x in enumerate(plans) if x is None], dtype=np.int64)
    built = alternatives(rows, at[todo], pool[todo], slot[todo], pools, times,
                         [None] * len(todo))  # fmt: skip
    for k, r, alt in zip(todo.tolist(), at[todo].tolist(), built, strict=True):
        plans[k] = kept[r] = alt
    rows.plan_cell[at[todo], 0] = pool[todo]
    rows.plan_cell[at[todo], 1] = slot[todo]
    return [x for x in plans if x is not None]
