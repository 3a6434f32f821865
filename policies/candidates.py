"""Which devices may run a job, and what the job costs on each GPU type."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from policies.footprint.calibration import EstimateInterval, estimate_interval
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.footprint.runtimes import get_runtime
from policies.types import Device, JobSpec

__all__ = [
    "device_groups",
    "estimate_on",
    "interval_on",
    "is_free",
    "job_allows",
    "latest_safe_start",
]


def job_allows(job: JobSpec, device: Device) -> bool:
    """Whether ``job``'s constraints admit ``device`` (region, GPU type, memory, availability)."""
    if not device.available:
        return False
    if job.regions and device.region not in job.regions:
        return False
    if job.gpu_types and device.gpu.name.lower() not in {t.lower() for t in job.gpu_types}:
        return False
    return device.gpu.memory_gb >= job.min_gpu_memory_gb


def is_free(device: Device, now: datetime) -> bool:
    """Whether ``device`` can start work at ``now``."""
    return device.available and (device.busy_until is None or device.busy_until <= now)


def device_groups(job: JobSpec, devices: Sequence[Device]) -> Iterator[tuple[Device, ...]]:
    """Every (region, GPU type) pool the job may use, as a tuple of its admissible devices."""

    def key(device: Device) -> tuple[str, str]:
        return device.region, device.gpu.name

    allowed = sorted((d for d in devices if job_allows(job, d)), key=key)
    for _, pool in groupby(allowed, key=key):
        yield tuple(pool)


def estimate_on(
    job: JobSpec, device: Device, recalibration: Recalibration | None = None
) -> Estimate:
    """The job's estimate on ``device``'s GPU type (all its tensor-parallel GPUs).

    Eager runtimes get :func:`policies.footprint.estimate` unchanged; serving engines (vLLM)
    the calibrated continuous-batching estimate. With ``recalibration``, energy and duration are
    scaled by the factors learned online from measured outcomes for (model, GPU type).
    """
    return interval_on(job, device, recalibration).estimate


def interval_on(
    job: JobSpec, device: Device, recalibration: Recalibration | None = None
) -> EstimateInterval:
    """The job's estimate on ``device``'s GPU type with its 10-90 % energy and duration band
    (scaled by ``recalibration``'s factors in use, if given)."""
    band = estimate_interval(job.model, device.gpu, get_runtime(job.runtime), job.workload)
    return band if recalibration is None else recalibration.apply_interval(band)


def latest_safe_start(job: JobSpec, band: EstimateInterval) -> datetime | None:
    """The latest start that still ends by ``job.deadline`` if the job runs as long as the
    pessimistic (90th percentile) duration; None when the job has no deadline or cannot run
    on that GPU (does not fit)."""
    if job.deadline is None or not band.estimate.fits:
        return None
    return job.deadline - timedelta(seconds=band.duration_s_p90)
