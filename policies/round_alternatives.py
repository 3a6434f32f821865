"""A planning round's alternatives from the kept rows (:mod:`policies.incremental`): each
queued job's run-now counterfactual (its cell and grams for every job, the object only for
the jobs whose decision is built this round) and its planned cell, last round's objects where
the cell is the same, and each pool's ready devices looked up once per round."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled
from policies.decisions import priced_at, ready_devices
from policies.kept_rows import KeptRows, alternatives, grams
from policies.run_now_claims import claimed_cells, run_now_holders, run_now_ready, slot_at
from policies.scoring import Pool, SlotGrid
from policies.types import Alternative, Device, JobSpec, ZoneIntensity

__all__ = ["Ready", "RunNow", "planned"]

FloatArray = npt.NDArray[np.float64]
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


class RunNow:
    """:func:`policies.decisions.run_now_alternative` of each row ``at[k]`` (job ``jobs[k]``):
    the fastest admissible pool among those whose devices are free first in the run-now
    counterfactual (ties: the first pool), :mod:`policies.run_now_claims`.

    The cells of the jobs whose counterfactual is recorded already are found for all at once
    (but those of the jobs whose own recorded run holds a GPU longest, which see it free
    earlier: :attr:`~policies.types.Device.run_now_holder`, one by one); those of the others
    (the round's arrivals, few) one by one in FIFO order, each claiming its devices from the
    later ones (:func:`~policies.run_now_claims.claimed_cells`). Their grams are read from
    the rows (:meth:`total_g`), and an :class:`~policies.types.Alternative` is built only for
    the jobs asked (:meth:`alternatives`): those started, and the held ones whose decision is
    built again (a held decision repeated from last round keeps the counterfactual stored
    with it, :func:`policies.round_decisions.held`). ``round_s``: the planning interval, a
    copy starting at the first round from when its devices are free.
    """

    def __init__(
        self, rows: KeptRows, at: IntArray, pools: Sequence[Pool], grid: SlotGrid,
        times: Sequence[datetime], now: datetime, ready_of: Ready, pue: FloatArray,
        forecasts: Mapping[str, ZoneIntensity], jobs: Sequence[JobSpec],
        round_s: float | None = None,
    ) -> None:  # fmt: skip
        self._rows, self._at, self._pools, self._times, self._pue = rows, at, pools, times, pue
        self._forecasts = forecasts
        self.pool = np.full(len(at), -1, dtype=np.int64)  # -1: no pool has devices for it
        self.start = np.zeros(len(at), dtype=np.int64)  # its start slot, maybe past the grid
        self.free_at = np.full(len(at), now, dtype=object)  # its start: when its devices are
        self._grid = grid
        self._ids: dict[int, list[tuple[str, ...] | None]] = {}  # per GPU count, by pool
        self._own: dict[int, tuple[str, ...]] = {}  # the devices a job claimed, by k
        need = rows.gpus[at]
        offsets = ready_of.offsets_s.tolist()  # slot_at's quickest
        for g in np.unique(need).tolist():
            sel = np.flatnonzero(need == g)
            ready = [run_now_ready(pool, now, g, {}, None, round_s) for pool in pools]
            ready_s = np.array(
                [math.inf if x is None else (x[0] - grid.start).total_seconds() for x in ready]
            )
            slot_of = np.array(  # counted on past the horizon (priced there: _priced)
                [0 if x is None else slot_at(grid, offsets, x[0]) for x in ready],
                dtype=np.int64,
            )
            self._ids[g] = [None if x is None else tuple(d.device_id for d in x[1]) for x in ready]
            free_at = np.array([now if x is None else x[0] for x in ready], dtype=object)
            p = np.empty(len(sel), dtype=np.int64)
            _first_ready(at[sel], rows.ok, rows.duration, ready_s, p)
            has = np.flatnonzero(p >= 0)
            self.pool[sel[has]] = p[has]
            self.start[sel[has]] = slot_of[p[has]]
            self.free_at[sel[has]] = free_at[p[has]]
        new = [k for k, job in enumerate(jobs) if not job.run_now_recorded]
        holders = run_now_holders(pools)  # recorded jobs whose own run holds a GPU: one by one
        own = (
            [k for k, job in enumerate(jobs) if job.run_now_recorded and job.job_id in holders]
            if holders
            else []
        )
        for ks, claim in ((new, True), (own, False)):
            if not ks:
                continue
            r = at[ks]
            cells = claimed_cells(pools, grid, [jobs[k] for k in ks], rows.duration[r],
                                  rows.ok[r], range(len(ks)), claim, round_s)  # fmt: skip
            for i, k in enumerate(ks):
                cell = cells.get(i)
                self.pool[k] = -1 if cell is None else cell[0]
                if cell is not None:
                    self.start[k] = slot_at(grid, offsets, cell[1])
                    self.free_at[k] = cell[1]
                    self._own[k] = tuple(d.device_id for d in cell[2])
        self.slot = np.minimum(self.start, grid.count - 1)  # the cell it is priced at

    def total_g(self, ks: IntArray) -> FloatArray:
        """The grams of the jobs ``ks``' counterfactuals (NaN: none), as built."""
        out = grams(self._rows, self._at[ks], self.pool[ks], self.slot[ks], self._pue)
        for i in np.flatnonzero(self.start[ks] > self.slot[ks]).tolist():
            out[i] = self._priced(int(ks[i]), None).total_g
        return out

    def _priced(self, k: int, alt: Alternative | None) -> Alternative:
        """Job ``k``'s counterfactual past the grid (``alt``: as built at the grid's last
        slot, or None: build it), priced at its start (:func:`~policies.decisions.priced_at`)."""
        one = slice(k, k + 1)
        if alt is None:
            (alt,) = alternatives(self._rows, self._at[one], self.pool[one], self.slot[one],
                                  self._pools, self._times, [None])  # fmt: skip
        pool = self._pools[int(self.pool[k])]
        start = self._grid.time(int(self.start[k]))
        return priced_at(alt, start, self._forecasts[pool.zone], pool.pue)

    def alternatives(self, ks: IntArray) -> list[Alternative | None]:
        """The jobs ``ks``' counterfactuals (None: none): last round's object where the cell
        (later than slot 0, whose values move with now) and the devices are the same."""
        rows = self._rows
        out: list[Alternative | None] = [None] * len(ks)
        has = np.flatnonzero(self.pool[ks] >= 0)
        r, p, s = self._at[ks[has]], self.pool[ks[has]], self.slot[ks[has]]
        cell = rows.run_now_cell[r]
        past = self.start[ks[has]] > s  # a start past the grid: built again, its start set
        todo = ~((s > 0) & (cell[:, 0] == p) & (cell[:, 1] == s)) | past
        kept, ids, own, at = rows.run_now, self._ids, self._own, has.tolist()
        rs, gs, ps, k_of = r.tolist(), rows.gpus[r].tolist(), p.tolist(), ks[has].tolist()
        named = [own.get(k_of[i]) or ids[gs[i]][ps[i]] for i in range(len(rs))]
        starts = self.free_at[ks[has]].tolist()
        for i in np.flatnonzero(~todo).tolist():  # last round's object, if its devices too
            seen = kept[rs[i]]
            if seen is not None and seen.device_ids == named[i] and seen.start == starts[i]:
                out[at[i]] = seen
            else:
                todo[i] = True
        t = np.flatnonzero(todo)
        built = alternatives(rows, r[t], p[t], s[t], self._pools, self._times,
                             [named[i] for i in t.tolist()],
                             [starts[i] for i in t.tolist()])  # fmt: skip
        for i, alt in zip(t.tolist(), built, strict=True):  # past the grid: priced there
            out[at[i]] = kept[rs[i]] = (
                replace(self._priced(int(ks[has[i]]), alt), start=starts[i]) if past[i] else alt
            )
        # A start past the grid is kept under no cell: once the grid moves on, the cell it
        # was priced at (the last) would read as an earlier start of the same object.
        rows.run_now_cell[r[t], 0] = np.where(past[t], -1, p[t])
        rows.run_now_cell[r[t], 1] = s[t]
        return out


@compiled
def _first_ready(at, ok, duration, ready_s, out):  # type: ignore[no-untyped-def]
    """Per row ``at[k]``: among its admissible pools whose devices are free first
    (``ready_s``, ``inf``: never), the fastest, ties to the first pool; -1 with none free.
    As NumPy would over the rows: the minima with ``np.min``'s rules (a NaN duration ties
    with nothing), each minimum's first pool."""
    for k in range(len(at)):
        r = at[k]
        first = np.inf
        for p in range(len(ready_s)):
            if ok[r, p] and ready_s[p] < first:
                first = ready_s[p]
        out[k] = -1
        if not math.isfinite(first):
            continue
        fastest = np.inf
        for p in range(len(ready_s)):
            if ok[r, p] and ready_s[p] == first:
                d = duration[r, p]
                if math.isnan(d):  # np.min: a NaN is the minimum, and equals nothing
                    fastest = d
                    break
                fastest = min(fastest, d)
        for p in range(len(ready_s)):
            if ok[r, p] and ready_s[p] == first and duration[r, p] == fastest:
                out[k] = p
                break


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
