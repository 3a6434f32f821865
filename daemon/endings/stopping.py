"""Stopping runs: the cancels their owners asked for, sent to their executors once each, and
the runs whose jobs ended without them (a lost GPU's), cancelled and polled until gone.

:class:`RunStops` is held by :class:`~daemon.endings.finishing.Endings` (its ``stops``), which
polls the runs and records their ends; what it sends is kept in the ledger (when a cancel was
first sent, ``runs.stopping``), so a restarted daemon goes on with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from daemon import killpoints
from daemon.endings.rules import run_handle
from daemon.errors import DaemonError
from daemon.executors.base import Executor, RunHandle
from daemon.ledger import Ledger, RunRecord

__all__ = ["RunStops"]

log = structlog.get_logger("daemon.endings.finishing")  # its events are the endings'


class RunStops:
    """Sends the cancels and stops of runs to their ``executors`` (by name), keeping them in
    ``ledger``."""

    def __init__(self, ledger: Ledger, executors: Mapping[str, Executor]) -> None:
        self._ledger = ledger
        self._executors = executors
        self._cancel_sent: set[str] = set()  # jobs this daemon sent their cancel (the ledger: when)
        # Runs whose jobs ended without them (a lost GPU), polled until they are gone; each
        # with whether its executor took the cancel (False: asked again each reconcile).
        self._stopping: dict[str, tuple[RunHandle, bool]] = {}
        self._cancel_failing: dict[str, str] = {}  # job -> the cancel error logged last

    def take_over(self, previous: RunStops) -> None:
        """After a reload: the cancels ``previous`` (the replaced service's) sent and the runs
        it was stopping."""
        self._cancel_sent |= previous._cancel_sent
        self._cancel_failing.update(previous._cancel_failing)
        self._stopping.update(previous._stopping)

    def forget(self, job_id: str) -> None:
        """Job ``job_id`` ended (its end recorded): its cancel is not sent again."""
        self._cancel_sent.discard(job_id)
        self._cancel_failing.pop(job_id, None)

    def send_cancels(
        self,
        runs: Sequence[RunRecord],
        now: datetime,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Ask the executors of ``runs`` whose owners want them cancelled to stop them (once
        each; a failed request is tried again on the next reconcile). The ledger keeps when
        the first request was sent (a run that then exits 0 was stopped early, whichever
        daemon records its end; kill point ``cancel_sent`` after that commit): read from
        ``clock`` just before each request (else the round's ``now``), so a run that exited 0
        on its own after the round began but before its cancel went out succeeded. A
        restarted daemon asks again, with when the cancel was first sent (the local executor's
        SIGKILL comes when the grace from then is over, not a new grace later). A request that
        keeps failing the same way is logged once (:meth:`_cancel_failed`)."""
        waiting = self._ledger.cancel_requested("running")
        for run in runs:
            if run.job_id in waiting and run.job_id not in self._cancel_sent and run.token:
                executor = self._executors.get(run.executor)
                if executor is None:
                    continue
                sent_at = self._ledger.cancel_sent_at(run.job_id)  # by a daemon since restarted
                sending = _sending_at(now, clock)
                try:
                    executor.cancel(replace(run_handle(run), cancel_sent_at=sent_at), sending)
                except (DaemonError, OSError) as exc:  # tried again on the next reconcile
                    self._cancel_failed(run.job_id, exc)
                    continue
                self._cancel_failing.pop(run.job_id, None)
                self._cancel_sent.add(run.job_id)
                with self._ledger.transaction():
                    self._ledger.set_cancel_sent(run.job_id, sending)
                killpoints.reached("cancel_sent")
                log.info("job_cancel_sent", job_id=run.job_id)

    def stop(self, run: RunRecord, now: datetime, reason: str) -> None:
        """Stop ``run``, whose job is ended without it (its GPU was lost: ``reason``): its
        executor is asked to cancel it now (again on each reconcile until it takes the
        request) and it is polled until it is gone, so the executor escalates (the local
        one's SIGKILL after the grace) and reaps it. Its end changes nothing recorded. The
        ledger keeps the stop (``runs.stopping``, and when the cancel was first sent) until
        then, so a restarted daemon goes on with it (:meth:`resume_stops`)."""
        if run.token:
            with self._ledger.transaction():
                self._ledger.set_stopping(run.job_id, reason)
            self._stopping[run.job_id] = (run_handle(run), False)
            self.send_stops(now)

    def resume_stops(self) -> None:
        """At start: the runs an earlier daemon was stopping (their jobs ended), cancelled
        again at the next reconcile with when it first sent the cancel (the local executor's
        SIGKILL comes when the grace from then is over) and polled until gone."""
        for stopping in self._ledger.stopping_runs():
            run = stopping.run
            if run.token and run.job_id not in self._stopping:
                handle = replace(run_handle(run), cancel_sent_at=stopping.cancel_sent_at)
                self._stopping[run.job_id] = (handle, False)
                log.info("job_stop_resumed", job_id=run.job_id, reason=stopping.reason)

    def stopping(self) -> list[RunHandle]:
        """The runs being stopped (their jobs ended: a lost GPU's), until they are gone."""
        return [handle for handle, _ in self._stopping.values()]

    def send_stops(self, now: datetime, clock: Callable[[], datetime] | None = None) -> None:
        """Ask the executors of the runs being stopped that have not taken the cancel yet
        (again each reconcile until they do)."""
        for job_id, (handle, sent) in list(self._stopping.items()):
            executor = self._executors.get(handle.executor)
            if sent or executor is None:
                continue
            sending = _sending_at(now, clock)
            try:
                executor.cancel(handle, sending)
            except (DaemonError, OSError) as exc:  # tried again on the next reconcile
                self._cancel_failed(job_id, exc)
                continue
            self._cancel_failing.pop(job_id, None)
            self._stopping[job_id] = (handle, True)
            with self._ledger.transaction():
                self._ledger.set_cancel_sent(job_id, sending)

    def _cancel_failed(self, job_id: str, exc: Exception) -> None:
        """Log a cancel of ``job_id`` its executor did not take (``job_cancel_failed``) once
        per job and error: it is asked again every reconcile (every second or so) while the
        cause lasts (Slurm unreachable, a row of it cut short), and each retry that fails the
        same way is not logged again; a new error is, and so is the same one after a cancel
        that was taken."""
        if self._cancel_failing.get(job_id) != str(exc):
            self._cancel_failing[job_id] = str(exc)
            log.error("job_cancel_failed", job_id=job_id, error=str(exc))

    def stopped(self, job_id: str) -> bool:
        """Whether ``job_id``'s run was one being stopped (now gone: the ledger forgets it)."""
        if self._stopping.pop(job_id, None) is None:
            return False
        self._cancel_failing.pop(job_id, None)
        with self._ledger.transaction():
            self._ledger.set_stopping(job_id, None)
        return True


def _sending_at(now: datetime, clock: Callable[[], datetime] | None) -> datetime:
    """When a cancel goes out: ``clock``'s time (never before the round's ``now``), else
    ``now``."""
    return max(now, clock()) if clock is not None else now
