"""The service: ingest -> refresh intensity -> plan & dispatch -> reconcile.

:meth:`Service.tick` runs one round at ``now``; the APScheduler loop fires the public steps on
their own intervals with the wall clock, replay calls ``tick`` with a simulated clock. Nothing
here reads the clock or sleeps, but for the live daemon's ``Service.launch_clock`` (a round's
launches are stamped when they happen, after its planning). Every step holds one lock, so a
loop that fires steps from several threads still runs them one at a time.

Dispatch is write-ahead (:mod:`daemon.dispatch`): the ``running`` transitions and run rows of a
round's dispatches are committed (one transaction) before any executor starts anything, and the
executors' handles after (one transaction). A daemon killed in between finds runs without a
handle on restart and asks their executors (``adopt`` with an empty token) whether those jobs
started; so a job never starts twice. The ends a reconcile observes are committed together too
(:mod:`daemon.finishing`).

A job planned for later on a :class:`~daemon.executors.base.Reserving` executor (Slurm) is
handed to it at once, held until its planned start, with a run row (same write-ahead rule) whose
token says where it is while the job is ``planned``; a new plan moves it, "start now" releases
it, and a job cancelled, expired, unplanned or planned elsewhere is withdrawn. A
:class:`~daemon.executors.base.CapacityAware` executor corrects the planner's view of its GPUs
every round (down nodes, GPUs others hold). A region whose
:class:`~daemon.executors.base.Discovering` executor could not ask for its GPUs (Slurm down
when the daemon started) is asked again each planning round, as often as the executor's outage
allows; its GPUs join the inventory once found, and meanwhile the jobs only it could run wait
``queued`` and ``health.json`` names it (``region:<name>``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from daemon import killpoints
from daemon.busy import BusyDevices
from daemon.dispatch import Dispatch, DispatchContext, Launch, job_log_dir, launch_spec
from daemon.endings import never_started, requester, run_handle
from daemon.errors import DaemonError
from daemon.executors.base import (
    CapacityAware,
    Discovering,
    Executor,
    ExitStatus,
    Reporting,
    RunHandle,
)
from daemon.executors.held import HeldJobs
from daemon.finishing import EndingContext, Endings
from daemon.health import HEALTH_NAME, Health
from daemon.intensity import IntensityProvider, StaticIntensity
from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning import Learning
from daemon.learning_checkpoint import (
    CHECKPOINT_EVERY_RUNS,
    FoldInputs,
    advance,
    checkpoint_due,
    restore,
)
from daemon.ledger import JobRecord, Ledger, LedgerError, RunRecord
from daemon.measurement import JobMeasurement
from daemon.metrics_sink import MetricsSink, NullMetrics
from daemon.overdue import Overdue
from daemon.planning import (
    Seen,
    job_spec,
    record_decisions,
    stored_plan,
    waiting_for_capacity,
    with_plan,
    with_run_now_recorded,
)
from daemon.queue.ingest import IngestResult, Queue
from daemon.queue.line import JobRequest
from daemon.run_now_busy import RunNowBusy
from daemon.settings import Settings
from daemon.sites import SiteView
from daemon.sites.view import SITES_NAME
from forecasts import ForecastsError
from policies import (
    Alternative,
    Decision,
    Device,
    JobSpec,
    PoliciesError,
    Policy,
    ZoneIntensity,
    with_recalibration,
)
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog
from policies.footprint.recalibration import RecalibrationConfig

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
        catalog: the GPU catalog, for the GPUs of a region discovered after the start.
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
        self._reporting = [e for e in self.executors.values() if isinstance(e, Reporting)]
        self._discovering = {n: e for n, e in self.executors.items() if isinstance(e, Discovering)}
        self._catalog = catalog
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
        self._forecasts: dict[str, ZoneIntensity] = {}
        self._last_refresh: datetime | None = None
        self._decided: Seen = {}  # latest recorded decision per waiting job
        # The planner's view per waiting job: its request, spec and the plan the spec carries.
        self._specs: dict[str, tuple[JobRequest, JobSpec, Alternative | None]] = {}
        self._held = HeldJobs(ledger, self.executors)  # plans handed to Slurm before their start
        self._busy = BusyDevices()  # the planner's devices, kept between rounds
        self._run_now_busy = RunNowBusy()  # the GPUs the recorded counterfactuals hold
        self._endings = Endings(ledger, self.executors, self._held, self._busy, self.metrics)
        self._dispatch = Dispatch(ledger, self.executors, self._held, requeue=self._requeue,
                                  finish=self._finish, fail=self._fail_unstarted)  # fmt: skip
        self._overdue = Overdue()  # running jobs past their deadline, each reported once
        self._lock = threading.RLock()
        self.health = Health()  # what `carbond doctor` shows (health.json)
        self._executor_problems: set[str] = set()  # health keys the executors set
        # measured runs past the recalibration checkpoint that make it due (reconcile)
        self.checkpoint_every_runs = CHECKPOINT_EVERY_RUNS
        # the recalibration checkpoint's inputs, as of the config and inventory objects they
        # were computed for (both are replaced, never changed, on a reload)
        self._fold_inputs: tuple[RecalibrationConfig, object, FoldInputs] | None = None
        # Live (``carbond run``): the wall clock, read once a round's planning is done, so its
        # launches start when they do, not when the round began (a plan of many jobs, or the
        # first one, takes seconds: a simulated run would end that much early, one shorter than
        # the plan at once). None: the round's ``now`` (replay and the demo: time moves only
        # between rounds).
        self.launch_clock: Callable[[], datetime] | None = None

    @property
    def learning(self) -> Learning:
        """What measured outcomes taught (:mod:`daemon.learning`): the measurement's when this
        node meters GPUs (it folds its runs there), else the service's own."""
        return self.measurement.learning if self.measurement is not None else self._learning

    # -- lifecycle --------------------------------------------------------------------------

    def after_step(self, step: str, error: BaseException | None, now: datetime) -> None:
        """The loop's report of a step: a failure (or its end) goes into ``health.json``,
        which is then written if anything changed. Never raises."""
        if error is None:
            self.health.clear(f"step:{step}")
        else:
            self.health.set(f"step:{step}", f"{type(error).__name__}: {error}", now)
        self._executor_health(now)
        self.health.write(self.settings.state_dir / HEALTH_NAME, now)
        if self.sites:  # each battery's charge, for the next daemon
            self.sites.save(self.settings.state_dir / SITES_NAME, now)

    def _executor_health(self, now: datetime) -> None:
        """The executors' own problems (Slurm unreachable), the sites' (a model failing, a
        measured CSV stale), the running jobs of an executor this daemon does not have and
        the undiscovered regions into ``health.json``, each cleared once no longer reported."""
        current: dict[str, str] = {}
        for executor in self._reporting:
            current.update(executor.problems())
        if self.sites:
            current.update(self.sites.problems())
        for name, jobs in self._unfollowed().items():
            shown = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
            current[f"executor:{name}"] = (
                f"{len(jobs)} running job(s) ({shown}) run on executor {name}, which this "
                "daemon does not have (no region uses it): they are not polled, cancelled or "
                "ended; restore a region that uses it until they end"
            )
        for region, why in self._undiscovered().items():
            current[f"region:{region}"] = (
                f"GPUs not discovered ({why}); the jobs only this region can run wait queued, "
                "and it is asked again until its executor answers"
            )
        for key, message in current.items():
            self.health.set(key, message, now)
        for key in self._executor_problems - current.keys():
            self.health.clear(key)
        self._executor_problems = set(current)

    def _unfollowed(self) -> dict[str, list[str]]:
        """The running jobs whose executor this daemon does not have (a restart with a
        config that no longer uses it), by executor name."""
        jobs: dict[str, list[str]] = defaultdict(list)
        for run in self.ledger.active_runs():
            if run.executor not in self.executors:
                jobs[run.executor].append(run.job_id)
        return jobs

    def clock_stepped(self, step_s: float, now: datetime) -> None:
        """The loop saw the wall clock jump ``step_s`` seconds (negative: back) against the
        monotonic clock; kept in the health file for an hour."""
        direction = "back" if step_s < 0 else "forward"
        self.health.set("clock", f"wall clock stepped {direction} {abs(step_s):.0f} s at "
                        f"{now.isoformat()}: deadlines and planned starts follow the new time",
                        now, for_s=3600.0)  # fmt: skip

    def start(self, now: datetime) -> None:
        """Prepare the queue files and re-adopt the jobs a previous daemon left running."""
        with self._lock:
            self.queue.prepare()
            runs = self.ledger.active_runs()
            for run in runs:  # their counterfactual runs may hold GPUs still
                self._run_now_busy.hold_recorded(self.ledger.counterfactual(run.job_id))
            self._adopt(runs, now)
            self._endings.resume_stops()  # the runs of lost GPUs a previous daemon was stopping
            # learned factors survive a restart (GPU-metered and executor-measured runs): the
            # ledger's checkpoint of them and the runs since (daemon.learning_checkpoint)
            config = self.learning.recalibration.config
            restored = restore(self.ledger, self.inventory, config, now)
            self.learning.recalibration = restored.recalibration
            self._endings.load_totals()  # then kept up to date per job
            if self.sites:  # batteries resume from the charge the last daemon saved
                self.sites.restore(self.settings.state_dir / SITES_NAME, now)
            log.info("service_started", jobs=self.ledger.counts_by_state(),
                     devices=len(self.inventory), policy=self.policy.name)  # fmt: skip

    def _adopt(self, runs: Sequence[RunRecord], now: datetime) -> None:
        """Hand ``runs`` back to their executors: still running, ended, or never started."""
        by_executor: dict[str, list[RunHandle]] = defaultdict(list)
        for run in runs:
            by_executor[run.executor].append(run_handle(run))
        for name, handles in by_executor.items():
            executor = self.executors.get(name)
            if executor is None:
                log.error("executor_missing", executor=name, jobs=[h.job_id for h in handles])
                continue
            tokenless = {h.job_id for h in handles if not h.token}
            try:
                items = executor.adopt(handles, now)
            except (DaemonError, OSError) as exc:  # retried on the next reconcile
                log.error("executor_adopt_failed", executor=name, error=str(exc))
                continue
            for item in items:
                if never_started(item, tokenless):
                    assert isinstance(item, ExitStatus)
                    self._requeue(item, now)
                elif isinstance(item, ExitStatus):
                    self._finish(item, now)
                else:
                    log.info("job_adopted", job_id=item.job_id, executor=name)
                    if item.job_id in tokenless and item.token:
                        with self.ledger.transaction():
                            self.ledger.set_run_started(item.job_id, item.token, item.started_at)

    def _requeue(self, status: ExitStatus, now: datetime, why: str = "") -> None:
        """Queue a job whose run never started again; one whose deadline has passed is
        expired in the same transaction (a job taken back at its deadline does not wait a
        round ``queued``)."""
        why = (
            why
            or "its launch was never confirmed (the daemon died, or its executor did not answer)"
        )
        reason = f"requeued: {why} ({status.reason})"
        deadline = self.ledger.job(status.job_id).deadline
        late = _missed(deadline) if deadline is not None and deadline <= now else None
        with self.ledger.transaction():
            self.ledger.drop_run(status.job_id)
            self.ledger.transition(status.job_id, "queued", now, reason)
            if late is not None:
                self.ledger.transition(status.job_id, "expired", now, late)
        log.warning("job_requeued", job_id=status.job_id, reason=status.reason)
        if late is not None:
            log.info("job_expired", job_id=status.job_id, reason=late)
            self.metrics.observe_outcome(status.job_id, "expired", None)
            self._endings.count_expired()

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
                self.inventory = tuple(inventory)
                self._by_device = {gpu.device_id: gpu for gpu in self.inventory}
                self._keep_departed(before)
            self._forecasts.clear()
            self._last_refresh = None
            log.info("service_reconfigured", policy=self.policy.name, devices=len(self.inventory))

    def take_over_runs(self, previous: Service) -> None:
        """After a reload built this service: what ``previous`` held of the runs in progress.
        The GPUs its inventory listed that this one does not (their region or GPU removed)
        and runs still hold, so those runs' ends are recorded with their GPU (zone, PUE,
        estimated energy and grams; never planned on); the cancels it sent and the runs of
        lost GPUs it was stopping (:meth:`daemon.finishing.Endings.take_over`), and the GPUs
        its recorded run-now counterfactuals hold (:mod:`daemon.run_now_busy`)."""
        with self._lock:
            self._keep_departed({**previous._departed, **previous._by_device})
            self._endings.take_over(previous._endings)
            self._overdue.take_over(previous._overdue)
            self._run_now_busy = previous._run_now_busy

    def _keep_departed(self, known: Mapping[str, InventoryGpu]) -> None:
        held = {device for run in self.ledger.active_runs() for device in run.device_ids}
        self._departed = {
            device: known[device]
            for device in sorted(held & known.keys())
            if device not in self._by_device
        }

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
        """One round: ingest, refresh intensity when due, plan and dispatch, reconcile."""
        with self._lock:
            ingested = self.ingest(now)
            if self.refresh_due(now):
                self.refresh_intensity(now)
            decisions, started = self._plan(now)
            finished = self.reconcile(now)
            return TickReport(len(ingested.accepted), ingested.rejected, len(decisions),
                              tuple(started), tuple(s.job_id for s in finished))  # fmt: skip

    def refresh_due(self, now: datetime) -> bool:
        """Whether ``intervals.refresh_s`` has passed since the last refresh."""
        last = self._last_refresh
        return last is None or (now - last).total_seconds() >= self.settings.intervals.refresh_s

    def ingest(self, now: datetime) -> IngestResult:
        """Ingest new queue lines (exactly once)."""
        with self._lock:
            return self.queue.ingest(now)

    def refresh_intensity(self, now: datetime) -> None:
        """Fetch every zone's forecast and current value; record the value in the ledger.

        A failing zone keeps its last forecast, or falls back to the static annual figure.
        """
        with self._lock:
            cfg = self.settings.intensity
            zones = sorted({gpu.device.zone for gpu in self.inventory})
            self.metrics.observe_zones(zones)  # a reload may have removed some
            failed = _log_failed_calls(self.intensity.refresh(zones, now))
            for zone in zones:
                try:
                    series = self.intensity.forecast(zone, now, cfg.horizon_s, cfg.step_s)
                    reading = self.intensity.current(zone, now)
                except ForecastsError as exc:
                    log.warning("intensity_refresh_failed", zone=zone, error=str(exc))
                    self.health.set(
                        f"intensity:{zone}",
                        f"no intensity ({exc}); planning on the last forecast or the static "
                        "annual figure",
                        now,
                    )
                    if zone not in self._forecasts:
                        with contextlib.suppress(ForecastsError):  # no figure: plan logs it
                            self._forecasts[zone] = StaticIntensity().forecast(
                                zone, now, cfg.horizon_s, cfg.step_s
                            )
                    continue
                self._forecasts[zone] = series
                if zone in failed:
                    self.health.set(f"intensity:{zone}", f"provider failing ({failed[zone]}); "
                                    f"planning on {reading.source}", now)  # fmt: skip
                else:
                    self.health.clear(f"intensity:{zone}")
                self.ledger.record_intensity(
                    zone, reading.at, reading.intensity_g_per_kwh, reading.source, now
                )
                self.metrics.observe_intensity(
                    zone, reading.intensity_g_per_kwh, reading.age_s, reading.rung
                )
            self._last_refresh = now

    def plan(self, now: datetime) -> list[Decision]:
        """Cancel, expire, plan and dispatch the waiting jobs; returns the policy's decisions."""
        with self._lock:
            return self._plan(now)[0]

    def reconcile(self, now: datetime) -> list[ExitStatus]:
        """Forward cancel requests to running jobs and record the jobs that ended
        (:meth:`daemon.finishing.Endings.reconcile`)."""
        with self._lock:
            self._check_gpus(now)
            runs = self.ledger.active_runs()
            if any(run.token is None for run in runs):  # a crash mid-launch; start() not run
                self._adopt([run for run in runs if run.token is None], now)
                runs = self.ledger.active_runs()
            ended = self._endings.reconcile(runs, now, self._ending_context(), self._requeue)
            self._held.watch(now)  # held jobs cancelled in their scheduler between plans
            if ended:
                self._checkpoint_learning(now)
            after = self.ledger.active_runs()  # the runs still on after the ends recorded
            for run in self._overdue.check(after, now):  # runs on past its deadline
                assert run.deadline is not None
                past_s = (now - run.deadline).total_seconds()
                log.warning("deadline_missed", job_id=run.job_id,
                            deadline=run.deadline.isoformat(), past_s=past_s)  # fmt: skip
            if self.sites:  # every round, a job waiting or not: the batteries charge all day
                plan_s = self.settings.intervals.plan_s
                self.sites.observe(now, self._busy.devices(self.inventory, after, now, plan_s))
            if not isinstance(self.metrics, NullMetrics):  # not read for a sink that drops it
                self.metrics.observe_queue(self.ledger.counts_by_state())
                self.metrics.observe_past_deadline(self._overdue.count)
            return ended

    def _checkpoint_learning(self, now: datetime) -> None:
        """Move the recalibration checkpoint on once :attr:`checkpoint_every_runs` measured
        runs are past it (or its inputs changed: a reload), folding at most that many runs
        from the ledger (:func:`daemon.learning_checkpoint.advance`): a restart then folds at
        most about that many. The live factors are not touched."""
        config = self.learning.recalibration.config
        kept = self._fold_inputs
        if kept is None or kept[0] is not config or kept[1] is not self.inventory:
            kept = self._fold_inputs = (
                config,
                self.inventory,
                FoldInputs.of(config, self.inventory),
            )
        inputs = kept[2]
        every = self.checkpoint_every_runs
        try:
            if checkpoint_due(self.ledger, inputs, every):
                advance(self.ledger, self.inventory, config, now, limit=every, inputs=inputs)
        except LedgerError as e:  # rolled back: the next start folds a longer tail
            log.warning("recalibration_checkpoint_failed", error=str(e))

    # -- planning ---------------------------------------------------------------------------

    def _planning_forecasts(
        self, now: datetime, devices: Sequence[Device]
    ) -> Mapping[str, ZoneIntensity]:
        """The zone forecasts, with each site's zone seen through its site (the intensity of
        the next GPU kWh there: grid blended with spare PV and battery energy)."""
        if not self.sites:
            return self._forecasts
        return self.sites.forecasts(now, devices, self._forecasts)

    def _plan(self, now: datetime) -> tuple[list[Decision], list[str]]:
        self._check_gpus(now)
        undiscovered = self._discover_late(now)
        waiting = self._settle_unstarted(now)
        specs = self._job_specs(waiting, now)
        if not specs:
            return [], []
        if not self._forecasts or self.refresh_due(now):
            self.refresh_intensity(now)
        runs = self.ledger.active_runs()
        configured = self._busy.devices(self.inventory, runs, now, self.settings.intervals.plan_s)
        devices = self._run_now_busy.devices(self._devices(now, configured), now)
        policy = self.policy
        learned = self.learning.recalibration
        if learned.factors:  # plan on what the measured outcomes taught (none: no copy)
            policy = with_recalibration(policy, learned)
        try:
            decisions = policy.plan(now, specs, devices, self._planning_forecasts(now, devices))
        except (PoliciesError, KeyError) as exc:
            log.error("plan_failed", policy=self.policy.name, error=str(exc))
            return [], []
        if self._capacity_aware or undiscovered:  # Slurm down or drained: wait, do not fail
            decisions = waiting_for_capacity(
                decisions, {spec.job_id: spec for spec in specs}, configured, undiscovered
            )
        jobs = {job.job_id: job for job in waiting}
        if len(self._decided) > 2 * len(jobs):  # let go of the jobs that left (each entry
            # stays true while its job waits unplanned: only this round records decisions)
            self._decided = {k: v for k, v in self._decided.items() if k in jobs}
        decided = []
        for decision in decisions:
            record = jobs.get(decision.job_id)
            if record is None:
                log.error(
                    "decision_for_unknown_job", job_id=decision.job_id, policy=decision.policy
                )
                continue
            decided.append((record, decision))
        started = self._act(decided, {d for run in runs for d in run.device_ids}, now)
        if started and self.sites:  # from now on the sites carry the jobs just started too
            after = self.ledger.active_runs()
            plan_s = self.settings.intervals.plan_s
            self.sites.observe(now, self._busy.devices(self.inventory, after, now, plan_s))
        return decisions, started

    def _act(
        self, decided: Sequence[tuple[JobRecord, Decision]], busy: set[str], now: datetime
    ) -> list[str]:
        """Record the round's decisions (one transaction), then hold each job or prepare its
        dispatch, and launch the prepared ones (:mod:`daemon.dispatch`); returns the jobs
        started. ``busy``: the devices carbond's runs hold."""
        stored = record_decisions(self.ledger, decided, now, self._decided)
        self._keep_plans(decided, stored)
        observed = type(self.metrics) is not NullMetrics  # not called for a sink that drops it
        holding = self._held.active  # plans handed to a reserving executor (Slurm)
        context = DispatchContext(self._forecasts, self.measurement, self.settings.state_dir,
                                  self.learning.recalibration)  # fmt: skip
        spec_for = functools.partial(launch_spec, log_dir=job_log_dir(context.state_dir))
        prepared: list[Launch] = []
        for (record, decision), new in zip(decided, stored, strict=True):
            if new and observed:
                self._observe(record, decision)
            killpoints.reached("plan_decided")
            if decision.action != "start" or decision.chosen is None:
                if holding:
                    self._held.keep(record, decision, self._by_device, spec_for, now)
                continue
            chosen = set(decision.chosen.device_ids)
            if chosen & busy or not chosen <= self._by_device.keys():
                log.error("decision_conflict", job_id=record.job_id, policy=decision.policy,
                          devices=sorted(chosen), busy=sorted(chosen & busy))  # fmt: skip
                continue  # stays queued; planned again next round
            entry = self._specs.get(record.job_id)  # planned this round: its spec
            spec = entry[1] if entry is not None else None
            launch = self._dispatch.prepare(record, decision, self._by_device, now, spec)
            if launch is not None:
                busy |= chosen
                prepared.append(launch)
        if prepared and self.launch_clock is not None:
            now = max(now, self.launch_clock())
        return self._dispatch.launch(prepared, now, context)

    def _job_specs(self, waiting: Sequence[JobRecord], now: datetime) -> list[JobSpec]:
        """:func:`daemon.planning.job_spec` of each waiting job, built once per job (its
        request, times and id never change; the ledger hands back the same parsed request)
        with its current plan (:meth:`_keep_plans`; from the ledger for a job first seen
        planned, as after a restart); a job whose spec is invalid fails."""
        known, kept, specs = self._specs, {}, []
        for job in waiting:
            entry = known.get(job.job_id)
            if entry is None or entry[0] is not job.request:
                try:
                    spec = job_spec(job)
                except PoliciesError as exc:
                    self._fail_unstarted(job, now, f"invalid job: {exc}")
                    continue
                if job.state == "planned":
                    spec = replace(spec, planned=stored_plan(self.ledger, job.job_id))
                if self._run_now_busy.hold_recorded(self.ledger.counterfactual(job.job_id)):
                    spec = with_run_now_recorded(spec)  # as after a restart
                entry = (job.request, spec, None)
            kept[job.job_id] = entry
            specs.append(entry[1])
        self._specs = kept
        return specs

    def _keep_plans(
        self, decided: Sequence[tuple[JobRecord, Decision]], stored: Sequence[bool]
    ) -> None:
        """Hand each decided job's plan back to the policy next round (``JobSpec.planned``:
        a planner may keep it rather than trade cells of almost the same cost), and whether
        its run-now counterfactual is recorded (``stored``: whether each decision was), its
        run then holding its GPUs in the counterfactual (:mod:`daemon.run_now_busy`)."""
        specs = self._specs
        for (record, decision), new in zip(decided, stored, strict=True):
            entry = specs.get(record.job_id)
            run_now = decision.run_now
            if new and run_now is not None and entry is not None and not entry[1].run_now_recorded:
                self._run_now_busy.hold(run_now.device_ids, run_now.start, run_now.duration_s)
                entry = specs[record.job_id] = (
                    entry[0], with_run_now_recorded(entry[1]), entry[2]
                )  # fmt: skip
            # A held job whose cell did not change gets the same plan object as last round.
            if entry is not None and decision.chosen is not entry[2]:
                specs[record.job_id] = (entry[0], with_plan(entry[1], decision), decision.chosen)

    def _devices(self, now: datetime, configured: Sequence[Device]) -> list[Device]:
        """The planner's devices: ``configured`` (busy while carbond's runs hold them) as
        capacity-aware executors (Slurm) see them (down nodes, GPUs other users hold)."""
        devices = list(configured)
        for executor in self._capacity_aware:
            devices = executor.available(devices, now)
        return devices

    def _settle_unstarted(self, now: datetime) -> list[JobRecord]:
        """Cancel or expire waiting jobs that asked for it; return the ``policy.plan_window``
        most urgent others (the rest wait for a later round: planning every waiting job each
        round would hold the loop, and so ingestion, for seconds per 10,000 jobs). A job
        that could not be settled now (its executor did not give it back) is not planned
        this round either: it is settled on a later one, never started."""
        unsettled = set()
        for job in self.ledger.waiting_to_settle(now):
            if job.cancel_requested_at is not None:
                by = requester(self.ledger.cancel_requester(job.job_id))
                state, reason = "cancelled", f"cancelled by {by} before start"
            elif job.deadline is not None and job.deadline <= now:
                state, reason = "expired", _missed(job.deadline)
            else:
                continue
            if not self._end_unstarted(job, state, now, reason):
                unsettled.add(job.job_id)
        waiting = self.ledger.most_urgent_waiting(self.settings.policy.plan_window)
        return [job for job in waiting if job.job_id not in unsettled] if unsettled else waiting

    def _end_unstarted(self, job: JobRecord, state: str, now: datetime, reason: str) -> bool:
        """End a job that did not start; False when its executor did not give it back
        (tried again next round) or had started it (it is running now)."""
        if not self._held.withdraw(job.job_id, now):
            return False
        with self.ledger.transaction():
            self.ledger.transition(job.job_id, state, now, reason)
        log.info("job_" + state, job_id=job.job_id, reason=reason)
        self.metrics.observe_outcome(job.job_id, state, None)
        if state == "expired":
            self._endings.count_expired()
        return True

    def _fail_unstarted(self, job: JobRecord, now: datetime, reason: str) -> None:
        self._end_unstarted(job, "failed", now, reason)

    def _observe(self, job: JobRecord, decision: Decision) -> None:
        """Count a recorded decision in the metrics."""
        chosen = decision.chosen
        run_now_g = decision.run_now.total_g if decision.run_now else None
        if decision.action == "start" and not isinstance(self.metrics, NullMetrics):
            # the counterfactual stored at submission (not read for a sink that drops it)
            stored = self.ledger.counterfactual(job.job_id)
            run_now_g = stored["total_g"] if stored is not None else run_now_g
        self.metrics.observe_decision(decision.policy, decision.action,
                                      chosen.total_g if chosen else None,
                                      run_now_g)  # fmt: skip

    # -- endings (daemon.finishing) ---------------------------------------------------------

    def _finish(self, status: ExitStatus, now: datetime) -> None:
        """Record how ``status``'s run ended (skipped unless its job is ``running``)."""
        self._endings.finish([status], now, self._ending_context())

    def _ending_context(self) -> EndingContext:
        return EndingContext(
            inventory=self.inventory, forecasts=self._forecasts,
            by_device={**self._departed, **self._by_device} if self._departed else self._by_device,
            lifetime_years=self.settings.lifetime_years,
            overrun_s=self.settings.intervals.plan_s, measurement=self.measurement,
            learning=self.learning, sites=self.sites,
        )  # fmt: skip

    # -- GPUs -------------------------------------------------------------------------------

    def _undiscovered(self) -> dict[str, str]:
        """The regions of the settings that discover their GPUs through an executor that
        could not ask for them yet (its scheduler did not answer), each with why."""
        if not self._discovering:
            return {}
        missing: dict[str, str] = {}
        for name, executor in self._discovering.items():
            pending = executor.undiscovered()
            if pending:
                missing.update((r.name, pending[r.name]) for r in self.settings.regions
                               if r.executor == name and r.gpus == "discover"
                               and r.name in pending)  # fmt: skip
        return missing

    def _discover_late(self, now: datetime) -> list[str]:
        """Ask the executors again for the GPUs of the undiscovered regions and add those
        found to the inventory (their zones' forecasts are fetched this round); returns the
        regions still undiscovered."""
        missing = self._undiscovered()
        if not missing:
            return []
        have = {gpu.device.region for gpu in self.inventory}
        wanted = [r for r in self.settings.regions if r.name in missing and r.name not in have]
        found: dict[str, Sequence[tuple[int, str]]] = {}
        for name in sorted({r.executor for r in wanted}):
            found.update(self._discovering[name].rediscover(now))
        regions = [r for r in wanted if r.name in found]
        if regions:
            try:
                gpus = build_inventory(regions, self._catalog, lambda r: found[r.name])
            except PoliciesError as exc:  # a name the catalog does not know: as at start-up
                log.error("region_discovery_failed", regions=[r.name for r in regions],
                          error=str(exc))  # fmt: skip
                gpus = ()
            if gpus:
                self.inventory = (*self.inventory, *gpus)
                self._by_device = {gpu.device_id: gpu for gpu in self.inventory}
                self._last_refresh = None  # the new zones' forecasts, before planning
            for region in regions:
                log.info(
                    "region_discovered",
                    region=region.name,
                    gpus=[g.device.gpu.name for g in gpus if g.device.region == region.name],
                )
        return sorted(set(missing) - found.keys())

    def _check_gpus(self, now: datetime) -> None:
        """Advance realised intensities; fail the jobs of lost GPUs and take those GPUs out of
        planning (the daemon goes on with the others). A job whose executor says it had ended
        before the loss was seen (exit 0, or a failure of its own) is recorded as it ended."""
        if self.measurement is None:
            return
        self.measurement.observe(now, self._forecasts)
        reports = self.measurement.lost()
        if any(g.device.available and self.measurement.unavailable(g) for g in self.inventory):
            self.inventory = tuple(
                replace(g, device=replace(g.device, available=False))
                if self.measurement.unavailable(g)
                else g
                for g in self.inventory
            )  # also after a reconfigure() rebuilt the inventory
            self._by_device = {gpu.device_id: gpu for gpu in self.inventory}
        for report in reports:
            self.health.set(f"gpu:{report.gpu.index}", f"lost: {report.reason}", now)
            for job_id in report.job_ids:
                run = self.ledger.run(job_id)
                ended = self._ended_already(run, now) if run is not None else None
                if ended is not None:  # it ended before the loss was seen: as it ended (its
                    self._finish(ended, now)  # exit code or signal, not the loss)
                    continue
                if run is not None and ended is None:  # cancelled, polled until gone
                    self._endings.stop(run, now, report.reason)
                self._finish(ExitStatus(job_id, now, None, None, report.reason), now)

    def _ended_already(self, run: RunRecord, now: datetime) -> ExitStatus | None:
        """How ``run`` ended, if its executor says it has (None: running, or not asked)."""
        executor = self.executors.get(run.executor)
        if executor is None or not run.token:
            return None
        try:
            statuses = executor.poll([run_handle(run)], now)
        except (DaemonError, OSError) as exc:
            log.error("executor_poll_failed", executor=run.executor, error=str(exc))
            return None
        return statuses[0] if statuses else None


_NOT_A_FAILURE = frozenset({"ok", "no provider configured"})


def _log_failed_calls(outcome: object) -> dict[str, str]:
    """One ``intensity_provider_failed`` warning per zone whose provider calls failed; those
    problems by zone.

    ``outcome`` is what the intensity source's ``refresh`` returned: the chain's
    ``{zone: "ok" | problems}``; sources without a provider return None. The messages are the
    provider client's, which never carry the token or anything the server sent.
    """
    if not isinstance(outcome, Mapping):
        return {}
    failed = {}
    for zone, result in outcome.items():
        if isinstance(result, str) and result not in _NOT_A_FAILURE:
            log.warning("intensity_provider_failed", zone=zone, problem=result)
            failed[str(zone)] = result
    return failed


def _missed(deadline: datetime) -> str:
    """The reason recorded for a job expired because ``deadline`` passed before it started."""
    return f"deadline {deadline.isoformat()} passed before the job started"
