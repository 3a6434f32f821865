"""Must-show: a simulated GPU drawing 30 % above the catalog; recalibration brings the energy
prediction of a repeated job within 5 %."""

from __future__ import annotations

import random

import pytest

from daemon.gpu.factory import simulated_spec
from daemon.gpu.meter import EnergyMeter
from daemon.gpu.sampler import Sampler
from daemon.gpu.simulated import SimulatedGpuBackend
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload, estimate
from policies.footprint.outcome import relative_error
from policies.footprint.recalibration import Observation, Recalibration
from policies.footprint.runtimes import get_runtime
from tests.daemon.gpu.conftest import FakeClock

GPU = DEFAULT_GPU_CATALOG.get("A100-80GB")
RAW = estimate(
    DEFAULT_MODEL_CATALOG.get("llama-3.1-8b"),
    GPU,
    get_runtime("vllm"),
    Workload(batch_size=16, input_tokens=512, output_tokens=256, requests=4096),  # ~16 min each
)


def run_job(
    backend: SimulatedGpuBackend, meter: EnergyMeter, clock: FakeClock, job: str, rng: random.Random
) -> tuple[float, float]:
    """Run the job as the hardware would: the estimator's utilisation, ±3 % in duration."""
    utilisation = (RAW.mean_power_w - GPU.idle_w) / (GPU.tdp_w - GPU.idle_w)
    duration_s = RAW.duration_s * rng.uniform(0.97, 1.03)
    meter.begin(job, [0])
    backend.set_utilisation(0, utilisation)
    clock.advance(duration_s)
    backend.set_utilisation(0, 0.0)
    measured = meter.end(job)
    return measured.energy_j, measured.duration_s


def test_energy_error_falls_below_5_percent_after_recalibration(clock: FakeClock) -> None:
    assert RAW.fits
    backend = SimulatedGpuBackend([simulated_spec(GPU)], true_power_factor=1.3, clock=clock)
    backend.start()
    meter = EnergyMeter(backend, Sampler(backend, clock=clock), clock=clock)
    rng = random.Random(7)
    calibration = Recalibration()
    errors = []
    for n in range(6):
        predicted_j = calibration.apply(RAW).energy_j
        energy_j, duration_s = run_job(backend, meter, clock, f"job-{n}", rng)
        errors.append(abs(relative_error(energy_j, predicted_j)))
        calibration = calibration.updated(
            Observation(
                "llama-3.1-8b", GPU.name, RAW.energy_j, energy_j, RAW.duration_s, duration_s
            )
        )
    assert errors[0] == pytest.approx(0.3, abs=0.04)  # the catalog is 30 % low
    assert all(e < 0.05 for e in errors[3:]), errors  # from min_samples on
    assert calibration.energy_factor("llama-3.1-8b", GPU.name) == pytest.approx(1.3, rel=0.03)
