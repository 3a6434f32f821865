"""The scorer's compiled cells (``policies.cells.fill``) equal its NumPy expressions bit for
bit: the accounting formula, the forecast-risk blend and the masks, on random figures with
infinities, NaN, zeros and negative zeros (a NaN is a NaN: its sign and payload depend on
which operand the machine propagates, and nothing reads them)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.cells import fill
from policies.footprint.accounting import embodied_g, operational_g

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, 1e300])


def _figures(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> FloatArray:
    """Random figures, one in five replaced by a special value."""
    out: FloatArray = rng.uniform(0.0, scale, shape) * rng.choice([1.0, 1.0, 1.0, -1.0], shape)
    special = rng.random(shape) < 0.2
    out[special] = rng.choice(_SPECIAL, int(special.sum()))
    return out


def _numpy(
    means: FloatArray, upper: FloatArray | None, energy: FloatArray, emb: FloatArray,
    pue: FloatArray, ra: float, ok: BoolArray, latest: FloatArray, offsets: FloatArray,
    mask: bool,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """The scorer's NumPy expressions (``score`` before the compiled pass)."""
    mean = means.transpose(1, 0, 2)
    finite_e = energy[:, :, None]
    op = operational_g(finite_e, mean, pue[None, :, None])  # type: ignore[arg-type]  # PUE as an array
    if mask:
        allowed = ok[:, :, None] & (offsets[None, None, :] <= latest[:, :, None])
    else:
        allowed = np.broadcast_to(ok[:, :, None], op.shape)
    total = np.where(allowed, op + emb[:, :, None], np.inf)
    planning = total
    if upper is not None:
        blend = mean + ra * (upper.transpose(1, 0, 2) - mean)
        op_hedged = operational_g(finite_e, blend, pue[None, :, None])  # type: ignore[arg-type]  # PUE as an array
        planning = np.where(allowed, op_hedged + emb[:, :, None], np.inf)
    return mean, op, total, planning


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    jobs=st.integers(0, 6),
    pools=st.integers(1, 4),
    slots=st.integers(1, 9),
    hedged=st.booleans(),
    mask=st.booleans(),
    risk_aversion=st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.1234567]),
)
def test_fill_equals_the_numpy_expressions(
    seed: int, jobs: int, pools: int, slots: int, hedged: bool, mask: bool, risk_aversion: float
) -> None:
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):  # inf * 0, inf - inf: NaN, as the compiled pass gives it
        _check(rng, jobs, pools, slots, hedged, mask, risk_aversion)


def _check(
    rng: np.random.Generator, jobs: int, pools: int, slots: int, hedged: bool, mask: bool,
    risk_aversion: float,
) -> None:  # fmt: skip
    means = _figures(rng, (pools, jobs, slots), 900.0)
    upper = _figures(rng, (pools, jobs, slots), 1200.0) if hedged else None
    ok = rng.random((jobs, pools)) < 0.8
    energy = np.where(ok, _figures(rng, (jobs, pools), 5e7), 0.0)
    duration = _figures(rng, (jobs, pools), 4e4)
    emb = embodied_g(duration, _figures(rng, (jobs, pools), 2e5), 5.0)
    pue = _figures(rng, (pools,), 2.0)
    latest = _figures(rng, (jobs, pools), 9e4)
    offsets = np.sort(_figures(rng, (slots,), 9e4))
    got = fill(means, upper, energy, emb, pue, risk_aversion, ok, latest, offsets, mask)
    want = _numpy(means, upper, energy, emb, pue, risk_aversion, ok, latest, offsets, mask)
    for name, a, b in zip(("intensity", "operational", "total", "planning"), got, want,
                          strict=True):  # fmt: skip
        assert a.shape == b.shape, name
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        canonical = np.where(np.isnan(b), np.nan, b)  # -0.0 and 0.0 differ in their bytes
        assert np.where(np.isnan(a), np.nan, a).tobytes() == canonical.tobytes(), name


@pytest.mark.parametrize("hedged", [False, True])
def test_fill_without_a_bound_plans_on_the_totals(hedged: bool) -> None:
    """Without a pessimistic bound the planning cost is the total, the same array."""
    rng = np.random.default_rng(3)
    means = rng.uniform(10.0, 500.0, (2, 3, 4))
    ok = np.ones((3, 2), dtype=np.bool_)
    energy = rng.uniform(1e5, 1e7, (3, 2))
    emb = rng.uniform(0.1, 5.0, (3, 2))
    upper = means * 1.5 if hedged else None
    _, _, total, planning = fill(means, upper, energy, emb, np.ones(2), 0.5, ok,
                                 np.zeros((3, 2)), np.zeros(4), False)  # fmt: skip
    assert (planning is total) != hedged
    assert np.all(planning >= total) if hedged else True
