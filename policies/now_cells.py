"""What a tick computes again for every queued job, each in one compiled pass over the kept
rows: slot 0 scored (it starts *now*) and each job's regret (it is priced at the forecast's
mean from now).

The planner's fast path (:mod:`policies.incremental`) does this every tick for the whole
queue. As NumPy expressions over ``(J, P)`` that took a dozen temporaries and as many passes,
plus gathers from and scatters into the kept rows; here one loop reads each cell's inputs
from its row and writes its outputs there. Each performs the NumPy reference's operations
(:func:`policies.scoring.score`'s slot 0, :func:`policies.scoring.typical_g` and
``planner._regret``, :func:`policies.footprint.accounting.operational_g`) in their order, so
the values are equal bit for bit (tests compare them).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled
from policies.footprint.accounting import J_PER_KWH

__all__ = ["NowInputs", "NowOutputs", "regret_rows", "score_cells_now"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

NowInputs = tuple[FloatArray, FloatArray, BoolArray, BoolArray, FloatArray, FloatArray]
"""Per row: duration (s), energy (J), admissible, allowed (``(N, P)``: a cell not allowed
costs ``inf``), embodied grams ``(N, P)`` and seconds from the grid's start to the deadline
``(N,)`` (not finite: none)."""

NowOutputs = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]
"""Per row, written: the planning cost ``(N, P)`` (``inf`` where not allowed or past the
latest safe start), the mean intensity, the latest safe start; and each pool's cheapest cost
read from the rows' cheapest later cost (``lower_rest`` and ``lower``, both ``(N, P)``, or
both empty: not written)."""


def score_cells_now(
    at: IntArray,
    inputs: NowInputs,
    mean: FloatArray,
    upper: FloatArray | None,
    pue: FloatArray,
    *,
    first_offset_s: float,
    duration_margin: float,
    guard_s: float,
    risk_aversion: float,
    outputs: NowOutputs,
) -> None:
    """Score slot 0 of rows ``at[k]`` into ``outputs``: ``mean`` (and ``upper``, the
    pessimistic bound's, or None: not hedged) is the forecast mean over each run from slot
    0's start, ``(P, len(at))`` by pool then ``k``; ``pue`` ``(P,)``."""
    duration, energy, ok, allowed, embodied, left_s = inputs
    cost, intensity, latest, lower_rest, lower = outputs
    _score(
        np.ascontiguousarray(at, dtype=np.int64), duration, energy, ok, allowed, embodied,
        left_s, mean, mean if upper is None else upper, upper is not None, float(risk_aversion),
        float(first_offset_s), float(duration_margin), float(guard_s), pue, cost, intensity,
        latest, lower_rest, lower,
    )  # fmt: skip


@compiled
def _score(at, duration, energy, ok, allowed, embodied, left_s, mean, upper, hedged, risk,  # type: ignore[no-untyped-def]
           first_s, margin, guard_s, pue, cost, intensity, latest, lower_rest, lower):  # fmt: skip
    """:func:`score_cells_now`, cell by cell: ``scoring._latest`` (a job without a deadline
    starts at slot 0), the hedged mean, ``operational_g`` and the planning cost as
    ``score`` computes them, ``np.minimum`` for the cheapest cost."""
    bounds = lower.shape[0] > 0
    for k in range(len(at)):
        r = at[k]
        left = left_s[r]
        for p in range(duration.shape[1]):
            start = first_s
            if math.isfinite(left):
                start = left - duration[r, p] * (1.0 + margin) - guard_s
            m = mean[p, k]
            hedge = m + risk * (upper[p, k] - m) if hedged else m
            energy_j = energy[r, p] if ok[r, p] else 0.0
            grams = energy_j / J_PER_KWH * hedge * pue[p] + embodied[r, p]
            c = grams if ok[r, p] and first_s <= start and allowed[r, p] else np.inf
            cost[r, p] = c
            intensity[r, p] = m
            latest[r, p] = start
            if bounds:
                rest = lower_rest[r, p]
                lower[r, p] = rest if rest < c or math.isnan(rest) else c  # np.minimum


def regret_rows(
    at: IntArray, energy: FloatArray, ok: BoolArray, allowed: BoolArray, embodied: FloatArray,
    mean: FloatArray, pue: FloatArray,
) -> FloatArray:  # fmt: skip
    """``planner._regret`` of the allowed cells of ``scoring.typical_g`` for the rows
    ``at`` (``(N, P)`` arrays; ``mean``: :func:`policies.scoring.horizon_means`): the
    grams a job loses if its cheapest pool is taken, ``(len(at),)``."""
    out = np.empty(len(at))
    _regret(np.ascontiguousarray(at, dtype=np.int64), energy, ok, allowed, embodied, mean, pue,
            out)  # fmt: skip
    return out


@compiled
def _regret(at, energy, ok, allowed, embodied, mean, pue, out):  # type: ignore[no-untyped-def]
    """Per row, the two cheapest typical grams (``inf`` where not admissible or not allowed;
    a NaN is the dearest, as ``np.partition`` orders it, after the two ``inf`` the reference
    pads with) and their difference, ``inf - inf`` (NaN) read as 0."""
    for k in range(len(at)):
        r = at[k]
        first, second = np.inf, np.inf
        for p in range(energy.shape[1]):
            if not (ok[r, p] and allowed[r, p]):
                continue
            grams = energy[r, p] / J_PER_KWH * mean[p] * pue[p] + embodied[r, p]
            if grams < first:
                first, second = grams, first
            elif grams < second:
                second = grams
        gap = second - first
        out[k] = 0.0 if math.isnan(gap) else gap
