"""What the Slurm executor asks Slurm, and its run token.

:class:`SlurmQueries` runs the read and cancel commands (``scontrol show nodes``, ``squeue``,
``sacct``, ``scancel``) through the injected runner and turns a failure into
:class:`~daemon.executors.errors.ExecutorError`; :class:`Token` is what the ledger stores for a
Slurm run. A job's end is read from its ``sacct`` rows by :mod:`~daemon.executors.slurm.ends`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from daemon.executors.errors import (
    AnswerUnreadableError,
    EndNotRecordedError,
    ExecutorError,
    ExecutorUnavailableError,
)
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.acct import AcctRow, parse_sacct
from daemon.executors.slurm.counts import read_count
from daemon.executors.slurm.parse import (
    QueueRow,
    RunningRow,
    by_id,
    parse_running,
    parse_squeue,
)
from daemon.executors.slurm.runner import CommandResult, Runner
from daemon.executors.slurm.scontrol import (
    NodeRow,
    Reservation,
    config_argv,
    config_value,
    nodes_argv,
    parse_nodes,
    parse_partitions,
    parse_reservations,
    partitions_argv,
    reservations_argv,
)
from daemon.executors.slurm.states import WAITING, is_ended

__all__ = ["SlurmQueries", "Token", "known", "said"]

_Row = TypeVar("_Row", QueueRow, AcctRow)
_UNKNOWN_ID = "Invalid job id specified"  # squeue of one id Slurm does not (or no longer) know


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
        return parse_nodes(self.ok(nodes_argv(self.tool("scontrol"), cluster)).stdout)

    def partitions(self, cluster: str | None) -> dict[str, str]:
        """``scontrol show partition`` of ``cluster``: each partition's state (``UP``, ...)."""
        argv = partitions_argv(self.tool("scontrol"), cluster)
        return parse_partitions(self.ok(argv).stdout)

    def energy_plugin(self, cluster: str | None) -> str | None:
        """``cluster``'s ``AcctGatherEnergyType`` (``scontrol show config``): the plugin that
        measures its jobs' energy; None when it has none (``acct_gather_energy/none``)."""
        argv = config_argv(self.tool("scontrol"), cluster)
        plugin = config_value(self.ok(argv).stdout, "AcctGatherEnergyType")
        return None if plugin in (None, "", "(null)", "acct_gather_energy/none") else plugin

    def reservations(self, cluster: str | None) -> list[Reservation]:
        """``scontrol show reservation`` of ``cluster``: its reservations."""
        argv = reservations_argv(self.tool("scontrol"), cluster)
        return parse_reservations(self.ok(argv).stdout)

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
        taken back unstarted are ignored); a job of that name whose id is no count (an array
        task ``12_3``) is not carbond's submission and is passed over. Without
        ``may_have_ended`` no ``sacct`` runs, so a job never submitted is found missing while
        slurmdbd is down or hung.

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
            if (row := _newest(rows)) is not None:
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
            if (last := _newest(acct)) is not None:
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

    def hold(self, current: Token) -> tuple[bool, QueueRow | None]:
        """``scontrol hold`` the job ``current``, then read its squeue row: whether it is held
        unstarted (the hold taken and the job still waiting after it: it can no longer start),
        and that row (None: gone from squeue). A successful hold proves nothing alone: Slurm
        22.05 holds a running job too (exit 0; it keeps running, reason ``JobHeldAdmin``), so
        one Slurm started since carbond last looked reads as held without the row; such a
        job's hold is lifted again (``scontrol release``: its users would see it running
        ``JobHeldAdmin``, and a requeue would leave it held), whatever that answers.

        Raises:
            AnswerUnreadableError: its row after the hold was cut short.
            ExecutorError: squeue failed.
        """
        held, row = self.hold_said(current)
        return held.ok and row is not None and row.state in WAITING, row

    def hold_said(self, current: Token) -> tuple[CommandResult, QueueRow | None]:
        """:meth:`hold`, answering what ``scontrol hold`` said (its words where it failed)
        and the row after it.

        Raises:
            AnswerUnreadableError: its row after the hold was cut short.
            ExecutorError: squeue failed.
        """
        scontrol, cluster, slurm_id = self.tool("scontrol"), current.cluster, current.slurm_id
        held = self.run(cmd.hold_argv(scontrol, cluster, slurm_id))
        row = known(current, by_id(self.squeue(cluster, [slurm_id])).get(slurm_id))
        if held.ok and row is not None and row.state not in WAITING and not is_ended(row.state):
            self.run(cmd.unhold_argv(scontrol, cluster, slurm_id))  # started: left as it was
        return held, row

    def hold_cancel(self, current: Token) -> tuple[bool, QueueRow | None]:
        """Take the waiting job ``current`` back: ``scontrol hold`` it, then ``scancel`` it
        unless Slurm started it (or it ended) in between, as its row after the hold tells
        (:meth:`hold`). Whether it was cancelled, and that row (None: gone from squeue); a
        job whose hold Slurm refused while it still waits is cancelled all the same.

        Raises:
            AnswerUnreadableError: its row after the hold was cut short.
            ExecutorError: squeue or scancel failed.
        """
        held, row = self.hold(current)
        if not held and (row is None or row.state not in WAITING):
            return False, row
        self.scancel(current)
        return True, row

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


def _newest(rows: Sequence[_Row]) -> _Row | None:
    """The row of the newest of carbond's submissions among ``rows`` (its highest Slurm id),
    or None when none is one. A row whose id is not a count (an array task ``12_3``, a pending
    array ``12_[3-5]``, a heterogeneous job's ``12+0``) is no submission of carbond's, whose
    ``sbatch`` answers a count (:func:`~daemon.executors.slurm.parse.parse_sbatch`): it is
    another job that took the name ``carbond-<id>``, and is passed over."""
    counted = [(n, row) for row in rows if (n := read_count(row.slurm_id)) is not None]
    return max(counted, key=lambda pair: pair[0])[1] if counted else None
