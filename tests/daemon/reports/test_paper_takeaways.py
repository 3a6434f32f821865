"""``carbond paper``'s takeaway rows: each "same direction" check must be able to say NO."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daemon.reports.paper import Takeaway, places, takeaways
from policies.footprint.gpus import DEFAULT_GPU_CATALOG
from policies.footprint.paper import PaperCell, characterise


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


def test_batch_one_rows_cover_all_three_model_sizes_the_paper_compares() -> None:
    """Section 2.2 gives the batch-1 T4/RTX6000-Ada comparison for 1B, 3B and 7B; the 3B
    result (T4 1.4x *more* energy) is the one carbond's model does not reproduce, and the
    table must say so rather than leave it out (README "What carbond's model says")."""
    rows = _rows()
    for model in ("llama-1b", "llama-3b", "llama-7b"):
        assert rows[f"{model}, batch 1: T4 latency vs RTX6000-Ada"].holds
    energy = {m: rows[f"{m}, batch 1: T4 energy per prompt vs RTX6000-Ada"]
              for m in ("llama-1b", "llama-3b", "llama-7b")}  # fmt: skip
    assert energy["llama-1b"].holds and energy["llama-7b"].holds
    three = energy["llama-3b"]
    assert three.paper == "1.4x more"
    assert three.carbond.endswith("less") and not three.holds


def test_the_7b_oom_row_needs_the_t4_to_run_batch_4_as_the_paper_did() -> None:
    """Section 2.2 reports the T4 running 7B at batch 4 (11.4x slower than the RTX6000-Ada):
    running out of memory there is not the paper's finding, only at larger batches."""
    row = "llama-7b on T4 at large batch"
    assert _rows()[row].holds
    smaller = _rows(T4={"memory_gb": 15.2})  # 7B fp16 fits at batch 2, not at 4
    assert smaller[row].carbond == "OOM from batch 4"
    assert not smaller[row].holds


def _scaled(
    cells: list[PaperCell], model: str, batch: int, ratio: float, field: str
) -> list[PaperCell]:
    """``cells`` with the T4's ``field`` (``energy_j`` or ``batch_latency_s``) of ``model`` at
    ``batch`` set to ``ratio`` times the RTX6000-Ada's (per prompt), in every zone."""
    rtx = next(c for c in cells if (c.model, c.gpu, c.batch_size) == (model, "RTX6000-Ada", batch))
    out = []
    for c in cells:
        if (c.model, c.gpu, c.batch_size) == (model, "T4", batch):
            if field == "energy_j":
                value = (
                    c.estimate.energy_j * ratio * rtx.energy_per_prompt_j / c.energy_per_prompt_j
                )
            else:
                value = rtx.latency_s * ratio
            out.append(replace(c, estimate=replace(c.estimate, **{field: value})))
        else:
            out.append(c)
    return out


@pytest.mark.parametrize("ratio", [1.003, 0.997, 1.0004, 0.9996])
def test_a_ratio_near_one_is_printed_on_the_side_it_is_judged(ratio: float) -> None:
    """A T4/RTX6000-Ada ratio of 1.003 printed "1.00x" with "yes" (more), and 0.997 printed
    the same "1.00x" with NO: the judge used the unrounded value. Enough digits are printed
    to show the side of 1 it is on, so the printed figure says why."""
    cells = list(characterise())
    batch64 = "llama-1b, batch 64: T4 energy per prompt vs RTX6000-Ada"
    latency = "llama-1b, batch 1: T4 latency vs RTX6000-Ada"
    rows = {t.claim: t for t in takeaways(_scaled(cells, "llama-1b", 64, ratio, "energy_j"))}
    shown = float(rows[batch64].carbond.removesuffix("x"))
    assert shown != 1.0 and (shown > 1) == rows[batch64].holds == (ratio > 1)
    assert rows[batch64].carbond == f"{ratio:g}x"
    rows = {t.claim: t for t in takeaways(_scaled(cells, "llama-1b", 1, ratio, "batch_latency_s"))}
    shown = float(rows[latency].carbond.removesuffix("x slower"))
    assert shown != 1.0 and (shown > 1) == rows[latency].holds == (ratio > 1)


def test_ratios_away_from_one_keep_their_two_digits() -> None:
    """The README's table is unchanged: only a figure that would print on its threshold gets
    more digits."""
    rows = _rows()
    assert rows["llama-1b, batch 64: T4 energy per prompt vs RTX6000-Ada"].carbond == "1.40x"
    assert rows["llama-1b, batch 1: T4 latency vs RTX6000-Ada"].carbond == "1.17x slower"
    assert places([(36.2, 0.0)], 0) == 0 and places([(0.4, 0.0)], 0) == 1  # percent
