"""What ``carbond submit`` warns about at once, instead of letting the daemon fail the job later:
a deadline already past, a job that fits none of the configured GPUs (with the numbers), or a
deadline the fastest configured GPU cannot meet. Warnings only: the line is still appended (the
configuration may change before the daemon plans it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from daemon.catalog import gpu_catalog
from daemon.inventory import build_inventory
from daemon.planning import request_spec
from daemon.queue.line import JobRequest
from daemon.settings import Settings
from policies.candidates import device_groups, estimate_on, unfit_reason

__all__ = ["submit_warnings"]


def submit_warnings(settings: Settings, request: JobRequest, now: datetime) -> list[str]:
    """The problems the daemon would meet with ``request``, one sentence each.

    The GPU checks use the regions' declared GPUs; they are skipped when a region discovers its
    GPUs (only the daemon's node knows them) or when no region is configured here.
    """
    warnings = []
    deadline = request.deadline
    if deadline is not None and deadline <= now:
        warnings.append(
            f"deadline {deadline.isoformat()} is already past: the job will expire without running"
        )
    if not settings.regions or any(r.gpus == "discover" for r in settings.regions):
        return warnings
    devices = [gpu.device for gpu in build_inventory(settings.regions, gpu_catalog(settings))]
    spec = request_spec(request, request.job_id or "new", now, deadline)
    need = spec.workload.tensor_parallel
    fitting = [
        est
        for group in device_groups(spec, devices)
        if len(group) >= need and (est := estimate_on(spec, group[0])).fits
    ]
    if not fitting:
        reason = unfit_reason(spec, devices).replace("admissible device", "configured GPU", 1)
        warnings.append(f"{reason}: the daemon will reject it")
    elif deadline is not None and deadline > now:
        fastest = min(fitting, key=lambda e: e.duration_s)
        if now + timedelta(seconds=fastest.duration_s) > deadline:
            warnings.append(
                f"the job needs about {_hours(fastest.duration_s)} on the fastest configured GPU "
                f"({fastest.gpu}) but its deadline is {_hours((deadline - now).total_seconds())} "
                "away: it will likely expire or miss it"
            )
    return warnings


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.0f} min"
