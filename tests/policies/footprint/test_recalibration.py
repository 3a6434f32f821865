"""Recalibration: minimum samples, bounded outliers, decay, and applying factors."""

from __future__ import annotations

import math

import pytest

from policies.errors import InvalidOutcomeError
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload, estimate
from policies.footprint.recalibration import Calibration, Observation, RecalibrationConfig
from policies.footprint.runtimes import get_runtime


def observe(calibration: Calibration, ratio: float, times: int = 1, **keys: str) -> Calibration:
    for _ in range(times):
        calibration = calibration.updated(
            Observation(
                model=keys.get("model", "llama-3.1-8b"),
                gpu=keys.get("gpu", "A100-80GB"),
                estimated_energy_j=1000.0,
                measured_energy_j=1000.0 * ratio,
                estimated_duration_s=10.0,
                measured_duration_s=10.0 * ratio,
            )
        )
    return calibration


def test_factor_is_not_used_before_the_minimum_sample_count() -> None:
    calibration = observe(Calibration(), 1.3, times=2)
    assert calibration.energy_factor("llama-3.1-8b", "A100-80GB") == 1.0
    assert calibration.get("llama-3.1-8b", "A100-80GB").energy_factor == pytest.approx(1.3)
    calibration = observe(calibration, 1.3)
    assert calibration.energy_factor("llama-3.1-8b", "A100-80GB") == pytest.approx(1.3)
    assert calibration.duration_factor("LLAMA-3.1-8B", "a100-80gb") == pytest.approx(1.3)


def test_factors_are_per_model_and_gpu() -> None:
    calibration = observe(Calibration(), 1.3, times=3)
    assert calibration.energy_factor("llama-3.1-8b", "H100-SXM") == 1.0
    assert calibration.energy_factor("llama-2-7b", "A100-80GB") == 1.0


def test_one_outlier_moves_an_established_factor_by_a_bounded_amount() -> None:
    calibration = observe(Calibration(), 1.3, times=10)
    spiked = observe(calibration, 1000.0)
    factor = spiked.energy_factor("llama-3.1-8b", "A100-80GB")
    assert 1.3 < factor <= 1.3 * 1.5**0.2 + 1e-9  # step bounded to x1.5, weighted by decay


def test_early_outliers_are_clipped_to_max_ratio() -> None:
    calibration = observe(Calibration(RecalibrationConfig(min_samples=1)), 1000.0)
    assert calibration.energy_factor("llama-3.1-8b", "A100-80GB") == pytest.approx(4.0)


def test_old_evidence_decays() -> None:
    calibration = observe(Calibration(), 1.3, times=20)
    calibration = observe(calibration, 1.0, times=20)
    assert calibration.energy_factor("llama-3.1-8b", "A100-80GB") == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("ratio", [0.0, math.inf, math.nan])
def test_unusable_ratios_are_ignored(ratio: float) -> None:
    calibration = observe(Calibration(), 1.3, times=3)
    after = calibration.updated(
        Observation("llama-3.1-8b", "A100-80GB", 1000.0, 1000.0 * ratio, 0.0, 5.0)
    )
    assert after is calibration


def test_from_factors_round_trips() -> None:
    calibration = observe(Calibration(), 1.3, times=3)
    rebuilt = Calibration.from_factors(calibration.factors.values())
    assert rebuilt.energy_factor("llama-3.1-8b", "A100-80GB") == pytest.approx(1.3)


def test_apply_scales_energy_and_duration() -> None:
    raw = estimate(
        DEFAULT_MODEL_CATALOG.get("llama-3.1-8b"),
        DEFAULT_GPU_CATALOG.get("A100-80GB"),
        get_runtime("vllm"),
        Workload(batch_size=8, requests=64),
    )
    calibration = observe(Calibration(), 1.3, times=3)
    calibrated = calibration.apply(raw)
    assert calibrated.energy_j == pytest.approx(raw.energy_j * 1.3)
    assert calibrated.duration_s == pytest.approx(raw.duration_s * 1.3)
    assert Calibration().apply(raw) is raw


@pytest.mark.parametrize(
    "fields",
    [{"min_samples": 0}, {"max_ratio": 1.0}, {"max_step": 0.0}, {"decay": 0.0}, {"decay": 1.5}],
)
def test_bad_configs_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(InvalidOutcomeError, match="recalibration"):
        RecalibrationConfig(**fields)  # type: ignore[arg-type]
