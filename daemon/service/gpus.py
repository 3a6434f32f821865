"""The service's GPUs changing under it: lost, discovered late, departed at a reload.

- Lost (:func:`check_gpus`): the measurement reports a GPU gone; its jobs fail (or are recorded
  as they ended, when their executor says they had), their runs are stopped, and the GPU is
  kept out of planning while the daemon goes on with the others (``health.json``:
  ``gpu:qc/1``, ``lost: qc/1 (A100-80GB): GPU 1 lost: ...``, keyed and named by its device id,
  also the problem's ``device_id``; a meter index no inventory GPU has, ``gpu:meter:<index>``).
- Discovered late (:func:`discover_late`): a region whose
  :class:`~daemon.executors.base.Discovering` executor could not ask for its GPUs (Slurm down
  when the daemon started) is asked again each planning round; its GPUs join the inventory once
  found (:func:`undiscovered`: those still missing, ``health.json``'s ``region:<name>``).
- Departed (:func:`departed`): the GPUs a reload took out of the inventory that runs still
  hold, kept so those runs' ends are recorded with their GPU.

Each runs under the :class:`~daemon.service.Service`'s lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon import killpoints
from daemon.endings.rules import run_handle
from daemon.endings.stopping import RunStops
from daemon.errors import DaemonError
from daemon.executors.base import ExitStatus
from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning.factors import refold_changed
from daemon.ledger import Ledger, RunRecord
from daemon.supervision.health import gpu_key
from policies import PoliciesError

if TYPE_CHECKING:
    from daemon.service.core import Service
    from daemon.service.succession import Finish

__all__ = ["check_gpus", "departed", "discover_late", "undiscovered"]

log = structlog.get_logger(__name__)


def check_gpus(service: Service, now: datetime, stops: RunStops, finish: Finish) -> None:
    """Advance realised intensities; fail the jobs of lost GPUs (``finish``, once their runs
    are stopped with ``stops``) and take those GPUs out of planning (the daemon goes on with
    the others). A job whose executor says it had ended before the loss was seen (exit 0, or
    a failure of its own) is recorded as it ended."""
    measurement = service.measurement
    if measurement is None:
        return
    measurement.observe(now, service.forecasts)
    reports = measurement.lost()
    if any(g.device.available and measurement.unavailable(g) for g in service.inventory):
        service.set_inventory(
            replace(g, device=replace(g.device, available=False))
            if measurement.unavailable(g)
            else g
            for g in service.inventory
        )  # also after a reconfigure() rebuilt the inventory
    for report in reports:
        index = report.gpu.index  # the meter's: its inventory GPU named as a declared one is
        gpu = next((g for g in service.inventory if measurement.device_index(g.device_id) == index),
                   None)  # fmt: skip
        named = f"{gpu.device_id} ({gpu.device.gpu.name}): " if gpu is not None else ""
        key = gpu_key(gpu.device_id) if gpu is not None else f"gpu:meter:{index}"
        service.health.set(key, f"lost: {named}{report.reason}", now,
                           device_id=gpu.device_id if gpu is not None else None)  # fmt: skip
        for job_id in report.job_ids:
            run = service.ledger.run(job_id)
            ended = _ended_already(service, run, now) if run is not None else None
            if ended is not None:  # it ended before the loss was seen: as it ended (its
                finish(ended, now)  # exit code or signal, not the loss)
                continue
            if run is not None and ended is None:  # cancelled, polled until gone
                stops.stop(run, now, report.reason)
                killpoints.reached("gpu_lost_stop")  # a restart ends it (end_interrupted_stops)
            finish(ExitStatus(job_id, now, None, None, report.reason), now)


def _ended_already(service: Service, run: RunRecord, now: datetime) -> ExitStatus | None:
    """How ``run`` ended, if its executor says it has (None: running, or not asked)."""
    executor = service.executors.get(run.executor)
    if executor is None or not run.token:
        return None
    try:
        statuses = executor.poll([run_handle(run)], now)
    except (DaemonError, OSError) as exc:
        log.error("executor_poll_failed", executor=run.executor, error=str(exc))
        return None
    return statuses[0] if statuses else None


def undiscovered(service: Service) -> dict[str, str]:
    """The regions of the settings that discover their GPUs through an executor that
    could not ask for them yet (its scheduler did not answer), each with why."""
    if not service.discovering:
        return {}
    missing: dict[str, str] = {}
    for name, executor in service.discovering.items():
        pending = executor.undiscovered()
        if pending:
            missing.update((r.name, pending[r.name]) for r in service.settings.regions
                           if r.executor == name and r.gpus == "discover"
                           and r.name in pending)  # fmt: skip
    return missing


def discover_late(service: Service, now: datetime) -> list[str]:
    """Ask the executors again for the GPUs of the undiscovered regions and add those
    found to the inventory (their zones' forecasts are fetched this round); returns the
    regions still undiscovered."""
    missing = undiscovered(service)
    if not missing:
        return []
    have = {gpu.device.region for gpu in service.inventory}
    wanted = [r for r in service.settings.regions if r.name in missing and r.name not in have]
    found: dict[str, Sequence[tuple[int, str]]] = {}
    for name in sorted({r.executor for r in wanted}):
        found.update(service.discovering[name].rediscover(now))
    regions = [r for r in wanted if r.name in found]
    if regions:
        try:
            gpus = build_inventory(regions, service.catalog, lambda r: found[r.name])
        except PoliciesError as exc:  # a name the catalog does not know: as at start-up
            log.error("region_discovery_failed", regions=[r.name for r in regions],
                      error=str(exc))  # fmt: skip
            gpus = ()
        if gpus:
            inventory = (*service.inventory, *gpus)
            refold_changed(service.learning, service.ledger, service.inventory, inventory)
            service.set_inventory(inventory, refresh=True)  # new zones' forecasts first
        for region in regions:
            log.info(
                "region_discovered",
                region=region.name,
                gpus=[g.device.gpu.name for g in gpus if g.device.region == region.name],
            )
    return sorted(set(missing) - found.keys())


def departed(
    ledger: Ledger, by_device: Mapping[str, InventoryGpu], known: Mapping[str, InventoryGpu]
) -> dict[str, InventoryGpu]:
    """Of the GPUs ``known`` (by device id), those the ledger's active runs hold that the
    inventory (``by_device``) no longer lists: a reload removed their region or GPU."""
    held = {device for run in ledger.active_runs() for device in run.device_ids}
    return {
        device: known[device] for device in sorted(held & known.keys()) if device not in by_device
    }
