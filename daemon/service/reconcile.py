"""The service's reconcile step: the runs in progress followed, the ended ones recorded.

:func:`reconcile_round` runs under the :class:`~daemon.service.Service`'s lock (its
``reconcile`` step, twice per :meth:`~daemon.service.Service.tick`), over its public attributes
and the parts it hands over (:class:`ReconcileParts`): the lost GPUs checked
(:mod:`daemon.service.gpus`), the runs a crash left without a handle adopted
(:mod:`daemon.service.succession`), the cancels forwarded and the ends recorded
(:meth:`daemon.endings.finishing.Endings.reconcile`), then what follows from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon.busy import BusyDevices
from daemon.endings.finishing import EndingContext, Endings
from daemon.executors.base import ExitStatus
from daemon.executors.held import HeldJobs
from daemon.metrics.sink import NullMetrics
from daemon.service import gpus, succession
from daemon.service.checkpointing import LearningCheckpoint
from daemon.service.overdue import Overdue

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["ReconcileParts", "reconcile_round"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileParts:
    """The service's own parts a reconcile uses besides its public attributes, as they are
    when the service hands them over."""

    endings: Endings
    # how an end is recorded, built when asked (a GPU lost in this step changes the inventory)
    context: Callable[[], EndingContext]
    requeue: succession.Requeue  # a run that never started, queued again
    finish: succession.Finish  # a run's end recorded (with the context as it is then)
    held: HeldJobs  # plans handed to a reserving executor (Slurm), watched
    checkpoint: LearningCheckpoint
    overdue: Overdue  # running jobs past their deadline, each reported once
    busy: BusyDevices  # the planner's devices (the sites' load)


def reconcile_round(service: Service, parts: ReconcileParts, now: datetime) -> list[ExitStatus]:
    """Forward cancel requests to running jobs and record the jobs that ended; then the held
    jobs are watched, the recalibration checkpoint moved on when due, the runs past their
    deadline reported (``deadline_missed``, once each), the sites' load and the queue's
    gauges observed. Returns the statuses recorded or skipped (not those requeued)."""
    gpus.check_gpus(service, now, parts.endings.stops, parts.finish)
    runs = service.ledger.active_runs()
    if any(run.token is None for run in runs):  # a crash mid-launch; start() not run
        tokenless = [r for r in runs if r.token is None]
        succession.adopt(service, tokenless, now, parts.requeue, parts.finish)
        runs = service.ledger.active_runs()
    ended = parts.endings.reconcile(runs, now, parts.context(), parts.requeue)
    parts.held.watch(now)  # held jobs cancelled in their scheduler between plans
    if ended:  # measured runs past the recalibration checkpoint make it due
        config = service.learning.recalibration.config
        every = service.checkpoint_every_runs
        parts.checkpoint.after_ends(service.ledger, config, service.inventory, now, every)
    after = service.ledger.active_runs()  # the runs still on after the ends recorded
    for run in parts.overdue.check(after, now):  # runs on past its deadline
        assert run.deadline is not None
        past_s = (now - run.deadline).total_seconds()
        log.warning("deadline_missed", job_id=run.job_id,
                    deadline=run.deadline.isoformat(), past_s=past_s)  # fmt: skip
    if service.sites:  # every round, a job waiting or not: the batteries charge all day
        plan_s = service.settings.intervals.plan_s
        service.sites.observe(now, parts.busy.devices(service.inventory, after, now, plan_s))
    if not isinstance(service.metrics, NullMetrics):  # not read for a sink that drops it
        service.metrics.observe_queue(service.ledger.counts_by_state())
        service.metrics.observe_past_deadline(parts.overdue.count)
    return ended
