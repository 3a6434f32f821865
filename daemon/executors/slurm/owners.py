"""Root's jobs when ``[executors.slurm] allow_root_jobs`` is false: a root job is refused
before ``sbatch`` (:func:`refusal`), and one a daemon that allowed them left held in Slurm
(submitted ``--begin``, then a restart turned the setting off) is cancelled there as soon as
this daemon sees it (:func:`cancel_refused`), moved or watched, not only at its release: left
held, Slurm would start it as root at its planned time if carbond's release round came late;
one Slurm starts between carbond's look and its hold, or already started at its planned
start, is cancelled running, and its brief run recorded (its end read from sacct like any
run's, failed with the refusal's words). One a release refuses (root's, or its output files
cannot be made) is held before it is cancelled (:func:`cancel_unreleased`): its planned
start has come, so Slurm may start it between carbond's look and the cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from daemon.executors.base import EndedUnstarted, Held, RunHandle
from daemon.executors.errors import ExecutorError, LaunchRefusedError
from daemon.executors.slurm.notes import Notes
from daemon.executors.slurm.owngpus import OwnGpus
from daemon.executors.slurm.parse import by_id
from daemon.executors.slurm.queries import SlurmQueries, Token, known, said
from daemon.executors.slurm.states import WAITING, is_ended

__all__ = [
    "cancel_held_root",
    "cancel_refused",
    "cancel_started",
    "cancel_unreleased",
    "refusal",
    "refuse_root",
]

log = structlog.get_logger("daemon.executors.slurm.executor")

# How many times the hold of a refused held job may fail while it waits (one look each, every
# reconcile_s) before it is cancelled without one.
_HOLD_TRIES = 3


def refusal(job_id: str, uid: int | None, allow_root: bool) -> str | None:
    """Why ``job_id`` of owner ``uid`` is not run (root's, root's jobs not allowed: Slurm
    would run it as root), in the words a refused launch uses; None when it may run."""
    if uid == 0 and not allow_root:
        return f"job {job_id}: refusing to run a job as root"
    return None


def refuse_root(job_id: str, uid: int | None, allow_root: bool) -> None:
    """Refuse ``job_id`` when :func:`refusal` says so.

    Raises:
        LaunchRefusedError: a job of root's, when root's jobs are not allowed.
    """
    if (why := refusal(job_id, uid, allow_root)) is not None:
        raise LaunchRefusedError(why)


def cancel_refused(
    q: SlurmQueries, current: Token, why: str, *, own: OwnGpus, notes: Notes, now: datetime
) -> Held | None:
    """Hold then cancel the held Slurm job ``current`` that carbond now refuses (``why``):
    once held it cannot start; the answer is its token and its end (``ended``, refused).
    One Slurm started between carbond's look and the hold (:meth:`SlurmQueries.hold`) is
    cancelled all the same, running: root's jobs are not to run, and followed as a normal run
    it would run on as root. That one did run, so it is answered started (its token and
    ``started_at``: squeue's, else ``now``): its run is followed to its end like any
    (sacct's times and energy), and that end fails with the refusal's words
    (``notes.refused`` keeps them until the end is read). None when it is neither held
    unstarted nor running after the hold: Slurm ended it meanwhile (the usual paths read
    it), or the hold failed while it waits (:func:`_hold_failed`: asked again next time, at
    most ``_HOLD_TRIES`` times, then cancelled without a hold). A cancelled job's GPUs are no
    longer followed (``own``).

    Raises:
        ExecutorError: Slurm cannot be asked, or its row after the hold cannot be read.
    """
    result, row = q.hold_said(current)
    held = result.ok and row is not None and row.state in WAITING
    started = row is not None and row.state not in WAITING and not is_ended(row.state)
    if not held and not started:
        if row is not None and row.state in WAITING:
            _hold_failed(q, current, why, said(result), own=own, notes=notes)
        else:
            notes.hold_failed.pop((current.cluster, current.slurm_id), None)
        return None
    notes.hold_failed.pop((current.cluster, current.slurm_id), None)
    q.scancel(current)
    own.forget(current.cluster, current.slurm_id)
    reason = f"{why}; its held Slurm job {current.slurm_id} is cancelled"
    if started:
        reason = (f"{why}; Slurm started its job {current.slurm_id} before carbond could hold "
                  "it: cancelled after it started")  # fmt: skip
    if started and row is not None:
        return _cancelled_running(current, reason, row.start or now, notes)
    log.warning("slurm_held_job_refused", slurm_id=current.slurm_id, cluster=current.cluster,
                reason=reason, started=started)  # fmt: skip
    return Held(current.encode(), ended=EndedUnstarted(reason, by_owner=False, refused=True))


def _cancelled_running(current: Token, reason: str, started: datetime, notes: Notes) -> Held:
    """The refused Slurm job ``current``, cancelled running (``reason``), answered started
    at ``started``: its run is followed to its end like any (the poll's sacct: its times and
    energy), and that end fails with ``reason`` (``notes.refused`` keeps it until the end is
    read)."""
    notes.refused[current.cluster, current.slurm_id] = reason
    log.warning("slurm_held_job_refused", slurm_id=current.slurm_id, cluster=current.cluster,
                reason=reason, started=True)  # fmt: skip
    return Held(current.encode(), started)


def _hold_failed(
    q: SlurmQueries, current: Token, why: str, error: str, *, own: OwnGpus, notes: Notes
) -> None:
    """``scontrol hold`` of the refused job ``current`` failed (``error``) while it waits.
    The first failure is logged (``slurm_held_job_hold_failed``, once per job), and the job
    is asked again at the next look (the watching's, every ``reconcile_s``, or a new plan's
    hold); after ``_HOLD_TRIES`` failures it is cancelled without a hold (``scancel``), not
    left to start as root at its planned time while the holds keep failing. Without the hold
    carbond cannot tell at once whether Slurm started it just before: its end is read by the
    usual paths (unstarted: ended refused; started: its run followed and failed), with the
    refusal's words (``notes.refused``)."""
    key = (current.cluster, current.slurm_id)
    tries = notes.hold_failed.get(key, 0) + 1
    if tries < _HOLD_TRIES:
        notes.hold_failed[key] = tries
        if tries == 1:
            log.warning("slurm_held_job_hold_failed", slurm_id=current.slurm_id,
                        cluster=current.cluster, error=error, reason=why,
                        tries=_HOLD_TRIES)  # fmt: skip
        return
    notes.hold_failed.pop(key, None)
    q.scancel(current)
    own.forget(current.cluster, current.slurm_id)
    reason = (f"{why}; its held Slurm job {current.slurm_id} is cancelled without a hold "
              f"(scontrol hold failed {tries} times: {error})")  # fmt: skip
    notes.refused[key] = reason
    log.warning("slurm_held_job_refused", slurm_id=current.slurm_id, cluster=current.cluster,
                reason=reason, started=None)  # fmt: skip


def cancel_unreleased(
    q: SlurmQueries, current: Token, why: str, *, own: OwnGpus, notes: Notes, now: datetime
) -> Held:
    """Cancel the Slurm job ``current`` that a release refuses (``why``), holding it first:
    its ``BeginTime`` (the planned start) has come, so Slurm may start it any moment; once
    held it cannot. Answered ended (``WHY; its held Slurm job N is cancelled``), or, where
    Slurm had started it before the hold (:meth:`SlurmQueries.hold`: running after it),
    started (``WHY; Slurm started its job N before carbond could hold it: cancelled after
    it started``): that run is followed to its end like any, sacct's times and energy
    recorded, the end failed with those words (:func:`_cancelled_running`). Its GPUs are
    no longer followed (``own``).

    Raises:
        ExecutorError: Slurm cannot be asked, or its row after the hold cannot be read.
    """
    held, row = q.hold(current)
    q.scancel(current)
    own.forget(current.cluster, current.slurm_id)
    if held:
        reason = f"{why}; its held Slurm job {current.slurm_id} is cancelled"
        return Held(current.encode(), ended=EndedUnstarted(reason, by_owner=False, refused=True))
    reason = (f"{why}; Slurm started its job {current.slurm_id} before carbond could hold it: "
              "cancelled after it started")  # fmt: skip
    if row is not None and not is_ended(row.state):  # running: not held, not waiting
        return _cancelled_running(current, reason, row.start or now, notes)
    return Held(current.encode(), ended=EndedUnstarted(reason, by_owner=False, refused=True))


def cancel_started(
    q: SlurmQueries, current: Token, why: str, started: datetime, *, own: OwnGpus,
    notes: Notes, raced: bool = False,
) -> Held:  # fmt: skip
    """Cancel the held Slurm job ``current`` that carbond now refuses (``why``) and that
    Slurm started on its own at its planned start (``started``) before carbond looked (a
    daemon restarted refusing root's jobs after one that allowed them held it): followed as
    a normal run it would run on as root. It ran, so it is answered started, its run
    recorded and its end failed with the refusal's words (:func:`_cancelled_running`);
    ``raced``: Slurm started it between carbond's look and its hold (a withdrawal), said so.
    Its GPUs are no longer followed (``own``).

    Raises:
        ExecutorError: Slurm cannot be asked, or refused the ``scancel``.
    """
    q.scancel(current)
    own.forget(current.cluster, current.slurm_id)
    when = "before carbond could hold it" if raced else "at its planned start before carbond saw it"
    reason = f"{why}; Slurm started its job {current.slurm_id} {when}: cancelled after it started"
    return _cancelled_running(current, reason, started, notes)


def cancel_held_root(
    q: SlurmQueries, held: Sequence[RunHandle], allow_root: bool, *, own: OwnGpus,
    notes: Notes, now: datetime,
) -> dict[str, Held]:  # fmt: skip
    """Of the held jobs ``held``, those of root's, cancelled when root's jobs are not allowed;
    by job id. One Slurm still has waiting is held then cancelled (:func:`cancel_refused`:
    ended, or started when Slurm started it before the hold); one Slurm already started at
    its planned start (while no daemon looked, or before this look) is cancelled running
    (:func:`cancel_started`) and answered started at squeue's start: its run is followed to
    its end like any, sacct's times and energy recorded, the end failed with the refusal's
    words (until 2026-12-07 it ran on as root until the next hold, release or withdrawal).

    Raises:
        ExecutorError: Slurm cannot be asked, or a row of such a job cannot be read (the
            caller asks again next round).
    """
    out: dict[str, Held] = {}
    for handle in held:
        why = refusal(handle.job_id, handle.uid, allow_root)
        if why is None or not handle.token:
            continue
        try:
            current = Token.decode(handle.job_id, handle.token)
        except ExecutorError:  # named once by the watching (slurm_run_token_unreadable)
            continue
        row = known(current, by_id(q.squeue(current.cluster, [current.slurm_id]))
                    .get(current.slurm_id))  # fmt: skip
        if row is None or is_ended(row.state):  # ended: the watching reads how
            continue
        if row.state not in WAITING:  # Slurm started it: cancelled running, its run recorded
            started = row.start or now
            out[handle.job_id] = cancel_started(q, current, why, started, own=own, notes=notes)
        elif (end := cancel_refused(q, current, why, own=own, notes=notes, now=now)) is not None:
            out[handle.job_id] = end
    return out
