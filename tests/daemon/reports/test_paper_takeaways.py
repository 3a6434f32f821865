"""``carbond paper``'s takeaway rows: each "same direction" check must be able to say NO."""

from __future__ import annotations

from daemon.reports.paper import Takeaway, takeaways
from policies.footprint.gpus import DEFAULT_GPU_CATALOG
from policies.footprint.paper import characterise


def _rows(**overrides: dict[str, object]) -> dict[str, Takeaway]:
    catalog = DEFAULT_GPU_CATALOG.with_overrides(overrides)
    return {t.claim: t for t in takeaways(list(characterise(gpu_catalog=catalog)))}


SHARE_ROWS = (
    "T4: max embodied share, QC / CISO / PACE (1B)",
    "RTX6000-Ada: max embodied share, QC / CISO / PACE (1B)",
)


def test_embodied_share_rows_hold_in_the_paper_setup() -> None:
    rows = _rows()
    assert all(rows[claim].holds for claim in SHARE_ROWS)


def test_embodied_share_rows_fail_when_the_t4_embodies_more_than_the_rtx6000_ada() -> None:
    """The share falls from QC to PACE for any GPU (Eq. 4), so that alone is no check; the
    paper's finding is also that the RTX6000-Ada's share is the larger in every region."""
    rows = _rows(T4={"embodied_kg": 100.0})
    assert not any(rows[claim].holds for claim in SHARE_ROWS)
