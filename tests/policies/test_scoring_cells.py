"""The scorer's compiled pass over the cells (``scoring._cells``): the NumPy expressions it
replaced, bit for bit."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pytest

from policies.estimates import estimate_matrix
from policies.footprint.accounting import operational_g
from policies.scoring import SlotGrid, _cells, _zone_means, make_pools, score
from tests.policies.conftest import NOW
from tests.policies.random_cluster import world

FloatArray = npt.NDArray[np.float64]


def reference(
    means: FloatArray, upper: FloatArray | None, risk: float, energy: FloatArray,
    ok: npt.NDArray[np.bool_], emb: FloatArray, pue: FloatArray, offsets: FloatArray,
    latest: FloatArray, mask: bool,
) -> tuple[FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """``score``'s NumPy expressions before the compiled pass: operational, total and
    planning grams ``(J, P, S)`` from the means ``(P, J, S)``."""
    mean = means.transpose(1, 0, 2)
    finite_e = np.where(ok, energy, 0.0)[:, :, None]
    op = operational_g(finite_e, mean, pue[None, :, None])  # type: ignore[arg-type]
    if mask:
        allowed = ok[:, :, None] & (offsets[None, None, :] <= latest[:, :, None])
    else:
        allowed = np.broadcast_to(ok[:, :, None], op.shape)
    total = np.where(allowed, op + emb[:, :, None], np.inf)
    planning = total
    if upper is not None:
        hedged = mean + risk * (upper.transpose(1, 0, 2) - mean)
        op_hedged = operational_g(finite_e, hedged, pue[None, :, None])  # type: ignore[arg-type]
        planning = np.where(allowed, op_hedged + emb[:, :, None], np.inf)
    return op, total, planning


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("risk", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("mask", [True, False])
def test_the_cube_is_the_numpy_expressions(seed: int, risk: float, mask: bool) -> None:
    """Random clusters and queues (jobs without a deadline, pools a job does not fit, forecasts
    with a bound for even seeds, a grid whose slot 0 is part-way into its step): the cube's
    operational, total and planning grams equal the NumPy expressions on the same means."""
    w = world(seed, n_devices=9, n_jobs=40, hedged=seed % 2 == 0)
    grid = SlotGrid.aligned(NOW + timedelta(minutes=11, seconds=7), 900, 24)
    pools = make_pools(w.devices)
    estimates = estimate_matrix(w.jobs, pools)
    cube = score(w.jobs, pools, w.forecasts, grid, estimates=estimates, duration_margin=0.2,
                 guard_s=60.0, risk_aversion=risk, mask_latest=mask)  # fmt: skip
    hedged = seed % 2 == 0 and risk > 0
    means, upper = _zone_means(pools, w.forecasts, grid, grid.offsets_s, estimates[0], hedged)
    pue = np.array([p.pue for p in pools])
    op, total, planning = reference(means, upper, risk, estimates[1], estimates[2],
                                    cube.embodied_g, pue, grid.offsets_s, cube.latest_start_s,
                                    mask)  # fmt: skip
    assert np.array_equal(cube.operational_g, op)
    assert np.array_equal(cube.total_g, total)
    assert np.array_equal(cube.planning_g, planning)
    assert (cube.planning_g is cube.total_g) == (not hedged)
    assert not np.array_equal(cube.planning_g, cube.total_g) or not hedged
    finite = np.isfinite(cube.total_g)
    assert finite.any() and not finite.all()
    assert not cube.admissible.all() and any(j.deadline is None for j in w.jobs)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("hedged", [True, False])
def test_any_operands_give_the_numpy_values(seed: int, hedged: bool) -> None:
    """Operands no forecast gives (NaN, infinite, zero and negative means, energies and
    embodied grams; latest starts equal to a slot's start, NaN or infinite): still the NumPy
    values, NaN where NumPy gives NaN."""
    rng = np.random.default_rng(seed)
    n_jobs, n_pools, n_slots = 7, 4, 9
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -3.5, 1e-300, 1e300])

    def some(shape: tuple[int, ...], low: float, high: float) -> FloatArray:
        values = rng.uniform(low, high, shape)
        odd = rng.random(shape) < 0.15
        values[odd] = rng.choice(specials, int(odd.sum()))
        return values

    means = some((n_pools, n_jobs, n_slots), 10.0, 800.0)
    upper = some(means.shape, 10.0, 900.0) if hedged else None
    energy = some((n_jobs, n_pools), 1e3, 1e8)
    ok = rng.random((n_jobs, n_pools)) < 0.8
    emb = some((n_jobs, n_pools), 0.0, 5.0)
    pue = rng.uniform(1.0, 1.6, n_pools)
    offsets = np.arange(n_slots, dtype=np.float64) * 900.0
    latest = rng.choice(np.append(offsets, [np.nan, np.inf, -np.inf, 450.0]), (n_jobs, n_pools))
    risk = float(rng.uniform(0.1, 1.0))
    for mask in (True, False):
        with np.errstate(all="ignore"):  # inf * 0, inf - inf: NaN, as NumPy gives it
            expected = reference(means, upper, risk, energy, ok, emb, pue, offsets, latest, mask)
        shape = (n_jobs, n_pools, n_slots)
        op, total = np.full(shape, -7.0), np.full(shape, -7.0)
        planning = total if upper is None else np.full(shape, -7.0)
        _cells(means, means if upper is None else upper, upper is not None, risk, energy, ok,
               emb, pue, offsets, latest, mask, op, total, planning)  # fmt: skip
        for got, want in zip((op, total, planning), expected, strict=True):
            assert np.array_equal(got, want, equal_nan=True)
            assert np.array_equal(np.signbit(got), np.signbit(want))
        assert np.isnan(op).any() and np.isinf(total).any()
