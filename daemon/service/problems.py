"""What ``health.json`` says of the service's parts, refreshed after every step.

The executors' own problems (Slurm unreachable), the sites' (a model failing, a measured CSV
stale), the running jobs and the runs being stopped of an executor this daemon does not have
(``executor:<name>``: a restart with a config that no longer uses it; those runs are not
followed), the regions whose GPUs are not discovered yet (``region:<name>``) and the declared
GPUs NVML cannot run jobs on (``gpu:<device id>``, ``gpu:qc/1``, never planned on). Each is
cleared once no longer reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.endings.finishing import Endings
from daemon.executors.base import Executor, Reporting
from daemon.service.gpus import undiscovered
from daemon.supervision.health import gpu_key

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["Problems"]


class Problems:
    """What ``health.json`` says of a service's parts, and what it said at the last report:
    the executors that report their own problems (asked once: an isinstance check against a
    runtime Protocol costs ~15 us a round) and the health keys :meth:`report` set. One per
    :class:`~daemon.service.Service`, which reports after every step."""

    def __init__(self, executors: Mapping[str, Executor], endings: Endings) -> None:
        self._reporting = [e for e in executors.values() if isinstance(e, Reporting)]
        self._endings = endings  # its runs being stopped (a lost GPU's)
        self._keys: set[str] = set()  # the health keys the last report set

    def take_over(self, previous: Problems) -> None:
        """After a reload: the health keys ``previous`` (the old service's) set are this one's
        to clear once no longer reported (the health file outlives a reload)."""
        self._keys |= previous._keys

    def report(self, service: Service, now: datetime) -> None:
        """The executors' own problems (Slurm unreachable), the sites' (a model failing, a
        measured CSV stale), the running jobs and the runs being stopped (a lost GPU's) of an
        executor this daemon does not have and the undiscovered regions into
        ``service``'s ``health.json``, each cleared once no longer reported."""
        current: dict[str, str] = {}
        devices: dict[str, str] = {}  # the device id of a GPU's problem
        for executor in self._reporting:
            current.update(executor.problems())
        if service.sites:
            current.update(service.sites.problems())
        running, stopping = _unfollowed(service), _unfollowed_stops(service, self._endings)
        for name in sorted(running.keys() | stopping.keys()):
            what = []
            if jobs := running.get(name):
                what.append(f"{len(jobs)} running job(s) ({_shown(jobs)})")
            if stops := stopping.get(name):
                what.append(
                    f"{len(stops)} run(s) being stopped, their jobs ended ({_shown(stops)})"
                )
            current[f"executor:{name}"] = (
                f"{' and '.join(what)} run on executor {name}, which this daemon does not have "
                "(no region uses it): they are not polled, cancelled or ended; restore a region "
                "that uses it until they end"
            )
        if service.measurement is not None:  # declared GPUs NVML cannot run jobs on
            for gpu in service.inventory:
                if (why := service.measurement.refusal(gpu.device_id)) is not None:
                    current[gpu_key(gpu.device_id)] = why
                    devices[gpu_key(gpu.device_id)] = gpu.device_id
        for region, why in undiscovered(service).items():
            current[f"region:{region}"] = (
                f"GPUs not discovered ({why}); the jobs only this region can run wait queued, "
                "and it is asked again until its executor answers"
            )
        for key, message in current.items():
            service.health.set(key, message, now, device_id=devices.get(key))
        for key in self._keys - current.keys():
            service.health.clear(key)
        self._keys = set(current)


def _shown(jobs: list[str]) -> str:
    """The first five of ``jobs``, and how many more."""
    return ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")


def _unfollowed_stops(service: Service, endings: Endings) -> dict[str, list[str]]:
    """The jobs of the runs being stopped (their jobs ended: a lost GPU's) whose executor
    this daemon does not have, by executor name."""
    jobs: dict[str, list[str]] = defaultdict(list)
    for handle in endings.stops.stopping():
        if handle.executor not in service.executors:
            jobs[handle.executor].append(handle.job_id)
    return jobs


def _unfollowed(service: Service) -> dict[str, list[str]]:
    """The running jobs whose executor this daemon does not have (a restart with a
    config that no longer uses it), by executor name."""
    jobs: dict[str, list[str]] = defaultdict(list)
    for run in service.ledger.active_runs():
        if run.executor not in service.executors:
            jobs[run.executor].append(run.job_id)
    return jobs
