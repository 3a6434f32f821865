"""The paper's takeaways, reproduced by carbond's estimator in the paper's setup.

Nothing here is hard-coded from the paper's results: each assertion compares two outputs of
the model. The setup (hf-eager runtime, fp32 weights for 1B/3B, fp16 for 7B, 150 output
tokens, 2023 zone averages, 5-year lifetime) is :mod:`policies.footprint.paper`.
"""

from __future__ import annotations

import pytest

from policies.footprint.paper import (
    PAPER_BATCH_SIZES,
    PAPER_INPUT_TOKENS,
    PAPER_MODELS,
    PAPER_OUTPUT_TOKENS,
    PAPER_ZONES,
    PaperCell,
    characterise,
    phase_cells,
)

CELLS = list(characterise())
QC, CISO, PACE = "CA-QC", "US-CAL-CISO", "US-NW-PACE"


def cell(
    model: str, gpu: str, batch: int, zone: str = QC, cells: list[PaperCell] = CELLS
) -> PaperCell:
    return next(
        c for c in cells if (c.model, c.gpu, c.batch_size, c.zone) == (model, gpu, batch, zone)
    )


@pytest.mark.parametrize("model", PAPER_MODELS)
@pytest.mark.parametrize("batch", PAPER_BATCH_SIZES)
def test_rtx6000_ada_is_faster_than_t4_wherever_both_run(model: str, batch: int) -> None:
    t4, rtx = cell(model, "T4", batch), cell(model, "RTX6000-Ada", batch)
    assert rtx.fits
    if t4.fits:
        assert rtx.latency_s < t4.latency_s


@pytest.mark.parametrize("model", ["llama-1b", "llama-7b"])
def test_t4_uses_less_energy_per_prompt_at_batch_one(model: str) -> None:
    assert (
        cell(model, "T4", 1).energy_per_prompt_j < cell(model, "RTX6000-Ada", 1).energy_per_prompt_j
    )


def test_rtx6000_ada_uses_less_energy_per_prompt_at_large_batch() -> None:
    assert (
        cell("llama-1b", "RTX6000-Ada", 64).energy_per_prompt_j
        < cell("llama-1b", "T4", 64).energy_per_prompt_j
    )


def test_seven_b_at_large_batch_does_not_fit_a_t4() -> None:
    big = cell("llama-7b", "T4", 64)
    assert not big.fits and "out of memory" in big.estimate.reason
    assert cell("llama-7b", "T4", 1).fits
    assert cell("llama-7b", "RTX6000-Ada", 64).fits


def _max_share(gpu: str, zone: str) -> float:
    return max(
        c.per_prompt.embodied_share
        for c in CELLS
        if (c.model, c.gpu, c.zone) == ("llama-1b", gpu, zone) and c.per_prompt
    )


@pytest.mark.parametrize("gpu", ["T4", "RTX6000-Ada"])
def test_embodied_share_falls_as_the_grid_gets_dirtier(gpu: str) -> None:
    assert _max_share(gpu, QC) > _max_share(gpu, CISO) > _max_share(gpu, PACE)
    for batch in PAPER_BATCH_SIZES:
        shares = [cell("llama-1b", gpu, batch, z).per_prompt.embodied_share for z in PAPER_ZONES]  # type: ignore[union-attr]
        assert shares == sorted(shares, reverse=True)


@pytest.mark.parametrize("zone", list(PAPER_ZONES))
def test_embodied_share_is_larger_for_the_rtx6000_ada(zone: str) -> None:
    assert _max_share("RTX6000-Ada", zone) > _max_share("T4", zone)


def test_t4_in_quebec_beats_rtx6000_ada_in_dirtier_grids_even_at_batch_64() -> None:
    """Section 3.2: location can outweigh hardware efficiency."""
    t4_qc = cell("llama-1b", "T4", 64, QC).per_prompt
    for zone in (CISO, PACE):
        rtx = cell("llama-1b", "RTX6000-Ada", 64, zone).per_prompt
        assert t4_qc is not None and rtx is not None
        assert t4_qc.total_g < rtx.total_g


def test_precision_hypothesis_fp32_explains_the_batch_64_crossover() -> None:
    """With fp16 weights the memory-bound T4 stays ahead even at batch 64, contradicting the
    paper; with the HF default fp32 the RTX6000-Ada wins at batch 64 as the paper measured."""
    fp16 = list(characterise(models=("llama-1b",), zones=(QC,), precision="fp16"))
    t4 = cell("llama-1b", "T4", 64, cells=fp16)
    rtx = cell("llama-1b", "RTX6000-Ada", 64, cells=fp16)
    assert t4.energy_per_prompt_j < rtx.energy_per_prompt_j
    assert (
        cell("llama-1b", "T4", 64).energy_per_prompt_j
        > cell("llama-1b", "RTX6000-Ada", 64).energy_per_prompt_j
    )


def test_longer_lifetime_lowers_the_embodied_share() -> None:
    """Takeaway 5 (Figure 7): amortising over more years lowers the embodied share."""
    shares = []
    for years in (4.0, 5.0, 6.0, 8.0):
        cells = list(characterise(models=("llama-1b",), gpus=("T4",), batch_sizes=(1,),
                                  zones=(QC,), lifetime_years=years))  # fmt: skip
        assert cells[0].per_prompt is not None
        shares.append(cells[0].per_prompt.embodied_share)
    assert shares == sorted(shares, reverse=True)


def test_phases_split_each_1b_prompt_into_prefill_and_decode_per_token() -> None:
    """Figures 2, 3, 5 and 6: the 1B model's two phases per token, in Québec (Section 3.3)."""
    phases = phase_cells(CELLS)
    assert {(c.model, c.zone) for c in phases} == {("llama-1b", QC)}
    assert [c.phase for c in phases] == ["prefill"] * 14 + ["decode"] * 14
    for c in phases:
        whole = cell(c.model, c.gpu, c.batch_size)
        per_request = PAPER_INPUT_TOKENS if c.phase == "prefill" else PAPER_OUTPUT_TOKENS - 1
        assert c.tokens == c.batch_size * per_request
        assert c.per_token is not None and whole.per_prompt is not None
        assert c.throughput_tokens_per_s == pytest.approx(c.tokens / c.duration_s)
        assert c.energy_per_token_j == pytest.approx(c.energy_j / c.tokens)
    # the phases' grams (operational for their energy, embodied for their time) add up to
    # the prompt's: Figures 5 and 6 split Figure 4's bars, they do not recount them
    for gpu in ("T4", "RTX6000-Ada"):
        for batch in PAPER_BATCH_SIZES:
            two = [c for c in phases if (c.gpu, c.batch_size) == (gpu, batch)]
            whole = cell("llama-1b", gpu, batch)
            assert whole.per_prompt is not None
            for part in ("operational_g", "embodied_g"):
                grams = sum(getattr(c.per_token, part) * c.tokens for c in two)
                assert grams == pytest.approx(getattr(whole.per_prompt, part) * batch)


def test_prefill_is_compute_bound_and_decode_memory_bound_per_token() -> None:
    """Section 2.3: the RTX6000-Ada's lead is larger in the compute-bound prefill than in the
    memory-bound decode, where batching keeps raising throughput."""
    phases = phase_cells(CELLS)

    def rate(phase: str, gpu: str, batch: int) -> float:
        return next(c.throughput_tokens_per_s for c in phases
                    if (c.phase, c.gpu, c.batch_size) == (phase, gpu, batch))  # fmt: skip

    for batch in PAPER_BATCH_SIZES:
        prefill_lead = rate("prefill", "RTX6000-Ada", batch) / rate("prefill", "T4", batch)
        decode_lead = rate("decode", "RTX6000-Ada", batch) / rate("decode", "T4", batch)
        assert prefill_lead > decode_lead > 1
    decode = [rate("decode", "RTX6000-Ada", b) for b in PAPER_BATCH_SIZES]
    assert decode == sorted(decode)
