"""The Slurm executor's watching (:class:`SlurmWatching`, a base of
:class:`~daemon.executors.slurm.executor.SlurmExecutor`): each poll reads ``squeue`` and then
``sacct`` of the jobs it no longer shows (exit code, real start, ``ConsumedEnergyRaw``), takes
back a released job Slurm kept pending too long or past its deadline, tells which held jobs
Slurm ended unstarted, cancels, and re-adopts the jobs after a restart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from daemon.executors.base import EndedUnstarted, ExitStatus, NotStarted, RunHandle
from daemon.executors.errors import (
    AnswerUnreadableError,
    EndNotRecordedError,
    ExecutorError,
    ExecutorUnavailableError,
)
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm import joblogs
from daemon.executors.slurm.acct import AcctRow, row_of, rows_of
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.parse import QueueRow, by_id
from daemon.executors.slurm.queries import (
    SlurmQueries,
    Token,
    ended,
    ended_unstarted,
    known,
    ran_before,
)
from daemon.executors.slurm.reach import Reach
from daemon.executors.slurm.runner import Runner
from daemon.executors.slurm.states import WAITING, is_ended

__all__ = ["LOST_LIMIT_S", "SlurmWatching"]

log = structlog.get_logger("daemon.executors.slurm.executor")

# How long a job gone from squeue may keep a cut-short sacct job row (a lost row: its state
# unknown) before it is ended failed, rather than asked again every poll for ever; the
# default of [executors.slurm] cut_short_limit_s.
LOST_LIMIT_S = 600.0

# How long a held job gone from squeue may wait for its end in sacct (about half a second
# behind; longer while slurmdbd is down) before it is taken as started, as it was before.
_SACCT_WAIT_S = 60.0


class SlurmWatching:
    """Watching, cancelling and re-adopting Slurm jobs; the state is the executor's."""

    _reach: Reach
    _q: SlurmQueries
    _run: Runner
    _tool: Callable[[str], str]
    _mine: set[str]
    _pending_grace_s: float
    _cut_short_limit_s: float  # how long a cut-short sacct job row is asked again
    _by_name: set[str]  # jobs cancelled by name (token unreadable): ended once squeue has none
    _log_dir: Path | None  # where the jobs' .out/.err are (None: not read back)
    _notes: Notes  # what is logged once, and since when a job waits
    _own_gpus: OwnGpus  # carbond's jobs' planned GPUs, and Slurm's where others

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

    def ended_held(self, held: Sequence[RunHandle], now: datetime) -> dict[str, EndedUnstarted]:
        """Of the held jobs ``held``, those Slurm ended before they started (a ``scancel`` of
        the pending job), read between plans: one ``squeue`` per cluster, and ``sacct`` of the
        jobs it no longer shows waiting. A job whose end sacct has not recorded yet (it lags
        squeue by about half a second; slurmdbd down) is left for the next call."""
        self._reach.at(now)
        out: dict[str, EndedUnstarted] = {}
        for cluster, items in self._by_cluster(held).items():
            queue = self._queue(cluster, [t.slurm_id for _, t in items])
            gone = [(h, t) for h, t in items
                    if t.slurm_id not in queue or is_ended(queue[t.slurm_id].state)]  # fmt: skip
            acct = self._acct(cluster, [t.slurm_id for _, t in gone])
            for handle, token in gone:
                if (end := ended_unstarted(token.slurm_id, acct, handle.uid)) is not None:
                    out[handle.job_id] = end
                    self._notes.sacct_odd.discard((cluster, token.slurm_id))
        return out

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

    def _overdue(self, handle: RunHandle, now: datetime) -> bool:
        """Pending longer than ``pending_grace_s``, or at or past the job's deadline (which
        expires a job that has not started, as the service does with one it holds back)."""
        if handle.deadline is not None and handle.deadline <= now:
            return True
        return now - handle.started_at > timedelta(seconds=self._pending_grace_s)

    def _take_back(
        self, handle: RunHandle, row: QueueRow, now: datetime, acct: list[AcctRow]
    ) -> ExitStatus | None:
        """Hold then cancel a job Slurm left pending: once held it cannot start, so a
        successful hold proves it does not run now; its sacct rows of every run ``acct``
        (the poll's one ``sacct --duplicates``) tell whether it ran before (Slurm requeued it
        after it started), which the reason then says."""
        token = Token.decode(handle.job_id, handle.token)
        held = self._run(cmd.hold_argv(self._tool("scontrol"), token.cluster, token.slurm_id))
        if not held.ok:
            return None  # it started meanwhile; the next poll sees it running
        self._q.scancel(token)
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

    def _states(
        self,
        handles: Sequence[RunHandle],
        now: datetime,
        also: Callable[[RunHandle, QueueRow], bool] | None = None,
    ) -> list[tuple[RunHandle, QueueRow | ExitStatus, list[AcctRow]]]:
        """Each handle's squeue row while Slurm has it waiting or running, else its end; with
        its cluster's sacct rows, asked (one ``sacct`` per cluster) of the jobs squeue no
        longer shows waiting or running and of those ``also`` picks of the others (the jobs
        :meth:`poll` takes back)."""
        out: list[tuple[RunHandle, QueueRow | ExitStatus, list[AcctRow]]] = []
        for cluster, items in self._by_cluster(handles, mine=True).items():
            queue = self._queue(cluster, [t.slurm_id for _, t in items])
            asked = [t.slurm_id for h, t in items if t.slurm_id not in queue
                     or is_ended(queue[t.slurm_id].state)
                     or (also is not None and also(h, queue[t.slurm_id]))]  # fmt: skip
            acct = self._acct(cluster, asked)
            for handle, token in items:
                row = queue.get(token.slurm_id)
                if row is not None and not is_ended(row.state):
                    out.append((handle, row, acct))
                    continue
                status = ended(handle, token.slurm_id, acct, now) or self._lost_too_long(
                    handle, cluster, token.slurm_id, acct, now
                )
                if status is not None:
                    self._notes.sacct_odd.discard((cluster, token.slurm_id))  # ended: named no more
                    self._notes.sacct_lost.pop((cluster, token.slurm_id), None)
                    status = self._cannot_run(status)
                    out.append((handle, self._own_gpus.charged(cluster, token.slurm_id, status),
                                acct))  # fmt: skip
        return out

    def _cannot_run(self, status: ExitStatus) -> ExitStatus:
        """``status``, its reason ``command not found: NAME`` where its job exited 127
        because its batch script did not find its command, ``cannot start: FILE: WHY`` where
        it exited 126 because the command found cannot be executed (the last line of its
        ``.err``: :func:`~daemon.executors.slurm.joblogs.cannot_run`), as the local executor
        says; Slurm records only ``FAILED`` and the exit code."""
        if self._log_dir is None or status.exit_code not in (126, 127):
            return status
        why = joblogs.cannot_run(self._log_dir, status.job_id, status.exit_code)
        if why is None:
            return status
        return replace(status, reason=why + status.reason.removeprefix("slurm FAILED"))

    def _lost_too_long(
        self, handle: RunHandle, cluster: str | None, slurm_id: str, acct: list[AcctRow],
        now: datetime,
    ) -> ExitStatus | None:  # fmt: skip
        """The end of a job gone from squeue whose sacct job row has stayed cut short (a
        :attr:`~AcctRow.lost` row, its state unknown) for ``cut_short_limit_s`` (counted in
        memory: afresh after a restart): ``failed``, its exit code, start and energy unknown,
        ended at the first poll that found it so, the reason naming the row
        (``slurm_sacct_lost_given_up``). None before that, or once its
        row reads whole again (or sacct has none of it): asked again next poll."""
        job = row_of(acct, slurm_id)
        if job is None or not job.lost:
            self._notes.sacct_lost.pop((cluster, slurm_id), None)
            return None
        since = self._notes.sacct_lost.setdefault((cluster, slurm_id), now)
        waited = (now - since).total_seconds()
        if waited < self._cut_short_limit_s:
            return None
        log.warning("slurm_sacct_lost_given_up", cluster=cluster, slurm_id=slurm_id,
                    job_id=handle.job_id, waited_s=waited, fields=list(job.unreadable))  # fmt: skip
        why = (f"slurm state unknown: sacct printed Slurm job {slurm_id}'s row cut short for "
               f"{waited:.0f} s ({job.unreadable[0][:120]}); exit code, start and energy "
               "unknown")  # fmt: skip
        return ExitStatus(handle.job_id, since, None, None, why)

    def _queue(self, cluster: str | None, ids: Sequence[str]) -> dict[str, QueueRow]:
        """The squeue rows of ``ids`` by Slurm id. A job whose row cannot be read is named
        once while it stays so (``slurm_squeue_unreadable``, with the fields): a lost row
        (cut short) leaves that job's state unknown this poll (not waiting, running nor
        ended: nothing is decided on it, and sacct is not asked); a time unread is unknown;
        every other job is read as usual."""
        queue = by_id(self._q.squeue(cluster, ids))
        for slurm_id in ids:
            row = queue.get(slurm_id)
            if row is None or not row.unreadable:
                self._notes.queue_odd.discard((cluster, slurm_id))
            elif (cluster, slurm_id) not in self._notes.queue_odd:
                self._notes.queue_odd.add((cluster, slurm_id))
                log.warning("slurm_squeue_unreadable", cluster=cluster, slurm_id=slurm_id,
                            fields=list(row.unreadable))  # fmt: skip
        return queue

    def _by_cluster(
        self, handles: Sequence[RunHandle], *, mine: bool = False
    ) -> dict[str | None, list[tuple[RunHandle, Token]]]:
        """``handles`` with their tokens, by cluster. A handle whose token cannot be read (not
        a Slurm run token: hand-edited, truncated) is set aside, named once
        (``slurm_run_token_unreadable``), rather than stop every other job being followed; its
        job stays as the ledger has it. ``mine``: remember the Slurm ids as carbond's jobs'."""
        by_cluster: dict[str | None, list[tuple[RunHandle, Token]]] = defaultdict(list)
        for handle in handles:
            try:
                token = Token.decode(handle.job_id, handle.token)
            except ExecutorError as exc:
                if handle.job_id not in self._notes.unreadable:
                    self._notes.unreadable.add(handle.job_id)
                    log.error("slurm_run_token_unreadable", job_id=handle.job_id, field="token",
                              token=handle.token[:200], error=str(exc))  # fmt: skip
                continue
            self._notes.unreadable.discard(handle.job_id)
            if mine:
                self._mine.add(token.slurm_id)
                self._own_gpus.plan(token.cluster, token.slurm_id, handle.job_id, handle.gpus)
            by_cluster[token.cluster].append((handle, token))
        return by_cluster

    def _acct(self, cluster: str | None, ids: Sequence[str]) -> list[AcctRow]:
        """The sacct rows of ``ids``; none while sacct fails but Slurm answers (slurmdbd down:
        ``Problem talking to the database``): those jobs' ends are read on a later poll, and
        the jobs squeue still shows are watched meanwhile (a pending one is still taken back
        at its deadline). ``slurm_sacct_failed`` is logged once per cluster until a sacct of
        it answers again (``slurm_sacct_back``), not every poll.

        Raises:
            ExecutorUnavailableError: Slurm itself cannot be reached.
        """
        if not ids:
            return []
        try:
            rows = self._q.sacct(cluster, ids)
        except ExecutorUnavailableError:
            raise
        except ExecutorError as exc:
            if cluster not in self._notes.sacct_failing:
                self._notes.sacct_failing.add(cluster)
                log.warning("slurm_sacct_failed", cluster=cluster, slurm_ids=list(ids),
                            error=str(exc))  # fmt: skip
            return []
        if cluster in self._notes.sacct_failing:
            self._notes.sacct_failing.discard(cluster)
            log.info("slurm_sacct_back", cluster=cluster)
        self._name_unreadable(cluster, rows)
        return rows

    def _name_unreadable(self, cluster: str | None, rows: list[AcctRow]) -> None:
        """Log once per Slurm job of ``cluster`` what sacct printed of it that cannot be read
        (``slurm_sacct_unreadable``): a field is unknown, a lost row (cut short) keeps its end
        for a later poll, when sacct is asked again; every other job is read as usual. A lost
        fragment that a readable row of the same id and step replaced is not what was read
        (:func:`~daemon.executors.slurm.acct.rows_of`), so it is not named. Slurm
        ids repeat across clusters (and on one rebuilt), so a job is known by its cluster and
        id, and forgotten when it ends (:meth:`_states`, :meth:`ended_held`)."""
        for slurm_id in dict.fromkeys(row.slurm_id for row in rows if row.unreadable):
            fields = [f"{u} ({row.step or 'job'})" for row in rows_of(rows, slurm_id)
                      for u in row.unreadable]  # fmt: skip
            if fields and (cluster, slurm_id) not in self._notes.sacct_odd:
                self._notes.sacct_odd.add((cluster, slurm_id))
                log.warning("slurm_sacct_unreadable", cluster=cluster, slurm_id=slurm_id,
                            fields=fields)  # fmt: skip
