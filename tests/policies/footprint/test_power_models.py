"""The simulation study's power curve beside the calibrated one, selected by runtime name."""

from __future__ import annotations

import pytest

from policies.errors import InvalidWorkloadError
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, StudyPowerModel, Workload
from policies.footprint.calibration import calibrated, estimate_interval
from policies.footprint.power import PowerModel
from policies.footprint.runtimes import get_runtime

H100 = DEFAULT_GPU_CATALOG.get("H100-SXM")


@pytest.mark.parametrize(
    ("mfu", "share"),
    [(0.0, 0.0), (0.45, 1.0), (0.9, 1.0), (0.1125, 0.25**0.7), (0.225, 0.5**0.7)],
)
def test_study_curve(mfu: float, share: float) -> None:
    model = StudyPowerModel()
    u = model.utilisation(t_compute_s=0.5, t_memory_s=0.9, t_step_s=1.0, t_peak_s=mfu)
    assert u == pytest.approx(share)
    assert model.power_w(H100, u) == pytest.approx(H100.idle_w + (H100.tdp_w - H100.idle_w) * share)


def test_runtime_suffix_selects_the_study_curve() -> None:
    plain, study = get_runtime("vllm"), get_runtime("vLLM+study")
    assert (plain.power_model, study.power_model) == ("calibrated", "study")
    assert study.name == "vllm+study" and study.decode_mfu == plain.decode_mfu
    assert isinstance(calibrated(plain, H100)[1], PowerModel)
    assert isinstance(calibrated(study, H100)[1], StudyPowerModel)
    assert isinstance(calibrated(get_runtime("hf-eager+study"), H100)[1], StudyPowerModel)
    with pytest.raises(InvalidWorkloadError, match="unknown runtime 'nope\\+study'"):
        get_runtime("nope+study")


def test_same_time_less_power_for_memory_bound_decode() -> None:
    """The study's curve sees FLOPs only: a memory-bound decode draws less than calibrated."""
    model = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")
    work = Workload(batch_size=8, input_tokens=512, output_tokens=256, requests=256)
    plain = estimate_interval(model, H100, get_runtime("vllm"), work).estimate
    study = estimate_interval(model, H100, get_runtime("vllm+study"), work).estimate
    assert study.duration_s == plain.duration_s
    assert study.energy_j < plain.energy_j
