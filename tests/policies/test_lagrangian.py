"""The Lagrangian dual bound: never above the LP's optimum (weak duality, against HiGHS on
random assignment LPs), close to it once climbed, exact where no capacity row binds."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix

from policies.lagrangian import lagrangian_bound
from tests.fuzzing import examples

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LP = tuple[FloatArray, IntArray, csr_matrix, FloatArray]


def _lp(seed: int, jobs: int, cells_per_job: int, rows: int, tight: float) -> LP:
    """A random assignment LP with non-negative capacity rows that one random assignment
    meets with ``tight`` of each row's room to spare (so the LP is feasible)."""
    rng = np.random.default_rng(seed)
    job = np.repeat(np.arange(jobs), cells_per_job)
    n = len(job)
    cost = rng.uniform(1.0, 10.0, n)
    dense = rng.uniform(0.0, 1.0, (rows, n)) * (rng.uniform(size=(rows, n)) < 0.3)
    pick = np.arange(jobs) * cells_per_job + rng.integers(0, cells_per_job, jobs)
    b = dense[:, pick].sum(axis=1) * (1.0 + tight) + 1e-3
    return cost, job, csr_matrix(dense), b


def _cheapest_cells(cost: FloatArray, job: IntArray) -> float:
    return float(np.minimum.reduceat(cost, np.unique(job, return_index=True)[1]).sum())


def _lp_optimum(cost: FloatArray, job: IntArray, a_ub: csr_matrix, b_ub: FloatArray) -> float:
    n_jobs = int(job.max()) + 1
    a_eq = coo_matrix((np.ones(len(job)), (job, np.arange(len(job)))), shape=(n_jobs, len(job)))
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(n_jobs),
                     bounds=(0, None), method="highs")  # fmt: skip
    assert result.status == 0
    return float(result.fun)


# half the profile's examples: each solves an LP with HiGHS (make fuzz: 8,500)
@settings(max_examples=examples(0.5), deadline=None)
@given(
    seed=st.integers(0, 10_000),
    jobs=st.integers(1, 12),
    cells=st.integers(1, 6),
    rows=st.integers(1, 15),
    tight=st.sampled_from([0.0, 0.05, 0.5]),
)
def test_the_dual_bound_is_never_above_the_lp(
    seed: int, jobs: int, cells: int, rows: int, tight: float
) -> None:
    cost, job, a_ub, b_ub = _lp(seed, jobs, cells, rows, tight)
    optimum = _lp_optimum(cost, job, a_ub, b_ub)
    dual = lagrangian_bound(cost, job, a_ub, b_ub, max_steps=300)
    assert dual.value <= optimum + 1e-9 * abs(optimum)
    assert dual.value >= _cheapest_cells(cost, job) - 1e-9  # never below lam = 0


@pytest.mark.parametrize("seed", range(4))
def test_climbed_the_dual_bound_nears_the_lp(seed: int) -> None:
    """60 jobs of 8 cells over 30 rows that bind (the cheapest cells do not fit): within 0.1 %
    of the LP's optimum, and well above every job on its cheapest cell."""
    cost, job, a_ub, b_ub = _lp(seed, 60, 8, 30, 0.0)
    optimum = _lp_optimum(cost, job, a_ub, b_ub)
    alone = _cheapest_cells(cost, job)
    dual = lagrangian_bound(cost, job, a_ub, b_ub)
    assert optimum > alone * 1.05  # capacity matters here
    assert optimum * 0.999 <= dual.value <= optimum * (1 + 1e-9)


def test_without_binding_rows_it_is_each_jobs_cheapest_cell_at_once() -> None:
    cost, job, a_ub, _ = _lp(3, 10, 4, 5, 0.0)
    roomy = np.full(a_ub.shape[0], 1e6)
    dual = lagrangian_bound(cost, job, a_ub, roomy)
    assert dual.value == pytest.approx(_cheapest_cells(cost, job))
    assert dual.steps == 1


def test_cells_must_be_grouped_by_job() -> None:
    cost, job, a_ub, b_ub = _lp(1, 3, 2, 2, 0.0)
    with pytest.raises(ValueError, match="sorted"):
        lagrangian_bound(cost, job[::-1].copy(), a_ub, b_ub)
    with pytest.raises(ValueError, match="one LP"):
        lagrangian_bound(cost, job, a_ub, b_ub[:-1])
