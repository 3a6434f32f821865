"""From ledger rows to the policy's inputs (job specs, the policy) and its decisions back to
the ledger (the busy devices: :mod:`daemon.busy`)."""

from __future__ import annotations

import logging
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import structlog

from daemon.ledger import DecisionRecord, JobRecord, LatestPlan, Ledger
from daemon.logs import dropped
from daemon.queue.job_request import JobRequest
from policies import Decision, Device, JobSpec, PlannedStart, PoliciesError, Policy, get_policy
from policies.candidates import UNFIT, fit_problem
from policies.footprint import DEFAULT_MODEL_CATALOG, ModelSpec, Workload

__all__ = [
    "WAITING_FOR_CAPACITY",
    "WAITING_FOR_DISCOVERY",
    "DecisionKey",
    "Seen",
    "build_policy",
    "compared_start",
    "decision_key",
    "job_spec",
    "record_decision",
    "record_decisions",
    "request_spec",
    "spec_or_none",
    "stored_plan",
    "stored_plans",
    "waiting_for_capacity",
    "with_plan",
    "with_run_now_recorded",
]

log = structlog.get_logger(__name__)


def build_policy(
    name: str, params: Mapping[str, Any], lifetime_years: float | None = None
) -> Policy:
    """The policy registered as ``name`` with ``params`` (the settings have checked both),
    planning with ``lifetime_years`` (the settings' top-level one, which outcomes are charged
    with) unless ``params`` sets its own: every built-in policy takes it.

    Raises:
        UnknownPolicyError: no policy has that name (never a silent fallback).
        PoliciesError: the policy rejects ``params``.
    """
    if lifetime_years is not None and "lifetime_years" not in params:
        params = {**params, "lifetime_years": lifetime_years}
    return get_policy(name, **params)


def job_spec(job: JobRecord) -> JobSpec:
    """The planner's view of a ledger job.

    Raises:
        PoliciesError: the model or workload is invalid (checked at ingestion, so only a
            catalog change between ingestion and planning triggers it).
    """
    return request_spec(job.request, job.job_id, job.submitted_at, job.deadline)


def spec_or_none(job: JobRecord) -> JobSpec | None:
    """:func:`job_spec`, or None if the job no longer parses (never raises): for measuring,
    which works without the planner's view."""
    try:
        return job_spec(job)
    except PoliciesError:
        return None


def request_spec(
    request: JobRequest, job_id: str, submitted_at: datetime, deadline: datetime | None
) -> JobSpec:
    """The planner's view of a queue request (``carbond submit`` checks it before appending).

    Raises:
        PoliciesError: the model or workload is invalid.
    """
    model = (
        DEFAULT_MODEL_CATALOG.get(request.model)
        if request.model is not None
        else ModelSpec.from_params(float(request.params_b or 0.0))
    )
    workload = Workload(
        batch_size=request.batch_size,
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        requests=request.requests,
        precision=request.precision,
        tensor_parallel=request.tensor_parallel,
    )
    workload.validate()
    return JobSpec(
        job_id=job_id,
        model=model,
        workload=workload,
        submitted_at=submitted_at,
        deadline=deadline,
        runtime=request.runtime,
        regions=request.regions,
        gpu_types=request.gpu_types,
        min_gpu_memory_gb=request.min_gpu_memory_gb,
        priority=request.priority,
    )


def with_plan(spec: JobSpec, decision: Decision) -> JobSpec:
    """``spec`` with ``decision``'s plan as :attr:`JobSpec.planned`, for the next round (a
    hold's chosen cell; None after any other decision); ``spec`` itself when it has that plan."""
    chosen = decision.chosen if decision.action == "hold" else None
    old = spec.planned
    if chosen is None:
        return spec if old is None else _replanned(spec, None)
    if old is not None and (old.start, old.region, old.gpu) == (
        chosen.start, chosen.region, chosen.gpu
    ):  # fmt: skip
        return spec
    return _replanned(spec, PlannedStart(chosen.region, chosen.gpu, chosen.start))


# JobSpec's fields in order, read in one call: a held job's moved plan builds a new spec every
# round for ~10 % of the waiting jobs, and ``dataclasses.replace`` (a dict of every field by
# name) costs about twice this. Taken from ``fields`` so a new field is copied too.
_SPEC_FIELDS = tuple(f.name for f in fields(JobSpec))
_PLANNED = _SPEC_FIELDS.index("planned")
_RECORDED = _SPEC_FIELDS.index("run_now_recorded")
_spec_values = operator.attrgetter(*_SPEC_FIELDS)
assert all(f.init for f in fields(JobSpec)), "every JobSpec field is an __init__ argument"


def _replanned(spec: JobSpec, planned: PlannedStart | None) -> JobSpec:
    """``dataclasses.replace(spec, planned=planned)``."""
    values = list(_spec_values(spec))
    values[_PLANNED] = planned
    return JobSpec(*values)


def with_run_now_recorded(spec: JobSpec) -> JobSpec:
    """``dataclasses.replace(spec, run_now_recorded=True)`` (once per job, at its first
    decision with a counterfactual: :mod:`daemon.run_now_busy`)."""
    values = list(_spec_values(spec))
    values[_RECORDED] = True
    return JobSpec(*values)


def stored_plan(ledger: Ledger, job_id: str) -> PlannedStart | None:
    """The plan of ``job_id``'s latest stored decision, if that is a hold with one (a daemon
    that restarts keeps its planned jobs' plans).

    Raises:
        LedgerError: the ledger cannot be read.
    """
    return _plan_of(ledger.latest_decision(job_id, alternatives=False))


def stored_plans(ledger: Ledger, job_ids: Collection[str]) -> dict[str, PlannedStart | None]:
    """:func:`stored_plan` of each of ``job_ids``, read together
    (:meth:`daemon.ledger.Ledger.latest_plans`: the planned jobs a restarted or reloaded
    daemon's first round sees, in one query rather than one each).

    Raises:
        LedgerError: the ledger cannot be read.
    """
    latest = ledger.latest_plans(job_ids)
    return {job_id: _plan_of(latest.get(job_id)) for job_id in job_ids}


def _plan_of(record: DecisionRecord | LatestPlan | None) -> PlannedStart | None:
    """The plan ``record`` (a job's latest decision) carries: a hold's, with its start."""
    if record is None or record.action != "hold" or record.planned_start is None:
        return None
    if record.region is None or record.gpu is None:
        return None
    return PlannedStart(record.region, record.gpu, record.planned_start)


DecisionKey = tuple[str, str, str, tuple[str, ...], datetime | None]
# The latest recorded decision per job: its key, and the object that had it (a policy that
# repeats a decision hands back that very object, which needs no key built and compared).
Seen = dict[str, tuple[DecisionKey, Decision]]


WAITING_FOR_CAPACITY = "waiting for GPUs the executor reports unavailable"
WAITING_FOR_DISCOVERY = "waiting for the GPUs of region(s) not discovered yet"


def waiting_for_capacity(
    decisions: Sequence[Decision],
    specs: Mapping[str, JobSpec],
    configured: Sequence[Device],
    undiscovered: Collection[str] = (),
) -> list[Decision]:
    """``decisions`` with each reject that only the executors' view caused turned into a hold
    without a plan (the job stays ``queued`` and is planned again next round).

    A policy rejects a job that fits no *available* device. A capacity-aware executor (Slurm)
    marks GPUs unavailable for reasons that pass: its partition does not answer this round,
    or its nodes are down or drained. A job that fits ``configured`` (the devices before that
    view: carbond's own runs and lost GPUs still count) is not failed for that; it waits, and
    its deadline, if any, still expires it. So does a job that may run in one of the
    ``undiscovered`` regions (their executor could not yet ask for their GPUs: Slurm was down
    when the daemon started; a job naming no region may run in any): what GPUs such a region
    has is not known yet.
    """
    out = list(decisions)
    for i, decision in enumerate(out):
        if decision.action != "reject" or not decision.reason.startswith(UNFIT):
            continue
        spec = specs.get(decision.job_id)
        if spec is None:
            continue
        if fit_problem(spec, configured) is None:
            reason = f"{WAITING_FOR_CAPACITY} ({decision.reason})"
        elif waits := sorted(r for r in undiscovered if not spec.regions or r in spec.regions):
            reason = f"{WAITING_FOR_DISCOVERY} ({', '.join(waits)}; {decision.reason})"
        else:
            continue
        out[i] = Decision(decision.job_id, "hold", reason, decision.policy)
    return out


def record_decision(
    ledger: Ledger,
    job: JobRecord,
    decision: Decision,
    now: datetime,
    seen: Seen | None = None,
) -> bool:
    """Store ``decision`` about ``job`` unless it repeats the latest one (same action, policy,
    reason, devices and start), with its transition: ``hold`` with a plan -> ``planned``,
    ``hold`` without -> ``queued``, ``reject`` -> ``failed``. Returns whether it was stored
    (and logged as ``job_decision``). ``seen`` remembers the latest decision per job (its
    key and the object last handed in with that key), so a queue re-planned every round does
    not read each job's latest decision back from the ledger (a job not in it is looked up
    there, e.g. after a restart), and a decision that is that very object (a policy repeating
    last round's, :mod:`policies.round_decisions`) is a repeat without its key built.

    Raises:
        LedgerError: the ledger cannot be written.
    """
    return record_decisions(ledger, [(job, decision)], now, seen)[0]


def record_decisions(
    ledger: Ledger,
    decided: Sequence[tuple[JobRecord, Decision]],
    now: datetime,
    seen: Seen | None = None,
) -> list[bool]:
    """:func:`record_decision` for a round's decisions, the new ones stored in one
    transaction (all or none); whether each was stored, in order. ``seen`` is updated only
    once they are committed.

    Raises:
        LedgerError: the ledger cannot be written (nothing of the round is stored).
        InvalidTransitionError: a job's state forbids its decision's transition (idem).
    """
    known: Seen = {} if seen is None else seen
    get = known.get
    changed: list[tuple[str, tuple[DecisionKey, Decision]]] = []  # what ``seen`` learns
    fresh = []
    for job, decision in decided:  # a round re-plans the same waiting jobs: most repeat
        job_id = job.job_id
        before = get(job_id)
        if before is not None and before[1] is decision:  # the object recorded: its key
            fresh.append(False)
            continue
        key = decision_key(decision, now)
        if before is None:
            fresh.append(_is_new(ledger, job_id, key))
        else:
            fresh.append(before[0] != key)
        changed.append((job_id, (key, decision)))  # a repeat too: next round, the same object
    if any(fresh):
        stored = [pair for pair, new in zip(decided, fresh, strict=True) if new]
        with ledger.transaction():
            ledger.record_decisions([decision for _, decision in stored], now)
            for job, decision in stored:
                if decision.action == "hold":
                    target = "planned" if decision.chosen is not None else "queued"
                    if job.state != target:  # most held jobs are planned already
                        ledger.transition(job.job_id, target, now, decision.reason, seen=job.state)
                elif decision.action == "reject":
                    reason = f"rejected: {decision.reason}"
                    ledger.transition(job.job_id, "failed", now, reason, seen=job.state)
        if not dropped(__name__, logging.INFO):  # asked once, not per event
            logger = log.bind()  # one bind per round, not one per event
            for job, decision in stored:
                _log_decision(logger, job, decision)
    if seen is not None:
        seen.update(changed)
    return fresh


def compared_start(action: str, start: datetime | None, decided_at: datetime) -> datetime | None:
    """A decision's planned start as it is compared from round to round: none for a hold
    planned to start when it was made (its devices are not free yet, or the job waits past its
    latest safe start). That start is each round's now, so such a job would otherwise be a new
    decision every round for as long as it waits: a stored row (an overloaded cluster: ~80 a
    job, `tests/daemon/test_planning.py`) and, on Slurm, a move (:mod:`daemon.executors.held`)."""
    if action == "hold" and start is not None and start <= decided_at:
        return None
    return start


def decision_key(decision: Decision, now: datetime) -> DecisionKey:
    """What a decision made at ``now`` is compared by: its action, policy, reason, devices and
    planned start (:func:`compared_start`)."""
    chosen = decision.chosen
    if chosen is None:
        return (decision.action, decision.policy, decision.reason, (), None)
    start = compared_start(decision.action, chosen.start, now)
    return (decision.action, decision.policy, decision.reason, chosen.device_ids, start)


def _is_new(ledger: Ledger, job_id: str, key: DecisionKey) -> bool:
    """Whether ``key`` differs from the latest decision about ``job_id`` in the ledger."""
    previous = ledger.latest_decision(job_id, alternatives=False)  # not compared
    if previous is None:
        return True
    start = compared_start(previous.action, previous.planned_start, previous.at)
    return key != (previous.action, previous.policy, previous.reason, previous.device_ids, start)


def _log_decision(logger: Any, job: JobRecord, decision: Decision) -> None:
    chosen = decision.chosen
    logger.info("job_decision", job_id=job.job_id, action=decision.action,
                policy=decision.policy, reason=decision.reason,
                region=chosen.region if chosen else None, gpu=chosen.gpu if chosen else None,
                start=chosen.start.isoformat() if chosen else None,
                expected_total_g=chosen.total_g if chosen else None,
                run_now_total_g=decision.run_now.total_g if decision.run_now else None)  # fmt: skip
