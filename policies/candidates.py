"""Which devices may run a job, and what the job costs on each GPU type."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from policies.errors import InvalidWorkloadError
from policies.footprint.calibration import EstimateInterval, estimate_interval
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.footprint.runtimes import RuntimeProfile, get_runtime
from policies.footprint.served import served_precision
from policies.types import Device, JobSpec

__all__ = [
    "UNFIT",
    "device_groups",
    "estimate_on",
    "fit_problem",
    "interval_on",
    "is_free",
    "job_allows",
    "latest_safe_start",
    "unfit_reason",
]

UNFIT = "fits no admissible device"


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
    """Every (region, GPU type) pool the job may use, as a tuple of its admissible devices in
    id order (as every planner's pools: the order ``devices`` come in changes nothing)."""

    def key(device: Device) -> tuple[str, str]:
        return device.region, device.gpu.name

    allowed = sorted(
        (d for d in devices if job_allows(job, d)), key=lambda d: (*key(d), d.device_id)
    )
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


def unfit_reason(job: JobSpec, devices: Sequence[Device]) -> str:
    """Why ``job`` fits none of ``devices``, with the numbers: the reason a policy rejects it
    with, and what ``carbond submit`` warns about. Checked in order: no device at all, none
    available, the job's regions, GPU types and minimum memory, memory for the model, then
    enough GPUs of one type in one region for its tensor parallelism.
    """
    problem = fit_problem(job, devices)
    return f"{UNFIT}: {problem}" if problem else UNFIT


def fit_problem(job: JobSpec, devices: Sequence[Device]) -> str | None:
    """Why ``job`` fits none of ``devices`` (the part of :func:`unfit_reason` after its
    colon), or None when some of them can run it."""
    return _constraint_problem(job, devices) or _capacity_problem(job, devices)


def _constraint_problem(job: JobSpec, devices: Sequence[Device]) -> str | None:
    """The job's own constraints (regions, GPU types, minimum memory) exclude every device."""
    pool = [d for d in devices if d.available]
    if not devices:
        return "no GPU is configured"
    if not pool:
        return f"none of the {len(devices)} configured GPU(s) is available"
    if job.regions:
        where = ", ".join(sorted({d.region for d in pool}))
        pool = [d for d in pool if d.region in job.regions]
        if not pool:
            return f"no available GPU in region(s) {', '.join(job.regions)} (GPUs are in {where})"
    if job.gpu_types:
        wanted = {t.lower() for t in job.gpu_types}
        kinds = ", ".join(sorted({d.gpu.name for d in pool}))
        pool = [d for d in pool if d.gpu.name.lower() in wanted]
        if not pool:
            return f"no available {' or '.join(job.gpu_types)} GPU (there are {kinds})"
    largest = max(pool, key=lambda d: d.gpu.memory_gb)
    if largest.gpu.memory_gb < job.min_gpu_memory_gb:
        return (
            f"asks for at least {job.min_gpu_memory_gb:g} GB of GPU memory, the largest offers "
            f"{largest.gpu.memory_gb:g} GB ({largest.gpu.name})"
        )
    return None


def _capacity_problem(job: JobSpec, devices: Sequence[Device]) -> str | None:
    """The model does not fit the memory of any admissible GPU type (or its engine cannot serve
    its precision there: fp8 on a V100 under vLLM), or no region has enough GPUs of one type
    for its tensor parallelism.

    A GPU type whose engine cannot serve the precision is named for that alone, even when the
    model would not fit its memory either: the engine refuses it before memory counts (vLLM
    checks the compute capability at load), so its memory at that precision is no figure to
    act on. The memory reason names the largest of the GPU types that can serve it.
    """
    estimates = [(estimate_on(job, group[0]), group) for group in device_groups(job, devices)]
    fitting = [(est, group) for est, group in estimates if est.fits]
    if estimates and not fitting:
        runtime = get_runtime(job.runtime)
        unserved = {est.gpu: est.reason for est, group in estimates
                    if not _serves(group[0], runtime, job.workload.precision)}  # fmt: skip
        short = [est for est, _ in estimates if est.gpu not in unserved
                 and est.memory_required_gb > est.memory_available_gb]  # fmt: skip
        problems = sorted(set(unserved.values()))
        if short:
            est = max(short, key=lambda e: e.memory_available_gb)
            batch = min(job.workload.batch_size, job.workload.request_count)
            problems.insert(0, (
                f"{est.model} at {job.workload.precision}, batch {batch}, needs "
                f"{est.memory_required_gb:.1f} GB per GPU, the largest offers "
                f"{est.memory_available_gb:.1f} GB usable ({est.gpu})"
            ))  # fmt: skip
        return "; ".join(problems)
    need = job.workload.tensor_parallel
    if fitting:
        _, group = max(fitting, key=lambda item: len(item[1]))
        if len(group) < need:
            return (
                f"needs {need} GPUs of one type in one region, the largest pool it fits has "
                f"{len(group)} ({group[0].gpu.name} in {group[0].region})"
            )
    return None


def _serves(device: Device, runtime: RuntimeProfile, precision: str) -> bool:
    """Whether ``runtime`` can serve ``precision`` on ``device``'s GPU type at all."""
    try:
        served_precision(device.gpu, runtime, precision)
    except InvalidWorkloadError:
        return False
    return True
