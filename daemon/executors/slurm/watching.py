"""The Slurm executor's watching (:class:`SlurmWatching`, a base of
:class:`~daemon.executors.slurm.executor.SlurmExecutor`): each poll reads ``squeue`` and then
``sacct`` of the jobs it no longer shows (exit code, real start, ``ConsumedEnergyRaw``), takes
back a released job Slurm kept pending too long or past its deadline, tells which held jobs
Slurm ended unstarted, cancels, and re-adopts the jobs after a restart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from daemon.executors.base import EndedUnstarted, ExitStatus, Held, NotStarted, RunHandle
from daemon.executors.errors import AnswerUnreadableError, EndNotRecordedError, ExecutorError
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.acct import AcctRow, row_of
from daemon.executors.slurm.ends import ended_unstarted, ran_before, started_at
from daemon.executors.slurm.owners import refusal
from daemon.executors.slurm.parse import QueueRow
from daemon.executors.slurm.queries import Token, known
from daemon.executors.slurm.reading import SlurmReading
from daemon.executors.slurm.runner import Runner
from daemon.executors.slurm.states import WAITING, is_ended

__all__ = ["SlurmWatching"]

log = structlog.get_logger("daemon.executors.slurm.executor")

# How long a held job gone from squeue may wait for its end in sacct (about half a second
# behind; longer while slurmdbd is down) before it is taken as started, as it was before.
_SACCT_WAIT_S = 60.0


class SlurmWatching(SlurmReading):
    """Watching, cancelling and re-adopting Slurm jobs; the state is the executor's."""

    _run: Runner
    _tool: Callable[[str], str]
    _pending_grace_s: float
    _allow_root: bool
    _by_name: set[str]  # jobs cancelled by name (token unreadable): ended once squeue has none

    def _find(
        self, job_id: str, token: str, uid: int | None, *, may_have_ended: bool = True
    ) -> tuple[Token, QueueRow | None] | None:
        """:meth:`SlurmQueries.find`, remembering the job as carbond's."""
        found = self._q.find(job_id, token, uid, may_have_ended=may_have_ended)
        if found is not None:
            self._mine.add(found[0].slurm_id)
        return found

    # -- watching ---------------------------------------------------------------------------

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        """The jobs among ``handles`` that ended, or that Slurm kept pending too long or past
        their deadline (taken back, :class:`NotStarted`)."""
        self._reach.at(now)
        gone = (self._gone(h, now) for h in handles if h.job_id in self._by_name)
        ended: list[ExitStatus] = [end for end in gone if end is not None]

        def overdue(handle: RunHandle, row: QueueRow) -> bool:
            return row.state in WAITING and self._overdue(handle, now)

        for handle, result, acct in self._states(handles, now, also=overdue):
            if isinstance(result, ExitStatus):
                ended.append(result)
            elif overdue(handle, result):
                taken = self._take_back(handle, result, now, acct)
                if taken is not None:
                    ended.append(taken)
        return ended

    def ended_held(
        self, held: Sequence[RunHandle], now: datetime
    ) -> dict[str, EndedUnstarted | Held]:
        """Of the held jobs ``held``, those Slurm ended before they started (a ``scancel`` of
        the pending job), read between plans: one ``squeue`` per cluster, and ``sacct`` of the
        jobs it no longer shows waiting. A job whose end sacct has not recorded yet (it lags
        squeue by about half a second; slurmdbd down) is left for the next call. And those
        Slurm started on its own before carbond released them (their owner moved the start,
        ``scontrol update StartTime=now``; their begin came between two rounds), answered
        :class:`Held` with their start: until 2026-12-07 they stayed ``planned`` in carbond,
        running or even ended in Slurm, until their planned start's release round. One
        carbond now refuses (root's) is left to the hand-over, which cancels it."""
        self._reach.at(now)
        out: dict[str, EndedUnstarted | Held] = {}
        for stale in set(self._notes.begins) - {h.job_id for h in held}:  # released, withdrawn
            self._notes.begins.pop(stale, None)
            self._notes.begin_said.pop(stale, None)
        for cluster, items in self._by_cluster(held).items():
            queue = self._queue(cluster, [t.slurm_id for _, t in items])
            for handle, token in items:
                row = queue.get(token.slurm_id)
                self._begin_moved(cluster, handle.job_id, row, now)
                if row is not None and not row.lost and row.state not in WAITING \
                        and not is_ended(row.state) and self._may_run(handle):  # fmt: skip
                    out[handle.job_id] = Held(token.encode(), row.start or now)
            gone = [(h, t) for h, t in items
                    if t.slurm_id not in queue or is_ended(queue[t.slurm_id].state)]  # fmt: skip
            acct = self._acct(cluster, [t.slurm_id for _, t in gone])
            for handle, token in gone:
                if (end := ended_unstarted(token.slurm_id, acct, handle.uid)) is not None:
                    out[handle.job_id] = self._refused_unstarted(cluster, token.slurm_id, end)
                    self._own_gpus.forget(cluster, token.slurm_id)
                    self._notes.sacct_odd.discard((cluster, token.slurm_id))
                elif (at := started_at(token.slurm_id, acct)) and self._may_run(handle):
                    out[handle.job_id] = Held(token.encode(), at)  # its end: the next poll's
        return out

    def _may_run(self, handle: RunHandle) -> bool:
        """Whether carbond would run ``handle``'s job now (not root's while refused)."""
        return refusal(handle.job_id, handle.uid, self._allow_root) is None

    def _ended_unstarted(
        self, current: Token, row: QueueRow | None, uid: int | None, now: datetime
    ) -> EndedUnstarted | None:
        """How Slurm ended the held job ``current`` before it ever started (its pending job
        cancelled by its owner ``uid`` or an admin), from its sacct row: no node was ever
        assigned it (Slurm 22.05 gives a pending job its owner cancels a ``Start``, the cancel
        time; an admin's cancel leaves none); None while squeue shows it waiting or running,
        or once it has started. squeue's start of such a job is when it was cancelled, not
        when it ran.

        Raises:
            EndNotRecordedError: squeue no longer shows it waiting or running but sacct has no
                end of it yet (about half a second behind squeue; slurmdbd down): asked again
                later, for up to ``_SACCT_WAIT_S``; only then is it taken as started (as
                before), and :meth:`poll` reads its end once sacct has it.
            AnswerUnreadableError: squeue printed its row cut short: its state is not
                known this round (:func:`~daemon.executors.slurm.queries.known`).
        """
        row = known(current, row)
        if row is not None and not is_ended(row.state):
            self._notes.no_end.pop((current.cluster, current.slurm_id), None)
            return None
        acct = self._acct(current.cluster, [current.slurm_id])
        job = row_of(acct, current.slurm_id)
        if job is not None and is_ended(job.state):
            self._notes.no_end.pop((current.cluster, current.slurm_id), None)
            if (end := ended_unstarted(current.slurm_id, acct, uid)) is not None:
                self._notes.sacct_odd.discard((current.cluster, current.slurm_id))  # named no more
                self._own_gpus.forget(current.cluster, current.slurm_id)
                end = self._refused_unstarted(current.cluster, current.slurm_id, end)
            return end
        since = self._notes.no_end.setdefault((current.cluster, current.slurm_id), now)
        waited = (now - since).total_seconds()
        if waited < _SACCT_WAIT_S:
            raise EndNotRecordedError(  # the same words each round: logged once
                f"Slurm job {current.slurm_id} left squeue but sacct has no end of it yet "
                f"(asked each round, for up to {_SACCT_WAIT_S:.0f} s)"
            )
        log.warning("slurm_sacct_no_end", cluster=current.cluster, slurm_id=current.slurm_id,
                    waited_s=waited)  # fmt: skip
        self._notes.no_end.pop((current.cluster, current.slurm_id), None)
        return None

    def _begin_moved(
        self, cluster: str | None, job_id: str, row: QueueRow | None, now: datetime
    ) -> None:
        """Log once per change (``slurm_job_changed_outside``, field ``StartTime``) a held
        job's start that someone else moved in Slurm (its owner's ``scontrol update
        StartTime=``): squeue's start, still to come, of a job still waiting for it (reason
        ``BeginTime``; ``None`` until Slurm's next scheduling pass after the change) that is
        not the one this process last handed it (:meth:`hold`; after a restart, from the
        first planning round, which hands every held job over again). carbond leaves it there
        until its plan changes."""
        planned = self._notes.begins.get(job_id)
        if planned is None or row is None or row.state not in WAITING:
            return
        if row.reason not in ("BeginTime", "None") or row.start is None or row.start <= now:
            return  # an estimate (Resources, Priority, ...), or its start has come
        planned = datetime.fromisoformat(cmd.slurm_time(planned)).replace(tzinfo=UTC)
        if row.start == planned:
            self._notes.begin_said.pop(job_id, None)
        elif self._notes.begin_said.get(job_id) != row.start:
            self._notes.begin_said[job_id] = row.start
            log.warning("slurm_job_changed_outside", job_id=job_id, cluster=cluster,
                        slurm_id=row.slurm_id, field="StartTime", planned=planned.isoformat(),
                        actual=row.start.isoformat())  # fmt: skip

    def _refused_unstarted(
        self, cluster: str | None, slurm_id: str, end: EndedUnstarted
    ) -> EndedUnstarted:
        """``end`` of a held job Slurm ended unstarted, or, where carbond cancelled it
        refusing it without a hold (its holds failed:
        :func:`~daemon.executors.slurm.owners.cancel_refused`), that refusal: not its
        owner's cancel (carbond's ``scancel`` runs as root, a root job's owner)."""
        why = self._notes.refused.pop((cluster, slurm_id), None)
        return end if why is None else EndedUnstarted(why, by_owner=False, refused=True)

    def _overdue(self, handle: RunHandle, now: datetime) -> bool:
        """Pending longer than ``pending_grace_s``, or at or past the job's deadline (which
        expires a job that has not started, as the service does with one it holds back)."""
        if handle.deadline is not None and handle.deadline <= now:
            return True
        return now - handle.started_at > timedelta(seconds=self._pending_grace_s)

    def _take_back(
        self, handle: RunHandle, row: QueueRow, now: datetime, acct: list[AcctRow]
    ) -> ExitStatus | None:
        """Hold then cancel a job Slurm left pending: once held it cannot start, so one still
        waiting after the hold does not run now (:meth:`SlurmQueries.hold`); its sacct rows
        of every run ``acct`` (the poll's one ``sacct --duplicates``) tell whether it ran
        before (Slurm requeued it after it started), which the reason then says."""
        token = Token.decode(handle.job_id, handle.token)
        held, _ = self._q.hold(token)  # a hold alone: Slurm 22.05 holds a running job too
        if not held:
            return None  # it started (or ended) meanwhile; the next poll sees it
        self._q.scancel(token)
        self._own_gpus.forget(token.cluster, token.slurm_id)
        waited = (now - handle.started_at).total_seconds()
        log.warning("slurm_job_pending_too_long", job_id=handle.job_id, slurm_id=token.slurm_id,
                    reason=row.reason, waited_s=waited,
                    deadline=handle.deadline.isoformat() if handle.deadline else None)  # fmt: skip
        reason, late = row.reason or "no reason", ""
        if handle.deadline is not None and handle.deadline <= now:
            late = f", past its deadline {handle.deadline.isoformat()}"
        why = f"never started: pending in Slurm for {waited:.0f} s ({reason}){late}"
        # a run Slurm requeued (scontrol requeue) is pending again: it did run; no rows
        # (sacct cannot tell now: slurm_sacct_failed) say "never started", as before
        if (ran := ran_before(token.slurm_id, acct)) is not None:
            why = (f"requeued by Slurm after it {ran}, then pending again ({reason}) "
                   f"{waited:.0f} s after its release{late}; that run's energy is not "
                   "recorded")  # fmt: skip
        return NotStarted(handle.job_id, now, None, None, why)

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        """``scancel`` the job; :meth:`poll` reports it ``CANCELLED``. A job whose run token
        cannot be read is looked up in ``squeue`` by its name ``carbond-<id>`` among its
        owner's jobs, and that one cancelled (``slurm_job_cancelled_by_name``); :meth:`poll`
        ends it once ``squeue`` shows none (:meth:`_gone`).

        Raises:
            ExecutorError: Slurm refused, or a job with an unreadable token has no owner.
        """
        self._reach.at(now)
        try:
            token = Token.decode(handle.job_id, handle.token)
        except ExecutorError:
            found = self._find(handle.job_id, "", handle.uid, may_have_ended=False)
            if found is not None:
                self._q.scancel(found[0])
            log.warning("slurm_job_cancelled_by_name", job_id=handle.job_id, uid=handle.uid,
                        slurm_id=found[0].slurm_id if found else None)  # fmt: skip
            self._by_name.add(handle.job_id)
            return
        self._q.scancel(token)

    def _gone(self, handle: RunHandle, now: datetime) -> ExitStatus | None:
        """The end of a job cancelled by name (its run token unreadable), once ``squeue`` has
        no job of that name among its owner's waiting or running: its exit and energy are not
        known (carbond cannot tell which Slurm job was its run)."""
        try:
            if self._q.find(handle.job_id, "", handle.uid, may_have_ended=False) is not None:
                return None
        except AnswerUnreadableError:  # a row of that name cut short: not known to be gone
            return None
        self._by_name.discard(handle.job_id)
        name = cmd.job_name(handle.job_id)
        why = (f"cancelled by name: its run token is unreadable, and no {name} of uid "
               f"{handle.uid} is left in squeue (exit code and energy unknown)")  # fmt: skip
        return ExitStatus(handle.job_id, now, None, None, why)

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        """After a restart: each job still in Slurm (pending or running), its end as Slurm
        recorded it, or :class:`NotStarted` when Slurm never got it (a handle without token is
        looked up by name among the jobs of its ``uid``). One whose lookup by name is not
        decided yet (a row of it cut short, sacct lagging or down) is left out, asked again at
        the next call (``slurm_adopt_deferred``, logged once per job and error), so the
        others are adopted meanwhile.

        Raises:
            ExecutorUnavailableError: Slurm itself cannot be reached.
        """
        self._reach.at(now)
        adopted: list[RunHandle | ExitStatus] = []
        with_token = [h for h in handles if h.token]
        for handle in handles:
            if handle.token:
                continue
            try:
                found = self._find(handle.job_id, "", handle.uid)
            except (AnswerUnreadableError, EndNotRecordedError) as exc:  # that job only
                if self._notes.deferred.get(handle.job_id) != str(exc):
                    self._notes.deferred[handle.job_id] = str(exc)
                    log.warning("slurm_adopt_deferred", job_id=handle.job_id, error=str(exc))
                continue
            self._notes.deferred.pop(handle.job_id, None)
            if found is None:
                why = "never started: Slurm has no job named " + cmd.job_name(handle.job_id)
                adopted.append(NotStarted(handle.job_id, now, None, None, why))
            else:
                with_token.append(replace(handle, token=found[0].encode()))
        for handle, result, _ in self._states(with_token, now):
            adopted.append(result if isinstance(result, ExitStatus) else handle)
        return adopted
