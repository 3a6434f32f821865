"""Which devices may run a job, and what the job costs on each GPU type."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import groupby

from policies.footprint.estimator import Estimate, estimate
from policies.footprint.runtimes import get_runtime
from policies.types import Device, JobSpec

__all__ = ["device_groups", "estimate_on", "is_free", "job_allows"]


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


def estimate_on(job: JobSpec, device: Device) -> Estimate:
    """The job's estimate on ``device``'s GPU type (all its tensor-parallel GPUs)."""
    return estimate(job.model, device.gpu, get_runtime(job.runtime), job.workload)
