"""How the service starts jobs: a round's ``start`` decisions prepared (executor, GPUs, a run
its executor holds early), written ahead, launched, and their handles recorded.

:class:`Dispatch` belongs to one :class:`~daemon.service.Service`, which calls it under its
lock with what the service holds at that moment (:class:`DispatchContext`: forecasts, GPU
meter, where the jobs' logs go) and tells it how a job that does not start is settled (the
service's requeue, end and failure of an unstarted job).

Write-ahead (exactly once): the ``running`` transitions and run rows of a round's dispatches
are committed in one transaction before any executor is called (kill point
``dispatch_launch`` before each launch), and the executors' handles after, in one transaction,
also when a launch raises (kill point ``dispatch_handle`` after each launch). A daemon killed
in between finds runs without a handle on restart and asks their executors (``adopt`` with an
empty token) whether those jobs started; so a job never starts twice. A launch its executor
could not confirm either way (:class:`~daemon.executors.errors.LaunchUnconfirmedError`:
``sbatch`` got no answer) leaves its run so too, for the next reconcile to ask. Each
transaction writes each table's rows for the whole round in one statement
(:meth:`daemon.ledger.Ledger.start_runs` and :meth:`~daemon.ledger.Ledger.set_runs_started`),
the rows one-by-one calls would write.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from daemon import killpoints
from daemon.endings.finishing import Requeue
from daemon.errors import DaemonError
from daemon.executors.base import Executor, ExitStatus, LaunchSpec, Reserving, RunHandle
from daemon.executors.errors import (
    AnswerUnreadableError,
    CommandMissingError,
    EndNotRecordedError,
    ExecutorUnavailableError,
    HeldJobEndedError,
    JobNotRunnableError,
    LaunchUnconfirmedError,
    RegionClosedError,
)
from daemon.executors.held import HeldJobs
from daemon.executors.wrapper import EXIT_NOT_RUNNABLE
from daemon.inventory import InventoryGpu
from daemon.learning.factors import fine_key
from daemon.ledger import JobRecord, Ledger, RunRecord, RunStart
from daemon.logs import dropped
from daemon.measurement import JobMeasurement
from daemon.planning import spec_or_none
from policies import Alternative, Decision, JobSpec, ZoneIntensity
from policies.fast_init import fast_init
from policies.footprint.recalibration import Recalibration

__all__ = [
    "Dispatch",
    "DispatchContext",
    "FailUnstarted",
    "Finish",
    "Launch",
    "job_log_dir",
    "launch_spec",
]

log = structlog.get_logger(__name__)

Finish = Callable[[ExitStatus, datetime], None]
"""The service's record of how a started job's run ended: ``(status, now)``."""

FailUnstarted = Callable[[JobRecord, datetime, str], None]
"""The service's end of a job that cannot be started: ``(job, now, reason)``."""


@dataclass(frozen=True, slots=True)
class DispatchContext:
    """What a launch reads from its service, as it is now (a refresh replaces the forecasts,
    the composition root the meter, a reconfiguration the state directory)."""

    forecasts: Mapping[str, ZoneIntensity]
    measurement: JobMeasurement | None
    state_dir: Path
    recalibration: Recalibration | None = None  # the factors the round was planned with


@fast_init
@dataclass(frozen=True, slots=True)
class Launch:
    """A job the round dispatches: the decision acted on, its executor and GPUs, the run its
    executor already holds for it (Slurm), if any, and the planner's spec of it (None: parsed
    from its request where a launch needs it)."""

    job: JobRecord
    decision: Decision
    chosen: Alternative
    executor: Executor
    gpus: tuple[InventoryGpu, ...]
    held: RunRecord | None
    indices: tuple[int, ...]  # the GPUs' indices on their node
    spec: JobSpec | None = None

    def job_spec(self) -> JobSpec | None:
        """The planner's spec of the job, else :func:`daemon.planning.spec_or_none`'s."""
        return self.spec if self.spec is not None else spec_or_none(self.job)


class Dispatch:
    """The dispatching half of the service.

    Args:
        ledger: the service's ledger.
        executors: by name (the service's own mapping).
        held: the plans handed to reserving executors (a started job's is forgotten).
        requeue: the service's requeue of a job whose executor cannot be reached.
        finish: the service's record of a run that ended (a launch that failed).
        fail: the service's end of a job that cannot be dispatched (no such executor).
    """

    def __init__(
        self,
        ledger: Ledger,
        executors: Mapping[str, Executor],
        held: HeldJobs,
        *,
        requeue: Requeue,
        finish: Finish,
        fail: FailUnstarted,
    ) -> None:
        self._ledger = ledger
        self._executors = executors
        self._held = held
        self._requeue = requeue
        self._finish = finish
        self._fail = fail

    def prepare(
        self,
        job: JobRecord,
        decision: Decision,
        by_device: Mapping[str, InventoryGpu],
        now: datetime,
        spec: JobSpec | None = None,
    ) -> Launch | None:
        """What dispatching ``job`` on ``decision``'s chosen devices (all in ``by_device``)
        takes: its executor, GPUs and any run held for it early (None: it cannot be
        dispatched now; a job without an executor has failed). ``spec``: the planner's view
        of ``job`` (its request's, so a launch does not parse the request again)."""
        chosen = decision.chosen
        assert chosen is not None
        gpus = tuple(by_device[d] for d in chosen.device_ids)
        executor = self._executors.get(gpus[0].executor)
        if executor is None:
            self._fail(job, now, f"no executor {gpus[0].executor!r} is configured")
            return None
        held = self._ledger.run(job.job_id) if self._held.active else None  # handed over early
        if held is not None and held.executor != executor.name:
            if not self._held.withdraw(job.job_id, now):
                return None
            held = None
        indices = tuple(g.index for g in gpus)
        return Launch(job, decision, chosen, executor, gpus, held, indices, spec)

    def launch(
        self, prepared: Sequence[Launch], now: datetime, context: DispatchContext
    ) -> list[str]:
        """Dispatch the round's ``prepared`` jobs, write-ahead (module docstring); returns
        the jobs started."""
        if not prepared:
            return []
        with self._ledger.transaction():
            self._ledger.start_runs([_run_start(item) for item in prepared], now)
        launched: list[tuple[Launch, RunHandle]] = []
        log_dir = job_log_dir(context.state_dir)
        try:
            for item in prepared:
                killpoints.reached("dispatch_launch")
                handle = self._start(item, log_dir, now, context.recalibration)
                if handle is not None:
                    self._held.forget(item.job.job_id)
                    killpoints.reached("dispatch_handle")
                    launched.append((item, handle))
        finally:
            if launched:
                with self._ledger.transaction():
                    self._ledger.set_runs_started(
                        [(item.job.job_id, h.token, h.started_at) for item, h in launched]
                    )
        quiet = dropped(__name__, logging.INFO)  # asked once, not bound per event
        measurement = context.measurement
        for item, _ in launched:
            chosen = item.chosen
            if not quiet:
                log.info("job_dispatched", job_id=item.job.job_id,
                         executor=item.executor.name, devices=list(chosen.device_ids),
                         gpu=chosen.gpu, region=chosen.region)  # fmt: skip
            if measurement is not None:
                measurement.started(item.job.job_id, list(item.gpus), item.decision, now,
                                    context.forecasts, job=item.job_spec())  # fmt: skip
        return [item.job.job_id for item, _ in launched]

    def _start(
        self, item: Launch, log_dir: Path, now: datetime, learned: Recalibration | None
    ) -> RunHandle | None:
        """Launch (or release, when its executor holds it) one recorded run; None when it
        did not start (requeued: the executor cannot be reached; failed: it refused, or its
        argv, environment or a path could not be used: ``ValueError``) or may
        have (:class:`LaunchUnconfirmedError`: its run stays without a token, and the next
        reconcile asks the executor, as after a crash mid-launch, whether it started)."""
        job, executor = item.job, item.executor
        spec = launch_spec(job, item.chosen, item.indices, log_dir,
                           _raw_duration_s(item, learned))  # fmt: skip
        try:
            if item.held is not None and isinstance(executor, Reserving):
                token = item.held.token or ""
                new = not token and self._held.unsent(job.job_id)  # its hand-overs all failed
                return executor.release(spec, token, now, new=new)
            return executor.launch(spec, now)
        except HeldJobEndedError as exc:  # cancelled in Slurm while held: no run happened
            self._held.ended_unstarted(job.job_id, exc.ended, now)
        except ExecutorUnavailableError as exc:  # e.g. Slurm down: the job waits, not fails
            if item.held is not None:
                self._unreleased(job.job_id, executor.name, now, exc)
            elif isinstance(exc, LaunchUnconfirmedError):  # it may have started: looked up
                log.warning("job_launch_unconfirmed", job_id=job.job_id,
                            executor=executor.name, error=str(exc))  # fmt: skip
            else:
                status = ExitStatus(job.job_id, now, None, None, str(exc))
                self._requeue(status, now, _unavailable(executor.name, exc))
        except JobNotRunnableError as exc:  # its own fault: run-now's copy fails at its start
            self._finish(ExitStatus(job.job_id, now, EXIT_NOT_RUNNABLE, None,
                                    f"launch failed: {exc}", not_runnable=True), now)  # fmt: skip
        except (DaemonError, OSError) as exc:
            self._finish(ExitStatus(job.job_id, now, None, None, f"launch failed: {exc}"), now)
        except ValueError as exc:  # subprocess's, os's: a word no argv, env or path can hold
            why = f"launch failed: {executor.name} cannot start it with what it was given: {exc}"
            self._finish(ExitStatus(job.job_id, now, None, None, why), now)
        return None

    def _unreleased(
        self, job_id: str, executor: str, now: datetime, exc: ExecutorUnavailableError
    ) -> None:
        """A held job its executor could not release now: queued again with its run row (and
        token) kept, so the job stays held there and the next round releases, moves or
        withdraws that one; a requeue that forgot it would submit it a second time. Either
        the executor cannot be reached, or its job left its queue and its accounting has not
        recorded how it ended yet (:class:`EndNotRecordedError`: Slurm's sacct, asked again
        each round for up to a minute), or it answered but its row of the job could not be
        read (:class:`AnswerUnreadableError`: cut short). Logged once per job and error, not
        every round."""
        if isinstance(exc, EndNotRecordedError):
            reason = (
                f"requeued: waiting for {executor} accounting to record how its job ended ({exc})"
            )
        elif isinstance(exc, AnswerUnreadableError):
            reason = f"requeued: {executor}'s answer about its job could not be read ({exc})"
        elif isinstance(exc, CommandMissingError):  # its message is the whole reason
            reason = f"requeued: {_unavailable(executor, exc)}"
        else:
            reason = f"requeued: {_unavailable(executor, exc)} ({exc})"
        with self._ledger.transaction():
            self._ledger.transition(job_id, "queued", now, reason)
        self._held.failed("job_release_failed", job_id, str(exc), warning=True, executor=executor)


def _unavailable(executor: str, exc: ExecutorUnavailableError) -> str:
    """Why a job ``executor`` could not start now waits (its requeue's reason)."""
    if isinstance(exc, RegionClosedError):  # a partition drained: not Slurm unreachable
        return f"{executor} takes no jobs in its region now"
    if isinstance(exc, CommandMissingError):  # this host's configuration, named in exc
        return f"{executor} {exc}"
    return f"{executor} cannot be reached"


def _raw_duration_s(item: Launch, learned: Recalibration | None) -> float | None:
    """``item``'s planned duration without the learned duration factor the planner used (the
    one ``learned`` has in use for its model on its GPU type with its runtime and precision);
    None when no factor applies."""
    if learned is None or not learned.factors:
        return None
    spec = item.job_spec()
    if spec is None:
        return None
    served_on = item.gpus[0].device.gpu  # the precision is the one served there
    factor = learned.duration_factor(spec.model.name, item.chosen.gpu, *fine_key(spec, served_on))
    return None if factor == 1.0 else item.chosen.duration_s / factor


def _run_start(item: Launch) -> RunStart:
    """The ledger's record of ``item``'s launch about to happen."""
    job, chosen, held = item.job, item.chosen, item.held
    return RunStart(
        job.job_id, job.state, f"dispatched: {item.decision.reason}", item.executor.name,
        chosen.device_ids, item.indices, chosen.duration_s, held=held is not None,
        token=held.token if held is not None else None,
    )  # fmt: skip


def launch_spec(
    job: JobRecord, chosen: Alternative, indices: tuple[int, ...], log_dir: Path,
    raw_duration_s: float | None = None,
) -> LaunchSpec:  # fmt: skip
    """What an executor is asked to run: ``job`` on ``chosen``'s devices (``indices`` on
    their node), its logs under ``log_dir``; ``raw_duration_s``: see :class:`LaunchSpec`."""
    return LaunchSpec(
        job_id=job.job_id,
        argv=job.request.command,
        uid=job.uid,
        gid=job.gid,
        gpu_indices=indices,
        log_dir=log_dir,
        env={"CARBOND_JOB_ID": job.job_id},
        expected_duration_s=chosen.duration_s,
        raw_duration_s=raw_duration_s,
        region=chosen.region,
        device_ids=chosen.device_ids,
        name=job.request.name,
        cwd=job.request.cwd,
    )


@functools.lru_cache(maxsize=4)
def job_log_dir(state_dir: Path) -> Path:
    """Where the jobs' logs go (a path joined once per state dir, not once per launch)."""
    return state_dir / "logs"
