"""Energy per job: exact counter deltas, flagged power integrals, shared GPUs, lost GPUs."""

from __future__ import annotations

import random

import pytest

from daemon.gpu.errors import GpuError, GpuLostError
from daemon.gpu.fake_nvml import FakeGpu
from daemon.gpu.meter import EnergyMeter, EnergyMethod
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.sampler import Sampler
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml


def rig(clock: FakeClock, *gpus: FakeGpu, max_points: int = 3600) -> tuple[Sampler, EnergyMeter]:
    backend = NvmlBackend(make_nvml(clock, *gpus), clock=clock)
    backend.start()
    sampler = Sampler(backend, period_s=0.1, clock=clock)
    meter = EnergyMeter(backend, sampler, clock=clock, curve_max_points=max_points)
    sampler.add_listener(meter.observe)
    return sampler, meter


def run(sampler: Sampler, clock: FakeClock, seconds: float, period_s: float = 0.1) -> None:
    for _ in range(round(seconds / period_s)):
        sampler.sample_once()
        clock.advance(period_s)


def test_measured_energy_is_the_counter_delta_exactly(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 60.0, energy_counter_start_mj=987_654_321_000)
    sampler, meter = rig(clock, gpu)
    run(sampler, clock, 5.0)  # idle before the job: not charged
    gpu.power.step(clock(), 320.0)
    meter.begin("job-1", [0])
    counter_at_start_mj = gpu.counter_mj(clock())
    run(sampler, clock, 30.0)
    gpu.power.step(clock(), 60.0)  # holding the GPU idle is charged
    run(sampler, clock, 4.0)
    counter_at_end_mj = gpu.counter_mj(clock())
    energy = meter.end("job-1")
    assert energy.energy_j == (counter_at_end_mj - counter_at_start_mj) / 1000
    assert energy.energy_j == pytest.approx(320.0 * 30 + 60.0 * 4, abs=0.002)  # floor to mJ
    assert energy.method is EnergyMethod.COUNTER
    assert energy.shared is False
    assert energy.failed_reason is None
    assert energy.duration_s == pytest.approx(34.0)


def test_counter_delta_with_fractional_values(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 123.456, energy_counter_start_mj=2**64 - 3_000_000)  # wraps mid-job
    sampler, meter = rig(clock, gpu)
    meter.begin("job", [0])
    start_mj = gpu.counter_mj(clock())
    run(sampler, clock, 77.7)
    delta_mj = (gpu.counter_mj(clock()) - start_mj) % 2**64
    assert meter.end("job").energy_j == pytest.approx(delta_mj / 1000, rel=0, abs=1e-9)


def bumpy_curve(gpu: FakeGpu, start_s: float, seconds: float) -> None:
    """A ragged power curve: a new random level every 0.37 s, with ramps and steps."""
    rng = random.Random(5)
    t = start_s
    while t < start_s + seconds:
        t += 0.37
        if rng.random() < 0.5:
            gpu.power.add_point(t, rng.uniform(80.0, 400.0))
        else:
            gpu.power.step(t, rng.uniform(80.0, 400.0))


def test_without_a_counter_the_power_integral_is_within_2_percent(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 90.0, energy_counter=False)
    sampler, meter = rig(clock, gpu)
    bumpy_curve(gpu, clock(), 120.0)
    run(sampler, clock, 3.0)
    clock.advance(0.05)  # begin and end off the sampling grid
    meter.begin("job", [0])
    start_s = clock()
    run(sampler, clock, 90.0)
    clock.advance(0.03)
    energy = meter.end("job")
    true_j = gpu.power.energy_j(clock()) - gpu.power.energy_j(start_s)
    assert energy.method is EnergyMethod.POWER_INTEGRAL
    assert energy.energy_j == pytest.approx(true_j, rel=0.02)
    assert energy.devices[0].method is EnergyMethod.POWER_INTEGRAL


def test_shared_gpu_energy_is_split_equally_while_co_resident(clock: FakeClock) -> None:
    sampler, meter = rig(clock, fake_gpu(clock, 200.0), fake_gpu(clock, 50.0))
    meter.begin("a", [0])
    run(sampler, clock, 10.0)
    meter.begin("b", [0, 1])
    run(sampler, clock, 10.0)
    a = meter.end("a")
    run(sampler, clock, 10.0)
    b = meter.end("b")
    assert a.energy_j == pytest.approx(200 * 10 + 200 * 10 / 2)
    assert [d.energy_j for d in b.devices] == pytest.approx([200 * 10 / 2 + 200 * 10, 50 * 20])
    assert (a.shared, b.shared) == (True, True)
    assert [d.shared for d in b.devices] == [True, False]
    assert a.energy_j + b.devices[0].energy_j == pytest.approx(200 * 30)  # nothing lost or doubled


def test_a_job_over_counter_and_counterless_gpus_is_mixed(clock: FakeClock) -> None:
    sampler, meter = rig(
        clock, fake_gpu(clock, 100.0), fake_gpu(clock, 100.0, energy_counter=False)
    )
    meter.begin("job", [0, 1])
    run(sampler, clock, 10.0)
    energy = meter.end("job")
    assert energy.method is EnergyMethod.MIXED
    assert energy.energy_j == pytest.approx(2000.0)


def test_a_gpu_lost_mid_job_fails_that_job_only(clock: FakeClock) -> None:
    lost = fake_gpu(clock, 300.0)
    sampler, meter = rig(clock, fake_gpu(clock, 100.0), lost)
    meter.begin("victim", [1])
    meter.begin("bystander", [0])
    run(sampler, clock, 10.0)
    lost.lost_at_s = clock()
    run(sampler, clock, 5.0)
    (gone,) = sampler.drain_lost()
    assert meter.device_lost(gone.index, gone.reason) == ("victim",)
    victim = meter.end("victim")
    assert victim.failed_reason is not None
    assert "GPU 1 lost" in victim.failed_reason
    assert "GPU is lost" in victim.failed_reason
    assert victim.energy_j == pytest.approx(300.0 * 10, rel=0.01)  # up to its last good reading
    bystander = meter.end("bystander")
    assert bystander.failed_reason is None
    assert bystander.energy_j == pytest.approx(100.0 * 15)
    with pytest.raises(GpuLostError, match=r"job next.*GPU 1 lost"):
        meter.begin("next", [1])


def test_a_gpu_lost_between_samples_is_noticed_at_the_end(clock: FakeClock) -> None:
    lost = fake_gpu(clock, 300.0)
    sampler, meter = rig(clock, lost)
    meter.begin("job", [0])
    run(sampler, clock, 2.0)
    lost.lost_at_s = clock()
    energy = meter.end("job")
    assert energy.failed_reason is not None
    assert "GPU 0 lost" in energy.failed_reason
    assert [g.index for g in sampler.drain_lost()] == [0]


def test_curves_are_bounded(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 100.0, fan_pct=55)
    sampler, meter = rig(clock, gpu, max_points=4)
    meter.begin("job", [0])
    run(sampler, clock, 5.0)
    gpu.power.step(clock(), 300.0)
    gpu.temperature_c = 70
    run(sampler, clock, 5.0)
    (curve,) = meter.end("job").curves
    assert len(curve.offset_s) <= 4
    assert curve.resolution_s == 4.0
    assert curve.power_w[0] == pytest.approx(100.0)
    assert curve.power_w[-1] == pytest.approx(300.0)
    assert curve.temperature_c[-1] == 70.0
    assert set(curve.fan_pct) == {55.0}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda m: m.end("nope"), "job nope: not metered"),
        (lambda m: m.begin("x", []), "job x: no GPUs"),
        (lambda m: m.begin("x", [9]), "GPU 9: unknown"),
    ],
)
def test_misuse_is_a_clear_error(clock: FakeClock, action: object, message: str) -> None:
    _, meter = rig(clock, fake_gpu(clock))
    with pytest.raises(GpuError, match=message):
        action(meter)  # type: ignore[operator]


def test_a_job_cannot_be_metered_twice(clock: FakeClock) -> None:
    _, meter = rig(clock, fake_gpu(clock))
    meter.begin("x", [0])
    with pytest.raises(GpuError, match="already metered"):
        meter.begin("x", [0])
    assert meter.running() == ("x",)


def test_a_transient_nvml_error_at_a_jobs_end_still_ends_it(clock: FakeClock) -> None:
    # NVML_ERROR_UNKNOWN on the counter read at end() used to leave the job holding the GPU,
    # so every later job there was split with it (half its energy, flagged shared).
    gpu = fake_gpu(clock, 100.0)
    sampler, meter = rig(clock, gpu)
    meter.begin("a", [0])
    run(sampler, clock, 10.0)
    gpu.denied.add("nvmlDeviceGetTotalEnergyConsumption")  # any non-lost NVML error will do
    a = meter.end("a")
    assert a.energy_j == pytest.approx(1000.0 - 10.0, abs=0.01)  # to the last good reading
    gpu.denied.clear()
    meter.begin("b", [0])
    run(sampler, clock, 10.0)
    b = meter.end("b")
    assert meter.running() == ()
    assert b.shared is False
    assert b.energy_j == pytest.approx(1000.0, abs=0.01)
