"""How runs end, as the service records them: the running jobs polled, their owners' cancel
requests forwarded, and each ended run's end, final state and outcome row recorded.

:class:`Endings` belongs to one :class:`~daemon.service.Service`, which calls it under its lock
with what the service holds at that moment (:class:`EndingContext`: inventory, forecasts,
settings, GPU meter, sites).

Exactly once: the ends one poll reports are computed first (outcome rows and all; kill point
``job_exit`` after each), then committed in one transaction, then logged and counted (kill
point ``job_exit_done`` after the commit, once per end). A daemon killed before the commit
finds those jobs still ``running`` and its executor reports their ends again; one killed after
it finds them ended. The commit writes each table's rows for the whole batch in one statement
(:meth:`daemon.ledger.Ledger.finish_runs`), the rows one at a time would write.

Learning: a succeeded run whose measured energy came from its executor (Slurm's ``sacct``), not
from this node's GPU meter, is folded into the service's recalibration factors
(:class:`~daemon.learning.factors.Learning`) after the commit, so an ending that rolls back teaches
nothing; runs the meter followed are folded by :meth:`JobMeasurement.finished
<daemon.measurement.JobMeasurement.finished>`, once. A restart relearns both from the outcome
rows (:func:`daemon.learning.factors.measured_history`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from daemon import killpoints
from daemon.accounting.finished import estimates_logged, finished_columns
from daemon.accounting.totals import add_expired, add_outcomes
from daemon.busy import BusyDevices
from daemon.endings.rules import NEVER_STARTED_PREFIX, final_state, requester, run_handle
from daemon.endings.stopping import RunStops
from daemon.errors import DaemonError
from daemon.executors.base import Executor, ExitStatus, NotStarted, RunHandle
from daemon.executors.held import HeldJobs
from daemon.inventory import InventoryGpu
from daemon.learning.factors import Learning
from daemon.learning.lessons import executor_lesson as _executor_lesson
from daemon.learning.lessons import run_teaches as _teaches
from daemon.ledger import Ledger, RunEnd, RunRecord, missed_by_run_now
from daemon.logs import dropped
from daemon.measurement import JobMeasurement
from daemon.metrics.sink import MetricsSink
from daemon.planning import spec_or_none
from daemon.run_now_busy import Cut, run_end_cut
from daemon.sites import SiteView
from daemon.sites.outcome import SiteCopies, site_columns
from policies import Device, JobSpec, ZoneIntensity
from policies.fast_init import fast_init
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["EndingContext", "Endings", "Requeue"]

log = structlog.get_logger(__name__)

Requeue = Callable[[ExitStatus, datetime, str], None]
"""The service's requeue of a job its executor took back unstarted: ``(status, now, why)``."""


@dataclass(frozen=True, slots=True)
class EndingContext:
    """What an ending reads from its service, as it is now (a reconfiguration or a lost GPU
    replaces the inventory; a refresh the forecasts; the composition root the meter; the
    learning: where executor-measured runs teach the recalibration factors)."""

    inventory: tuple[InventoryGpu, ...]
    by_device: Mapping[str, InventoryGpu]
    forecasts: Mapping[str, ZoneIntensity]
    lifetime_years: float
    overrun_s: float  # a run past its expected end holds its GPUs this much longer (plan_s)
    measurement: JobMeasurement | None
    learning: Learning
    sites: SiteView | None
    # when a cancel is really sent (live: the wall clock, the service's ``launch_clock``);
    # None: the round's ``now`` (replay and the demo: time moves only between rounds)
    clock: Callable[[], datetime] | None = None
    # the site's GPU catalog (``[catalog]`` applied): the TDP that bounds the energy an
    # executor measured for a run whose GPU left the configuration
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG


class Endings:
    """The run-ending half of the service; the cancels and stops it sends: :attr:`stops`.

    Args:
        ledger: the service's ledger.
        executors: by name (the service's own mapping).
        held: the plans handed to reserving executors (an ended job's is forgotten).
        busy: the planner's devices, kept between rounds (a site's load at an ending).
        metrics: where outcomes and totals go.
        cut: told each recorded end's cut of its job's run-now counterfactual run
            (:func:`daemon.run_now_busy.ending_cut`; None: it runs on whole).
    """

    def __init__(
        self,
        ledger: Ledger,
        executors: Mapping[str, Executor],
        held: HeldJobs,
        busy: BusyDevices,
        metrics: MetricsSink,
        cut: Callable[[str, Cut | None], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._cut = cut
        self._executors = executors
        self._held = held
        self._busy = busy
        self._metrics = metrics
        self.stops = RunStops(ledger, executors)  # cancels sent, runs of lost GPUs stopped
        self._totals: dict[str, float] | None = None  # the ledger's outcome totals
        self._poll_failed: dict[str, str] = {}  # executor -> the poll error logged last

    def take_over(self, previous: Endings) -> None:
        """After a reload: what ``previous`` (the replaced service's) knew of the runs in
        progress that the ledger does not say: the cancels it sent, the runs it was stopping;
        and its running totals of the ledger's outcomes."""
        self.stops.take_over(previous.stops)
        if self._totals is None:  # its running totals: read back, they would count twice
            self._totals = previous._totals
        self._poll_failed.update(previous._poll_failed)

    # -- totals -----------------------------------------------------------------------------

    def load_totals(self) -> None:
        """Read the ledger's totals (at start) and report them; then kept up to date here."""
        self._totals = self._ledger.outcome_totals()
        self._metrics.observe_totals(self._totals)

    def count_expired(self) -> None:
        """One more job expired before it started (a missed deadline), its state committed:
        totals not loaded yet are read from the ledger, which counts it already."""
        if self._totals is None:
            self.load_totals()
            return
        self._totals = add_expired(self._totals)
        self._metrics.observe_totals(self._totals)

    # -- reconciling ------------------------------------------------------------------------

    def reconcile(
        self, runs: Sequence[RunRecord], now: datetime, context: EndingContext, requeue: Requeue
    ) -> list[ExitStatus]:
        """Forward cancel requests to ``runs`` (the active runs, each with a token or not yet
        launched), poll their executors and record the runs that ended, one executor's at a
        time; returns the statuses recorded or skipped (not those requeued)."""
        by_executor: dict[str, list[RunHandle]] = defaultdict(list)
        for run in runs:
            if run.token is not None:
                by_executor[run.executor].append(run_handle(run))
        stops = self.stops
        stops.send_cancels(runs, now, context.clock)
        stops.send_stops(now, context.clock)
        for handle in stops.stopping():
            by_executor[handle.executor].append(handle)
        ended: list[ExitStatus] = []
        for name, handles in by_executor.items():
            executor = self._executors.get(name)
            if executor is None:
                continue
            try:
                statuses = executor.poll(handles, now)
            except (DaemonError, OSError) as exc:  # the jobs stay running; polled again
                if self._poll_failed.get(name) != str(exc):  # once per error, not each round
                    self._poll_failed[name] = str(exc)
                    log.error("executor_poll_failed", executor=name, error=str(exc))
                continue
            self._poll_failed.pop(name, None)
            killpoints.reached("reconcile_polled")
            finished = []
            for status in statuses:
                if stops.stopped(status.job_id):  # its job's end is recorded already
                    continue
                if isinstance(status, NotStarted):  # taken back before it started (again)
                    again = not status.reason.startswith(NEVER_STARTED_PREFIX)  # Slurm requeued
                    requeue(status, now, "its executor took it back " + (
                        "before it ran again" if again else "unstarted"))  # fmt: skip
                    continue
                finished.append(status)
            self.finish(finished, now, context)
            ended.extend(finished)
        return ended

    # -- recording ends ---------------------------------------------------------------------

    def finish(self, statuses: Sequence[ExitStatus], now: datetime, context: EndingContext) -> None:
        """Record how the runs of ``statuses`` ended (their jobs still ``running``; others
        are skipped): each one's outcome row is computed, then all are committed in one
        transaction, then logged and counted."""
        endings: list[_Ending] = []
        ended: set[str] = set()
        estimates_quiet = not estimates_logged()  # asked once, not per job
        for status in statuses:
            if status.job_id in ended:
                continue
            ending = self._ending(status, ended, context, estimates_quiet)
            if ending is not None:
                killpoints.reached("job_exit")
                endings.append(ending)
                ended.add(status.job_id)
        if not endings:
            return
        with self._ledger.transaction():
            self._ledger.finish_runs([e.end for e in endings], now)
        quiet = dropped(__name__, logging.INFO)  # asked once, not bound per event
        counted: list[tuple[Mapping[str, Any], datetime | None]] = []
        for e in endings:
            killpoints.reached("job_exit_done")
            self._ended(e, quiet)
            if e.lesson is not None:  # committed: now it may teach
                context.learning.learn(*e.lesson)
            if self._cut is not None:  # its run-now copy ends as it did (cancelled, failed)
                self._cut(e.end.job_id, run_end_cut(e.end.state, e.status, e.cancel_requested_at,
                                                    e.end.columns))  # fmt: skip
            if e.end.columns:
                counted.append((e.end.columns, e.deadline))
        if not counted:
            return
        if self._totals is None:  # the ledger has their rows now: read, not added again
            self.load_totals()
        else:
            self._totals = add_outcomes(self._totals, counted)
            self._metrics.observe_totals(self._totals)

    def _ending(
        self, status: ExitStatus, ended: set[str], context: EndingContext, estimates_quiet: bool
    ) -> _Ending | None:
        """The end of ``status``'s run as it will be recorded (None: its job is not
        ``running``); ``ended``: the jobs ended before it, in the same transaction."""
        ledger, job_id = self._ledger, status.job_id
        job_state, cancel_requested_at, deadline = ledger.ending_job(job_id)
        if job_state != "running":
            return None
        run = ledger.run(job_id)
        sent_at, by = None, "its owner"
        if cancel_requested_at is not None:  # the first send, recorded (a daemon that sent
            # it may have died since), and who asked
            sent_at = ledger.cancel_sent_at(job_id)
            by = requester(ledger.cancel_requester(job_id))
        state, reason = final_state(status, cancel_requested_at=cancel_requested_at,
                                    cancel_sent_at=sent_at, cancelled_by=by)  # fmt: skip
        decision = ledger.latest_decision(job_id, alternatives=False)  # an end never reads them
        columns: dict[str, Any] = {}
        lesson = None
        if run is not None:
            # the executor knows better when the job really started
            started = status.started_at or run.started_at or run.launched_at
            measured = {}
            teaching = None  # whether it may teach (_teaches), asked only when it could
            if context.measurement is not None:
                teaching = state == "succeeded" and _teaches(run, decision, context)
                spec = spec_or_none(ledger.job(job_id)) if teaching else None
                measured = context.measurement.finished(
                    job_id, started_at=started, finished_at=status.finished_at,
                    decision=decision, forecasts=context.forecasts, job=spec,
                )  # fmt: skip
            if decision is not None:
                gpu = context.by_device.get(run.device_ids[0]) if run.device_ids else None
                columns = finished_columns(
                    ledger, gpu, run, started, decision, status, measured, context.forecasts,
                    context.lifetime_years, quiet=estimates_quiet, by_device=context.by_device,
                    catalog=context.catalog, sites=self._site_copies(run, status, ended, context),
                )  # fmt: skip
                columns = self._at_site(run, started, status, columns, ended, context)
                if "run_now_total_g" in columns and (
                    state != "succeeded" or _missed(ledger, job_id, deadline)
                ):
                    # Work not done saves nothing: its counterfactual is its own grams (the
                    # one stored at submission stays in its decisions). docs/operations.md
                    # Nor does work run-now would have missed (its copy expired waiting).
                    columns["run_now_total_g"] = columns.get("total_g")
                if state == "succeeded" and not measured:  # the meter's runs: folded already
                    lesson = _executor_lesson(ledger, decision, columns, context.inventory)
                    if lesson is not None and not (
                        teaching if teaching is not None else _teaches(run, decision, context)
                    ):
                        lesson = None
        end = RunEnd(job_id, status.finished_at, status.exit_code, status.signal,
                     status.reason or reason, state, reason, columns)  # fmt: skip
        return _Ending(end, status, deadline, lesson, cancel_requested_at)

    def _ended(self, e: _Ending, quiet: bool) -> None:
        """After ``e`` is committed: forget its cancel and hold, log (unless ``quiet``: the
        level drops it), report the outcome to the metrics sink (the totals: per batch)."""
        job_id, columns, status = e.end.job_id, e.end.columns, e.status
        self.stops.forget(job_id)
        self._held.forget(job_id)
        if not quiet:
            log.info("job_finished", job_id=job_id, state=e.end.state, reason=e.end.state_reason,
                     exit_code=status.exit_code, signal=status.signal,
                     energy_j=columns.get("energy_j"),
                     energy_method=columns.get("energy_method"),
                     total_g=columns.get("total_g"))  # fmt: skip
        self._metrics.observe_outcome(job_id, e.end.state, columns.get("total_g"),
                                      columns.get("measured_energy_j"))  # fmt: skip

    def _at_site(
        self,
        run: RunRecord,
        started: datetime,
        status: ExitStatus,
        columns: dict[str, Any],
        ended: set[str],
        context: EndingContext,
    ) -> dict[str, Any]:
        """At a region with a site: the energy split by source and the grams of the split
        (:mod:`daemon.sites.outcome`); elsewhere ``columns`` unchanged. ``ended``: jobs
        whose end is recorded in the same transaction (their GPUs are free)."""
        sites = context.sites
        if sites is None:
            return columns
        site = sites.sites.get(str(columns.get("region")))
        if site is None:
            return columns
        self._observe(sites, run, status, ended, context)
        pv, battery = sites.shares(site.region, started, status.finished_at)
        return site_columns(columns, pv, battery, site.factors)

    def _site_copies(
        self, run: RunRecord, status: ExitStatus, ended: set[str], context: EndingContext
    ) -> SiteCopies | None:
        """The sites for re-pricing ``run``'s run-now copy: advanced to its end when asked
        about a copy at a region with a site (None: no site anywhere)."""
        sites = context.sites
        if not sites:
            return None
        return SiteCopies(sites, lambda: self._observe(sites, run, status, ended, context))

    def _observe(
        self,
        sites: SiteView,
        run: RunRecord,
        status: ExitStatus,
        ended: set[str],
        context: EndingContext,
    ) -> None:
        """Advance ``sites`` to ``run``'s end under the GPUs still running then (``ended``:
        jobs whose end is recorded in the same transaction, their GPUs free)."""
        gone = ended | {run.job_id}  # this run's end is recorded with theirs: all free now
        runs = [r for r in self._ledger.active_runs() if r.job_id not in gone]
        devices = self._busy.devices(context.inventory, runs, status.finished_at,
                                     context.overrun_s)  # fmt: skip
        sites.observe(status.finished_at, devices)


@fast_init
@dataclass(frozen=True, slots=True)
class _Ending:
    """A run's end as it will be recorded, the executor's status, the job's deadline (for the
    totals) and what it teaches the recalibration once committed."""

    end: RunEnd
    status: ExitStatus
    deadline: datetime | None
    lesson: tuple[JobSpec, Device, float, float] | None = None  # taught after the commit
    cancel_requested_at: datetime | None = None  # when its owner asked to cancel it


def _missed(ledger: Ledger, job_id: str, deadline: datetime | None) -> bool:
    """Whether run-now would have missed job ``job_id`` (due at ``deadline``): its stored
    counterfactual starts at or after it (:func:`daemon.ledger.missed_by_run_now`)."""
    if deadline is None:
        return False
    kept = ledger.counterfactual_run(job_id)  # as written, else as the ledger reads it
    if kept is not None:
        return missed_by_run_now(deadline, kept.start)
    read = ledger.counterfactual(job_id)
    return read is not None and missed_by_run_now(deadline, read.get("start"))
