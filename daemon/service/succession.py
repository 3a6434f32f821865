"""What a service inherits from the daemon before it, at start (:func:`start`): the runs in
progress (and what ended runs left that no one follows any more: :func:`sweep`), the run-now
counterfactuals' GPUs, the learned factors, the totals and the batteries' charge.

:func:`adopt`: the runs the ledger says are active are handed back to their executors, which say
whether each is still running, has ended, or never started (a run without a handle: the previous
daemon died between writing its launch ahead and starting it; it is queued again, so a job never
starts twice); :func:`end_interrupted_stops`: the runs a previous daemon was stopping for a lost
GPU. Each runs under the :class:`~daemon.service.Service`'s lock. (At a reload, what the replaced
service held in memory: :meth:`~daemon.service.Service.take_over_runs`.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from daemon.endings.finishing import Endings
from daemon.endings.rules import never_started, run_handle
from daemon.errors import DaemonError
from daemon.executors.base import ExitStatus, RunHandle, Sweeping
from daemon.learning.checkpoint import restore
from daemon.ledger import RunRecord
from daemon.run_now_busy import RunNowBusy
from daemon.sites.view import SITES_NAME
from daemon.states import WAITING_STATES

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["Finish", "Requeue", "adopt", "end_interrupted_stops", "start", "sweep"]

log = structlog.get_logger(__name__)


class Requeue(Protocol):
    """Queue again a job whose run never started (the service's
    :func:`daemon.service.unstarted.requeue`), saying ``why`` (default: its launch was never
    confirmed)."""

    def __call__(self, status: ExitStatus, now: datetime, why: str = "") -> None: ...


class Finish(Protocol):
    """Record how ``status``'s run ended (the service's, with its ending context as it is
    when called: a GPU lost in the same step changes it; skipped unless the job is
    ``running``)."""

    def __call__(self, status: ExitStatus, now: datetime) -> None: ...


def start(
    service: Service,
    now: datetime,
    run_now_busy: RunNowBusy,
    endings: Endings,
    requeue: Requeue,
    finish: Finish,
) -> None:
    """Prepare ``service``'s queue files and take up what the daemon before it left: the GPUs
    the recorded run-now counterfactuals hold (``run_now_busy``), the runs it was stopping for
    a lost GPU (:func:`end_interrupted_stops`, then ``endings``), the runs it left running
    (:func:`adopt`; one that never started is queued again with ``requeue``, one that ended is
    recorded with ``finish``), the learned factors and the outcome totals, and each battery's
    charge."""
    service.queue.prepare()
    runs = service.ledger.active_runs()
    sweep(service, runs)  # what runs no one follows left (a job's cgroup), before adopting
    run_now_busy.learn(service.ledger, runs, now)  # counterfactual runs holding GPUs
    runs = end_interrupted_stops(service, runs, now, finish)  # a lost GPU's, mid-way
    adopt(service, runs, now, requeue, finish)
    endings.stops.resume_stops()  # the runs of lost GPUs a previous daemon was stopping
    # learned factors survive a restart (GPU-metered and executor-measured runs): the
    # ledger's checkpoint of them and the runs since (daemon.learning.checkpoint)
    config = service.learning.recalibration.config
    restored = restore(service.ledger, service.inventory, config, now)
    service.learning.recalibration = restored.recalibration
    endings.load_totals()  # then kept up to date per job
    if service.sites:  # batteries resume from the charge the last daemon saved
        service.sites.restore(service.settings.state_dir / SITES_NAME, now)


def sweep(service: Service, runs: Sequence[RunRecord]) -> None:
    """Have each :class:`~daemon.executors.base.Sweeping` executor remove what runs left that
    the daemon no longer follows: ``runs`` (the active runs), those held for a waiting job and
    those still being stopped are followed; the previous daemon's list of what it still had
    to remove was in its memory only."""
    followed: dict[str, set[str]] = defaultdict(set)
    held = service.ledger.runs(WAITING_STATES).values()
    stopping = (s.run for s in service.ledger.stopping_runs())
    for run in (*runs, *held, *stopping):
        followed[run.executor].add(run.job_id)
    for name, executor in service.executors.items():
        if isinstance(executor, Sweeping):
            executor.sweep(frozenset(followed[name]))


def adopt(
    service: Service,
    runs: Sequence[RunRecord],
    now: datetime,
    requeue: Requeue,
    finish: Finish,
) -> None:
    """Hand ``runs`` back to their executors: still running, ended (recorded with ``finish``),
    or never started (queued again with ``requeue``: :func:`daemon.service.unstarted.requeue`)."""
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
                finish(item, now)
            else:
                log.info("job_adopted", job_id=item.job_id, executor=name)
                if item.job_id in tokenless and item.token:
                    with service.ledger.transaction():
                        service.ledger.set_run_started(item.job_id, item.token, item.started_at)


def end_interrupted_stops(
    service: Service, runs: Sequence[RunRecord], now: datetime, finish: Finish
) -> list[RunRecord]:
    """At start, before :func:`adopt`: the runs of ``runs`` a previous daemon had begun to
    stop for a lost GPU (``runs.stopping``) but died before it recorded their jobs' end. Each
    job ends now as that daemon would have ended it, ``failed`` with the loss as its reason
    (at the first cancel sent, else ``now``), and its run is stopped from there
    (:meth:`daemon.endings.stopping.RunStops.resume_stops`), whatever its executor says of it: a run
    adopted instead ran on (a job ignoring SIGTERM was never killed, the loss not seen again
    with its GPU gone from the inventory), or ended "killed by signal 15" without the loss
    named, its ``runs.stopping`` left for every later restart to stop again. Each end is
    recorded with ``finish``. Returns the others."""
    interrupted = {s.run.job_id: s for s in service.ledger.stopping_runs(interrupted=True)}
    if not interrupted:
        return list(runs)
    for job_id, stopping in interrupted.items():
        at = stopping.cancel_sent_at or now
        log.warning("job_stop_interrupted", job_id=job_id, reason=stopping.reason)
        finish(ExitStatus(job_id, at, None, None, stopping.reason), now)
    return [run for run in runs if run.job_id not in interrupted]
