"""Jobs handed to a :class:`~daemon.executors.base.Reserving` executor (Slurm) before their
planned start: held there (visible to its users, e.g. in ``squeue``), moved in place when a new
plan moves them, taken back when they are no longer planned on it, and recorded as running when
the executor started one on its own at its planned start.

The service owns one :class:`HeldJobs`; it does nothing when no executor reserves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import structlog

from daemon import killpoints
from daemon.errors import DaemonError
from daemon.executors.base import (
    EndedUnstarted,
    Executor,
    Held,
    LaunchSpec,
    Reserving,
    RunHandle,
    WatchingHeld,
)
from daemon.executors.errors import LaunchUnconfirmedError
from daemon.inventory import InventoryGpu
from daemon.ledger import JobRecord, Ledger
from daemon.metrics.sink import MetricsSink, NullMetrics
from daemon.planning import compared_start
from daemon.run_now_busy import Cut, unstarted_cut
from daemon.states import WAITING_STATES
from policies import Alternative, Decision

__all__ = ["CutCopy", "HeldJobs", "SpecFor"]

log = structlog.get_logger(__name__)

CutCopy = Callable[[str, Cut | None], None]
"""How the service cuts a job's run-now counterfactual run (:meth:`RunNowBusy.cut
<daemon.run_now_busy.RunNowBusy.cut>` of the service's current copies)."""

SpecFor = Callable[[JobRecord, Alternative, tuple[int, ...]], LaunchSpec]
"""How the service builds a job's launch spec for a planned alternative and its GPU indices."""


class HeldJobs:
    """The plans handed to reserving executors, by job id."""

    def __init__(
        self,
        ledger: Ledger,
        executors: Mapping[str, Executor],
        metrics: MetricsSink | None = None,
        *,
        cut: CutCopy | None = None,
    ) -> None:
        """``cut``: how a held job its executor's scheduler ended cuts its run-now copy
        (:meth:`ended_unstarted`; None: no copies are kept)."""
        self._ledger = ledger
        self._executors = executors
        self._metrics: MetricsSink = metrics or NullMetrics()
        self._cut = cut
        self._held: dict[str, tuple[str, datetime | None, tuple[str, ...]]] = {}  # plan handed
        self._failures: dict[tuple[str, str], str] = {}  # (event, job id): the error logged
        # jobs whose run row (no token) this process wrote and no hand-over of which can have
        # reached the executor: none of them is looked for in its accounting
        self._unsent: set[str] = set()
        self.active = any(isinstance(e, Reserving) for e in executors.values())

    def forget(self, job_id: str) -> None:
        """The job started or ended: nothing of it is held any more."""
        self._held.pop(job_id, None)
        self._unsent.discard(job_id)
        self._answered(job_id)

    def _answered(self, job_id: str) -> None:
        """The executor took a hand-over or withdrawal of the job: the failures logged of it
        are over, so the same error in a later outage is logged again."""
        for event in ("job_hold_failed", "job_withdraw_failed", "job_release_failed"):
            self._failures.pop((event, job_id), None)

    def unsent(self, job_id: str) -> bool:
        """Whether ``job_id``'s run row (no token) was written by this process and no
        hand-over of it can have reached its executor (all of them failed before sending)."""
        return job_id in self._unsent

    def failed(
        self, event: str, job_id: str, error: str, *, warning: bool = False, **fields: object
    ) -> None:
        """A hand-over, withdrawal or release that failed (tried again next round), logged once
        per job and error (as an error, or a ``warning``), not every round: a misconfigured
        executor (Slurm without ``SLURM_CONF``) fails the same way each time."""
        if self._failures.get((event, job_id)) != error:
            self._failures[event, job_id] = error
            (log.warning if warning else log.error)(event, job_id=job_id, error=error, **fields)

    def keep(
        self,
        job: JobRecord,
        decision: Decision,
        by_device: Mapping[str, InventoryGpu],
        spec_for: SpecFor,
        now: datetime,
    ) -> None:
        """After a decision other than "start now": hand the planned job to a reserving
        executor or move it there; take it back when it is no longer planned on one."""
        if not self.active:
            return
        chosen = decision.chosen
        first = by_device.get(chosen.device_ids[0]) if chosen else None
        executor = self._executors.get(first.executor) if first is not None else None
        if decision.action != "hold" or chosen is None or not isinstance(executor, Reserving):
            self.withdraw(job.job_id, now)
            return
        # a plan to start now stays where the first such round put it (compared_start)
        key = (executor.name, compared_start("hold", chosen.start, now), chosen.device_ids)
        known = set(chosen.device_ids) <= by_device.keys()
        if self._held.get(job.job_id) == key or not known:
            return
        run = self._ledger.run(job.job_id)
        if run is not None and run.executor != executor.name:
            if not self.withdraw(job.job_id, now):
                return
            run = None
        indices = tuple(by_device[d].index for d in chosen.device_ids)
        if run is None:  # write-ahead: a daemon dying now leaves a row without a token
            with self._ledger.transaction():
                self._ledger.add_run(job.job_id, executor.name, chosen.device_ids, indices,
                                     chosen.duration_s, now)  # fmt: skip
            self._unsent.add(job.job_id)
        token = (run.token or "") if run is not None else ""
        new = not token and job.job_id in self._unsent
        try:
            spec = spec_for(job, chosen, indices)
            held = executor.hold(spec, chosen.start, token, now, new=new)
        except (DaemonError, OSError) as exc:  # tried again next round
            if isinstance(exc, LaunchUnconfirmedError):  # it may have the job: looked up in full
                self._unsent.discard(job.job_id)
            self.failed("job_hold_failed", job.job_id, str(exc), executor=executor.name)
            return
        self._answered(job.job_id)
        self._unsent.discard(job.job_id)
        if held.ended is not None:
            self.ended_unstarted(job.job_id, held.ended, now)
            return
        killpoints.reached("hold_handed")
        with self._ledger.transaction():
            self._ledger.drop_run(job.job_id)
            self._ledger.add_run(job.job_id, executor.name, chosen.device_ids, indices,
                                 chosen.duration_s, now)  # fmt: skip
            self._ledger.set_run_token(job.job_id, held.token)
        self._held[job.job_id] = key
        log.info("job_held", job_id=job.job_id, executor=executor.name, region=chosen.region,
                 devices=list(chosen.device_ids), start=chosen.start.isoformat())  # fmt: skip
        if held.started_at is not None:
            self._started_by_executor(job.job_id, held.token, held.started_at, now)

    def withdraw(self, job_id: str, now: datetime) -> bool:
        """Take a held job back from its executor (its run row goes). False when that cannot
        be done now (retried next round), the executor had ended the job unstarted (which is
        then ended, :meth:`ended_unstarted`) or had already started it, which is then recorded
        as running (with the token the executor found it by, when the run
        row has none: a hand-over the daemon died in, or one its executor never confirmed)."""
        if not self.active:
            return True
        self._held.pop(job_id, None)
        run = self._ledger.run(job_id)
        if run is None:
            return True
        executor = self._executors.get(run.executor)
        unsent = not run.token and job_id in self._unsent  # nothing to take back
        self._unsent.discard(job_id)
        if isinstance(executor, Reserving) and not unsent:
            try:
                uid = self._ledger.job(job_id).uid
                started = executor.withdraw(job_id, run.token or "", now, uid=uid)
            except (DaemonError, OSError) as exc:
                self.failed("job_withdraw_failed", job_id, str(exc))
                return False
            self._answered(job_id)
            if started is not None and started.ended is not None:
                self.ended_unstarted(job_id, started.ended, now)
                return False
            if started is not None:
                at = started.started_at or now
                self._started_by_executor(job_id, started.token, at, now)
                return False
        with self._ledger.transaction():
            self._ledger.drop_run(job_id)
        return True

    def watch(self, now: datetime) -> None:
        """Between plans: end each held job its executor's scheduler ended before it started
        (its owner ``scancel``-ed it in Slurm), :meth:`ended_unstarted`, rather than leave it
        ``planned`` until its plan changes or its start comes; one it answers started (it
        stopped a job it now refuses just after its scheduler started it) is ``running``,
        its end read by the executor's poll like any run's. An executor that cannot be asked
        now is asked again next time (``held_watch_failed``, logged once per error)."""
        if not self.active:
            return
        by_executor: dict[str, list[RunHandle]] = {}
        for run in self._ledger.runs(WAITING_STATES, owners=True).values():
            if run.token:
                handle = RunHandle(run.job_id, run.executor, run.token, run.launched_at,
                                   uid=run.uid)  # fmt: skip
                by_executor.setdefault(run.executor, []).append(handle)
        for name, handles in by_executor.items():
            executor = self._executors.get(name)
            if not isinstance(executor, WatchingHeld):
                continue
            try:
                ended = executor.ended_held(handles, now)
            except (DaemonError, OSError) as exc:  # asked again next time, logged once
                if self._failures.get(("held_watch_failed", name)) != str(exc):
                    self._failures["held_watch_failed", name] = str(exc)
                    log.error("held_watch_failed", executor=name, error=str(exc))
                continue
            self._failures.pop(("held_watch_failed", name), None)
            for job_id, end in sorted(ended.items()):
                if isinstance(end, Held):  # it ran: its end comes from the executor's poll
                    self._started_by_executor(job_id, end.token, end.started_at or now, now)
                else:
                    self.ended_unstarted(job_id, end, now)

    def ended_unstarted(self, job_id: str, ended: EndedUnstarted, now: datetime) -> None:
        """A held job its executor's scheduler ended before it ever started (a ``scancel`` of
        the pending Slurm job): no run happened, so none is recorded; the job is ``cancelled``
        when its owner ended it, else ``failed``, with the scheduler's words; one the executor
        cancelled as it would now refuse it (``refused``) fails as a refused launch does
        (``launch failed: <the refusal>``). Its run-now copy ends as that of a job carbond
        ended before it started (:func:`daemon.run_now_busy.unstarted_cut`): cancelled at its
        owner's ``scancel``, run whole when it failed."""
        self.forget(job_id)
        state = "cancelled" if ended.by_owner else "failed"
        who = "its owner" if ended.by_owner else "someone else"
        reason = f"ended in its executor by {who} before it started ({ended.reason})"
        if ended.refused:
            reason = f"launch failed: {ended.reason}"
        with self._ledger.transaction():
            self._ledger.drop_run(job_id)
            job = self._ledger.job(job_id)
            ends = job.state in (*WAITING_STATES, "running")
            if ends:
                self._ledger.transition(job_id, state, now, reason)
        log.warning("job_ended_unstarted", job_id=job_id, state=state, reason=ended.reason)
        if ends:  # a final state, counted as any other
            if self._cut is not None:
                cut = unstarted_cut(
                    state, ended_at=now, cancel_requested_at=job.cancel_requested_at
                )
                self._cut(job_id, cut)
            self._metrics.observe_outcome(job_id, state, None)

    def _started_by_executor(self, job_id: str, token: str, at: datetime, now: datetime) -> None:
        """A held job its executor started on its own at the planned start: now running (its
        grams counted, :meth:`_observe_started`)."""
        if self._ledger.job(job_id).state not in WAITING_STATES:
            return
        self._observe_started(job_id)
        with self._ledger.transaction():
            self._ledger.transition(job_id, "running", now, "started at its planned start")
            self._ledger.set_run_started(job_id, token, at)
        self._held.pop(job_id, None)
        log.info("job_dispatched", job_id=job_id, started_at=at.isoformat(), held=True)

    def _observe_started(self, job_id: str) -> None:
        """Count the grams of a job its executor starts on its own, as a ``start`` decision's
        are (``daemon.service.plan_round._observe``): once per job, at its first start, so
        none when a start decision was recorded for it or it ran before (Slurm requeued it
        and it was held again). Its plan's expected grams are those of its latest decision (the
        hold it was handed over with); its run-now grams those of the counterfactual stored
        at submission, or its own expected grams where run-now would have missed its
        deadline (it claims no saving)."""
        if type(self._metrics) is NullMetrics:  # (the ledger is not read for a sink that drops it)
            return
        ledger = self._ledger
        if ledger.start_decisions(job_id) or ledger.ever_running(job_id):
            return
        latest = ledger.latest_decision(job_id, alternatives=False)
        if latest is None:
            return
        expected_g = latest.expected_total_g
        run_now_g = ledger.run_now_claim_g(
            job_id, ledger.job(job_id).deadline, expected_g, latest.run_now_total_g, None
        )
        self._metrics.observe_started(latest.policy, expected_g, run_now_g)
