"""What the Slurm executor reads of its jobs (:class:`SlurmReading`, a base of
:class:`~daemon.executors.slurm.watching.SlurmWatching`): their ``squeue`` rows and, for the
jobs it no longer shows (and those a poll takes back), one ``sacct`` of every run per cluster;
each job's end from them (the GPUs Slurm gave it, why it could not run, a row cut short too
long), a row that cannot be read kept to its job and named once, a run token that cannot be
read set aside."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import structlog

from daemon.executors.base import ExitStatus, RunHandle
from daemon.executors.errors import ExecutorError, ExecutorUnavailableError
from daemon.executors.slurm import joblogs
from daemon.executors.slurm.acct import AcctRow, row_of, rows_of
from daemon.executors.slurm.ends import ended, unrecorded
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.parse import QueueRow, by_id
from daemon.executors.slurm.partitions import DOWN_REASONS, PartitionStates
from daemon.executors.slurm.queries import SlurmQueries, Token
from daemon.executors.slurm.reach import Reach
from daemon.executors.slurm.states import is_ended

__all__ = ["LOST_LIMIT_S", "SlurmReading"]

log = structlog.get_logger("daemon.executors.slurm.executor")

# How long a job gone from squeue may keep a cut-short sacct job row (a lost row: its state
# unknown) before it is ended failed, rather than asked again every poll for ever; the
# default of [executors.slurm] cut_short_limit_s.
LOST_LIMIT_S = 600.0
# The shortest run whose missing energy is named (slurm_energy_unmeasured): sacct's times
# are whole seconds, and a measured job of a few seconds gets a few hundred joules or more.
UNMEASURED_MIN_S = 3.0


class SlurmReading:
    """Reading Slurm's answers about the executor's jobs; the state is the executor's."""

    _reach: Reach
    _q: SlurmQueries
    _mine: set[str]
    _cut_short_limit_s: float  # how long a cut-short sacct job row is asked again
    _log_dir: Path | None  # where the jobs' .out/.err are (None: not read back)
    _notes: Notes  # what is logged once, and since when a job waits
    _own_gpus: OwnGpus  # carbond's jobs' planned GPUs, and Slurm's where others
    _partitions: PartitionStates  # partition states, kept while all up (for a while)

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
                status = self._ended(
                    handle, cluster, token.slurm_id, acct, now
                ) or self._lost_too_long(handle, cluster, token.slurm_id, acct, now)
                if status is not None:
                    self._notes.sacct_odd.discard((cluster, token.slurm_id))  # ended: named no more
                    self._notes.sacct_lost.pop((cluster, token.slurm_id), None)
                    self._notes.unrecorded.pop((cluster, token.slurm_id), None)
                    status = self._cannot_run(status)
                    gpus = job.gpus if (job := row_of(acct, token.slurm_id)) else None
                    status = self._own_gpus.charged(cluster, token.slurm_id, status, gpus)
                    self._name_unmeasured(cluster, token.slurm_id, status)
                    out.append((handle, self._refused(cluster, token.slurm_id, status), acct))
        return out

    def _name_unmeasured(self, cluster: str | None, slurm_id: str, status: ExitStatus) -> None:
        """Log once per cluster (``slurm_energy_unmeasured``) a job that ran
        :data:`UNMEASURED_MIN_S` or more with no energy from ``sacct`` on a cluster whose
        ``AcctGatherEnergyType`` names a plugin: a meter that reads nothing (0 W) looks as
        no accounting does, and the outcome is estimated. The plugin is read (``scontrol
        show config``) once per executor, at the first such job: an unanswered read is
        taken as no plugin."""
        begun, ended_at = status.started_at, status.finished_at
        if status.energy_j is not None or begun is None or cluster in self._notes.unmeasured:
            return
        ran_s = (ended_at - begun).total_seconds()
        if ran_s < UNMEASURED_MIN_S:
            return
        plugins = self._notes.energy_plugins
        if cluster not in plugins:
            try:
                plugins[cluster] = self._q.energy_plugin(cluster)
            except ExecutorError:
                plugins[cluster] = None
        if plugins[cluster] is None:
            return
        self._notes.unmeasured.add(cluster)
        log.warning("slurm_energy_unmeasured", cluster=cluster, plugin=plugins[cluster],
                    slurm_id=slurm_id, job_id=status.job_id, ran_s=ran_s)  # fmt: skip

    def _refused(self, cluster: str | None, slurm_id: str, status: ExitStatus) -> ExitStatus:
        """``status`` of a job carbond cancelled running, refusing it (root's, after Slurm
        started it as carbond held it: :func:`~daemon.executors.slurm.owners.cancel_refused`):
        not its owner's cancel (carbond's ``scancel`` runs as root, root's job's owner), but a
        failure with the refusal's words, its times and energy sacct's. One that ended on its
        own first (an exit code or signal) ends as it did."""
        why = self._notes.refused.pop((cluster, slurm_id), None)
        if why is None or status.exit_code is not None or status.signal is not None:
            return status
        return replace(status, reason=f"launch failed: {why}", cancelled_by_owner=False)

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

    def _ended(
        self, handle: RunHandle, cluster: str | None, slurm_id: str, acct: list[AcctRow],
        now: datetime,
    ) -> ExitStatus | None:  # fmt: skip
        """The end of ``slurm_id`` from its sacct rows (:func:`~daemon.executors.slurm.ends.
        ended`); None while its ended job row lacks an ``End`` or exit code sacct has not
        recorded yet (:func:`~daemon.executors.slurm.ends.unrecorded`), for at most
        ``cut_short_limit_s`` (counted in memory, as a cut-short row's): after that it ends
        as its rows say, a missing End taken as the first poll that found it ended, the
        reason saying how long sacct recorded none (``slurm_sacct_unrecorded_given_up``)."""
        key = (cluster, slurm_id)
        missing = unrecorded(slurm_id, acct)
        if missing is None:
            self._notes.unrecorded.pop(key, None)
            return ended(handle, slurm_id, acct, now)
        since = self._notes.unrecorded.setdefault(key, now)
        waited = (now - since).total_seconds()
        if waited < self._cut_short_limit_s:
            return None  # written a moment after its state: read again on the next poll
        status = ended(handle, slurm_id, acct, now, found_at=since)
        if status is None:
            return None
        log.warning("slurm_sacct_unrecorded_given_up", cluster=cluster, slurm_id=slurm_id,
                    job_id=handle.job_id, waited_s=waited, fields=missing)  # fmt: skip
        return replace(status, reason=f"{status.reason}; sacct recorded no {missing} "
                                      f"in {waited:.0f} s")  # fmt: skip

    def _lost_too_long(
        self, handle: RunHandle, cluster: str | None, slurm_id: str, acct: list[AcctRow],
        now: datetime,
    ) -> ExitStatus | None:  # fmt: skip
        """The end of a job gone from squeue whose sacct job row has stayed cut short (a
        :attr:`~AcctRow.lost` row, its state unknown) for ``cut_short_limit_s`` (counted in
        memory: afresh after a restart): ``failed``, its exit code, start and energy unknown,
        ended at the first poll that found it so, the reason naming the row
        (``slurm_sacct_lost_given_up``); one whose batch step's row alone stayed cut short
        ends as its job row says, that step's row left out (its energy, then, the job row's or
        none), the reason naming it. None before that, or once its
        row reads whole again (or sacct has none of it): asked again next poll."""
        job, batch = row_of(acct, slurm_id), row_of(acct, slurm_id, "batch")
        lost = next((r for r in (job, batch) if r is not None and r.lost), None)
        if lost is None:
            self._notes.sacct_lost.pop((cluster, slurm_id), None)
            return None
        since = self._notes.sacct_lost.setdefault((cluster, slurm_id), now)
        waited = (now - since).total_seconds()
        if waited < self._cut_short_limit_s:
            return None
        log.warning("slurm_sacct_lost_given_up", cluster=cluster, slurm_id=slurm_id,
                    job_id=handle.job_id, waited_s=waited,
                    fields=list(lost.unreadable))  # fmt: skip
        if lost is batch:  # the job row is whole: its end, without the cut step row
            whole = ended(handle, slurm_id, [r for r in acct if r is not batch], now)
            if whole is not None:
                note = (f"; its batch step's sacct row cut short for {waited:.0f} s "
                        f"({lost.unreadable[0][:120]}): left out")  # fmt: skip
                return replace(whole, reason=whole.reason + note)
        job = lost
        why = (f"slurm state unknown: sacct printed Slurm job {slurm_id}'s row cut short for "
               f"{waited:.0f} s ({job.unreadable[0][:120]}); exit code, start and energy "
               "unknown")  # fmt: skip
        return ExitStatus(handle.job_id, since, None, None, why)

    def _queue(self, cluster: str | None, ids: Sequence[str]) -> dict[str, QueueRow]:
        """The squeue rows of ``ids`` by Slurm id (one pending ``PartitionDown`` or
        ``PartitionInactive`` has its cluster's partition states read again at the next
        round: :mod:`~daemon.executors.slurm.partitions`). A job whose row cannot be read is named
        once while it stays so (``slurm_squeue_unreadable``, with the fields): a lost row
        (cut short) leaves that job's state unknown this poll (not waiting, running nor
        ended: nothing is decided on it, and sacct is not asked); a time unread is unknown;
        every other job is read as usual."""
        queue = by_id(self._q.squeue(cluster, ids))
        if any(row.reason in DOWN_REASONS for row in queue.values()):
            self._partitions.changed(cluster)  # a partition went down: read again next round
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
