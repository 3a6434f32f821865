"""Deployment advice (policies.footprint.advice)."""

from __future__ import annotations

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint import (
    DEFAULT_GPU_CATALOG,
    DEFAULT_MODEL_CATALOG,
    ModelSpec,
    Workload,
    estimate_interval,
    footprint,
    get_runtime,
)
from policies.footprint.advice import advise

ZONES = {"CA-QC": 31.0, "US-CAL-CISO": 262.0, "US-NW-PACE": 647.0}
GPUS = [DEFAULT_GPU_CATALOG.get(name) for name in ("A100-40GB", "H100-SXM", "L40S")]
LLAMA8 = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")
LLAMA70 = DEFAULT_MODEL_CATALOG.get("llama-3.1-70b")
VLLM = get_runtime("vllm")


def test_recommends_the_minimum_and_ranks_the_rest() -> None:
    advice = advise(LLAMA8, GPUS, ZONES, VLLM, runners_up=4)
    assert advice.best is not None
    assert advice.best.zone == "CA-QC"  # the cleanest grid wins when nothing else binds
    ranked = [advice.best, *advice.runners_up]
    totals = [c.total_per_1k_tokens_g for c in ranked]
    assert totals == sorted(totals) and len(ranked) == 5
    assert all(
        c.total_per_1k_tokens_g_p10 < c.total_per_1k_tokens_g < c.total_per_1k_tokens_g_p90
        for c in ranked
    )


def test_latency_bound_limits_the_batch() -> None:
    free = advise(LLAMA8, GPUS, ZONES, VLLM)
    tight = advise(LLAMA8, GPUS, ZONES, VLLM, max_latency_s=3.0)
    assert free.best is not None and tight.best is not None
    assert tight.best.latency_s <= 3.0
    assert tight.best.batch_size < free.best.batch_size
    assert tight.rejected_latency > 0
    assert tight.best.total_per_1k_tokens_g >= free.best.total_per_1k_tokens_g


def test_impossible_bound_is_an_answer_with_the_reason() -> None:
    advice = advise(LLAMA8, GPUS, ZONES, VLLM, max_latency_s=0.01)
    assert advice.best is None
    assert "latency bound" in advice.reason


def test_factor_effects_are_one_at_a_time_savings() -> None:
    advice = advise(LLAMA8, GPUS, ZONES, VLLM, precisions=("bf16",))
    assert advice.best is not None
    effects = {e.factor: e for e in advice.factors}
    assert set(effects) == {"batching", "grid", "hardware"}  # no quantisation choice offered
    assert effects["batching"].alternative == "batch 1"
    assert effects["grid"].alternative.startswith("US-NW-PACE")
    for e in effects.values():
        assert e.saving_per_1k_tokens_g >= 0
        assert 0 <= e.saving_pct <= 100


def test_tensor_parallel_is_chosen_to_fit() -> None:
    advice = advise(LLAMA70, [DEFAULT_GPU_CATALOG.get("A100-40GB")], {"X": 100.0}, VLLM,
                    precisions=("bf16",), batch_sizes=(16,))  # fmt: skip
    assert advice.best is not None
    assert advice.best.gpus == 8  # 141 GB of weights + KV: 4 x 36 usable GB is too tight


@pytest.mark.parametrize(
    ("model", "unsplittable"),
    [("phi-3-medium", {4, 8}), ("qwen2.5-7b", {8}), ("starcoder2-7b", {8})],
)
def test_no_tensor_parallelism_the_heads_do_not_split_over(
    model: str, unsplittable: set[int]
) -> None:
    """vLLM shards whole heads: Phi-3-medium's 10 KV heads do not split over 4 or 8 GPUs, yet
    advise recommended it on L4 x4 and x8 (and Qwen2.5-7B's 28 query heads on x8)."""
    spec = DEFAULT_MODEL_CATALOG.get(model)
    assert {tp for tp in (1, 2, 4, 8) if not spec.splits_over(tp)} == unsplittable
    small = [DEFAULT_GPU_CATALOG.get(name) for name in ("T4", "L4", "A10")]
    advice = advise(spec, small, {"X": 100.0}, VLLM, precisions=("bf16",),
                    batch_sizes=(1, 64, 512, 2048), runners_up=1000)  # fmt: skip
    offered = {c.gpus for c in (advice.best, *advice.runners_up) if c is not None}
    assert offered and not offered & unsplittable


def test_a_stand_in_of_a_size_is_not_refused_a_split() -> None:
    assert ModelSpec.from_params(30).splits_over(8)  # its 52 heads are made up


def test_quantisation_reduces_memory_and_bandwidth() -> None:
    advice = advise(LLAMA70, [DEFAULT_GPU_CATALOG.get("H100-SXM")], {"X": 100.0}, VLLM,
                    precisions=("bf16", "int4"), batch_sizes=(8,))  # fmt: skip
    by_precision = {c.precision: c for c in [advice.best, *advice.runners_up] if c is not None}
    assert by_precision["int4"].gpus < by_precision["bf16"].gpus
    assert by_precision["int4"].latency_s < by_precision["bf16"].latency_s


@pytest.mark.parametrize("runtime", ["vllm", "vllm-v0"])
@pytest.mark.parametrize("gpu", ["H100-SXM", "A100-40GB", "L40S"])
def test_every_candidate_is_what_estimate_gives_it(gpu: str, runtime: str) -> None:
    """Each candidate's grams and their 10-90 % band are `carbond estimate`'s for the same
    configuration: the vllm (V1) band of a GPU with its own fit is the pooled one there, and
    advise gave the narrower class band (H100-SXM p90 x1.18 instead of x1.32)."""
    spec, profile = DEFAULT_GPU_CATALOG.get(gpu), get_runtime(runtime)
    advice = advise(LLAMA8, [spec], {"X": 100.0}, profile, precisions=("bf16",),
                    batch_sizes=(1, 64), runners_up=10)  # fmt: skip
    ranked = [c for c in (advice.best, *advice.runners_up) if c is not None]
    assert len(ranked) == 2
    for c in ranked:
        work = Workload(c.batch_size, 250, 250, None, c.precision, c.gpus)
        band = estimate_interval(LLAMA8, spec, profile, work)
        per_1k = 1000.0 / band.estimate.output_tokens_total
        totals = [
            footprint(energy_j * per_1k, duration_s * per_1k, 100.0, spec.embodied_g,
                      gpus=c.gpus).total_g
            for energy_j, duration_s in ((band.energy_j, band.duration_s),
                                         (band.energy_j_p10, band.duration_s_p10),
                                         (band.energy_j_p90, band.duration_s_p90))
        ]  # fmt: skip
        assert c.latency_s == pytest.approx(band.estimate.batch_latency_s)
        assert [
            c.total_per_1k_tokens_g,
            c.total_per_1k_tokens_g_p10,
            c.total_per_1k_tokens_g_p90,
        ] == pytest.approx(totals)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"max_latency_s": 0.0}, "max_latency_s"), ({"precisions": ("fp7",)}, "fp7")],
)
def test_bad_inputs(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidWorkloadError, match=needle):
        advise(LLAMA8, GPUS, ZONES, VLLM, **kwargs)  # type: ignore[arg-type]  # parametrized kwargs


def test_a_gpu_named_twice_is_swept_once() -> None:
    """``--gpus T4,tesla-t4`` counted every out-of-memory configuration twice."""
    t4, llama405 = DEFAULT_GPU_CATALOG.get("T4"), DEFAULT_MODEL_CATALOG.get("llama-3.1-405b")
    once = advise(llama405, [t4], ZONES, VLLM)
    twice = advise(llama405, [t4, DEFAULT_GPU_CATALOG.get("tesla-t4")], ZONES, VLLM)
    assert once.best is None and once.rejected_memory == 3 * 8 * 3  # precisions x batches x zones
    assert (twice.candidates, twice.rejected_memory) == (once.candidates, once.rejected_memory)


def test_needs_gpus_and_zones() -> None:
    with pytest.raises(InvalidWorkloadError):
        advise(LLAMA8, [], ZONES, VLLM)


@pytest.mark.parametrize("gpu", ["T4", "V100"])
def test_bf16_is_served_as_fp16_on_a_gpu_vllm_runs_no_bf16_on(gpu: str) -> None:
    """vLLM refuses bf16 below compute capability 8.0 ("Bfloat16 is only supported on GPUs
    with compute capability of at least 8.0 ... use float16 instead"), yet `carbond advise
    --gpus t4` recommended "T4 x1, bf16" (priced at the fp32 rate of eager bf16 on Turing).
    On Turing and Volta the 16-bit candidate is fp16, the one vLLM runs, priced as such."""
    spec = DEFAULT_GPU_CATALOG.get(gpu)
    llama1 = DEFAULT_MODEL_CATALOG.get("llama-3.2-1b")
    advice = advise(llama1, [spec], {"CA-QC": 31.0}, VLLM, batch_sizes=(1, 4),
                    precisions=("bf16",))  # fmt: skip
    assert advice.best is not None
    ranked = [advice.best, *advice.runners_up]
    assert {c.precision for c in ranked} == {"fp16"}
    fp16 = advise(llama1, [spec], {"CA-QC": 31.0}, VLLM, batch_sizes=(1, 4),
                  precisions=("fp16",))  # fmt: skip
    assert fp16.best == advice.best
    # asking for both scores each configuration once
    both = advise(llama1, [spec], {"CA-QC": 31.0}, VLLM, batch_sizes=(1, 4),
                  precisions=("bf16", "fp16"))  # fmt: skip
    assert both.candidates == fp16.candidates == 2


def test_bf16_stays_bf16_where_the_gpu_has_it() -> None:
    a100 = DEFAULT_GPU_CATALOG.get("A100-40GB")
    advice = advise(LLAMA8, [a100], {"CA-QC": 31.0}, VLLM, batch_sizes=(4,),
                    precisions=("bf16",))  # fmt: skip
    assert advice.best is not None and advice.best.precision == "bf16"


def test_bf16_and_fp16_that_do_not_fit_count_once() -> None:
    t4 = DEFAULT_GPU_CATALOG.get("T4")
    one = advise(LLAMA70, [t4], {"CA-QC": 31.0}, VLLM, batch_sizes=(1,), precisions=("fp16",))
    both = advise(LLAMA70, [t4], {"CA-QC": 31.0}, VLLM, batch_sizes=(1,),
                  precisions=("bf16", "fp16"))  # fmt: skip
    assert one.best is None and one.rejected_memory == 1
    assert both.rejected_memory == 1


def test_the_fewest_gpus_that_admit_the_whole_batch_are_scored() -> None:
    """Llama 3.1 70B int4 on T4s at batch 512: four T4s admit 165 requests, eight admit all
    512 (as `carbond estimate --gpus 8` runs it: 0.0826 g per 1k tokens in DE), but advise
    asked eight T4s to hold every request's full-length KV cache and logits (17.8 GB of
    14.4), so it never scored them and recommended four T4s at 0.0836 g."""
    t4 = DEFAULT_GPU_CATALOG.get("T4")
    advice = advise(LLAMA70, [t4], {"DE": 367.0}, VLLM, batch_sizes=(512,),
                    precisions=("int4",), runners_up=5)  # fmt: skip
    ranked = [advice.best, *advice.runners_up]
    assert [(c.gpus, c.batch_size) for c in ranked if c is not None] == [(8, 512), (4, 165)]
    eight = Workload(batch_size=512, input_tokens=250, output_tokens=250, precision="int4",
                     tensor_parallel=8)  # fmt: skip
    est = estimate_interval(LLAMA70, t4, VLLM, eight).estimate
    grams = footprint(est.energy_j, est.duration_s, 367.0, t4.embodied_g, gpus=8)
    assert advice.best is not None
    assert advice.best.total_per_1k_tokens_g == pytest.approx(grams.total_g / 128.0)


def test_fp8_is_not_offered_on_a_gpu_vllm_runs_no_fp8_on() -> None:
    """vLLM has no fp8 path on Volta (compute capability 7.0; weight-only FP8 Marlin needs
    7.5), yet advise swept and could recommend "V100, fp8". It is now left out and said so;
    a T4 (7.5, weight-only) and an A100 (8.0, weight-only) keep it."""
    gpus = [DEFAULT_GPU_CATALOG.get(name) for name in ("V100", "T4", "A100-40GB")]
    llama1 = DEFAULT_MODEL_CATALOG.get("llama-3.2-1b")
    advice = advise(llama1, gpus, {"CA-QC": 31.0}, VLLM, batch_sizes=(4,),
                    precisions=("fp8", "int8"), runners_up=10)  # fmt: skip
    assert advice.best is not None
    ranked = [advice.best, *advice.runners_up]
    pairs = {(c.gpu, c.precision) for c in ranked}
    assert pairs == {("V100", "int8"), ("T4", "fp8"), ("T4", "int8"), ("A100-40GB", "fp8"),
                     ("A100-40GB", "int8")}  # fmt: skip
    assert advice.unserved == ("fp8 on V100",)
    only = advise(llama1, gpus[:1], {"CA-QC": 31.0}, VLLM, batch_sizes=(4,), precisions=("fp8",))
    assert only.best is None and only.candidates == 0 and only.rejected_memory == 0
    assert only.reason == "vLLM serves none of the precisions asked there (fp8 on V100)"


def test_quantisation_is_compared_with_16_bit_on_more_gpus() -> None:
    """Llama 3.1 70B on H100s: int4 on one GPU at the batch it admits (294 of 512) wins, and
    bf16 needs four GPUs at other batches, so no 16-bit candidate had the same batch and the
    quantisation row was silently dropped. It now compares with bf16's own best there."""
    h100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
    advice = advise(LLAMA70, [h100], {"A": 100.0, "B": 300.0}, VLLM)
    assert advice.best is not None and advice.best.gpus == 1
    assert advice.best.precision in {"int4", "int8"}
    (quant,) = [f for f in advice.factors if f.factor == "quantisation"]
    alone = advise(LLAMA70, [h100], {"A": 100.0}, VLLM, precisions=("bf16",))
    assert alone.best is not None
    bf16 = alone.best
    assert quant.alternative == f"bf16 (x{bf16.gpus}, batch {bf16.batch_size})"
    assert quant.alternative_per_1k_tokens_g == pytest.approx(bf16.total_per_1k_tokens_g)
    assert quant.saving_per_1k_tokens_g > 0


def test_quantisation_needed_to_fit_is_said() -> None:
    """Llama 3.1 70B at 16 bits fits on no count of T4s (140 GB of weights, 8 x 14.4 GB):
    no quantisation row can be measured, and the reason says the quantisation is needed."""
    t4 = DEFAULT_GPU_CATALOG.get("T4")
    advice = advise(LLAMA70, [t4], {"A": 100.0}, VLLM, batch_sizes=(16,))
    assert advice.best is not None and advice.best.precision in {"int4", "int8"}
    assert "quantisation" not in {f.factor for f in advice.factors}
    assert advice.reason.endswith(
        f"; 16-bit weights fit on no T4 count up to 8: {advice.best.precision} is needed"
    )
    h100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
    assert "is needed" not in advise(LLAMA70, [h100], {"A": 100.0}, VLLM).reason


def test_tied_zones_show_no_grid_row() -> None:
    """Zones of one intensity (and PUE) showed 'grid | A (100 g/kWh) | B (100 g/kWh) | 0 | 0%':
    the choice of zone saves nothing there, so there is no grid row; a zone that differs
    keeps it."""
    tied = advise(LLAMA8, GPUS[:1], {"A": 100.0, "B": 100.0}, VLLM, batch_sizes=(1, 16))
    assert tied.best is not None and "grid" not in {f.factor for f in tied.factors}
    apart = advise(LLAMA8, GPUS[:1], {"A": 100.0, "B": 100.0, "C": 300.0}, VLLM,
                   batch_sizes=(1, 16))  # fmt: skip
    (grid,) = [f for f in apart.factors if f.factor == "grid"]
    assert grid.alternative == "C (300 g/kWh)" and grid.saving_per_1k_tokens_g > 0
