"""A round's run-now cells: the compiled search equals the NumPy expressions it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from policies.round_alternatives import _first_ready


def _numpy(at: np.ndarray, ok: np.ndarray, duration: np.ndarray, ready_s: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The fastest admissible pool among those free first, as array passes over the rows."""
    admissible = ok[at]
    first = np.where(admissible, ready_s[None, :], np.inf)
    cand = admissible & (first == first.min(axis=1, initial=np.inf)[:, None])
    by = np.where(cand, duration[at], np.inf)
    cand &= by == by.min(axis=1, initial=np.inf)[:, None]
    cand &= np.isfinite(first)
    out: np.ndarray = np.where(cand.any(axis=1), cand.argmax(axis=1), -1)  # type: ignore[type-arg]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_first_free_fastest_pool_is_numpys(seed: int) -> None:
    """Ties in free times and durations, pools never free, no admissible pool, infinite and
    NaN durations."""
    rng = np.random.default_rng(seed)
    n_rows, n_pools = 300, 7
    ok = rng.random((n_rows, n_pools)) < 0.6
    duration = rng.choice([60.0, 90.0, 90.0, 120.0, np.inf, np.nan], size=(n_rows, n_pools),
                          p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])  # fmt: skip
    ready_s = rng.choice([0.0, 0.0, 300.0, 900.0, np.inf], size=n_pools)
    at = rng.permutation(n_rows)[: n_rows // 2]
    out = np.empty(len(at), dtype=np.int64)
    _first_ready(at, ok, duration, ready_s, out)
    expected = _numpy(at, ok, duration, ready_s)
    assert out.tolist() == expected.tolist()
    assert (expected == -1).any() and (expected >= 0).any()
