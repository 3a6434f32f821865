"""The GPU side of the daemon in one component: backend, sampler and energy meter, wired.

The service builds one :class:`GpuMonitor` at start-up (composition root), calls
:meth:`GpuMonitor.begin_job` when a job's GPUs are allocated, :meth:`GpuMonitor.end_job` when
they are released, and :meth:`GpuMonitor.poll_lost` on every tick: each lost GPU comes back once
with the jobs it was running, which the service fails (with the reason given) and re-plans, and
the device is reported unavailable from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from daemon.gpu.backend import GpuBackend, GpuDevice
from daemon.gpu.meter import EnergyMeter, JobEnergy
from daemon.gpu.sampler import LostGpu, Sampler
from daemon.settings import GpuSettings
from policies.footprint.outcome import MeasuredRun

__all__ = ["GpuMonitor", "LostGpuReport", "measured_run"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LostGpuReport:
    """A GPU that was lost, and the jobs that were running on it (to fail and re-plan)."""

    gpu: LostGpu
    job_ids: tuple[str, ...]
    reason: str


class GpuMonitor:
    """Owns the sampler thread and the meter over a started backend.

    Args:
        backend: a started backend (see :func:`daemon.gpu.factory.start_backend`); the monitor
            closes it on :meth:`close`.
        settings: sampling period, history and curve resolution.
        clock: monotonic seconds.
        sample: False builds the meter without the sampler thread (energy from counters only;
            counterless devices are then read only at job boundaries).
    """

    def __init__(
        self,
        backend: GpuBackend,
        settings: GpuSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sample: bool = True,
    ) -> None:
        self.backend = backend
        self.sampler = Sampler(
            backend,
            period_s=settings.sample_period_s,
            history_samples=settings.history_samples,
            clock=clock,
        )
        self.meter = EnergyMeter(
            backend,
            self.sampler,
            clock=clock,
            curve_resolution_s=settings.curve_resolution_s,
            curve_max_points=settings.curve_max_points,
        )
        self.sampler.add_listener(self.meter.observe)
        self._sample = sample

    def start(self) -> None:
        """Start the sampler thread (if sampling)."""
        if self._sample:
            self.sampler.start()

    def close(self) -> None:
        """Stop sampling and close the backend."""
        self.sampler.close()
        self.backend.close()

    def __enter__(self) -> GpuMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def devices(self) -> tuple[GpuDevice, ...]:
        """Every device discovered at start, lost ones included (see :meth:`available`)."""
        return self.backend.devices()

    def available(self, index: int) -> bool:
        """False once device ``index`` is lost."""
        return all(g.index != index for g in self.sampler.lost())

    def begin_job(self, job_id: str, indices: Sequence[int]) -> None:
        """Start charging ``job_id`` for its GPUs (raises ``GpuLostError`` for a lost one)."""
        self.meter.begin(job_id, indices)

    def end_job(self, job_id: str) -> JobEnergy:
        """Stop charging ``job_id``; its measured energy (``failed_reason`` if a GPU was lost)."""
        energy = self.meter.end(job_id)
        log.info(
            "job_energy_measured",
            job_id=job_id,
            energy_j=energy.energy_j,
            energy_method=energy.method.value,
            shared=energy.shared,
            duration_s=energy.duration_s,
            failed_reason=energy.failed_reason,
        )
        return energy

    def poll_lost(self) -> tuple[LostGpuReport, ...]:
        """GPUs lost since the last call, each once, with the jobs that were on them."""
        reports = []
        for gpu in self.sampler.drain_lost():
            job_ids = self.meter.device_lost(gpu.index, gpu.reason)
            reason = f"GPU {gpu.index} lost: {gpu.reason}"
            log.error("gpu_marked_unavailable", gpu=gpu.index, jobs=list(job_ids), reason=reason)
            reports.append(LostGpuReport(gpu, job_ids, reason))
        return tuple(reports)


def measured_run(energy: JobEnergy, *, started_at: datetime, gpu: str) -> MeasuredRun:
    """The policies-side :class:`MeasuredRun` of ``energy``.

    ``started_at`` is the aware-UTC wall-clock time the job's GPUs were allocated; the end is
    ``started_at`` plus the meter's monotonic duration (immune to wall-clock steps). ``gpu`` is
    the catalog name of the job's GPU type.
    """
    return MeasuredRun(
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=energy.duration_s),
        gpu=gpu,
        gpus=len(energy.devices),
        energy_j=energy.energy_j,
        energy_method=energy.method.value,
        energy_shared=energy.shared,
    )
