"""The rows the planner's fast path keeps per queued job (:mod:`policies.incremental`).

Preallocated arrays, one row per job while it is queued, and the objects last tick built from
them (plans, run-now counterfactuals, held decisions), reused when their cell is unchanged;
and the plan the service handed back for each job, with its (pool, slot). :func:`grams` reads
the grams of cells as :func:`alternatives` would build them, without building them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from policies.footprint.accounting import J_PER_KWH
from policies.scoring import Pool
from policies.types import Alternative, Decision, JobSpec, PlannedStart, new_alternative

__all__ = ["KeptRows", "alternatives", "grams"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _grown(a: npt.NDArray[np.generic], n: int, fill: object) -> npt.NDArray[np.generic]:
    """``a`` with ``n`` rows, the new ones ``fill``."""
    out = np.full((n, *a.shape[1:]), fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


class KeptRows:
    """Per-job scored rows in preallocated arrays; a job keeps its row while it is queued.

    ``cost`` is the planning cost (``inf`` where not allowed), ``intensity`` the mean forecast
    intensity, both ``(N, P, S)``, their slot 0 (which starts now) in ``cost_now`` and
    ``intensity_now`` ``(N, P)``, written every tick; the others are ``(N, P)`` or ``(N,)``, as in
    :class:`~policies.scoring.CostCube` and :class:`~policies.greedy.GreedyInputs`.
    ``lower_rest`` is each pool's cheapest cost over slots 1.. (slot 0 changes every tick).
    """

    def __init__(self, n_pools: int, n_slots: int) -> None:
        p, s = n_pools, n_slots
        self.row_of: dict[str, int] = {}
        self.job: list[JobSpec | None] = []
        self.free: list[int] = []
        self.cost: FloatArray = np.full((0, p, s), np.inf)
        self.intensity: FloatArray = np.zeros((0, p, s))
        self.cost_now: FloatArray = np.zeros((0, p))
        self.intensity_now: FloatArray = np.zeros((0, p))
        self.embodied: FloatArray = np.zeros((0, p))
        self.duration: FloatArray = np.zeros((0, p))
        self.energy: FloatArray = np.zeros((0, p))
        self.latest: FloatArray = np.zeros((0, p))
        self.lower_rest: FloatArray = np.zeros((0, p))
        self.lower: FloatArray = np.zeros((0, p))
        self.ok: BoolArray = np.zeros((0, p), dtype=np.bool_)
        self.allowed: BoolArray = np.zeros((0, p), dtype=np.bool_)
        self.left_s: FloatArray = np.zeros(0)
        self.gpus: IntArray = np.zeros(0, dtype=np.int64)
        self.latest_txt: dict[float, str] = {}  # latest safe starts as the reasons print them
        self.start_txt: dict[int, str] = {}  # slot starts (1..) as the reasons print them
        # Last tick's objects, reused when their cell (later than slot 0) is the same:
        # (no tuples per row: they would add to what every full garbage collection walks)
        self.plan: list[Alternative | None] = []
        self.plan_cell: IntArray = np.zeros((0, 2), dtype=np.int64)
        self.run_now: list[Alternative | None] = []
        self.run_now_cell: IntArray = np.zeros((0, 2), dtype=np.int64)
        self.held: list[Decision | None] = []
        self.held_latest: FloatArray = np.zeros(0)
        self.held_key: list[float | None] = []  # its " (N% below run-now)" (saving_keys)
        self.held_txt: list[str] = []  # its latest safe start as its reason prints it
        # The job's plan as the service handed it back (JobSpec.planned) and that plan as a
        # (pool, slot) of this grid (planner.planned_cells), while the grid keeps its anchor:
        self.given: list[PlannedStart | None] = []
        self.given_cell: IntArray = np.full((0, 2), -1, dtype=np.int64)

    def reserve(self, count: int) -> None:
        """Room for ``count`` more jobs (growing the arrays once, by at least half)."""
        if count > len(self.free):
            self._grow(max(64, len(self.job) + len(self.job) // 2, len(self.row_of) + count))

    def take(self, job: JobSpec) -> int:
        """A row for ``job``."""
        self.reserve(1)
        r = self.free.pop()
        self.row_of[job.job_id] = r
        self.job[r] = job
        self.plan[r] = self.run_now[r] = self.held[r] = self.given[r] = None
        self.given_cell[r] = -1
        return r

    def _grow(self, n: int) -> None:
        old = len(self.job)
        self.cost = _grown(self.cost, n, np.inf)  # type: ignore[assignment]
        self.intensity = _grown(self.intensity, n, 0.0)  # type: ignore[assignment]
        self.cost_now = _grown(self.cost_now, n, np.inf)  # type: ignore[assignment]
        self.intensity_now = _grown(self.intensity_now, n, 0.0)  # type: ignore[assignment]
        self.embodied = _grown(self.embodied, n, 0.0)  # type: ignore[assignment]
        self.duration = _grown(self.duration, n, np.inf)  # type: ignore[assignment]
        self.energy = _grown(self.energy, n, np.inf)  # type: ignore[assignment]
        self.latest = _grown(self.latest, n, 0.0)  # type: ignore[assignment]
        self.lower_rest = _grown(self.lower_rest, n, np.inf)  # type: ignore[assignment]
        self.lower = _grown(self.lower, n, np.inf)  # type: ignore[assignment]
        self.ok = _grown(self.ok, n, False)  # type: ignore[assignment]
        self.allowed = _grown(self.allowed, n, False)  # type: ignore[assignment]
        self.left_s = _grown(self.left_s, n, np.inf)  # type: ignore[assignment]
        self.gpus = _grown(self.gpus, n, 1)  # type: ignore[assignment]
        self.job.extend([None] * (n - old))
        self.plan.extend([None] * (n - old))
        self.run_now.extend([None] * (n - old))
        self.held.extend([None] * (n - old))
        self.held_key.extend([None] * (n - old))
        self.held_txt.extend([""] * (n - old))
        self.given.extend([None] * (n - old))
        self.given_cell = _grown(self.given_cell, n, -1)  # type: ignore[assignment]
        self.plan_cell = _grown(self.plan_cell, n, 0)  # type: ignore[assignment]
        self.run_now_cell = _grown(self.run_now_cell, n, 0)  # type: ignore[assignment]
        self.held_latest = _grown(self.held_latest, n, 0.0)  # type: ignore[assignment]
        self.free.extend(range(n - 1, old - 1, -1))

    def shift_cells(self, slots: int) -> None:
        """Follow the rows ``slots`` slots on (the grid's anchor moved): a kept plan's or run-now
        counterfactual's cell moves down with its values, and the object stays (a cell later
        than slot 0 keeps its start time and values); the plans handed back are read again and
        the texts kept by slot or by seconds from the anchor are dropped. A held decision's
        latest safe start (seconds from the old anchor) equals no new one: the decision
        repeats only if its text reads the same (``round_decisions.held``)."""
        self.plan_cell[:, 1] -= slots
        self.run_now_cell[:, 1] -= slots
        self.held_latest[:] = np.nan
        self.given = [None] * len(self.given)
        self.given_cell[:] = -1
        self.latest_txt.clear()
        self.start_txt.clear()

    def release(self, job_id: str) -> None:
        """Forget a job that left the queue."""
        r = self.row_of.pop(job_id)
        self.job[r] = None
        self.plan[r] = self.run_now[r] = self.held[r] = None
        self.free.append(r)


def alternatives(
    rows: KeptRows, r: IntArray, p: IntArray, s: IntArray, pools: Sequence[Pool],
    times: Sequence[datetime], devices: Sequence[tuple[str, ...] | None],
    starts: Sequence[datetime] | None = None,
) -> list[Alternative]:  # fmt: skip
    """:func:`policies.decisions.alternative_at` for the cells ``(r[k], p[k], s[k])`` of the
    stored rows (``devices[k]`` None: the pool's first ``tensor_parallel`` devices), starting
    at their slots' ``times`` or at ``starts[k]`` (priced at the slot all the same)."""
    energy, intensity, operational = _figures(rows, r, p, s, np.array([q.pue for q in pools]))
    first_ids: dict[tuple[int, int], tuple[str, ...]] = {}
    ids = list(devices)
    for k, (pk, gk) in enumerate(zip(p.tolist(), rows.gpus[r].tolist(), strict=True)):
        if ids[k] is None:
            first = first_ids.get((pk, gk))
            if first is None:
                first = first_ids[pk, gk] = tuple(d.device_id for d in pools[pk].devices[:gk])
            ids[k] = first
    at = p.tolist()
    regions = [q.region for q in pools]
    gpus = [q.gpu.name for q in pools]
    return list(map(
        new_alternative, ids, map(regions.__getitem__, at), map(gpus.__getitem__, at),
        map(times.__getitem__, s.tolist()) if starts is None else starts,
        rows.duration[r, p].tolist(), energy.tolist(),
        intensity.tolist(), operational.tolist(), rows.embodied[r, p].tolist(),
    ))  # fmt: skip


def grams(rows: KeptRows, r: IntArray, p: IntArray, s: IntArray, pue: FloatArray) -> FloatArray:
    """The total grams (``total_g``) of the alternatives :func:`alternatives` builds for the
    cells ``(r[k], p[k], s[k])``, for all at once and without building them: the same float64
    operations in the same order (``pue[q]``: pool ``q``'s PUE), so the same values, NaN and
    infinities included. NaN where ``p[k]`` is negative (no cell)."""
    out = np.full(len(r), np.nan)
    has = p >= 0
    r, p, s = r[has], p[has], s[has]
    _, _, operational = _figures(rows, r, p, s, pue)
    with np.errstate(all="ignore"):
        out[has] = operational + rows.embodied[r, p]
    return out


def _figures(
    rows: KeptRows, r: IntArray, p: IntArray, s: IntArray, pue: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The energy, mean intensity (slot 0's from ``intensity_now``) and operational grams of
    the cells ``(r[k], p[k], s[k])``: ``operational_g``'s operations in its order, in float64
    as Python's floats compute them (``pue[q]``: pool ``q``'s PUE)."""
    energy = rows.energy[r, p]
    intensity = np.where(s == 0, rows.intensity_now[r, p], rows.intensity[r, p, s])
    with np.errstate(all="ignore"):  # inf * 0 is NaN, as Python's floats give it
        operational = energy / J_PER_KWH * intensity * pue[p]
    return energy, intensity, operational
