"""Metering one job on this node's GPUs, start to end, into its ``outcomes`` columns.

:class:`JobMeasurement` follows the service's job life cycle (see :mod:`daemon.measurement`):
GPU energy from the monitor, charged up to the job's real end; realised intensity time-weighted
over the run; the measured columns of the outcome row; the recalibration factors it teaches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog

from daemon.accounting import meter_method, predicted_alternative
from daemon.gpu import GpuLostError, GpuMonitor, JobEnergy, LostGpuReport, measured_run
from daemon.gpu.curves import DeviceCurve
from daemon.gpu.errors import GpuError
from daemon.gpu.factory import simulated_spec
from daemon.gpu.simulated import SimulatedGpuBackend
from daemon.inventory import InventoryGpu
from daemon.learning.factors import Learning
from daemon.ledger import DecisionRecord
from policies import Decision, JobSpec, PoliciesError, ZoneIntensity
from policies.candidates import estimate_on
from policies.footprint.gpus import GpuSpec
from policies.footprint.outcome import RealisedIntensity, compute_outcome
from policies.footprint.recalibration import Recalibration
from policies.placement import mean_intensity_g_per_kwh

__all__ = ["JobMeasurement"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Tracked:
    zone: str
    gpus: tuple[InventoryGpu, ...]
    indices: tuple[int, ...]
    last_at: datetime
    start_s: float  # the GPU backend's clock at the start
    value: float | None = None
    weighted: float = 0.0
    seconds: float = 0.0
    rungs: set[str] = field(default_factory=set)
    age_s: float = 0.0


class JobMeasurement:
    """Connects the GPU monitor to the service's job life cycle (see the module docstring).

    Args:
        monitor: the started GPU monitor (its sampler thread runs on its own).
        lifetime_years: GPU lifetime for amortising embodied carbon.
        index_of: device id -> backend device index, for every measured GPU.
        refused: device id -> why, of the declared GPUs the backend cannot run jobs on
            (:func:`daemon.measurement.start.declared_unusable`): unavailable from the start.
        vet: how a reload's inventory is checked again (:meth:`keep_only`): its ``refused``.
        recalibration: the starting factors (default: none learned yet).

    :attr:`learning` holds the online factors per (model, GPU type), updated by every job
    metered here to its end (:meth:`finished`); the service uses it as its own, so GPU-metered
    and executor-measured runs teach one :class:`~daemon.learning.factors.Learning`.
    """

    def __init__(
        self,
        monitor: GpuMonitor,
        *,
        lifetime_years: float,
        index_of: Mapping[str, int],
        recalibration: Recalibration | None = None,
        refused: Mapping[str, str] | None = None,
        vet: Callable[[Sequence[InventoryGpu]], Mapping[str, str]] | None = None,
    ) -> None:
        self.monitor = monitor
        self._refused = dict(refused or {})
        self._vet = vet
        self._lifetime_years = lifetime_years
        known = {d.index for d in monitor.devices()}
        self._index_of = {d: i for d, i in index_of.items() if i in known}
        self._jobs: dict[str, _Tracked] = {}
        self.learning = Learning(recalibration)

    @property
    def recalibration(self) -> Recalibration:
        """The factors learned so far (:attr:`learning`'s)."""
        return self.learning.recalibration

    def close(self) -> None:
        """Stop the sampler and close the GPU backend."""
        self.monitor.close()

    def device_index(self, device_id: str) -> int | None:
        """The backend's index of inventory GPU ``device_id``, None where it is not metered."""
        return self._index_of.get(device_id)

    def measures(self, gpus: Sequence[InventoryGpu]) -> bool:
        """Whether a job on ``gpus`` runs on this node's measured GPUs."""
        return bool(gpus) and all(g.device_id in self._index_of for g in gpus)

    def keep_only(self, inventory: Sequence[InventoryGpu]) -> None:
        """After a reload: stop measuring device ids that left the inventory, and simulated
        ones whose GPU the reload changed: another type, or its type's catalog power or memory
        (``[catalog.gpus.X]`` idle_w, tdp_w, memory_gb). Their simulated device, built at
        start-up, draws the old GPU's power, not the new one's. An NVML device is the hardware
        itself, whatever the config declares: it stays measured. The declared local GPUs are
        checked again against the backend's devices (``vet``): what :meth:`refusal` says now."""
        if self._vet is not None:  # the declarations again: corrected, or new ones
            self._refused = dict(self._vet([g for g in inventory if g.executor == "local"]))
        now = {g.device_id: g.device.gpu for g in inventory}
        backend = self.monitor.backend
        self._index_of = {
            d: i
            for d, i in self._index_of.items()
            if d in now
            and (not isinstance(backend, SimulatedGpuBackend) or _built_as(backend, i, now[d]))
        }

    def unavailable(self, gpu: InventoryGpu) -> bool:
        """Whether ``gpu`` is one of this node's measured GPUs and has been lost, or a
        declared GPU refused at start (:meth:`refusal`)."""
        if gpu.device_id in self._refused:
            return True
        return self.measures((gpu,)) and not self.monitor.available(self._index_of[gpu.device_id])

    def refusal(self, device_id: str) -> str | None:
        """Why declared GPU ``device_id`` is not planned on (None: it is not refused)."""
        return self._refused.get(device_id)

    def started(
        self,
        job_id: str,
        gpus: Sequence[InventoryGpu],
        decision: Decision,
        now: datetime,
        forecasts: Mapping[str, ZoneIntensity],
        job: JobSpec | None = None,
    ) -> None:
        """Start metering ``job_id`` (a lost GPU is left to :meth:`lost`).

        On simulated GPUs, ``job`` sets the load: the utilisation of its raw catalog estimate
        (what the simulated hardware does, whatever the planner now predicts)."""
        if not self.measures(gpus):
            return
        indices = [self._index_of[g.device_id] for g in gpus]
        try:
            self.monitor.begin_job(job_id, indices)
        except GpuLostError as e:
            log.error("job_metering_refused", job_id=job_id, error=str(e))
            return
        start_s = self.monitor.meter.clock()
        tracked = _Tracked(gpus[0].device.zone, tuple(gpus), tuple(indices), now, start_s)
        self._jobs[job_id] = tracked
        self._sample(tracked, now, forecasts)
        if isinstance(self.monitor.backend, SimulatedGpuBackend) and job is not None:
            _load(self.monitor.backend, tracked, job)

    def observe(self, now: datetime, forecasts: Mapping[str, ZoneIntensity]) -> None:
        """Advance every running job's realised intensity to ``now``."""
        for tracked in self._jobs.values():
            self._sample(tracked, now, forecasts)

    def lost(self) -> tuple[LostGpuReport, ...]:
        """GPUs lost since the last call, with the jobs to fail (each GPU reported once)."""
        return self.monitor.poll_lost()

    def finished(
        self,
        job_id: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        decision: DecisionRecord | None,
        forecasts: Mapping[str, ZoneIntensity],
        job: JobSpec | None = None,
    ) -> dict[str, Any]:
        """Stop metering ``job_id``; the measured ``outcomes`` columns (empty if not metered).

        A job that ran to its end (no lost GPU) also updates :attr:`recalibration` when ``job``
        is given."""
        tracked = self._jobs.pop(job_id, None)
        if tracked is None:
            return {}
        backend = self.monitor.backend
        if isinstance(backend, SimulatedGpuBackend):  # the job stopped computing at its end
            ended_s = tracked.start_s + (finished_at - started_at).total_seconds()
            for index in tracked.indices:
                if self.monitor.available(index):
                    backend.set_utilisation(index, 0.0, since_s=ended_s)
        energy = self._to_real_end(
            self.monitor.end_job(job_id), tracked, (finished_at - started_at).total_seconds()
        )
        self._sample(tracked, finished_at, forecasts)
        if job is not None and energy.failed_reason is None:
            self._recalibrate(job, tracked, energy)
        return _columns(energy, tracked, started_at, decision, lifetime_years=self._lifetime_years,
                        backend=self.monitor.backend.name)  # fmt: skip

    def _to_real_end(self, energy: JobEnergy, tracked: _Tracked, real_s: float) -> JobEnergy:
        """``energy`` charged up to the job's real end, ``real_s`` after its start, not to
        when the daemon noticed it: the tail's energy (on simulated GPUs what they drew in
        it, exactly; else each GPU's power sampled in the tail, else its power now, the job
        gone, else its catalog idle power, times the tail) is taken off and the duration is
        the real one."""
        tail_s = energy.duration_s - max(0.0, real_s)
        if tail_s <= 0:
            return energy
        curves = {c.index: c for c in energy.curves}
        backend = self.monitor.backend
        devices = []
        for device, gpu in zip(energy.devices, tracked.gpus, strict=False):
            if isinstance(backend, SimulatedGpuBackend):  # loaded until its last read, if later
                ended_s = tracked.start_s + max(0.0, real_s)
                tail_j = backend.drawn_j(device.index, ended_s, ended_s + tail_s)
            else:
                tail_j = self._tail_w(device.index, gpu, curves.get(device.index), real_s) * tail_s
            devices.append(replace(device, energy_j=max(0.0, device.energy_j - tail_j)))
        kept_j = sum(d.energy_j for d in devices)
        log.debug("job_energy_tail_trimmed", job_id=energy.job_id, tail_s=tail_s,
                  energy_j=energy.energy_j, to_real_end_j=kept_j)  # fmt: skip
        return replace(
            energy,
            duration_s=max(0.0, real_s),
            energy_j=kept_j,
            devices=tuple(devices),
        )

    def _tail_w(
        self, index: int, gpu: InventoryGpu, curve: DeviceCurve | None, real_s: float
    ) -> float:
        """The power (W) of ``gpu`` (device ``index``) in a job's tail, after ``real_s``: as
        sampled in it (``curve``), else read now, the job gone, else its catalog idle power."""
        tail_w = [
            w
            for t, w in zip(curve.offset_s, curve.power_w, strict=True)
            if w is not None and t >= real_s
        ] if curve else []  # fmt: skip
        power_w = sum(tail_w) / len(tail_w) if tail_w else self._power_now_w(index)
        return gpu.device.gpu.idle_w if power_w is None else power_w

    def _power_now_w(self, index: int) -> float | None:
        try:
            return self.monitor.backend.read(index).power_w
        except GpuError:
            return None

    def _recalibrate(self, job: JobSpec, tracked: _Tracked, energy: JobEnergy) -> None:
        self.learning.learn(job, tracked.gpus[0].device, energy.energy_j, energy.duration_s)

    def _sample(
        self, tracked: _Tracked, now: datetime, forecasts: Mapping[str, ZoneIntensity]
    ) -> None:
        if tracked.value is not None and now > tracked.last_at:
            seconds = (now - tracked.last_at).total_seconds()
            tracked.weighted += tracked.value * seconds
            tracked.seconds += seconds
        series = forecasts.get(tracked.zone)
        if series is not None:
            tracked.value = mean_intensity_g_per_kwh(series, now, 0.0)
            tracked.rungs.add(str(getattr(series, "rung", getattr(series, "source", "series"))))
            tracked.age_s = max(tracked.age_s, float(getattr(series, "age_s", 0.0)))
        tracked.last_at = max(tracked.last_at, now)


def _columns(
    energy: JobEnergy,
    tracked: _Tracked,
    started_at: datetime,
    decision: DecisionRecord | None,
    *,
    lifetime_years: float,
    backend: str,
) -> dict[str, Any]:
    """The measured ``outcomes`` columns of a job metered to its end: ``energy`` as charged to
    its real end, the intensity ``tracked`` over its run, the outcome against ``decision``'s
    prediction (embodied carbon amortised over ``lifetime_years``), the meter method named
    after the GPU ``backend``."""
    device = tracked.gpus[0].device
    intensity_value = tracked.weighted / tracked.seconds if tracked.seconds > 0 else tracked.value
    run = measured_run(energy, started_at=started_at, gpu=device.gpu.name)
    realised = RealisedIntensity(
        zone=tracked.zone,
        intensity_g_per_kwh=math.nan if intensity_value is None else intensity_value,
        rung="+".join(sorted(tracked.rungs)) or "none",
        age_s=tracked.age_s,
        coverage=1.0 if intensity_value is not None else 0.0,
    )
    outcome = compute_outcome(
        run,
        predicted_alternative(decision, started_at),
        realised,
        gpu_embodied_g=device.gpu.embodied_g,
        pue=device.pue,
        lifetime_years=lifetime_years,
    )
    details = {
        "energy_shared": energy.shared,
        "energy_failed_reason": energy.failed_reason,
        "energy_error_rel": _finite(outcome.energy_error_rel),
        "duration_error_rel": _finite(outcome.duration_error_rel),
        "intensity_error_rel": _finite(outcome.intensity_error_rel),
        "total_error_rel": _finite(outcome.total_error_rel),
        "measured_duration_s": energy.duration_s,
        "devices": [
            {
                "index": d.index,
                "energy_j": d.energy_j,
                "method": d.method.value,
                "shared": d.shared,
            }
            for d in energy.devices
        ],
        "curves": [
            {
                "index": c.index,
                "resolution_s": c.resolution_s,
                "offset_s": c.offset_s,
                "power_w": c.power_w,
                "temperature_c": c.temperature_c,
                "fan_pct": c.fan_pct,
            }
            for c in energy.curves
        ],
    }
    return {
        "measured_energy_j": outcome.measured_energy_j,
        "energy_j": outcome.measured_energy_j,
        "energy_method": meter_method(backend, outcome.energy_method),
        "realised_intensity_g_per_kwh": _finite(outcome.realised_intensity_g_per_kwh),
        "intensity_source": outcome.intensity_rung,
        "intensity_age_s": outcome.intensity_age_s,
        "operational_g": _finite(outcome.operational_g),
        "embodied_g": outcome.embodied_g,
        "total_g": _finite(outcome.total_g),
        "details_json": json.dumps(details, allow_nan=False),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _built_as(backend: SimulatedGpuBackend, index: int, gpu: GpuSpec) -> bool:
    """Whether simulated device ``index`` is what the daemon would build for ``gpu`` now."""
    try:
        built = backend.spec(index)
    except GpuError:
        return False
    return built == simulated_spec(gpu, energy_counter=built.energy_counter)


def _load(backend: SimulatedGpuBackend, tracked: _Tracked, job: JobSpec) -> None:
    """Load simulated GPUs at the utilisation of ``job``'s raw estimate (catalog idle..TDP)."""
    try:
        raw = estimate_on(job, tracked.gpus[0].device)
    except PoliciesError:
        return
    if not raw.fits or not raw.duration_s:
        return
    per_gpu_w = raw.energy_j / raw.duration_s / len(tracked.gpus)
    for gpu, index in zip(tracked.gpus, tracked.indices, strict=True):
        spec = gpu.device.gpu
        span = spec.tdp_w - spec.idle_w
        utilisation = (per_gpu_w - spec.idle_w) / span if span > 0 else 1.0
        backend.set_utilisation(index, min(1.0, max(0.0, utilisation)))
