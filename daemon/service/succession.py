"""What a service inherits of the runs in progress from the daemon before it, at start.

:func:`adopt`: the runs the ledger says are active are handed back to their executors, which say
whether each is still running, has ended, or never started (a run without a handle: the previous
daemon died between writing its launch ahead and starting it; it is queued again, so a job never
starts twice); :func:`end_interrupted_stops`: the runs a previous daemon was stopping for a lost
GPU. Each runs under the :class:`~daemon.service.Service`'s lock. (At a reload, what the replaced
service held in memory: :meth:`~daemon.service.Service.take_over_runs`.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon.endings.rules import never_started, run_handle
from daemon.errors import DaemonError
from daemon.executors.base import ExitStatus, RunHandle
from daemon.ledger import RunRecord

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["adopt", "end_interrupted_stops"]

log = structlog.get_logger(__name__)


def adopt(
    service: Service,
    runs: Sequence[RunRecord],
    now: datetime,
    requeue: Callable[[ExitStatus, datetime], None],
) -> None:
    """Hand ``runs`` back to their executors: still running, ended, or never started (queued
    again with ``requeue``: :func:`daemon.service.unstarted.requeue`)."""
    by_executor: dict[str, list[RunHandle]] = defaultdict(list)
    for run in runs:
        by_executor[run.executor].append(run_handle(run))
    for name, handles in by_executor.items():
        executor = service.executors.get(name)
        if executor is None:
            log.error("executor_missing", executor=name, jobs=[h.job_id for h in handles])
            continue
        tokenless = {h.job_id for h in handles if not h.token}
        try:
            items = executor.adopt(handles, now)
        except (DaemonError, OSError) as exc:  # retried on the next reconcile
            log.error("executor_adopt_failed", executor=name, error=str(exc))
            continue
        for item in items:
            if never_started(item, tokenless):
                assert isinstance(item, ExitStatus)
                requeue(item, now)
            elif isinstance(item, ExitStatus):
                service._finish(item, now)
            else:
                log.info("job_adopted", job_id=item.job_id, executor=name)
                if item.job_id in tokenless and item.token:
                    with service.ledger.transaction():
                        service.ledger.set_run_started(item.job_id, item.token, item.started_at)


def end_interrupted_stops(
    service: Service, runs: Sequence[RunRecord], now: datetime
) -> list[RunRecord]:
    """At start, before :func:`adopt`: the runs of ``runs`` a previous daemon had begun to
    stop for a lost GPU (``runs.stopping``) but died before it recorded their jobs' end. Each
    job ends now as that daemon would have ended it, ``failed`` with the loss as its reason
    (at the first cancel sent, else ``now``), and its run is stopped from there
    (:meth:`daemon.endings.finishing.Endings.resume_stops`), whatever its executor says of it: a run
    adopted instead ran on (a job ignoring SIGTERM was never killed, the loss not seen again
    with its GPU gone from the inventory), or ended "killed by signal 15" without the loss
    named, its ``runs.stopping`` left for every later restart to stop again. Returns the
    others."""
    interrupted = {s.run.job_id: s for s in service.ledger.stopping_runs(interrupted=True)}
    if not interrupted:
        return list(runs)
    for job_id, stopping in interrupted.items():
        at = stopping.cancel_sent_at or now
        log.warning("job_stop_interrupted", job_id=job_id, reason=stopping.reason)
        service._finish(ExitStatus(job_id, at, None, None, stopping.reason), now)
    return [run for run in runs if run.job_id not in interrupted]
