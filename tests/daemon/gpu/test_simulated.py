"""Simulated GPUs draw power from the utilisation model, scaled by the true-power factor."""

from __future__ import annotations

import pytest

from daemon.gpu.errors import GpuError, GpuLostError
from daemon.gpu.meter import EnergyMeter
from daemon.gpu.sampler import Sampler
from daemon.gpu.simulated import SimulatedGpuBackend, SimulatedGpuSpec
from tests.daemon.gpu.conftest import FakeClock

A100 = SimulatedGpuSpec("A100-80GB", idle_power_w=50.0, tdp_w=400.0, memory_total_bytes=80 * 10**9)
T4 = SimulatedGpuSpec("T4", 10.0, 70.0, 16 * 10**9, energy_counter=False)


@pytest.mark.parametrize(
    ("factor", "utilisation", "power_w"),
    [(1.0, 0.0, 50.0), (1.0, 1.0, 400.0), (1.0, 0.5, 225.0), (1.3, 0.5, 292.5), (1.3, 1.0, 520.0)],
)
def test_power_follows_utilisation_between_idle_and_tdp(
    clock: FakeClock, factor: float, utilisation: float, power_w: float
) -> None:
    backend = SimulatedGpuBackend([A100], true_power_factor=factor, clock=clock)
    backend.start()
    backend.set_utilisation(0, utilisation)
    reading = backend.read(0)
    assert reading.power_w == pytest.approx(power_w)
    assert reading.utilisation_pct == round(100 * utilisation)


def test_devices_look_like_discovered_ones(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([A100, T4], clock=clock)
    backend.start()
    a100, t4 = backend.devices()
    assert (a100.name, a100.power_limit_w, a100.energy_counter) == ("A100-80GB", 400.0, True)
    assert (t4.index, t4.energy_counter, t4.memory_gb) == (1, False, 16.0)
    assert a100.uuid != t4.uuid
    assert backend.name == "simulated"


def test_metered_energy_matches_the_true_draw(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([A100, T4], true_power_factor=1.3, clock=clock)
    backend.start()
    sampler = Sampler(backend, clock=clock)
    meter = EnergyMeter(backend, sampler, clock=clock)
    start_j = [backend.true_energy_j(i) for i in (0, 1)]
    meter.begin("job", [0, 1])
    for utilisation in (0.9, 0.2, 0.7):
        backend.set_utilisation(0, utilisation)
        backend.set_utilisation(1, utilisation)
        for _ in range(100):
            sampler.sample_once()
            clock.advance(0.1)
    energy = meter.end("job")
    true_j = [backend.true_energy_j(i) - start_j[i] for i in (0, 1)]
    assert energy.devices[0].energy_j == pytest.approx(true_j[0], abs=0.002)  # counter
    assert energy.devices[1].energy_j == pytest.approx(true_j[1], rel=0.02)  # integral


def test_a_simulated_gpu_can_be_lost(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([A100], clock=clock)
    backend.start()
    backend.lose(0)
    with pytest.raises(GpuLostError):
        backend.read(0)


@pytest.mark.parametrize(
    "build",
    [
        lambda c: SimulatedGpuBackend([A100], true_power_factor=0.0, clock=c),
        lambda c: SimulatedGpuSpec("bad", idle_power_w=500.0, tdp_w=400.0, memory_total_bytes=1),
        lambda c: SimulatedGpuBackend([A100], clock=c).set_utilisation(0, 1.5),
        lambda c: SimulatedGpuBackend([A100], clock=c).set_utilisation(3, 0.5),
    ],
)
def test_bad_values_are_refused(clock: FakeClock, build: object) -> None:
    with pytest.raises(GpuError):
        build(clock)  # type: ignore[operator]


def test_a_load_change_can_date_back_to_the_last_read(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([A100], clock=clock)
    backend.start()
    backend.set_utilisation(0, 1.0)  # 400 W
    clock.advance(10.0)
    assert backend.read(0).energy_j == pytest.approx(4000.0)
    clock.advance(10.0)
    backend.set_utilisation(0, 0.0, since_s=clock() - 15.0)  # before the last read: clamped
    assert backend.read(0).energy_j == pytest.approx(4000.0 + 50.0 * 10)
