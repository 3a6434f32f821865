"""Calibrated profiles and prediction intervals (policies.footprint.calibration)."""

from __future__ import annotations

import dataclasses

import pytest

from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload, estimate
from policies.footprint.calibration import (
    POOLED,
    band_for,
    calibrated,
    calibration_for,
    estimate_interval,
)
from policies.footprint.runtimes import get_runtime

LLAMA8 = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [("H100-SXM", "H100-SXM"), ("A100-40GB", "A100-40GB"), ("B200", POOLED), ("L40S", POOLED)],
)
def test_each_gpu_gets_its_class_or_the_pooled_fit(gpu: str, expected: str) -> None:
    assert calibration_for(DEFAULT_GPU_CATALOG.get(gpu)).gpu_class == expected


@pytest.mark.parametrize("gpu", ["H100-SXM", "A100-40GB", "pooled-B200"])
def test_quantiles_are_ordered_and_fits_are_physical(gpu: str) -> None:
    cal = calibration_for(DEFAULT_GPU_CATALOG.get(gpu.removeprefix("pooled-")))
    assert cal.energy_ratio_p10 < cal.energy_ratio_p50 < cal.energy_ratio_p90
    assert cal.time_ratio_p10 < cal.time_ratio_p50 < cal.time_ratio_p90
    assert 0.0 < cal.decode_mfu <= 1.0
    assert 0.0 < cal.mbu <= 1.0
    assert cal.fit_rows > 0


def test_host_costs_are_fitted_for_the_measured_engine_only() -> None:
    h100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
    cal = calibration_for(h100)
    v0, _ = calibrated(get_runtime("vllm-v0"), h100)
    v1, power = calibrated(get_runtime("vllm"), h100)
    assert v0.per_sequence_overhead_s == cal.per_sequence_overhead_s
    assert v1.per_sequence_overhead_s == get_runtime("vllm").per_sequence_overhead_s
    assert v1.per_step_overhead_s == get_runtime("vllm").per_step_overhead_s
    assert (v1.decode_mfu, v1.mbu) == (cal.decode_mfu, cal.mbu)
    assert power == cal.power


def test_eager_runtime_is_not_calibrated() -> None:
    gpu = DEFAULT_GPU_CATALOG.get("T4")
    eager = get_runtime("hf-eager")
    assert calibrated(eager, gpu)[0] is eager
    wl = Workload(batch_size=4, input_tokens=64, output_tokens=64)
    band = estimate_interval(DEFAULT_MODEL_CATALOG.get("llama-3.2-1b"), gpu, eager, wl)
    assert (band.gpu_class, band.band) == ("uncalibrated", POOLED)
    assert band.estimate == estimate(DEFAULT_MODEL_CATALOG.get("llama-3.2-1b"), gpu, eager, wl)


@pytest.mark.parametrize("gpu", ["H100-SXM", "B200", "A100-40GB"])
def test_interval_brackets_the_point_estimate(gpu: str) -> None:
    spec = DEFAULT_GPU_CATALOG.get(gpu)
    band = estimate_interval(
        LLAMA8, spec, get_runtime("vllm"), Workload(batch_size=16, requests=160)
    )
    assert band.estimate.fits
    assert band.energy_j_p10 < band.energy_j < band.energy_j_p90
    assert band.duration_s_p10 < band.duration_s < band.duration_s_p90


@pytest.mark.parametrize(
    ("runtime", "gpu", "expected"),
    [("vllm-v0", "H100-SXM", "H100-SXM"), ("vllm", "H100-SXM", POOLED), ("vllm-v0", "B200", POOLED),
     ("hf-eager", "A100-40GB", POOLED)],
)  # fmt: skip
def test_class_band_only_for_the_engine_the_fit_measured(
    runtime: str, gpu: str, expected: str
) -> None:
    assert band_for(get_runtime(runtime), DEFAULT_GPU_CATALOG.get(gpu)).gpu_class == expected


RUNTIME_NAMES = ("vllm", "vllm-v0", "hf-eager", "vllm+study", "hf-eager+study")


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_calibrated_is_kept_per_runtime_and_gpu_and_answers_as_computed(name: str) -> None:
    for gpu in DEFAULT_GPU_CATALOG:
        runtime = get_runtime(name)
        first = calibrated(runtime, gpu)
        again = calibrated(runtime, gpu)
        assert again[0] is first[0] and again[1] is first[1]  # kept, not rebuilt
        fresh = calibrated(dataclasses.replace(runtime), gpu)  # an equal other: computed
        assert fresh == first
        assert type(fresh[1]) is type(first[1])
        assert calibrated(runtime, dataclasses.replace(gpu)) == first
    other = DEFAULT_GPU_CATALOG.get("B200")
    h100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
    runtime = get_runtime(name)
    if runtime.continuous_batching:  # the answer is the GPU's, not the last one asked
        assert calibrated(runtime, h100)[0].mbu == calibration_for(h100).mbu
        assert calibrated(runtime, other)[0].mbu == calibration_for(other).mbu
