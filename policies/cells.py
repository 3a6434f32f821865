"""The scorer's cells in one compiled pass (:func:`policies.scoring.score`).

A new job's cube is a few pools by ~100 start slots: NumPy's per-call overhead over the
scorer's dozen array expressions cost more than their arithmetic. :func:`fill` performs
those expressions cell by cell, in their order (the accounting formula of
:mod:`policies.footprint.accounting`, the forecast-risk blend, the masks), compiled without
fast-math, so every value is the NumPy expressions' own, bit for bit (tested on random
inputs with infinities, NaN and zeros).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled
from policies.footprint.accounting import J_PER_KWH

__all__ = ["fill"]

FloatArray = npt.NDArray[np.float64]


def fill(
    means: FloatArray, upper: FloatArray | None, energy_j: FloatArray, embodied_g: FloatArray,
    pue: FloatArray, risk_aversion: float, ok: npt.NDArray[np.bool_], latest_s: FloatArray,
    offsets_s: FloatArray, mask_latest: bool,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """The cells of ``score``: (``intensity_g_per_kwh``, ``operational_g``, ``total_g``,
    ``planning_g``), each ``(J, P, S)``, from the pools' mean intensities ``means`` and their
    pessimistic means ``upper`` (``(P, J, S)``, :func:`policies.means.pool_means`; None:
    ``planning_g`` is ``total_g``), each (job, pool)'s energy (J, 0 where not ``ok``) and
    embodied grams ``(J, P)``, the pools' PUE ``(P,)`` and the pessimistic mean's weight.
    ``total_g`` and ``planning_g`` are ``inf`` where not ``ok`` and, with ``mask_latest``,
    where the slot starts (``offsets_s``, ``(S,)``) after the latest safe start
    ``latest_s`` ``(J, P)``."""
    n_pools, n_jobs, n_slots = means.shape
    intensity = np.empty((n_jobs, n_pools, n_slots))
    operational = np.empty_like(intensity)
    total = np.empty_like(intensity)
    planning = total if upper is None else np.empty_like(intensity)
    _fill(means, means if upper is None else upper, upper is not None, energy_j, embodied_g,
          pue, risk_aversion, ok, latest_s, offsets_s, mask_latest, intensity, operational,
          total, planning)  # fmt: skip
    return intensity, operational, total, planning


@compiled
def _fill(means, upper, hedged, energy_j, embodied_g, pue, risk_aversion, ok, latest_s,  # type: ignore[no-untyped-def]
          offsets_s, mask_latest, intensity, operational, total, planning):  # fmt: skip
    """:func:`fill` into the four arrays (``planning`` is ``total`` when not ``hedged``)."""
    n_pools, n_jobs, n_slots = means.shape
    for j in range(n_jobs):
        for p in range(n_pools):
            e = energy_j[j, p] / J_PER_KWH
            emb = embodied_g[j, p]
            for s in range(n_slots):
                mean = means[p, j, s]
                op = e * mean * pue[p]  # operational_g: energy_j / J_PER_KWH * intensity * pue
                intensity[j, p, s] = mean
                operational[j, p, s] = op
                allowed = ok[j, p] and (not mask_latest or offsets_s[s] <= latest_s[j, p])
                total[j, p, s] = op + emb if allowed else np.inf
                if hedged:
                    blend = mean + risk_aversion * (upper[p, j, s] - mean)
                    planning[j, p, s] = e * blend * pue[p] + emb if allowed else np.inf
