from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.errors import InvalidWorkloadError
from policies.footprint import estimator
from policies.footprint.calibration import calibrated
from policies.footprint.estimator import Estimate, estimate, memory_required_gb
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GpuSpec
from policies.footprint.models import DEFAULT_MODEL_CATALOG, PRECISION_BYTES, ModelSpec
from policies.footprint.power import DEFAULT_POWER, PowerCurve, PowerModel, StudyPowerModel
from policies.footprint.runtimes import RuntimeProfile, get_runtime
from policies.footprint.workload import Workload

LLAMA_1B = DEFAULT_MODEL_CATALOG.get("llama-1b")
LLAMA_70B = DEFAULT_MODEL_CATALOG.get("llama-3.1-70b")
H100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
T4 = DEFAULT_GPU_CATALOG.get("T4")
VLLM = get_runtime("vllm")
EAGER = get_runtime("hf-eager")


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("input_tokens", -1), ("output_tokens", 0), ("requests", 0),
     ("tensor_parallel", 0)],
)  # fmt: skip
def test_invalid_workload_names_the_field(field: str, value: int) -> None:
    work = dataclasses.replace(Workload(), **{field: value})
    with pytest.raises(InvalidWorkloadError, match=field):
        estimate(LLAMA_1B, H100, VLLM, work)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("input_tokens", 10**400, "input_tokens must be <= 10,000,000, got 100000000000... "
                               "(401 digits)"),
     ("output_tokens", 10**7 + 1, "output_tokens must be <= 10,000,000, got 10000001"),
     ("batch_size", 10**400, "batch_size must be <= 1,000,000"),
     ("requests", 10**9 + 1, "requests must be <= 1,000,000,000"),
     ("tensor_parallel", 65, "tensor_parallel must be <= 64, got 65")],
    ids=["input_tokens", "output_tokens", "batch_size", "requests", "tensor_parallel"],
)  # fmt: skip
def test_a_count_past_its_bound_names_the_field(field: str, value: int, message: str) -> None:
    """A count of 10**400 was an OverflowError traceback in the memory arithmetic (carbond
    estimate --input-tokens, advise, a prompts file); queue lines already had these bounds."""
    work = dataclasses.replace(Workload(), **{field: value})
    with pytest.raises(InvalidWorkloadError) as info:
        estimate(LLAMA_1B, H100, VLLM, work)
    assert str(info.value).startswith(message)


def test_power_stays_between_idle_and_tdp() -> None:
    for batch in (1, 8, 64, 256):
        est = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=batch))
        assert H100.idle_w <= est.mean_power_w <= H100.tdp_w


def test_more_output_tokens_cost_more_time_and_energy() -> None:
    short = estimate(LLAMA_1B, H100, VLLM, Workload(output_tokens=50))
    long = estimate(LLAMA_1B, H100, VLLM, Workload(output_tokens=500))
    assert long.duration_s > short.duration_s
    assert long.energy_j > short.energy_j


def test_requests_run_in_batches_with_a_partial_last_batch() -> None:
    one = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=8, requests=8))
    many = estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=8, requests=20))
    assert many.batches == 3
    assert 2 * one.duration_s < many.duration_s < 3 * one.duration_s


def test_batching_lowers_energy_per_request() -> None:
    per_request = [
        estimate(LLAMA_1B, H100, VLLM, Workload(batch_size=b)).energy_per_request_j
        for b in (1, 4, 16, 64)
    ]
    assert per_request == sorted(per_request, reverse=True)


def test_decode_is_memory_bound_at_batch_one() -> None:
    """At batch 1 a decode step takes about (weights / bandwidth) on a CUDA-graph runtime."""
    work = Workload(batch_size=1, input_tokens=1, output_tokens=1001, precision="fp16")
    est = estimate(LLAMA_1B, H100, VLLM, work)
    step_s = est.decode_s / 1000
    weights_s = LLAMA_1B.weight_bytes("fp16") / (H100.memory_bandwidth_gb_s * 1e9 * VLLM.mbu)
    assert step_s == pytest.approx(weights_s + VLLM.per_step_overhead_s, rel=0.05)


def test_quantised_weights_decode_faster() -> None:
    times = [
        estimate(LLAMA_1B, H100, VLLM, Workload(precision=p)).decode_s
        for p in ("fp16", "int8", "int4")
    ]
    assert times == sorted(times, reverse=True)


def test_model_too_big_does_not_fit_with_a_reason() -> None:
    est = estimate(LLAMA_70B, T4, VLLM, Workload())
    assert not est.fits
    assert "out of memory" in est.reason and "T4" in est.reason
    assert math.isinf(est.energy_j) and math.isinf(est.duration_s)


def test_tensor_parallel_makes_a_big_model_fit_and_charges_every_gpu() -> None:
    assert not estimate(LLAMA_70B, H100, VLLM, Workload(precision="bf16")).fits
    tp4 = estimate(LLAMA_70B, H100, VLLM, Workload(precision="bf16", tensor_parallel=4))
    assert tp4.fits and tp4.gpus == 4
    assert tp4.mean_power_w > H100.idle_w * 4


def test_kv_cache_grows_memory_with_batch_and_context() -> None:
    small = memory_required_gb(LLAMA_1B, VLLM, Workload(batch_size=1), 1)
    big = memory_required_gb(LLAMA_1B, VLLM, Workload(batch_size=64, input_tokens=2048), 64)
    assert big > small + 5


def test_eager_runtime_is_launch_bound_at_small_batch() -> None:
    """hf-eager pays host time per layer: same work, slower and less busy than vllm."""
    work = Workload(batch_size=1, precision="fp16")
    eager = estimate(LLAMA_1B, H100, EAGER, work)
    graphs = estimate(LLAMA_1B, H100, VLLM, work)
    assert eager.duration_s > 2 * graphs.duration_s
    assert eager.mean_power_w < graphs.mean_power_w


def test_power_model_is_used() -> None:
    hot = dataclasses.replace(DEFAULT_POWER, memory_weight=1.0, active_floor=0.5)
    base = estimate(LLAMA_1B, H100, VLLM, Workload())
    hotter = estimate(LLAMA_1B, H100, VLLM, Workload(), power=hot)
    assert hotter.energy_j > base.energy_j
    assert hotter.duration_s == base.duration_s


# The kept batches (``estimator._batch``): answers must be the ones computed afresh, bit for bit.

_MODELS = tuple(DEFAULT_MODEL_CATALOG.get(n) for n in ("llama-3.2-1b", "llama-3.1-8b", "qwen3-32b"))
_GPUS = tuple(DEFAULT_GPU_CATALOG.get(n) for n in ("T4", "A100-80GB", "H100-SXM", "B200"))
_RUNTIMES = tuple(get_runtime(n) for n in ("hf-eager", "vllm", "vllm-v0", "vllm+study"))
_Case = tuple[ModelSpec, GpuSpec, RuntimeProfile, Workload, PowerCurve]


@st.composite
def _cases(draw: st.DrawFn) -> _Case:
    """Few token counts and sizes, so that cases share kept batches; any request count."""
    gpu = draw(st.sampled_from(_GPUS))
    runtime, calibrated_power = calibrated(draw(st.sampled_from(_RUNTIMES)), gpu)
    unit = st.floats(0.0, 1.0)
    power = draw(
        st.sampled_from((calibrated_power, DEFAULT_POWER, StudyPowerModel()))
        | st.builds(PowerModel, unit, unit, unit)
        | st.builds(StudyPowerModel, st.floats(0.05, 1.0), st.floats(0.1, 2.0))
    )
    workload = Workload(
        batch_size=draw(st.sampled_from((1, 3, 8, 64))),
        input_tokens=draw(st.sampled_from((0, 1, 128, 2048))),
        output_tokens=draw(st.sampled_from((1, 2, 150, 1024))),
        requests=draw(st.none() | st.integers(1, 300)),
        precision=draw(st.sampled_from(sorted(PRECISION_BYTES))),
        tensor_parallel=draw(st.sampled_from((1, 2, 8))),
    )
    return draw(st.sampled_from(_MODELS)), gpu, runtime, workload, power


def _computed_afresh(cases: list[_Case]) -> list[Estimate]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(estimator, "_KEPT_CURVES", ())  # every batch computed, none kept
        return [estimate(*case) for case in cases]


@settings(max_examples=200, deadline=None)
@given(st.lists(_cases(), min_size=1, max_size=12))
def test_kept_batches_answer_exactly_as_computed(cases: list[_Case]) -> None:
    fresh = _computed_afresh(cases)
    kept = [estimate(*case) for case in cases] + [estimate(*case) for case in cases]
    assert kept == fresh + fresh  # every field ==, and the second round is all kept answers


def test_a_new_request_count_reuses_the_kept_batches() -> None:
    estimator._batches.clear()
    estimate(LLAMA_1B, H100, EAGER, Workload(batch_size=8, requests=21))  # 2 x 8 and a 5
    kept = dict(estimator._batches)
    again = estimate(LLAMA_1B, H100, EAGER, Workload(batch_size=8, requests=13))  # 8 and a 5
    assert estimator._batches == kept
    assert again == _computed_afresh([(LLAMA_1B, H100, EAGER, Workload(8, requests=13),
                                      DEFAULT_POWER)])[0]  # fmt: skip


@pytest.mark.parametrize(
    ("curve", "field", "changed"),
    [(calibrated(VLLM, H100)[1], "compute_weight", 0.5),
     (calibrated(VLLM, H100)[1], "memory_weight", 0.2),
     (calibrated(VLLM, H100)[1], "active_floor", 0.9),
     (StudyPowerModel(), "saturation_mfu", 0.3),
     (StudyPowerModel(), "exponent", 1.1)],
)  # fmt: skip
def test_curves_that_differ_in_one_field_keep_their_own_batches(
    curve: PowerModel | StudyPowerModel, field: str, changed: float
) -> None:
    other = dataclasses.replace(curve, **{field: changed})
    work = Workload(batch_size=4, requests=9)
    runtime = calibrated(VLLM, H100)[0]
    first, second = (estimate(LLAMA_1B, H100, runtime, work, c) for c in (curve, other))
    assert first.energy_j != second.energy_j  # the field matters here
    assert [first, second] == _computed_afresh(
        [(LLAMA_1B, H100, runtime, work, curve), (LLAMA_1B, H100, runtime, work, other)]
    )


@dataclasses.dataclass
class _AdjustableCurve:
    """A power curve of the caller's own, mutable: never kept (it may not hash by value)."""

    power_w_each: float

    def utilisation(
        self, t_compute_s: float, t_memory_s: float, t_step_s: float, t_peak_s: float = 0.0
    ) -> float:
        return 1.0

    def power_w(self, gpu: GpuSpec, utilisation: float) -> float:
        return self.power_w_each


def test_a_curve_of_another_type_is_computed_each_time() -> None:
    curve = _AdjustableCurve(100.0)
    low = estimate(LLAMA_1B, H100, EAGER, Workload(), curve)
    curve.power_w_each = 200.0
    high = estimate(LLAMA_1B, H100, EAGER, Workload(), curve)
    assert high.energy_j == pytest.approx(2.0 * low.energy_j)


@pytest.mark.parametrize("requests", [64, 100])  # whole batches, and a partial last one
@pytest.mark.parametrize("runtime", [EAGER, VLLM])
def test_the_estimate_keeps_each_phase_energy(requests: int, runtime: RuntimeProfile) -> None:
    """Prefill (the prompt passes) and decode energy were computed per batch and dropped: only
    their sum reached the estimate, so no report could show the paper's per-phase figures."""
    work = Workload(batch_size=16, input_tokens=512, output_tokens=64, requests=requests)
    est = estimate(LLAMA_1B, H100, runtime, work)
    assert est.prefill_energy_j > 0 and est.decode_energy_j > 0
    assert est.prefill_energy_j + est.decode_energy_j == pytest.approx(est.energy_j, rel=1e-12)
    # each phase's energy over its time is a power between idle and TDP
    for joules, seconds in ((est.prefill_energy_j, est.prefill_s), (est.decode_energy_j,
                                                                     est.decode_s)):  # fmt: skip
        assert H100.idle_w <= joules / seconds <= H100.tdp_w * (1 + 1e-12)
    # one output token: no decode step, all the energy is the prefill's
    one = estimate(LLAMA_1B, H100, runtime, dataclasses.replace(work, output_tokens=1))
    assert one.decode_energy_j == 0 and one.prefill_energy_j == one.energy_j


def test_a_job_that_does_not_fit_has_no_phase_energy() -> None:
    est = estimate(LLAMA_70B, T4, VLLM, Workload())
    assert not est.fits
    assert est.prefill_energy_j == est.decode_energy_j == math.inf
