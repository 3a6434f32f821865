"""A round's held-decision texts, keyed for many jobs at once, read as one job at a time."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from policies.reasons import saving
from policies.round_decisions import saving_keys, saving_text
from policies.types import Alternative

_AT = datetime(2026, 12, 5, tzinfo=UTC)
_GRAMS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 0.995, 1.005, 0.125, 1e-300]),
)


def _alt(operational_g: float, embodied_g: float) -> Alternative:
    return Alternative(("d0",), "r", "T4", _AT, 60.0, 1.0, 100.0, operational_g, embodied_g)


def _keys(plans: list[Alternative], run_now: list[Alternative | None]) -> list[float | None]:
    """:func:`saving_keys` of the pairs' grams, as ``round_decisions.held`` gives them."""
    plan_g = np.array([p.total_g for p in plans])
    now_g = np.array([math.nan if r is None else r.total_g for r in run_now])
    return saving_keys(plan_g, now_g)


def savings(
    plans: list[Alternative], run_now: list[Alternative | None], texts: dict[float, str]
) -> list[str]:
    """Each pair's text through its key, as ``round_decisions.held`` reads them."""
    keys = _keys(plans, run_now)
    assert len(keys) == len(plans)
    return [saving_text(key, p, r, texts) for key, p, r in zip(keys, plans, run_now, strict=True)]


@given(st.lists(st.tuples(_GRAMS, _GRAMS, _GRAMS, _GRAMS, st.booleans()), max_size=30))
def test_savings_read_as_saving_one_by_one(cells: list[tuple[float, ...]]) -> None:
    plans = [_alt(a, b) for a, b, _, _, _ in cells]
    run_now = [_alt(c, d) if some else None for _, _, c, d, some in cells]
    texts: dict[float, str] = {}
    first = savings(plans, run_now, texts)
    assert first == [saving(p, r) for p, r in zip(plans, run_now, strict=True)]
    assert savings(plans, run_now, texts) == first  # from the kept texts
    by_key: dict[float, str] = {}  # held reuses a reason when the keys are equal
    for key, text in zip(_keys(plans, run_now), first, strict=True):
        if key is None:
            assert text == ""
        elif not math.isnan(key):
            assert by_key.setdefault(key, text) == text


def test_a_share_that_rounds_to_zero_is_not_quoted() -> None:
    """It read "(0% above run-now)" (a negative zero, its own key): neither sign is quoted."""
    plans = [_alt(100.4, 0.0), _alt(99.6, 0.0), _alt(100.0, 0.0), _alt(98.0, 0.0)]
    texts: dict[float, str] = {}
    got = savings(plans, [_alt(100.0, 0.0)] * 4, texts)
    assert got == ["", "", "", " (2% below run-now)"]
    assert _keys(plans, [_alt(100.0, 0.0)] * 4) == [None, None, None, 2.0]
