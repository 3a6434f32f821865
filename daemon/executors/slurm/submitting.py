"""The Slurm executor's submitting (:class:`SlurmSubmitting`, a base of
:class:`~daemon.executors.slurm.executor.SlurmExecutor`): ``sbatch`` of a job as its owner
(to start now, or no earlier than its planned start), the in-place move of a pending job to a
new plan (``scontrol update``) or its resubmission where Slurm cannot move it, and the answer
for a held job Slurm started before carbond could move or hold it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import structlog

from daemon.executors.base import Held, LaunchSpec
from daemon.executors.errors import ExecutorError, LaunchUnconfirmedError, RegionClosedError
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm import jobenv, joblogs, submission
from daemon.executors.slurm.capacity import Layout
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owners import cancel_started, refusal
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.parse import QueueRow, parse_sbatch
from daemon.executors.slurm.partitions import PartitionStates, closed_now
from daemon.executors.slurm.queries import SlurmQueries, Token, said
from daemon.executors.slurm.runner import Runner, SlurmCommandMissingError, SlurmNoAnswerError
from daemon.executors.slurm.states import is_ended

__all__ = ["SlurmSubmitting"]

log = structlog.get_logger("daemon.executors.slurm.executor")


class SlurmSubmitting:
    """Submitting, moving and resubmitting Slurm jobs; the state is the executor's."""

    _targets: dict[str, cmd.Target]
    _q: SlurmQueries
    _run: Runner
    _tool: Callable[[str], str]
    _allow_root: bool
    _layout: dict[str, Layout]
    _mine: set[str]
    _notes: Notes  # what is logged once, and since when a job waits
    _own_gpus: OwnGpus  # carbond's jobs' planned GPUs, and Slurm's where others
    _partitions: PartitionStates  # partition states, kept while all up (for a while)

    def _started(
        self, job_id: str, uid: int | None, current: Token, row: QueueRow | None,
        now: datetime, *, raced: bool = False,
    ) -> Held:  # fmt: skip
        """The held job ``current`` that Slurm started (``row``: squeue's after it), answered
        started: its token and start (squeue's, else ``now``). One carbond now refuses
        (root's, root's jobs not allowed) that still runs is cancelled first
        (:func:`~daemon.executors.slurm.owners.cancel_started`; ``raced``: Slurm started it
        between carbond's look and its hold), not left to run on as root: its run is
        recorded and its end fails with the refusal's words."""
        started = (row.start if row else None) or now
        why = refusal(job_id, uid, self._allow_root)
        if why is None or row is None or is_ended(row.state):
            return Held(current.encode(), started)
        return cancel_started(self._q, current, why, started, own=self._own_gpus,
                              notes=self._notes, raced=raced)  # fmt: skip

    def _submit(self, spec: LaunchSpec, begin: datetime | None) -> Token:
        submission.check(spec, self._targets, self._allow_root)
        target = self._q.target(spec.region)
        home = jobenv.home(spec.uid)
        joblogs.prepare(spec)
        layout, gpus = self._layout.get(spec.region), submission.gpus(spec)
        sub = cmd.Submission(
            job_id=spec.job_id,
            argv=spec.argv,
            gpus=gpus,
            log_dir=spec.log_dir,
            chdir=Path(spec.cwd) if spec.cwd else home,
            begin=begin,
            node=submission.node(layout, spec),
            comment=spec.name,
            env=jobenv.job_env(spec, home),
            gres_type=submission.gres_type(layout, spec),
        )
        argv = cmd.sbatch_argv(self._tool("sbatch"), target, sub)
        try:
            result = self._run(argv, stdin=cmd.batch_script(sub), uid=spec.uid, gid=spec.gid)
        except SlurmCommandMissingError as exc:  # this host's bin_dir: the launch fails
            raise ExecutorError(f"job {spec.job_id}: {exc}: Slurm was not asked") from exc
        except SlurmNoAnswerError as exc:  # Slurm may have it: found by name, not resubmitted
            raise LaunchUnconfirmedError(
                f"job {spec.job_id}: sbatch got no answer ({exc}); Slurm may have the job, "
                f"so it is looked up by its name {cmd.job_name(spec.job_id)} before any new "
                "submission"
            ) from exc
        if not result.ok:  # the partition may be down: its state read again next round
            self._partitions.changed(target.cluster)
            refused = f"job {spec.job_id}: sbatch refused it: {said(result)}"
            read = partial(self._q.partitions, target.cluster)
            if (closed := closed_now(target.partition, result.stderr, read)) is not None:
                raise RegionClosedError(f"{refused}; {closed}: the job waits, planned again")
            raise ExecutorError(refused)
        slurm_id, cluster = parse_sbatch(result.stdout)
        self._mine.add(slurm_id)
        self._own_gpus.plan(cluster or target.cluster, slurm_id, spec.job_id, gpus)
        log.info("slurm_job_submitted", job_id=spec.job_id, slurm_id=slurm_id,
                 partition=target.partition, node=sub.node,
                 begin=begin.isoformat() if begin else "now")  # fmt: skip
        return Token(slurm_id, cluster or target.cluster, spec.region)

    def _move(
        self, spec: LaunchSpec, current: Token, start: datetime | None, now: datetime
    ) -> Token | Held:
        """Update the pending job in place; resubmit when it changes cluster, partition (Slurm
        sets a partition's ``DefMemPerGPU``/``DefCpuPerGPU`` only at submission:
        ``tests/slurm/test_moves_on_slurm.py``) or GRES name, or when Slurm refuses the update
        for changing a typed GPU request to an untyped one or back
        (:data:`~.commands.TYPEDNESS_REFUSED`), once held and cancelled
        (:meth:`~.queries.SlurmQueries.hold_cancel`): its token. One Slurm started (or that
        ended) between carbond's look and its hold is not resubmitted but answered started
        where it runs (:meth:`_started`)."""
        target = self._q.target(spec.region)
        old = self._targets.get(current.region)
        if (
            old is None
            or old.cluster != target.cluster
            or old.partition != target.partition
            or old.gres != target.gres
        ):
            return self._resubmit(spec, current, start, now)
        layout, gpus = self._layout.get(spec.region), submission.gpus(spec)
        gres = cmd.gres_request(target.gres, submission.gres_type(layout, spec), gpus)
        argv = cmd.update_argv(self._tool("scontrol"), target, current.slurm_id, start=start,
                               node=submission.node(layout, spec), gres=gres)  # fmt: skip
        result = self._run(argv)
        if not result.ok and cmd.TYPEDNESS_REFUSED in result.stderr:  # nothing of it moved
            log.info("slurm_job_resubmitted_gres_type", job_id=spec.job_id,
                     slurm_id=current.slurm_id, gres=gres)  # fmt: skip
            return self._resubmit(spec, current, start, now)
        if not result.ok:
            raise ExecutorError(
                f"job {spec.job_id}: scontrol update of Slurm job {current.slurm_id} failed: "
                f"{said(result)}"
            )
        self._own_gpus.plan(current.cluster, current.slurm_id, spec.job_id, gpus)
        when = start.isoformat() if start else "now"
        log.info("slurm_job_moved", job_id=spec.job_id, slurm_id=current.slurm_id,
                 partition=target.partition, start=when)  # fmt: skip
        return Token(current.slurm_id, current.cluster, spec.region)

    def _resubmit(
        self, spec: LaunchSpec, current: Token, start: datetime | None, now: datetime
    ) -> Token | Held:
        """Hold and cancel ``current``, then submit ``spec`` afresh (:meth:`_move`)."""
        cancelled, row = self._q.hold_cancel(current)
        if not cancelled:
            return self._started(spec.job_id, spec.uid, current, row, now, raced=True)
        self._own_gpus.forget(current.cluster, current.slurm_id)
        return self._submit(spec, start)
