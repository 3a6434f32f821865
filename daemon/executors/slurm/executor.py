"""The Slurm executor: a region is a partition (optionally on another cluster, ``-M``).

Life of a job (see docs/slurm.md):

- planned for later: :meth:`SlurmExecutor.hold` submits it with ``--begin=<planned start>``
  pinned to the planned node, so it shows in ``squeue`` (reason ``BeginTime``) from the moment
  carbond has a plan; a new plan moves it in place (``scontrol update``: partition, node,
  start; a move to another cluster or GRES name resubmits); between plans
  :meth:`SlurmExecutor.ended_held` tells which held jobs Slurm ended unstarted (``scancel``)
  and logs a start their owner moved (``slurm_job_changed_outside``);
- start now: :meth:`release` sets its start to ``now`` (or :meth:`launch` submits it at once);
- running and ended: :meth:`poll` reads ``squeue`` and then ``sacct`` (exit code, real start,
  and ``ConsumedEnergyRaw`` when Slurm accounts energy), every Slurm state mapped by
  :mod:`~daemon.executors.slurm.states`; :meth:`cancel` is ``scancel``;
- released but still pending after ``pending_grace_s`` (the partition is busy with others'
  work), or when the job's deadline passes (the handle's ``deadline``): held (``scontrol
  hold``: it cannot start any more), cancelled and answered as
  :class:`~daemon.executors.base.NotStarted`, so the service plans it again, or expires it;
- after a daemon restart :meth:`adopt` finds each job by its Slurm id, or by its Slurm name
  (``carbond-<job id>``) when the id was never recorded.

The run token is ``{"slurm_id", "cluster", "region"}``. Commands run through an injected
:class:`~daemon.executors.slurm.runner.Runner`, wrapped in a
:class:`~daemon.executors.slurm.reach.Reach` so that a controller that does not answer is not
asked again every call (:meth:`SlurmExecutor.problems` reports it); ``sbatch`` runs as the
job's owner. What is read from Slurm and ``scancel`` are in :mod:`~.queries`; ``sbatch``, the
in-place move of a pending job and its resubmission in :mod:`~.submitting`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import structlog

from daemon.executors.base import EndedUnstarted, Held, LaunchSpec, RunHandle
from daemon.executors.errors import (
    ExecutorError,
    HeldJobEndedError,
)
from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm import jobenv, joblogs
from daemon.executors.slurm.capacity import Layout
from daemon.executors.slurm.discovery import SlurmDiscovery, asked_reservations
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owners import (
    cancel_held_root,
    cancel_refused,
    cancel_unreleased,
    refusal,
    refuse_root,
)
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.partitions import PARTITIONS_TTL_S, PartitionStates
from daemon.executors.slurm.queries import SlurmQueries
from daemon.executors.slurm.reach import Reach, problems
from daemon.executors.slurm.reading import LOST_LIMIT_S
from daemon.executors.slurm.runner import Runner
from daemon.executors.slurm.states import WAITING
from daemon.executors.slurm.submitting import SlurmSubmitting
from daemon.executors.slurm.trial import Refusal, gres_types, judge
from daemon.executors.slurm.watching import SlurmWatching

__all__ = ["SlurmExecutor"]

log = structlog.get_logger(__name__)


class SlurmExecutor(SlurmDiscovery, SlurmWatching, SlurmSubmitting):
    """Jobs as Slurm batch jobs. Not thread-safe: the service calls it from one thread.

    Args:
        targets: region name -> where its jobs go.
        runner: runs the Slurm commands.
        gpu_names: region name -> GRES type (``t4``) -> GPU catalog name (``T4``); a type not
            listed is matched to the catalog names case-insensitively (``known_gpus``).
        known_gpus: the GPU catalog's names.
        bin_dir: where the Slurm commands are (None: found on ``PATH``).
        pending_grace_s: how long a released job may stay pending before it is taken back.
        cut_short_limit_s: how long a job gone from squeue may keep a cut-short sacct job row
            before it ends failed
            (:meth:`~daemon.executors.slurm.reading.SlurmReading._lost_too_long`), or an
            ended one without the End or exit code sacct has not recorded yet
            (:meth:`~daemon.executors.slurm.reading.SlurmReading._ended`).
        allow_root_jobs: whether a job submitted by root (uid 0) is submitted (it runs as
            root in Slurm).
        log_dir: where the service puts the jobs' ``.out``/``.err`` (``<state_dir>/logs``),
            to read back why a job exited 127 (None: not read).
        partitions_ttl_s: how long partition states read all up are kept (:mod:`partitions`).
        submitter: the user every job is submitted as (a daemon not running as root submits
            its own user's jobs only), by which a reservation's ``Users=`` is judged; None:
            each job's owner, not judged.
    """

    def __init__(
        self,
        targets: Mapping[str, cmd.Target],
        *,
        runner: Runner,
        gpu_names: Mapping[str, Mapping[str, str]] | None = None,
        known_gpus: Sequence[str] = (),
        bin_dir: Path | None = None,
        pending_grace_s: float = 300.0,
        cut_short_limit_s: float = LOST_LIMIT_S,
        allow_root_jobs: bool = True,
        log_dir: Path | None = None,
        partitions_ttl_s: float = PARTITIONS_TTL_S,
        submitter: str | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._submitter = submitter
        # every command goes through it: an unreachable controller is asked once, not per call
        self._reach = Reach(runner, str(bin_dir / "scontrol") if bin_dir else "scontrol")
        self._q = SlurmQueries(targets, self._reach, bin_dir)
        self._run: Runner = self._reach
        self._tool = self._q.tool
        self._gpu_names = {r: dict(m) for r, m in (gpu_names or {}).items()}
        self._known = {name.lower(): name for name in known_gpus}
        self._pending_grace_s = pending_grace_s
        self._cut_short_limit_s = cut_short_limit_s
        self._allow_root = allow_root_jobs
        self._log_dir = log_dir
        self._layout: dict[str, Layout] = {}
        self._undiscovered: dict[str, str] = {}  # region -> why Slurm gave no GPUs for it
        self._mine: set[str] = set()  # Slurm ids of carbond's jobs seen by this process
        self._by_name: set[str] = set()  # cancelled by name (token unreadable): ended when gone
        self._notes = Notes()  # what is logged once, and since when a job waits
        self._held_specs: dict[str, LaunchSpec] = {}  # held jobs: their files made again
        self._own_gpus = OwnGpus()  # carbond's jobs' planned GPUs, and Slurm's where others
        self._partitions = PartitionStates(partitions_ttl_s)  # read again when not all up

    @property
    def name(self) -> str:
        return "slurm"

    def problems(self) -> dict[str, str]:
        """:func:`~daemon.executors.slurm.reach.problems` of this executor's clusters."""
        return problems(self._reach, {r: t.cluster for r, t in self._targets.items()})

    def gres_types(self, region: str) -> list[str]:
        """The GRES types :meth:`sbatch_refusals` tries for ``region`` (``""``: untyped)."""
        return gres_types(self._layout.get(region))

    def sbatch_refusals(self, region: str) -> list[Refusal]:
        """What ``sbatch --test-only`` says refusing a one-GPU job of ``region`` as carbond
        submits one (:mod:`~daemon.executors.slurm.trial`; as this process's user, from
        their home): one trial per GRES type its discovered GPUs have, with that typed
        request (untyped for declared ``gpus`` or untyped GRES), and each reservation of the
        region's list alone where the list is refused (:func:`~daemon.executors.slurm.trial.judge`);
        empty when sbatch would take each. Submits nothing.

        Raises:
            SlurmUnavailableError: Slurm did not answer (:class:`SlurmNoAnswerError`: in
                time), or ``sbatch`` cannot run.
            ExecutorError: ``region`` is no Slurm region.
        """
        dirs, target = (
            (self._log_dir or Path("/"), jobenv.home(os.getuid())),
            self._q.target(region),
        )
        asked = asked_reservations(target)
        refusals = []
        for gres_type in self.gres_types(region):
            found = judge(self._run, self._tool("sbatch"), target, dirs, gres_type, asked)
            refusals += [found] if found is not None else []
        return refusals

    # -- submitting -------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        """Submit ``spec`` to start as soon as Slurm can.

        Raises:
            LaunchRefusedError: another user's job while the daemon is not root, a root job
                when not ``allow_root_jobs``, an owner with no passwd entry, or no region;
                :class:`JobNotRunnableError`: an empty command.
            LaunchUnconfirmedError: ``sbatch`` got no answer in time: Slurm may have the job
                (:meth:`adopt` finds it by name).
            ExecutorUnavailableError: Slurm cannot be reached (it does not have the job);
                :class:`RegionClosedError`: ``sbatch`` refused it and its partition, read
                again at once, is not ``UP`` (drained since its state was kept) or sbatch
                says it is not available: the job waits.
            ExecutorError: ``sbatch`` refused it (its message is kept).
        """
        self._reach.at(now)
        token = self._submit(spec, None)
        return RunHandle(spec.job_id, self.name, token.encode(), now)

    def hold(
        self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *, new: bool = False
    ) -> Held:
        """Submit ``spec`` to start no earlier than ``start`` (Slurm reason ``BeginTime``), or
        move the submitted one there; a job Slurm already started is reported as started
        (one carbond now refuses, root's when root's jobs are not allowed, that Slurm started
        at its planned start while no daemon looked, is cancelled running first: its run is
        recorded and fails with the refusal's words,
        :func:`~daemon.executors.slurm.owners.cancel_started`; so in :meth:`release`).
        ``new``: never submitted, so it is looked up by name in ``squeue`` only, not in
        ``sacct``: a hand-over needs no slurmdbd."""
        self._reach.at(now)
        self._held_specs.pop(spec.job_id, None)
        found = self._find(spec.job_id, token, spec.uid, may_have_ended=not new)
        if found is None:
            held = Held(self._submit(spec, start).encode())
            self._held_specs[spec.job_id], self._notes.begins[spec.job_id] = spec, start
            return held
        current, row = found
        if (ended := self._ended_unstarted(current, row, spec.uid, now)) is not None:
            return Held(current.encode(), ended=ended)
        if row is None or row.state not in WAITING:  # Slurm started it at its planned start
            return self._started(spec.job_id, spec.uid, current, row, now)
        if (why := refusal(spec.job_id, spec.uid, self._allow_root)) is not None:
            # held by a daemon that allowed root's jobs: cancelled, not moved
            refused = cancel_refused(self._q, current, why, own=self._own_gpus,
                                     notes=self._notes, now=now)  # fmt: skip
            if refused is None and (current.cluster, current.slurm_id) in self._notes.refused:
                raise ExecutorError(f"{why}; its Slurm job {current.slurm_id} is cancelled "
                                    "without a hold: its end is read next round")  # fmt: skip
            if refused is None:
                raise ExecutorError(f"{why}; its Slurm job {current.slurm_id} cannot be held")
            return refused
        moved = self._move(spec, current, start, now)
        if isinstance(moved, Held):  # Slurm started it as carbond took it back to resubmit
            return moved
        self._held_specs[spec.job_id], self._notes.begins[spec.job_id] = spec, start
        return Held(moved.encode())

    def ended_held(
        self, held: Sequence[RunHandle], now: datetime
    ) -> dict[str, EndedUnstarted | Held]:
        """:meth:`SlurmWatching.ended_held`; first, the output files of the held jobs this
        process handed over or moved are made again where they were removed while the jobs
        wait, as at release: Slurm starts a held job on its own at its ``--begin``, maybe
        before carbond's release round, and slurmstepd, opening them as the job's user, would
        fail it. One that cannot be made is logged once (``slurm_job_logs_failed``); release
        then fails the job naming why. Root's held jobs, when root's jobs are not allowed
        (held by a daemon that allowed them), are cancelled and reported refused
        (:func:`~daemon.executors.slurm.owners.cancel_held_root`), not left to start as root
        at their planned time; one Slurm started before carbond could hold it is cancelled
        running and reported started (:class:`Held`), its end read by :meth:`poll`."""
        refused: dict[str, EndedUnstarted | Held] = {
            job_id: end.ended or end
            for job_id, end in cancel_held_root(self._q, held, self._allow_root,
                                                own=self._own_gpus, notes=self._notes,
                                                now=now).items()
        }  # fmt: skip
        held = [handle for handle in held if handle.job_id not in refused]
        for handle in held:
            spec = self._held_specs.get(handle.job_id)
            if spec is None or not joblogs.missing(spec):
                continue
            try:
                joblogs.prepare(spec)
            except ExecutorError as exc:
                del self._held_specs[handle.job_id]  # not tried again until it moves
                log.warning("slurm_job_logs_failed", job_id=handle.job_id, error=str(exc))
        return {**refused, **SlurmWatching.ended_held(self, held, now)}

    def release(
        self, spec: LaunchSpec, token: str, now: datetime, *, new: bool = False
    ) -> RunHandle:
        """Let the held job start now in ``spec``'s region (submitted afresh if it is gone;
        ``new``: never submitted, looked up in ``squeue`` only, as in :meth:`hold`). Its
        output files are created again first where they were removed while it waited (its
        owner, a tmp cleaner): slurmstepd opens them as the job's user, who may not create
        files in carbond's log dir, and would fail the job as it starts.

        Such a refused job Slurm started before carbond could hold it (its start had come)
        is cancelled running and answered started (its token and squeue's start): its run is
        followed to its end like any, sacct's times and energy recorded, and that end fails
        with the refusal's words (:func:`~daemon.executors.slurm.owners.cancel_unreleased`).

        Raises:
            ExecutorError: its output files cannot be created, or it is root's and root's
                jobs are not allowed (``allow_root_jobs`` turned off since it was held); its
                Slurm job is cancelled first: left held, it would start at its planned time
                unseen.
        """
        self._reach.at(now)
        self._held_specs.pop(spec.job_id, None)
        found = self._find(spec.job_id, token, spec.uid, may_have_ended=not new)
        if found is None:
            return self.launch(spec, now)
        current, row = found
        if (ended := self._ended_unstarted(current, row, spec.uid, now)) is not None:
            raise HeldJobEndedError(
                f"job {spec.job_id}: Slurm job {current.slurm_id} ended before it started "
                f"({ended.reason})",
                ended,
            )
        if row is None or row.state not in WAITING:
            started = self._started(spec.job_id, spec.uid, current, row, now).started_at
            return RunHandle(spec.job_id, self.name, current.encode(), started or now)
        try:
            refuse_root(spec.job_id, spec.uid, self._allow_root)  # turned off since it was held
            joblogs.prepare(spec)
        except ExecutorError as exc:  # its BeginTime has come: Slurm may start it any moment
            refused = cancel_unreleased(self._q, current, str(exc), own=self._own_gpus,
                                        notes=self._notes, now=now)  # fmt: skip
            if refused.started_at is None:  # held or ended before it started
                raise ExecutorError(refused.ended.reason if refused.ended else str(exc)) from exc
            return RunHandle(spec.job_id, self.name, refused.token, refused.started_at)
        moved = self._move(spec, current, None, now)
        if isinstance(moved, Held):  # Slurm started it as carbond took it back to resubmit
            return RunHandle(spec.job_id, self.name, moved.token, moved.started_at or now)
        return RunHandle(spec.job_id, self.name, moved.encode(), now)

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        """Hold and cancel the held job (looked up by name among the jobs of its owner ``uid``
        when ``token`` is empty); once held it cannot start. A job Slurm already started is
        left alone: its token and start time (:meth:`_started`: one carbond now refuses is
        cancelled running, its run recorded)."""
        self._reach.at(now)
        self._held_specs.pop(job_id, None)
        found = self._find(job_id, token, uid)
        if found is None:
            return None
        current, row = found
        if (ended := self._ended_unstarted(current, row, uid, now)) is not None:
            return Held(current.encode(), ended=ended)
        if row is None or row.state not in WAITING:
            return self._started(job_id, uid, current, row, now)
        held, again = self._q.hold(current)
        if not held and (again is None or again.state not in WAITING):  # Slurm started it
            return self._started(job_id, uid, current, again, now, raced=True)
        self._q.scancel(current)
        self._own_gpus.forget(current.cluster, current.slurm_id)
        log.info("slurm_job_withdrawn", job_id=job_id, slurm_id=current.slurm_id)
        return None
