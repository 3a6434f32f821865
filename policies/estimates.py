"""Each job's estimate on each device pool: duration (s), energy (J) and whether it may run
there at all, as ``(J, P)`` arrays, before any forecast is read (the cost cube of
:mod:`policies.scoring` prices them at each start slot).

Each (job workload, GPU type) is estimated once, through the path the scalar policies take
(:func:`policies.candidates.estimate_on`), and kept in the caller's :data:`EstimateCache`
across calls; learned recalibration factors scale the kept estimates.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.candidates import estimate_on
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.types import JobSpec

if TYPE_CHECKING:
    from policies.scoring import Pool

__all__ = ["EstimateCache", "estimate_matrix"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
EstimateCache = MutableMapping[tuple[object, ...], Estimate]


def estimate_matrix(
    jobs: Sequence[JobSpec],
    pools: Sequence[Pool],
    cache: EstimateCache | None = None,
    recalibration: Recalibration | None = None,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Duration (s), energy (J) and admissibility of every job on every pool, shape ``(J, P)``.

    Each (job workload, GPU type) is estimated once; ``cache`` keeps estimates across calls.
    ``recalibration``'s factors (learned from measured outcomes) scale the cached estimates.
    Inadmissible cells (constraints, out of memory, too few devices) hold ``inf``.
    """
    cache = {} if cache is None else cache
    n_jobs, n_pools = len(jobs), len(pools)
    # Filled as flat lists, one row of P cells per job, made arrays once at the end.
    duration_cells: list[float] = []
    energy_cells: list[float] = []
    ok_cells: list[bool] = []
    sizes = [pool.size for pool in pools]
    memory = [pool.gpu.memory_gb for pool in pools]
    regions = [pool.region for pool in pools]
    gpu_names = [pool.gpu.name.lower() for pool in pools]
    # One device per GPU type stands for its type: estimates go through the same path as the
    # scalar policies (``estimate_on``: the calibrated serving model for continuous batching).
    types = {pool.gpu.name: pool.devices[0] for pool in pools}
    of_type = {name: [p for p, pool in enumerate(pools) if pool.gpu.name == name] for name in types}
    for job in jobs:  # a few pools: plain Python beats small-array NumPy here
        tp, need_gb = job.workload.tensor_parallel, job.min_gpu_memory_gb
        in_regions = set(job.regions) if job.regions else None
        in_types = {t.lower() for t in job.gpu_types} if job.gpu_types else None
        fits = [
            sizes[p] >= tp and memory[p] >= need_gb
            and (in_regions is None or regions[p] in in_regions)
            and (in_types is None or gpu_names[p] in in_types)
            for p in range(n_pools)
        ]  # fmt: skip
        first = len(duration_cells)
        duration_cells += [math.inf] * n_pools
        energy_cells += [math.inf] * n_pools
        ok_cells += [False] * n_pools
        for name, device in types.items():
            columns = [p for p in of_type[name] if fits[p]]
            if not columns:
                continue
            key = (job.model, job.runtime, job.workload, name)
            est = cache.get(key)
            if est is None:
                est = estimate_on(job, device)
                cache[key] = est
            if recalibration is not None:
                est = recalibration.apply(est)
            if est.fits:
                for p in columns:
                    duration_cells[first + p] = est.duration_s
                    energy_cells[first + p] = est.energy_j
                    ok_cells[first + p] = True
    shape = (n_jobs, n_pools)
    duration = np.array(duration_cells, dtype=np.float64).reshape(shape)
    energy = np.array(energy_cells, dtype=np.float64).reshape(shape)
    ok = np.array(ok_cells, dtype=np.bool_).reshape(shape)
    return duration, energy, ok
