"""A planning round of the service: settle, plan, record the decisions, hold or dispatch.

:func:`plan_round` is the service's ``plan`` step (run under its lock): it takes the lost and
late-discovered GPUs into account (:mod:`daemon.service.gpus`), cancels or expires the waiting
jobs that asked for it (:mod:`daemon.service.unstarted`), asks the policy about the
``policy.plan_window`` most urgent others on the devices its executors can give now, records the
decisions (one transaction) and hands each job to its reserving executor or dispatches it
(:mod:`daemon.service.dispatch`). The planner's view of each waiting job (its spec and the plan it
carries) is kept between rounds in the service's :class:`~daemon.service.memory.PlanMemory`, which
the service hands over with its other parts a round uses (:class:`RoundParts`). The per-job loops
are here, one call deep from :meth:`~daemon.service.Service.tick`: replay speed depends on them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from daemon import killpoints
from daemon.executors.base import CapacityAware
from daemon.executors.held import HeldJobs
from daemon.ledger import JobRecord
from daemon.metrics.sink import NullMetrics
from daemon.planning import (
    job_spec,
    record_decisions,
    stored_plans,
    waiting_for_capacity,
    with_plan,
    with_run_now_recorded,
)
from daemon.service import gpus, unstarted
from daemon.service.dispatch import Dispatch, DispatchContext, Launch, job_log_dir, launch_spec
from daemon.service.memory import PlanMemory, SpecEntry
from daemon.service.succession import Finish
from policies import (
    Decision,
    Device,
    JobSpec,
    PlannedStart,
    PoliciesError,
    ZoneIntensity,
    with_plan_interval,
    with_recalibration,
)

if TYPE_CHECKING:
    from daemon.service.core import Service

__all__ = ["RoundParts", "plan_round"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RoundParts:
    """The service's own parts a planning round uses besides its public attributes, as they
    are when the service hands them over (a reload replaces some)."""

    memory: PlanMemory  # forecasts, waiting jobs' specs and decisions, busy GPUs
    capacity_aware: Sequence[CapacityAware]  # the executors that correct the planner's view
    held: HeldJobs  # plans handed to a reserving executor (Slurm) before their start
    dispatch: Dispatch
    unstarted: unstarted.Unstarted  # to end a job that did not start
    finish: Finish  # to record a run's end (a lost GPU's jobs)


def plan_round(
    service: Service, parts: RoundParts, now: datetime
) -> tuple[list[Decision], list[str]]:
    """Cancel, expire, plan and dispatch the waiting jobs; returns the policy's decisions and
    the jobs started."""
    gpus.check_gpus(service, now, parts.unstarted.endings.stops, parts.finish)
    undiscovered = gpus.discover_late(service, now)
    waiting = unstarted.settle(parts.unstarted, now, service.settings.policy.plan_window)
    specs = _job_specs(service, parts, waiting, now)
    if not specs:
        return [], []
    memory = parts.memory
    if not memory.forecasts or service.refresh_due(now):
        service.refresh_intensity(now)
    runs = service.ledger.active_runs()
    plan_s = service.settings.intervals.plan_s
    configured = memory.busy.devices(service.inventory, runs, now, plan_s)
    available = _devices(parts.capacity_aware, now, configured)
    devices = memory.run_now_busy.devices(available, now, runs, plan_s)
    policy = with_plan_interval(service.policy, plan_s)  # run-now's copies start at rounds
    learned = service.learning.recalibration
    if learned.factors:  # plan on what the measured outcomes taught (none: no copy)
        policy = with_recalibration(policy, learned)
    try:
        forecasts = _planning_forecasts(service, memory.forecasts, now, devices)
        decisions = policy.plan(now, specs, devices, forecasts)
    except (PoliciesError, KeyError) as exc:
        log.error("plan_failed", policy=service.policy.name, error=str(exc))
        return [], []
    if parts.capacity_aware or undiscovered:  # Slurm down or drained: wait, do not fail
        decisions = waiting_for_capacity(
            decisions, {spec.job_id: spec for spec in specs}, configured, undiscovered
        )
    jobs = {job.job_id: job for job in waiting}
    if len(memory.decided) > 2 * len(jobs):  # let go of the jobs that left (each entry
        # stays true while its job waits unplanned: only this round records decisions)
        memory.decided = {k: v for k, v in memory.decided.items() if k in jobs}
    decided = []
    for decision in decisions:
        record = jobs.get(decision.job_id)
        if record is None:
            log.error("decision_for_unknown_job", job_id=decision.job_id, policy=decision.policy)
            continue
        decided.append((record, decision))
    busy = {d for run in runs for d in run.device_ids}
    started, launched_at = _act(service, parts, decided, busy, now)
    if started and service.sites:  # from their launch on the sites carry the jobs started too
        # (live, the wall clock once planning is done: advanced to the round's start, a plan
        # of minutes had the battery carry them for those minutes, and sites.json stamped
        # that start on a state as of the launches, so a restart resumed from the wrong time)
        after = service.ledger.active_runs()
        held_gpus = memory.busy.devices(service.inventory, after, launched_at, plan_s)
        service.sites.observe(launched_at, held_gpus)
    return decisions, started


def _planning_forecasts(
    service: Service,
    forecasts: Mapping[str, ZoneIntensity],
    now: datetime,
    devices: Sequence[Device],
) -> Mapping[str, ZoneIntensity]:
    """The zone ``forecasts``, with each site's zone seen through its site (the intensity of
    the next GPU kWh there: grid blended with spare PV and battery energy)."""
    if not service.sites:
        return forecasts
    return service.sites.forecasts(now, devices, forecasts)


def _act(
    service: Service,
    parts: RoundParts,
    decided: Sequence[tuple[JobRecord, Decision]],
    busy: set[str],
    now: datetime,
) -> tuple[list[str], datetime]:
    """Record the round's decisions (one transaction), then hold each job or prepare its
    dispatch, and launch the prepared ones (:mod:`daemon.service.dispatch`); returns the jobs
    started and when they were launched (live: the wall clock then; else ``now``).
    ``busy``: the devices carbond's runs hold."""
    memory = parts.memory
    stored = record_decisions(service.ledger, decided, now, memory.decided)
    _keep_plans(memory, decided, stored)
    observed = type(service.metrics) is not NullMetrics  # not called for a sink that drops it
    held = parts.held
    holding = held.active  # plans handed to a reserving executor (Slurm)
    by_device, specs, dispatch = service.by_device, memory.specs, parts.dispatch
    context = DispatchContext(memory.forecasts, service.measurement,
                              service.settings.state_dir,
                              service.learning.recalibration)  # fmt: skip
    spec_for = functools.partial(launch_spec, log_dir=job_log_dir(context.state_dir))
    prepared: list[Launch] = []
    for (record, decision), new in zip(decided, stored, strict=True):
        if new and observed:
            _observe(service, record, decision)
        killpoints.reached("plan_decided")
        if decision.action != "start" or decision.chosen is None:
            if holding:
                held.keep(record, decision, by_device, spec_for, now)
            continue
        chosen = set(decision.chosen.device_ids)
        if chosen & busy or not chosen <= by_device.keys():
            log.error("decision_conflict", job_id=record.job_id, policy=decision.policy,
                      devices=sorted(chosen), busy=sorted(chosen & busy))  # fmt: skip
            continue  # stays queued; planned again next round
        entry = specs.get(record.job_id)  # planned this round: its spec
        spec = entry[1] if entry is not None else None
        launch = dispatch.prepare(record, decision, by_device, now, spec)
        if launch is not None:
            busy |= chosen
            prepared.append(launch)
    if prepared and service.launch_clock is not None:
        now = max(now, service.launch_clock())
    return dispatch.launch(prepared, now, context), now


def _job_specs(
    service: Service, parts: RoundParts, waiting: Sequence[JobRecord], now: datetime
) -> list[JobSpec]:
    """:func:`daemon.planning.job_spec` of each waiting job, built once per job (its
    request, times and id never change; the ledger hands back the same parsed request)
    with its current plan (:func:`_keep_plans`; from the ledger for a job first seen
    planned, as after a restart); a job whose spec is invalid fails."""
    memory = parts.memory
    known, kept, specs = memory.specs, {}, []
    plans: dict[str, PlannedStart | None] | None = None  # read at the first one needed
    for job in waiting:
        entry = known.get(job.job_id)
        if entry is None or entry[0] is not job.request:
            try:
                spec = job_spec(job)
            except PoliciesError as exc:
                unstarted.fail(parts.unstarted, job, now, f"invalid job: {exc}")
                continue
            if job.state == "planned":
                if plans is None:  # every planned job first seen, in one read
                    plans = stored_plans(service.ledger, _unseen_planned(known, waiting))
                spec = replace(spec, planned=plans[job.job_id])
            busy = memory.run_now_busy
            if busy.recorded(job.job_id) or busy.learned(service.ledger, job.job_id,
                                                         deadline=job.deadline):  # fmt: skip
                spec = with_run_now_recorded(spec)  # as after a restart (learned there)
            entry = (job.request, spec, None)
        kept[job.job_id] = entry
        specs.append(entry[1])
    memory.specs = kept
    return specs


def _unseen_planned(known: Mapping[str, SpecEntry], waiting: Sequence[JobRecord]) -> list[str]:
    """The ``planned`` jobs of ``waiting`` whose spec is not ``known`` (as after a restart or
    a reload, whose first round sees every planned job anew): their plans are read at once."""
    return [
        job.job_id
        for job in waiting
        if job.state == "planned"
        and ((entry := known.get(job.job_id)) is None or entry[0] is not job.request)
    ]


def _keep_plans(
    memory: PlanMemory, decided: Sequence[tuple[JobRecord, Decision]], stored: Sequence[bool]
) -> None:
    """Hand each decided job's plan back to the policy next round (``JobSpec.planned``:
    a planner may keep it rather than trade cells of almost the same cost), and whether
    its run-now counterfactual is recorded (``stored``: whether each decision was), its
    run then holding its GPUs in the counterfactual (:mod:`daemon.run_now_busy`)."""
    specs = memory.specs
    for (record, decision), new in zip(decided, stored, strict=True):
        entry = specs.get(record.job_id)
        run_now = decision.run_now
        if new and run_now is not None and entry is not None and not entry[1].run_now_recorded:
            memory.run_now_busy.hold(record.job_id, run_now, entry[1].deadline)
            entry = specs[record.job_id] = (
                entry[0], with_run_now_recorded(entry[1]), entry[2]
            )  # fmt: skip
        # A held job whose cell did not change gets the same plan object as last round.
        if entry is not None and decision.chosen is not entry[2]:
            specs[record.job_id] = (entry[0], with_plan(entry[1], decision), decision.chosen)


def _devices(
    capacity_aware: Sequence[CapacityAware], now: datetime, configured: Sequence[Device]
) -> list[Device]:
    """The planner's devices: ``configured`` (busy while carbond's runs hold them) as
    ``capacity_aware`` executors (Slurm) see them (down nodes, GPUs other users hold)."""
    devices = list(configured)
    for executor in capacity_aware:
        devices = executor.available(devices, now)
    return devices


def _observe(service: Service, job: JobRecord, decision: Decision) -> None:
    """Count a recorded decision in the metrics (a reject also as a job finished ``failed``:
    :func:`daemon.planning.record_decisions` failed it). A started job's run-now grams are
    those of the counterfactual stored at submission, but its own expected grams where that
    counterfactual starts at or after its deadline: run-now would have missed it (its copy
    expires waiting, :func:`daemon.ledger.missed_by_run_now`), so it claims no saving, as its
    outcome row does (:mod:`daemon.endings.finishing`). Its grams are counted at its first
    start decision only: a job started again (its launch never confirmed, it was queued
    again; or a start not dispatched, its devices busy) runs once, so its later start
    decisions are counted as decisions, without grams; so is one a reserving executor started
    before (its grams counted then, :class:`~daemon.executors.held.HeldJobs`), requeued since."""
    chosen = decision.chosen
    expected_g = chosen.total_g if chosen else None
    run_now_g = decision.run_now.total_g if decision.run_now else None
    if decision.action == "start" and not isinstance(service.metrics, NullMetrics):
        # (the ledger is not read for a sink that drops it)
        ledger = service.ledger
        if ledger.start_decisions(job.job_id) > 1 or ledger.ever_running(job.job_id):
            expected_g = run_now_g = None  # counted at its first start (one by its executor)
        else:  # the counterfactual stored at submission
            start = decision.run_now.start if decision.run_now else None
            run_now_g = ledger.run_now_claim_g(
                job.job_id, job.deadline, expected_g, run_now_g, start
            )
    service.metrics.observe_decision(decision.policy, decision.action, expected_g, run_now_g)
    if decision.action == "reject":  # failed now, with no run: a final state, as any other
        service.metrics.observe_outcome(job.job_id, "failed", None)
