"""The :class:`Service` itself: its parts, its lifecycle and the steps of a round.

:meth:`Service.tick` runs one round at ``now`` (ingest, refresh intensity when due, plan and
dispatch, reconcile); the loop fires the public steps on their own intervals. The concepts a
step calls on live in the package's other modules (:mod:`daemon.service`), all over this one
object's state, handed to them (its public attributes, or the parts a step uses:
:class:`~daemon.service.plan_round.RoundParts`), and under its one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from daemon.endings.finishing import EndingContext, Endings
from daemon.errors import StoppingError
from daemon.executors.base import CapacityAware, Discovering, Executor, ExitStatus
from daemon.executors.held import HeldJobs
from daemon.intensity.providers import IntensityProvider
from daemon.inventory import InventoryGpu
from daemon.learning.checkpoint import CHECKPOINT_EVERY_RUNS
from daemon.learning.factors import Learning
from daemon.ledger import JobRecord, Ledger
from daemon.measurement import JobMeasurement
from daemon.metrics.sink import MetricsSink, NullMetrics
from daemon.queue.ingest import Queue
from daemon.queue.reader import IngestResult
from daemon.run_now_busy import Cut
from daemon.service import gpus, problems, refresh, succession, unstarted
from daemon.service.checkpointing import LearningCheckpoint
from daemon.service.dispatch import Dispatch
from daemon.service.memory import PlanMemory
from daemon.service.overdue import Overdue
from daemon.service.plan_round import RoundParts, plan_round
from daemon.service.reconcile import ReconcileParts, reconcile_round
from daemon.settings import Settings
from daemon.sites import SiteView
from daemon.sites.view import SITES_NAME
from daemon.supervision.health import HEALTH_NAME, Health
from policies import Decision, Policy, ZoneIntensity
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog

__all__ = ["Service", "TickReport"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one :meth:`Service.tick` did."""

    ingested: int
    rejected: int
    decisions: int
    started: tuple[str, ...]
    finished: tuple[str, ...]


class Service:
    """The daemon's core, built by a composition root from injected parts.

    Args:
        settings: the settings tree (state dir, intervals, intensity horizon).
        ledger: the open ledger (owned by the caller, who closes it).
        queue: the queue files of ``settings.state_dir``.
        executors: by name; a region's ``executor`` picks one.
        inventory: the GPUs jobs may run on.
        intensity: the forecast source.
        policy: the planner.
        metrics: where counters go (default: nowhere).
        on_close: called by :meth:`close` (resources built for this service alone).
        measurement: GPU energy per job and lost GPUs on this node (None: nothing measured).
        learning: the recalibration factors learned so far (default: none; a reload passes the
            previous service's). With a measurement, the measurement's are used instead.
        catalog: the GPU catalog (GPUs of a region discovered later; TDPs bounding energy).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        queue: Queue,
        executors: Mapping[str, Executor],
        inventory: Sequence[InventoryGpu],
        intensity: IntensityProvider,
        policy: Policy,
        metrics: MetricsSink | None = None,
        on_close: Sequence[Callable[[], None]] = (),
        measurement: JobMeasurement | None = None,
        sites: SiteView | None = None,
        learning: Learning | None = None,
        catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.queue = queue
        self.executors = dict(executors)
        # asked once (an isinstance check against a runtime Protocol costs ~15 us a round)
        self._capacity_aware = [e for e in self.executors.values() if isinstance(e, CapacityAware)]
        self.discovering = {n: e for n, e in self.executors.items() if isinstance(e, Discovering)}
        self.catalog = catalog
        self.inventory = tuple(inventory)
        self.intensity = intensity
        self.policy = policy
        self.metrics: MetricsSink = metrics or NullMetrics()
        self._on_close = tuple(on_close)
        self.measurement = measurement
        self._learning = learning or Learning()
        self.sites = sites
        self._by_device = {gpu.device_id: gpu for gpu in self.inventory}
        # GPUs a reload took out of the inventory that runs still hold (:meth:`take_over_runs`)
        self._departed: dict[str, InventoryGpu] = {}
        self._memory = PlanMemory()  # what the planning rounds keep between them
        # the plans handed to Slurm
        self._held = HeldJobs(ledger, self.executors, self.metrics, cut=self._cut_counterfactual)
        self._endings = Endings(ledger, self.executors, self._held, self._memory.busy,
                                self.metrics, cut=self._cut_counterfactual)  # fmt: skip
        # health.json's problem lines
        self._problems = problems.Problems(self.executors, self._endings)
        self._dispatch = Dispatch(ledger, self.executors, self._held, requeue=self._requeue,
                                  finish=self._finish, fail=self._fail_unstarted)  # fmt: skip
        self._overdue = Overdue()  # running jobs past their deadline, each reported once
        self._lock = threading.RLock()
        self.health = Health()  # what `carbond doctor` shows (health.json)
        self._checkpoint = LearningCheckpoint()  # moved on by reconcile, once due:
        self.checkpoint_every_runs = CHECKPOINT_EVERY_RUNS  # measured runs past it
        # Live (``carbond run``): the wall clock, read once a round's planning is done, so its
        # launches start when they do, not when the round began (a plan of many jobs, or the
        # first one, takes seconds: a simulated run would end that much early, one shorter than
        # the plan at once); and when health.json is written, after each step. None: the
        # round's ``now`` (replay and the demo: time moves only between rounds).
        self.launch_clock: Callable[[], datetime] | None = None

    @property
    def learning(self) -> Learning:
        """What measured outcomes taught (:mod:`daemon.learning.factors`): the measurement's when
        this node meters GPUs (it folds its runs there), else the service's own."""
        return self.measurement.learning if self.measurement is not None else self._learning

    @property
    def forecasts(self) -> Mapping[str, ZoneIntensity]:
        """Each zone's forecast as of the last refresh (:meth:`refresh_intensity` fills it)."""
        return self._memory.forecasts

    @property
    def by_device(self) -> Mapping[str, InventoryGpu]:
        """The inventory's GPUs by device id (a lost GPU or a late region's replace it)."""
        return self._by_device

    def set_inventory(self, inventory: Iterable[InventoryGpu], *, refresh: bool = False) -> None:
        """The GPUs jobs may run on are now ``inventory`` (a GPU lost or discovered late, a
        reload). ``refresh``: fetch every zone's forecast before the next plan (new zones)."""
        self.inventory = tuple(inventory)
        self._by_device = {gpu.device_id: gpu for gpu in self.inventory}
        if refresh:
            self._memory.last_refresh = None

    # -- lifecycle --------------------------------------------------------------------------

    def before_step(self, step: str, now: datetime, allowance_s: float) -> None:
        """The loop begins ``step`` at ``now``, which may take ``allowance_s``
        (:func:`daemon.supervision.health.step_allowance_s`): ``health.json`` says so, so a step
        longer than doctor's 90 s reads as a step in progress, not a stuck daemon, until that
        allowance is spent. Never raises."""
        self.health.begin_step(step, now, allowance_s)
        self.health.write(self.settings.state_dir / HEALTH_NAME, now)

    def after_step(self, step: str, error: BaseException | None, now: datetime) -> None:
        """The loop's report of a step that began at ``now``: a failure (or its end) goes into
        ``health.json``, which is then written if anything changed, stamped with the time it is
        written (live: :attr:`launch_clock`; a slow step's start would read as a stuck daemon
        to ``carbond doctor``). A step given up at a stop (:class:`~daemon.errors.StoppingError`,
        logged ``step_abandoned``) is no problem, nor the end of one: the step's entry stays as
        it was (until 2026-12-07 the stop was recorded as the step failing). Never raises."""
        self.health.end_step()
        if error is None:
            self.health.clear(f"step:{step}")
        elif not isinstance(error, StoppingError):
            self.health.set(f"step:{step}", f"{type(error).__name__}: {error}", now)
        self._problems.report(self, now)
        written_at = now if self.launch_clock is None else self.launch_clock()
        self.health.write(self.settings.state_dir / HEALTH_NAME, written_at)
        if self.sites:  # each battery's charge, for the next daemon
            self.sites.save(self.settings.state_dir / SITES_NAME, now)

    def clock_stepped(self, step_s: float, now: datetime) -> None:
        """The loop saw the wall clock jump ``step_s`` seconds (negative: back) against the
        monotonic clock; kept in the health file for an hour."""
        direction = "back" if step_s < 0 else "forward"
        self.health.set("clock", f"wall clock stepped {direction} {abs(step_s):.0f} s at "
                        f"{now.isoformat()}: deadlines and planned starts follow the new time",
                        now, for_s=3600.0)  # fmt: skip

    def start(self, now: datetime) -> None:
        """Prepare the queue files and take up what the daemon before left: the jobs it left
        running, the learned factors, the totals, the batteries' charge
        (:func:`daemon.service.succession.start`)."""
        with self._lock:
            succession.start(self, now, self._memory.run_now_busy, self._endings, self._requeue,
                             self._finish)  # fmt: skip
            log.info("service_started", jobs=self.ledger.counts_by_state(),
                     devices=len(self.inventory), policy=self.policy.name)  # fmt: skip

    def reconfigure(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        inventory: Sequence[InventoryGpu] | None = None,
        intensity: IntensityProvider | None = None,
    ) -> None:
        """Swap in new settings (SIGHUP) and, when given, a new policy, inventory or intensity
        source. Jobs keep running; the next plan uses the new parts."""
        with self._lock:
            self.settings = settings
            self.policy = policy or self.policy
            self.intensity = intensity or self.intensity
            if inventory is not None:
                before = {**self._departed, **self._by_device}
                self.set_inventory(inventory)
                self._departed = gpus.departed(self.ledger, self._by_device, before)
            self._memory.forget_forecasts()
            log.info("service_reconfigured", policy=self.policy.name, devices=len(self.inventory))

    def take_over_runs(self, previous: Service) -> None:
        """After a reload built this service: what ``previous`` held of the runs in progress.
        The GPUs its inventory listed that this one does not (their region or GPU removed)
        and runs still hold, so those runs' ends are recorded with their GPU (zone, PUE,
        estimated energy and grams; never planned on); the cancels it sent and the runs of
        lost GPUs it was stopping (:meth:`daemon.endings.finishing.Endings.take_over`), its overdue
        runs already reported, and what its planning rounds keep that the ledger would be read
        for job by job in the first plan (:meth:`daemon.service.memory.PlanMemory.take_over`),
        and the ``health.json`` problems its reports set (cleared once no longer reported)."""
        with self._lock:
            known = {**previous._departed, **previous._by_device}
            self._departed = gpus.departed(self.ledger, self._by_device, known)
            self._endings.take_over(previous._endings)
            self._overdue.take_over(previous._overdue)
            self._memory.take_over(previous._memory)
            self._problems.take_over(previous._problems)

    def close(self) -> None:
        """Run the ``on_close`` callbacks (e.g. the signal chain's HTTP session). The ledger
        and executors belong to the composition root, which closes them. Each battery's
        charge is written for the next daemon."""
        for callback in self._on_close:
            callback()
        if self.sites:
            self.sites.save(self.settings.state_dir / SITES_NAME)

    # -- the round --------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """One round: ingest, reconcile (a GPU whose run ended by ``now`` is free for the
        plan), refresh intensity when due, plan and dispatch, reconcile again (what the plan
        started or found, and the cancels read with it), as the live loop's frequent
        reconcile step would."""
        with self._lock:
            ingested = self.ingest(now)
            finished = self.reconcile(now)
            if self.refresh_due(now):
                self.refresh_intensity(now)
            decisions, started = plan_round(self, self._round_parts(), now)
            finished += self.reconcile(now)
            return TickReport(len(ingested.accepted), ingested.rejected, len(decisions),
                              tuple(started), tuple(s.job_id for s in finished))  # fmt: skip

    def refresh_due(self, now: datetime) -> bool:
        """Whether ``intervals.refresh_s`` has passed since the last refresh."""
        return self._memory.refresh_due(now, self.settings.intervals.refresh_s)

    def ingest(self, now: datetime) -> IngestResult:
        """Ingest new queue lines (exactly once). A cancel read cancels its job's run-now
        counterfactual run at once (:mod:`daemon.run_now_busy`: run-now's copy is cancelled
        when the cancel is read, whenever the job itself ends)."""
        with self._lock:
            result = self.queue.ingest(now)
            for job_id in result.cancels:
                cancel_requested_at = self.ledger.ending_job(job_id)[1]  # None: it had ended
                if cancel_requested_at is not None:
                    self._memory.run_now_busy.cut(job_id, Cut(at=cancel_requested_at))
            return result

    def refresh_intensity(self, now: datetime) -> None:
        """Fetch every zone's forecast and current value; record the value in the ledger
        (:func:`daemon.service.refresh.refresh_intensity`).

        A failing zone keeps its last forecast, or falls back to the static annual figure.
        """
        with self._lock:
            refresh.refresh_intensity(
                self, self._memory.forecasts, now, self._memory.stale_history_logged
            )
            self._memory.last_refresh = now  # not when it raised: the next round tries again

    def plan(self, now: datetime) -> list[Decision]:
        """Cancel, expire, plan and dispatch the waiting jobs; returns the policy's decisions."""
        with self._lock:
            return plan_round(self, self._round_parts(), now)[0]

    def reconcile(self, now: datetime) -> list[ExitStatus]:
        """Forward cancel requests to running jobs and record the jobs that ended
        (:func:`daemon.service.reconcile.reconcile_round`)."""
        with self._lock:
            parts = ReconcileParts(self._endings, self._ending_context, self._requeue,
                                   self._finish, self._held, self._checkpoint, self._overdue,
                                   self._memory.busy)  # fmt: skip
            return reconcile_round(self, parts, now)

    # -- endings (daemon.endings.finishing, daemon.service.unstarted) -----------------------

    def _requeue(self, status: ExitStatus, now: datetime, why: str = "") -> None:
        """Queue a job whose run never started again (:func:`daemon.service.unstarted.requeue`;
        the dispatch's and the endings' callback)."""
        unstarted.requeue(self._unstarted(), status, now, why)

    def _cut_counterfactual(self, job_id: str, cut: Cut | None) -> None:
        """Job ``job_id``: its run-now counterfactual run is ``cut`` short, or scaled (the
        endings' and the held jobs' callback; :meth:`daemon.run_now_busy.RunNowBusy.cut`: a
        copy is kept while its job runs, so one a success lengthens is held again from its own
        record)."""
        self._memory.run_now_busy.cut(job_id, cut)

    def _fail_unstarted(self, job: JobRecord, now: datetime, reason: str) -> None:
        """End a job that did not start as ``failed`` (the dispatch's callback)."""
        unstarted.fail(self._unstarted(), job, now, reason)

    def _finish(self, status: ExitStatus, now: datetime) -> None:
        """Record how ``status``'s run ended (skipped unless its job is ``running``)."""
        self._endings.finish([status], now, self._ending_context())

    def _ending_context(self) -> EndingContext:
        return EndingContext(
            inventory=self.inventory, forecasts=self._memory.forecasts, catalog=self.catalog,
            by_device={**self._departed, **self._by_device} if self._departed else self._by_device,
            lifetime_years=self.settings.lifetime_years,
            overrun_s=self.settings.intervals.plan_s, measurement=self.measurement,
            learning=self.learning, sites=self.sites, clock=self.launch_clock,
        )  # fmt: skip

    def _round_parts(self) -> RoundParts:
        """The parts a planning round uses besides the public ones, as they are now."""
        return RoundParts(self._memory, self._capacity_aware, self._held, self._dispatch,
                          self._unstarted(), self._finish)  # fmt: skip

    def _unstarted(self) -> unstarted.Unstarted:
        """The parts that end or queue again a job that did not start, as they are now."""
        return unstarted.Unstarted(self.ledger, self.metrics, self._held, self._endings,
                                   self._memory.run_now_busy)  # fmt: skip
