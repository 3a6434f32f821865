"""The tuning front's ties: two settings whose grams differ only in the last bits of a float
sum (the same grams, summed in another order) are equal in grams, so the one that waits
longer is dominated."""

from __future__ import annotations

import pytest

from daemon.reports.pareto import mark_front, pareto


def test_grams_equal_but_for_rounding_do_not_keep_the_longer_wait_on_the_front() -> None:
    """``tune --policy carbon-window --grid min_saving=0.1,0.5`` on the solar study cluster
    (June 5, 12:00, a quarter day, slack 4 h): both settings ran every job on site, 152.3 g
    each as the table printed it, 1.4e-13 g apart in the JSON; the one that waited 6,336 s on
    average was marked on the front beside the one that waited 3,760 s."""
    points = [(152.32626034871024, 6335.612893745762), (152.32626034871038, 3759.6806903559327)]
    assert pareto(points) == [False, True]
    rows = [{"total_g": g, "mean_wait_s": w, "rejected": 0, "deadline_misses": 0}
            for g, w in points]  # fmt: skip
    mark_front(rows)
    assert [r["pareto"] for r in rows] == [False, True]


@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([(10.0, 5.0), (10.0, 5.0)], [True, True]),  # the same point twice: neither beats
        ([(10.0, 5.0), (10.0 + 1e-12, 5.0 - 1e-12)], [True, True]),  # the same, but for bits
        ([(10.0, 5.0), (9.99, 5.0)], [False, True]),  # a real saving still beats
        ([(10.0, 5.0), (9.0, 6.0)], [True, True]),  # a trade-off: both on the front
        ([(0.0, 0.0), (1e-15, 3.0)], [True, False]),  # near zero, the same rule
    ],
)
def test_the_front_compares_equal_values_as_equal(
    points: list[tuple[float, float]], front: list[bool]
) -> None:
    assert pareto(points) == front
