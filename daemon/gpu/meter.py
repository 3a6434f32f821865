"""Energy per job: counter deltas over the time a job holds its GPUs, split where GPUs are shared.

Rules (also in ``docs/gpus.md``):

- A job is charged from :meth:`EnergyMeter.begin` (its GPUs are allocated to it) to
  :meth:`EnergyMeter.end` (released). Energy while it waits in the queue is not charged; energy
  while it holds a GPU, busy or idle, is.
- Method ``counter``: the delta of NVML's cumulative energy counter. Where a device has no counter,
  ``power_integral``: the trapezoid integral of the sampler's power readings (flagged). A job over
  both kinds of device is ``mixed``.
- Shared GPUs — equal split while co-resident: between two changes of the set of jobs holding a
  device, that device's energy is divided equally among the jobs holding it. A job that ever
  shared a device is flagged ``shared``.
- A lost device ends the charge at its last good reading; its jobs carry ``failed_reason``.
  Any other failed read at a job's begin or end also uses the last good reading (the rest is
  charged at the next change), so the job still begins or ends.

Per job and device the meter also keeps a power/temperature/fan curve at ``curve_resolution_s``,
at most ``curve_max_points`` points (the resolution doubles when a long job would exceed it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from daemon.gpu.backend import GpuBackend, GpuReading
from daemon.gpu.curves import CurveAccumulator, DeviceCurve
from daemon.gpu.errors import GpuError, GpuLostError
from daemon.gpu.sampler import Sampler

__all__ = ["DeviceEnergy", "EnergyMeter", "EnergyMethod", "JobEnergy"]

log = structlog.get_logger(__name__)


class EnergyMethod(StrEnum):
    """How a job's energy was measured."""

    COUNTER = "counter"
    POWER_INTEGRAL = "power_integral"
    MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    """A job's energy on one device (J) and how it was measured."""

    index: int
    energy_j: float
    method: EnergyMethod
    shared: bool


@dataclass(frozen=True, slots=True)
class JobEnergy:
    """What a job measurably drew: total J, per device, method, flags and curves."""

    job_id: str
    duration_s: float
    energy_j: float
    method: EnergyMethod
    shared: bool
    devices: tuple[DeviceEnergy, ...]
    curves: tuple[DeviceCurve, ...]
    failed_reason: str | None = None


@dataclass(slots=True)
class _Job:
    job_id: str
    indices: tuple[int, ...]
    start_s: float
    energy_j: dict[int, float]
    curves: dict[int, CurveAccumulator]
    shared: set[int] = field(default_factory=set)
    failed_reason: str | None = None


@dataclass(slots=True)
class _Device:
    counter: bool
    holders: set[str] = field(default_factory=set)
    mark_j: float = 0.0
    lost_reason: str | None = None


class EnergyMeter:
    """Attributes GPU energy to jobs. Thread-safe; register :meth:`observe` on the sampler.

    Args:
        backend: the started GPU backend (which devices exist, which have a counter).
        sampler: the sampler over the same backend; every read goes through it.
        clock: monotonic seconds.
        curve_resolution_s: initial resolution of each job's curves.
        curve_max_points: cap on points per curve.
    """

    def __init__(
        self,
        backend: GpuBackend,
        sampler: Sampler,
        *,
        clock: Callable[[], float] = time.monotonic,
        curve_resolution_s: float = 1.0,
        curve_max_points: int = 3600,
    ) -> None:
        self._backend = backend
        self._sampler = sampler
        self._clock = clock
        self._resolution_s = curve_resolution_s
        self._max_points = curve_max_points
        self._lock = threading.RLock()
        self._devices = {d.index: _Device(counter=d.energy_counter) for d in backend.devices()}
        self._jobs: dict[str, _Job] = {}

    def begin(self, job_id: str, indices: Sequence[int]) -> None:
        """Start charging ``job_id`` for devices ``indices`` (now).

        Raises:
            GpuError: a device is unknown, lost, or the job is already metered.
        """
        if not indices:
            raise GpuError(f"job {job_id}: no GPUs to meter")
        with self._lock:
            if job_id in self._jobs:
                raise GpuError(f"job {job_id}: already metered")
            for index in indices:
                self._device(index)
                self._settle(index)
            for index in indices:
                if (reason := self._devices[index].lost_reason) is not None:
                    raise GpuLostError(index, f"job {job_id}: {reason}")
            now_s = self._clock()
            self._jobs[job_id] = _Job(
                job_id=job_id,
                indices=tuple(indices),
                start_s=now_s,
                energy_j={i: 0.0 for i in indices},
                curves={
                    i: CurveAccumulator(i, now_s, self._resolution_s, self._max_points)
                    for i in indices
                },
            )
            for index in indices:
                self._devices[index].holders.add(job_id)
            log.debug("job_metering_started", job_id=job_id, gpus=list(indices))

    def end(self, job_id: str) -> JobEnergy:
        """Stop charging ``job_id`` and return what it drew (partial if a device was lost).

        Raises:
            GpuError: the job is not metered.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise GpuError(f"job {job_id}: not metered (running: {sorted(self._jobs)})")
            for index in job.indices:
                self._settle(index)
                self._devices[index].holders.discard(job_id)
            del self._jobs[job_id]
            return self._result(job, self._clock())

    def device_lost(self, index: int, reason: str) -> tuple[str, ...]:
        """Close device ``index`` at its last good reading; return the ids of its jobs.

        Those jobs get ``failed_reason``; the caller fails and re-plans them and calls
        :meth:`end` to collect their partial energy.
        """
        with self._lock:
            device = self._device(index)
            if device.lost_reason is None:
                self._settle(index, lost=True)
                device.lost_reason = f"GPU {index} lost: {reason}"
            for job_id in device.holders:
                self._jobs[job_id].failed_reason = device.lost_reason
            return tuple(sorted(device.holders))

    def observe(self, reading: GpuReading) -> None:
        """Add a sampler reading to the curves of the jobs holding that device."""
        with self._lock:
            device = self._devices.get(reading.index)
            if device is None:
                return
            for job_id in device.holders:
                self._jobs[job_id].curves[reading.index].add(reading)

    def clock(self) -> float:
        """The meter's clock now (monotonic seconds)."""
        return self._clock()

    def running(self) -> tuple[str, ...]:
        """Ids of the jobs being metered."""
        with self._lock:
            return tuple(sorted(self._jobs))

    # -- internals -------------------------------------------------------------------------
    def _device(self, index: int) -> _Device:
        try:
            return self._devices[index]
        except KeyError:
            raise GpuError(f"GPU {index}: unknown (known: {sorted(self._devices)})") from None

    def _energy_now_j(self, index: int, device: _Device, lost: bool) -> float:
        """The device's cumulative energy now, or at its last good reading once lost."""
        if not lost:
            try:
                reading = self._sampler.read_now(index)
                if not device.counter:
                    return self._sampler.last_integrated_energy_j(index)
                if reading.energy_j is not None:
                    return reading.energy_j
            except GpuLostError as e:
                device.lost_reason = f"GPU {index} lost: {e}"
            except GpuError as e:  # a transient NVML error (UNKNOWN, TIMEOUT): last good reading
                log.warning("gpu_read_failed_at_job_boundary", gpu=index, error=str(e))
        if not device.counter:
            return self._sampler.last_integrated_energy_j(index)
        latest = self._sampler.latest(index)
        return device.mark_j if latest is None or latest.energy_j is None else latest.energy_j

    def _settle(self, index: int, *, lost: bool = False) -> None:
        """Charge the energy since the last change on ``index`` to its current holders."""
        device = self._devices[index]
        if device.lost_reason is not None:
            return
        energy_j = self._energy_now_j(index, device, lost)
        delta_j = max(0.0, energy_j - device.mark_j)
        device.mark_j = max(device.mark_j, energy_j)
        if device.holders:
            share_j = delta_j / len(device.holders)
            for job_id in device.holders:
                job = self._jobs[job_id]
                job.energy_j[index] += share_j
                if len(device.holders) > 1:
                    job.shared.add(index)
        if device.lost_reason is not None:
            for job_id in device.holders:
                self._jobs[job_id].failed_reason = device.lost_reason

    def _result(self, job: _Job, now_s: float) -> JobEnergy:
        devices = tuple(
            DeviceEnergy(
                index=i,
                energy_j=job.energy_j[i],
                method=EnergyMethod.COUNTER
                if self._devices[i].counter
                else EnergyMethod.POWER_INTEGRAL,
                shared=i in job.shared,
            )
            for i in job.indices
        )
        methods = {d.method for d in devices}
        method = methods.pop() if len(methods) == 1 else EnergyMethod.MIXED
        return JobEnergy(
            job_id=job.job_id,
            duration_s=now_s - job.start_s,
            energy_j=sum(d.energy_j for d in devices),
            method=method,
            shared=bool(job.shared),
            devices=devices,
            curves=tuple(job.curves[i].freeze() for i in job.indices),
            failed_reason=job.failed_reason,
        )
