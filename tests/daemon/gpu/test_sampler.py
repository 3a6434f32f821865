"""The sampler: bounded history, the power integral, lost devices, and its thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from daemon.gpu.errors import GpuError, GpuLostError
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.sampler import HISTORY_COLUMNS, Sampler
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml


def rig(clock: FakeClock, *gpus: object, history: int = 600) -> tuple[NvmlBackend, Sampler]:
    backend = NvmlBackend(make_nvml(clock, *gpus), clock=clock)  # type: ignore[arg-type]
    backend.start()
    return backend, Sampler(backend, period_s=0.1, history_samples=history, clock=clock)


def run_rounds(sampler: Sampler, clock: FakeClock, rounds: int, period_s: float = 0.1) -> None:
    for _ in range(rounds):
        sampler.sample_once()
        clock.advance(period_s)


def test_history_is_bounded_and_oldest_first(clock: FakeClock) -> None:
    _, sampler = rig(clock, fake_gpu(clock, 150.0, fan_pct=40), history=5)
    run_rounds(sampler, clock, 12)
    history = sampler.history(0)
    assert history.shape == (5, len(HISTORY_COLUMNS))
    times = history[:, 0]
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(clock() - 0.1)
    assert np.all(history[:, 1] == 150.0)
    assert np.all(history[:, 4] == 40.0)


def test_short_history_is_not_padded(clock: FakeClock) -> None:
    _, sampler = rig(clock, fake_gpu(clock), history=50)
    run_rounds(sampler, clock, 3)
    assert sampler.history(0).shape[0] == 3


def test_power_integral_of_a_ramp_is_exact(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 100.0)
    gpu.power.add_point(clock() + 10.0, 300.0)  # linear ramp: trapezoids are exact
    _, sampler = rig(clock, gpu)
    run_rounds(sampler, clock, 101)
    assert sampler.last_integrated_energy_j(0) == pytest.approx(2000.0)


def test_a_lost_device_is_reported_once_and_no_longer_read(clock: FakeClock) -> None:
    lost = fake_gpu(clock)
    nvml = make_nvml(clock, fake_gpu(clock), lost)
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    sampler = Sampler(backend, clock=clock)
    run_rounds(sampler, clock, 2)
    lost.lost_at_s = clock()
    run_rounds(sampler, clock, 3)
    drained = sampler.drain_lost()
    assert [(g.index, g.monotonic_s) for g in drained] == [(1, lost.lost_at_s)]
    assert "GPU is lost" in drained[0].reason
    assert sampler.drain_lost() == ()
    assert sampler.lost() == drained
    counter_reads = nvml.calls["nvmlDeviceGetTotalEnergyConsumption"]
    run_rounds(sampler, clock, 2)
    assert nvml.calls["nvmlDeviceGetTotalEnergyConsumption"] == counter_reads + 2  # device 0 only
    with pytest.raises(GpuLostError):
        sampler.read_now(1)
    assert sampler.latest(0) is not None
    assert sampler.latest(0).monotonic_s == pytest.approx(clock() - 0.1)  # type: ignore[union-attr]


def test_unknown_device_is_a_clear_error(clock: FakeClock) -> None:
    _, sampler = rig(clock, fake_gpu(clock))
    with pytest.raises(GpuError, match="GPU 7: not sampled"):
        sampler.history(7)


@pytest.mark.parametrize(("period_s", "history"), [(0.0, 10), (0.1, 0)])
def test_bad_parameters_are_refused(clock: FakeClock, period_s: float, history: int) -> None:
    backend = NvmlBackend(make_nvml(clock), clock=clock)
    backend.start()
    with pytest.raises(GpuError, match="sampler"):
        Sampler(backend, period_s=period_s, history_samples=history)


def test_the_thread_samples_until_closed() -> None:
    clock = FakeClock()
    backend = NvmlBackend(make_nvml(clock, fake_gpu(clock), fake_gpu(clock)), clock=clock)
    backend.start()
    sampler = Sampler(backend, period_s=0.001)  # real clock schedules the thread
    seen = threading.Event()
    readings: list[int] = []

    def listener(reading: object) -> None:
        readings.append(1)
        if len(readings) >= 6:
            seen.set()

    sampler.add_listener(listener)
    with sampler:
        assert seen.wait(timeout=30)
    rounds = sampler.rounds
    assert rounds >= 3
    assert sampler.rounds == rounds  # stopped: no more rounds after close
