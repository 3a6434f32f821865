"""The service with two simulated A100s measured by a GPU monitor: the one setup the measurement
tests, the lost-GPU stop tests, ``prune-logs``' and the kill-point children share."""

from __future__ import annotations

from pathlib import Path

from daemon.executors.base import Executor
from daemon.gpu import GpuMonitor, SimulatedGpuBackend
from daemon.gpu.factory import simulated_spec
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.measurement import JobMeasurement
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import GpuSettings, RegionSettings, Settings
from daemon.testing import FakeClock
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG

__all__ = ["A100", "REGIONS", "build", "lose_gpu"]

REGIONS = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("A100-80GB",) * 2),)
A100 = DEFAULT_GPU_CATALOG.get("A100-80GB")


def build(
    tmp_path: Path,
    clock: FakeClock,
    executor: Executor,
    factor: float = 1.0,
    policy: str = "run-now",
) -> tuple[Service, SimulatedGpuBackend, GpuMonitor]:
    """A started service over ``tmp_path``, its simulated backend (true power ``factor``
    times the catalogue's) and the monitor sampling it (call ``sampler.sample_once()``)."""
    monotonic_s = clock.monotonic()

    backend = SimulatedGpuBackend(
        [simulated_spec(A100)] * 2, true_power_factor=factor, clock=monotonic_s
    )
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=monotonic_s, sample=False)
    settings = Settings(state_dir=tmp_path, regions=REGIONS, policy={"name": policy})
    ledger = Ledger.open(tmp_path / "ledger.db")
    service = Service(
        settings=settings,
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["qc"]),
        executors={executor.name: executor},
        inventory=build_inventory(REGIONS),
        intensity=EmbeddedIntensity(),
        policy=get_policy(policy),
        measurement=JobMeasurement(monitor, lifetime_years=5.0, index_of={"qc/0": 0, "qc/1": 1}),
    )
    service.start(clock())
    return service, backend, monitor


def lose_gpu(
    backend: SimulatedGpuBackend, monitor: GpuMonitor, clock: FakeClock, index: int
) -> None:
    """GPU ``index`` falls off the bus between two samples one second apart (``clock`` moved
    on by 1 s): the monitor has seen the loss, the service acts on it at its next tick."""
    monitor.sampler.sample_once()
    backend.lose(index)
    clock.advance(1)
    monitor.sampler.sample_once()
