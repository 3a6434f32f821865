from __future__ import annotations

import pytest

from policies.footprint.embodied import DEFAULT_ACT, ActParameters


@pytest.mark.parametrize(
    ("node_nm", "key"),
    [
        (5, 5),  # listed: itself
        (12, 14),  # between two listed: the nearest above
        (4, 5),
        (2, 3),  # below every listed node: the smallest
        (40, 28),  # above every listed node: the largest (the nearest), not the smallest
        (65, 28),
    ],
)
def test_node_key_takes_the_nearest_listed_node_at_or_above_else_the_largest(
    node_nm: int, key: int
) -> None:
    assert DEFAULT_ACT.node_key(node_nm) == key


def test_node_key_follows_the_nodes_a_site_lists() -> None:
    params = ActParameters(epa_kwh_per_cm2={7: 2.0, 16: 1.2}, gpa_g_per_cm2={7: 1.0, 16: 1.0})
    assert (params.node_key(5), params.node_key(12), params.node_key(28)) == (7, 16, 16)
