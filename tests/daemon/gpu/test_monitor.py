"""The monitor: a GPU lost mid-job fails that job with a clear reason; everything else goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.gpu.errors import GpuLostError
from daemon.gpu.monitor import GpuMonitor, measured_run
from daemon.gpu.simulated import SimulatedGpuBackend, SimulatedGpuSpec
from daemon.settings import GpuSettings
from tests.daemon.gpu.conftest import FakeClock

SPEC = SimulatedGpuSpec("A100-80GB", 55.0, 400.0, 80 * 10**9)


def tick(monitor: GpuMonitor, clock: FakeClock, seconds: float) -> None:
    for _ in range(round(seconds / 0.1)):
        monitor.sampler.sample_once()
        clock.advance(0.1)


def test_lost_gpu_mid_job(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([SPEC, SPEC], clock=clock)
    backend.start()
    with GpuMonitor(backend, GpuSettings(), clock=clock, sample=False) as monitor:
        monitor.begin_job("doomed", [1])
        monitor.begin_job("fine", [0])
        backend.set_utilisation(1, 1.0)
        tick(monitor, clock, 5.0)
        assert monitor.poll_lost() == ()
        backend.lose(1)
        tick(monitor, clock, 1.0)
        (report,) = monitor.poll_lost()
        assert report.job_ids == ("doomed",)
        assert report.reason.startswith("GPU 1 lost: GPU 1: nvmlDeviceGetTotalEnergyConsumption")
        assert monitor.poll_lost() == ()  # reported once
        assert (monitor.available(0), monitor.available(1)) == (True, False)
        doomed = monitor.end_job("doomed")
        assert doomed.failed_reason is not None and "GPU is lost" in doomed.failed_reason
        assert doomed.energy_j == pytest.approx(400.0 * 4.9)  # to the last good reading
        # The daemon goes on: GPU 0 keeps being sampled and metered; GPU 1 takes no new job.
        tick(monitor, clock, 2.0)
        assert monitor.end_job("fine").failed_reason is None
        monitor.begin_job("next", [0])
        with pytest.raises(GpuLostError, match="job retry"):
            monitor.begin_job("retry", [1])
    assert backend.devices()  # discovery is kept for reporting after close


def test_measured_run_for_the_outcome(clock: FakeClock) -> None:
    backend = SimulatedGpuBackend([SPEC, SPEC], clock=clock)
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=clock, sample=False)
    monitor.begin_job("j", [0, 1])
    backend.set_utilisation(0, 1.0)
    clock.advance(90.0)
    started = datetime(2024, 5, 1, 12, tzinfo=UTC)
    run = measured_run(monitor.end_job("j"), started_at=started, gpu="A100-80GB")
    assert run.ended_at == started + timedelta(seconds=90)
    assert (run.gpus, run.energy_method, run.energy_shared) == (2, "counter", False)
    assert run.energy_j == pytest.approx(400.0 * 90 + 55.0 * 90)
