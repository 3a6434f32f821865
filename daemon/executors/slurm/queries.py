"""What the Slurm executor asks Slurm, and its run token.

:class:`SlurmQueries` runs the read and cancel commands (``scontrol show nodes``, ``squeue``,
``sacct``, ``scancel``) through the injected runner and turns a failure into
:class:`~daemon.executors.errors.ExecutorError`; :func:`ended` reads a job's end from its
``sacct`` rows; :class:`Token` is what the ledger stores for a Slurm run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from daemon.executors.base import EndedUnstarted, ExitStatus, RunHandle
from daemon.executors.errors import (
    AnswerUnreadableError,
    EndNotRecordedError,
    ExecutorError,
    ExecutorUnavailableError,
)
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.acct import AcctRow, energy_j, parse_sacct, row_of, rows_of
from daemon.executors.slurm.parse import (
    NodeRow,
    QueueRow,
    RunningRow,
    by_id,
    parse_nodes,
    parse_partitions,
    parse_running,
    parse_squeue,
)
from daemon.executors.slurm.runner import CommandResult, Runner
from daemon.executors.slurm.states import ended_status, is_ended

__all__ = ["SlurmQueries", "Token", "ended", "ended_unstarted", "known", "ran_before", "said"]

_NO_NODE = "None assigned"  # sacct's NodeList of a job that never got a node
_UNKNOWN_ID = "Invalid job id specified"  # squeue of one id Slurm does not (or no longer) know
_ACCT_SETTLE_S = 5.0  # after its end, wait this long at most for a job's batch-step row


@dataclass(frozen=True, slots=True)
class Token:
    """A run token: the Slurm job id, its cluster (None: the local one) and carbond's region."""

    slurm_id: str
    cluster: str | None
    region: str

    def encode(self) -> str:
        """The token as the ledger stores it (JSON)."""
        return json.dumps({"slurm_id": self.slurm_id, "cluster": self.cluster,
                           "region": self.region})  # fmt: skip

    @classmethod
    def decode(cls, job_id: str, token: str) -> Token:
        """Read a stored token back.

        Raises:
            ExecutorError: it is not a Slurm run token.
        """
        try:
            raw = json.loads(token)
            return cls(str(raw["slurm_id"]), raw["cluster"], str(raw["region"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExecutorError(f"job {job_id}: unreadable slurm run token") from exc


class SlurmQueries:
    """The Slurm commands run for reading and cancelling, by region target.

    Args:
        targets: region name -> where its jobs go.
        runner: runs the Slurm commands.
        bin_dir: where the Slurm commands are (None: found on ``PATH``).
    """

    def __init__(
        self, targets: Mapping[str, cmd.Target], runner: Runner, bin_dir: Path | None
    ) -> None:
        self._targets = dict(targets)
        self.run = runner

        def tool(name: str) -> str:
            return str(bin_dir / name) if bin_dir is not None else name

        self.tool: Callable[[str], str] = tool

    def nodes(self, cluster: str | None) -> list[NodeRow]:
        """``scontrol show nodes`` of ``cluster``: each node's state, partitions and GRES."""
        return parse_nodes(self.ok(cmd.nodes_argv(self.tool("scontrol"), cluster)).stdout)

    def partitions(self, cluster: str | None) -> dict[str, str]:
        """``scontrol show partition`` of ``cluster``: each partition's state (``UP``, ...)."""
        argv = cmd.partitions_argv(self.tool("scontrol"), cluster)
        return parse_partitions(self.ok(argv).stdout)

    def running(self, target: cmd.Target) -> list[RunningRow]:
        """The jobs running in ``target``'s partition, with the GRES they hold."""
        argv = cmd.squeue_running_argv(self.tool("squeue"), target)
        return parse_running(self.ok(argv).stdout, target.gres)

    def squeue(self, cluster: str | None, ids: Sequence[str]) -> list[QueueRow]:
        """The squeue rows of ``ids`` (an id squeue no longer knows is left out).

        ``squeue --jobs=A,B`` lists the ids Slurm knows and exits 0 whatever the others are;
        only a single id it does not know fails (``Invalid job id specified``), which is read
        as no rows. An id it cannot read at all (``Invalid job id: abc``) fails the call.

        Raises:
            ExecutorError: squeue failed.
        """
        result = self.run(cmd.squeue_argv(self.tool("squeue"), cluster, ids))
        if not result.ok:
            if len(ids) == 1 and _UNKNOWN_ID in result.stderr:
                return []
            raise ExecutorError(f"squeue failed: {said(result)}")
        return parse_squeue(result.stdout)

    def sacct(self, cluster: str | None, ids: Sequence[str]) -> list[AcctRow]:
        """The sacct rows (job and steps) of each run of ``ids`` (``--duplicates``): a job
        Slurm requeued after it started (``scontrol requeue``, a node failure) keeps a job row
        and steps of each earlier run, which plain ``sacct`` no longer shows
        (:attr:`AcctRow.run`)."""
        argv = cmd.sacct_argv(self.tool("sacct"), cluster, ids, every_run=True)
        return parse_sacct(self.ok(argv).stdout)

    def find(
        self, job_id: str, token: str, uid: int | None, *, may_have_ended: bool = True
    ) -> tuple[Token, QueueRow | None] | None:
        """The Slurm job of ``job_id`` (by token, else by name) with its squeue row (None:
        ended, only in sacct); None when Slurm has no such job. By name (also when the token
        cannot be read: hand-edited, cut short), among the jobs of
        ``uid`` (the job's owner: any user may name a job ``carbond-<id>``), the newest job
        still waiting or running in ``squeue``, else (only when it ``may_have_ended``: it may
        have been submitted before) the newest that ran in ``sacct`` (earlier submissions
        taken back unstarted are ignored). Without ``may_have_ended`` no ``sacct`` runs, so
        a job never submitted is found missing while slurmdbd is down or hung.

        Raises:
            ExecutorError: no readable token and no owner to look the job up by.
            AnswerUnreadableError: by name, squeue printed a row of it cut short: neither its
                Slurm id nor its partition (so its region) is known (asked again later).
            EndNotRecordedError: sacct failed, or its answer was cut short (asked again later).
        """
        if token:
            try:
                current = Token.decode(job_id, token)
            except ExecutorError:
                if uid is None:
                    raise
            else:
                queue = by_id(self.squeue(current.cluster, [current.slurm_id]))
                return current, queue.get(current.slurm_id)
        if uid is None:
            raise ExecutorError(f"job {job_id}: no Slurm id recorded and no owner to find it by")
        for cluster, first in self._first_regions().items():
            argv = cmd.squeue_by_name_argv(self.tool("squeue"), cluster, job_id, uid)
            rows = [r for r in parse_squeue(self.ok(argv).stdout) if not is_ended(r.state)]
            if lost := [u for r in rows if r.lost for u in r.unreadable]:  # which, where: unknown
                raise AnswerUnreadableError(
                    f"job {job_id}: squeue printed a row of {cmd.job_name(job_id)} cut short "
                    f"({lost[0][:120]}): which Slurm job is its newest, and in which partition, "
                    "is not known; asked again next round"
                )
            if rows:
                row = max(rows, key=lambda r: int(r.slurm_id))
                region = self.region_of(row.partition, cluster) or first
                return Token(row.slurm_id, cluster, region), row
            if not may_have_ended:
                continue
            argv = cmd.sacct_argv(self.tool("sacct"), cluster, name=cmd.job_name(job_id), uid=uid)
            answer = parse_sacct(self._acct_by_name(job_id, argv).stdout)
            if lost := [u for r in answer if r.lost for u in r.unreadable]:  # ran or not: unknown
                raise EndNotRecordedError(
                    f"job {job_id}: not in squeue, and sacct's answer is cut short ({lost[0]}): "
                    "whether an earlier submission of it ran is not known; asked again next round"
                )
            # ran (a Start, or one unreadable): not a submission taken back unstarted
            acct = [r for r in answer if not r.step and (r.start is not None or r.start_unknown)]
            if acct:
                last = max(acct, key=lambda r: int(r.slurm_id))
                region = self.region_of(last.partition, cluster) or first
                return Token(last.slurm_id, cluster, region), None
        return None

    def _first_regions(self) -> dict[str | None, str]:
        """Each cluster's first region listed (a job found by name in a partition no region
        names is recorded there), in the order the clusters first appear."""
        first: dict[str | None, str] = {}
        for region, target in self._targets.items():
            first.setdefault(target.cluster, region)
        return first

    def _acct_by_name(self, job_id: str, argv: list[str]) -> CommandResult:
        """``sacct`` of a job looked up by name. One that fails while the controller answers
        (slurmdbd down or hung) cannot tell whether an earlier submission of the job ran:
        nothing is decided, the caller asks again later.

        Raises:
            EndNotRecordedError: sacct failed (slurmdbd down or hung).
            ExecutorUnavailableError: Slurm itself cannot be reached.
        """
        try:
            return self.ok(argv)
        except ExecutorUnavailableError:
            raise
        except ExecutorError as exc:
            raise EndNotRecordedError(
                f"job {job_id}: not in squeue, and sacct cannot tell whether an earlier "
                f"submission of it ran ({exc}); asked again next round"
            ) from exc

    def region_of(self, partition: str, cluster: str | None) -> str | None:
        """carbond's region for a Slurm partition on ``cluster``, if it is one."""
        for region, target in self._targets.items():
            if target.partition == partition and target.cluster == cluster:
                return region
        return None

    def scancel(self, token: Token) -> None:
        """``scancel`` the job (one already ending is fine)."""
        result = self.run(cmd.scancel_argv(self.tool("scancel"), token.cluster, token.slurm_id))
        if not result.ok and "already completing or completed" not in result.stderr:
            raise ExecutorError(f"scancel of Slurm job {token.slurm_id} failed: {said(result)}")

    def target(self, region: str) -> cmd.Target:
        """Where ``region``'s jobs go."""
        try:
            return self._targets[region]
        except KeyError:
            raise ExecutorError(f"region {region!r} is no Slurm region") from None

    def ok(self, argv: list[str]) -> CommandResult:
        """Run ``argv``; its result when it succeeded."""
        result = self.run(argv)
        if not result.ok:
            raise ExecutorError(f"{Path(argv[0]).name} failed: {said(result)}")
        return result


def ended(
    handle: RunHandle, slurm_id: str, acct: list[AcctRow], now: datetime
) -> ExitStatus | None:
    """The end of ``slurm_id`` from its sacct rows; None while the rows are not final yet
    (sacct lags the controller by about half a second), or while its job row is lost (cut
    short: read again on the next poll). A field sacct printed that cannot be read is unknown,
    and the reason names it (``sacct unreadable: ExitCode '0:x'``): a job whose ``End`` is
    unknown ended at its ``batch`` step's ``End`` where that is readable, else at ``now`` (the
    poll's time, late by however long carbond was down), the reason saying which; one whose
    ``Start`` is unknown started at its ``batch`` step's ``Start`` where that is readable,
    else the start is left to the service (its release), the reason saying which. A
    ``COMPLETED`` job's exit code is 0 all the same: Slurm records ``COMPLETED`` only when
    every step exited 0, so an unreadable ``ExitCode`` does not make it fail. Its energy is
    that of every run (``acct`` read ``--duplicates``): a run Slurm started, then requeued,
    adds its own, the reason naming each (its times stay the last run's)."""
    job = row_of(acct, slurm_id)
    if job is None or not is_ended(job.state):
        return None
    batch = row_of(acct, slurm_id, "batch")
    end, to_second, taken = job.end, True, []  # taken: where a time the row lacks is from
    if end is None and batch is not None and batch.end is not None:
        end = batch.end
        taken.append("end from its batch step's End")
    elif end is None:
        end, to_second = now, False
        taken.append("end unknown: taken as the poll's time")
    # no Start: it never ran (cancelled while pending); an unreadable one: its batch step's
    start = job.start or (None if job.start_unknown else end)
    if job.start_unknown and batch is not None and batch.start is not None:
        start = batch.start
        taken.append("start from its batch step's Start")
    elif job.start_unknown:
        taken.append("start unknown: taken as its release")
    settling = job.end is not None and (now - job.end).total_seconds() < _ACCT_SETTLE_S
    ran = job.start is not None or job.start_unknown
    if ran and (batch is None or not is_ended(batch.state)) and settling:
        return None  # the batch step's row (and its energy) is still being written
    energy = energy_j(acct, slurm_id)
    if energy is not None and (every := _every_run_energy(slurm_id, acct, energy)) is not None:
        energy, note = every
        taken.append(note)
    code, from_state = job.exit_code, False
    if job.state == "COMPLETED" and code is None and job.signal is None:
        code, from_state = 0, True  # COMPLETED: every step exited 0
    status = ended_status(
        handle.job_id,
        job.state,
        exit_code=code,
        signal=job.signal,
        finished_at=end,
        started_at=start,
        by_uid=job.by_uid,
        nodes=job.nodes,
        energy_j=energy,
        end_to_second=to_second,  # sacct's End has no fraction of a second
        owner=handle.uid,
    )
    bad = [f"{u} ({r.step or 'job'})" for r in rows_of(acct, slurm_id) for u in r.unreadable]
    if not bad and not from_state and not taken:
        return status
    reason = status.reason + (f"; sacct unreadable: {', '.join(bad)}" if bad else "")
    reason += "".join(f"; {note}" for note in taken)
    if from_state:
        reason += "; exit code 0 from its state (Slurm's COMPLETED: every step exited 0)"
    return replace(status, reason=reason)


def ended_unstarted(slurm_id: str, acct: list[AcctRow], uid: int | None) -> EndedUnstarted | None:
    """How Slurm ended ``slurm_id`` before it ever started (its pending job cancelled by its
    owner ``uid`` or an admin), from its sacct rows: no node was ever assigned it (Slurm 22.05
    gives a pending job its owner cancels a ``Start``, the cancel time; an admin's cancel
    leaves none); None when it ran, or while sacct has no final row of it."""
    job = row_of(acct, slurm_id)
    ran = (job is not None and (job.start is not None or job.start_unknown)
           and job.nodes not in ("", _NO_NODE))  # fmt: skip
    if job is None or ran or not is_ended(job.state):
        return None
    by = f" by uid {job.by_uid}" if job.by_uid is not None else ""
    return EndedUnstarted(f"slurm {job.state}{by}", job.by_uid == uid)


def _started(slurm_id: str, acct: list[AcctRow]) -> list[AcctRow]:
    """The job rows of ``slurm_id``'s runs that Slurm started (a node and a start), oldest
    first, from its ``sacct --duplicates`` rows."""
    runs = [r for r in acct if r.slurm_id == slurm_id and not r.step and not r.lost
            and r.start is not None and r.nodes not in ("", _NO_NODE)]  # fmt: skip
    return sorted(runs, key=lambda r: -r.run)


def _ran(run: AcctRow) -> str:
    """``ran from START to END on NODES (STATE)`` of a run's job row."""
    start = run.start.isoformat() if run.start else "an unknown time"
    end = run.end.isoformat() if run.end else "an unknown time"
    return f"ran from {start} to {end} on {run.nodes} ({run.state})"


def ran_before(slurm_id: str, acct: list[AcctRow]) -> str | None:
    """How the latest run of ``slurm_id`` that Slurm started went, from the ``sacct
    --duplicates`` rows of a job pending again (Slurm requeued it after it started; until
    carbond cancels it, its pending run has no record yet, so the ``REQUEUED`` one is the
    latest): ``ran from START to END on NODES (STATE)``; None when no job row of it has a node
    and a start (it never ran)."""
    runs = _started(slurm_id, acct)
    return _ran(runs[-1]) if runs else None


def _every_run_energy(
    slurm_id: str, acct: list[AcctRow], latest_j: float
) -> tuple[float, str] | None:
    """The energy of every run of ``slurm_id`` (its latest run's ``latest_j`` plus each
    earlier run Slurm started and then requeued), and the words its end's reason adds; None
    when it had no such run. An earlier run sacct has no energy for leaves the latest run's
    alone (the reason says so), not a sum that misses a run."""
    runs = [run for run in _started(slurm_id, acct) if run.run > 0]  # before the last
    if not runs:
        return None
    each = [(run, energy_j(acct, slurm_id, run.run)) for run in runs]
    words = "; ".join(f"{_ran(run)}: {f'{j:.0f} J' if j is not None else 'no energy'}"
                      for run, j in each)  # fmt: skip
    if any(j is None for _, j in each):
        return latest_j, (f"energy {latest_j:.0f} J of its last run only: sacct has none for "
                          f"a run Slurm requeued before ({words})")  # fmt: skip
    total = latest_j + sum(j for _, j in each if j is not None)
    return total, (f"energy {total:.0f} J over its {len(runs) + 1} runs: {latest_j:.0f} J of "
                   f"the last, and of each Slurm requeued before ({words})")  # fmt: skip


def known(current: Token, row: QueueRow | None) -> QueueRow | None:
    """``row``, when squeue's row of ``current`` could be read whole.

    Raises:
        AnswerUnreadableError: its row was cut short (a :attr:`~QueueRow.lost` row): the
            job is in squeue but whether it waits, runs or ended is not known, so nothing is
            decided on it (not taken as started); asked again next round.
    """
    if row is not None and row.lost:
        raise AnswerUnreadableError(
            f"Slurm job {current.slurm_id}: squeue printed its row cut short (wrong number "
            "of fields): whether it waits, runs or ended is not known; asked again next round"
        )
    return row


def said(result: CommandResult) -> str:
    """The last line Slurm printed (stderr first), or the exit status."""
    text = (result.stderr or result.stdout).strip()
    return text.splitlines()[-1] if text else f"exit status {result.returncode}"
