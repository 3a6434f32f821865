"""What the daemon learns from measured outcomes: the recalibration factors per (model, GPU
type, runtime, precision) and per (model, GPU type), whoever measured the energy.

Every service holds one :class:`Learning`. Its factors are folded from each succeeded run whose
energy was measured: by carbond's own GPU meter (:class:`daemon.measurement.JobMeasurement`,
which uses the service's :class:`Learning`) or by the run's executor (Slurm's ``sacct``,
folded by :mod:`daemon.endings.finishing` once the run's end is committed). At start the service
relearns them from the ledger's outcome rows (:func:`measured_history`): they are derived state,
of which the ledger also keeps a checkpoint (:mod:`daemon.learning.checkpoint`: the fold up to
a watermark, so a restart folds only the runs since). Replay attaches no measurement and its
executor reports no energy, so nothing is learned there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import structlog

from daemon.inventory import InventoryGpu
from daemon.ledger import Ledger, LedgerError, MeasuredRun
from daemon.planning import job_spec
from policies import Device, JobSpec, PoliciesError
from policies.candidates import estimate_on
from policies.footprint.gpus import GpuSpec
from policies.footprint.recalibration import Observation, Recalibration
from policies.footprint.runtimes import get_runtime
from policies.footprint.served import served_precision

__all__ = ["Learning", "fine_key", "measured_history", "refold_changed", "teaches"]

log = structlog.get_logger(__name__)


class Learning:
    """The online recalibration factors (``recalibration``), folded one measured run at a time
    against that run's raw (uncalibrated) estimate, recomputed with the pure estimator; planners
    that take a ``recalibration`` field get them from the service.

    Args:
        recalibration: the starting factors (default: none learned yet).
    """

    def __init__(self, recalibration: Recalibration | None = None) -> None:
        self.recalibration = recalibration or Recalibration()

    def learn(
        self, job: JobSpec, device: Device, measured_energy_j: float, measured_duration_s: float
    ) -> bool:
        """Fold one measured run in (:meth:`observe`) and log ``recalibrated`` with the state of
        its (model, GPU type, runtime, precision) factor, the coarse (model, GPU type) one's
        samples and the level the planner now uses for such runs (``level``: ``fine``,
        ``coarse`` or ``none``), or ``recalibration_ignored`` when the run taught nothing (a
        measured energy or time that is not a positive number); False when the run could not
        be estimated."""
        before = self.recalibration
        if not self.observe(job, device, measured_energy_j, measured_duration_s):
            return False
        model, gpu = job.model.name, device.gpu.name
        if self.recalibration is before:
            log.info("recalibration_ignored", job_id=job.job_id, model=model, gpu=gpu,
                     measured_energy_j=measured_energy_j,
                     measured_duration_s=measured_duration_s)  # fmt: skip
            return True
        learned = self.recalibration
        runtime, precision = fine_key(job, device.gpu)
        state = learned.get(model, gpu, runtime, precision)
        used = learned.level(model, gpu, runtime, precision)
        log.info(
            "recalibrated",
            model=model,
            gpu=gpu,
            runtime=runtime,
            precision=precision,
            samples=state.samples,
            measured_s=state.measured_s,
            learned_energy_factor=state.energy_factor,
            learned_duration_factor=state.duration_factor,
            coarse_samples=learned.get(model, gpu).samples,
            in_use=learned.in_use(model, gpu, runtime, precision),
            level="none" if used is None else "coarse" if used.coarse else "fine",
            energy_factor=learned.energy_factor(model, gpu, runtime, precision),
        )
        return True

    def observe(
        self, job: JobSpec, device: Device, measured_energy_j: float, measured_duration_s: float
    ) -> bool:
        """Fold one measured run into :attr:`recalibration` against the raw estimate
        (``device`` only names the GPU type); False (logged) when it cannot be estimated."""
        try:
            raw = estimate_on(job, device)
        except PoliciesError as e:
            log.warning("recalibration_skipped", job_id=job.job_id, error=str(e))
            return False
        self.recalibration = self.recalibration.updated(
            Observation(
                job.model.name,
                device.gpu.name,
                raw.energy_j,
                measured_energy_j,
                raw.duration_s,
                measured_duration_s,
                raw.runtime,
                raw.workload.precision,
            )
        )
        return True

    def taught(
        self, job: JobSpec, device: Device, measured_energy_j: float, measured_duration_s: float
    ) -> bool:
        """Fold one measured run in (:meth:`observe`); whether it taught the factors (was
        estimated and its measurement usable: it counts as one of its factor's ``samples``). A
        run the recalibration rejects as a whole (a measured 0 J, a NaN) taught nothing."""
        before = self.recalibration
        return self.observe(job, device, measured_energy_j, measured_duration_s) and (
            self.recalibration is not before
        )

    def relearn(self, history: Iterable[tuple[JobSpec, Device, float, float]]) -> int:
        """Rebuild :attr:`recalibration` from measured runs, oldest first, after a restart.

        Each item is ``(job, device, measured_energy_j, measured_duration_s)``; ``device`` only
        names the GPU type. The factors are derived state: the ledger's outcome rows are their
        record (the service's start resumes from the ledger's checkpoint of this fold instead,
        :func:`daemon.learning.checkpoint.restore`). Starts from no factors, so calling it
        twice is safe. Returns how many runs taught the factors (:meth:`taught`).
        """
        self.recalibration = Recalibration(self.recalibration.config)  # idempotent: from scratch
        folded = sum(1 for job, device, e, t in history if self.taught(job, device, e, t))
        if folded:
            log.info("recalibration_relearned", runs=folded, pairs=self.recalibration.pairs,
                     keys=len(self.recalibration.factors))  # fmt: skip
        return folded


def fine_key(job: JobSpec, gpu: GpuSpec) -> tuple[str, str]:
    """The runtime and weight precision of ``job``'s fine factor key on ``gpu``, as its estimate
    names them (:meth:`Recalibration.apply <policies.footprint.recalibration.Recalibration.apply>`
    looks the factors up by the estimate's): the runtime profile's name (``VLLM`` is ``vllm``;
    an unknown runtime as written, such a job is never estimated) and the precision served
    there (:func:`~policies.footprint.served.served_precision`: vLLM's bf16 on a T4 is fp16;
    one it cannot serve as asked, such a job never runs there)."""
    try:
        profile = get_runtime(job.runtime)
    except PoliciesError:
        return job.runtime, job.workload.precision
    try:
        precision = served_precision(gpu, profile, job.workload.precision).precision
    except PoliciesError:
        precision = job.workload.precision
    return profile.name, precision


def teaches(simulated: bool, gpu_type: str, inventory: Iterable[InventoryGpu]) -> bool:
    """Whether a run on the ``simulated`` executor (else a real one) of GPU type ``gpu_type``
    teaches that type's factors under ``inventory``: a real run when the inventory has real GPUs
    of the type, a simulated run only when all its GPUs of the type are simulated. The factors
    are per (model, GPU type), whichever executor: real evidence wins, so GPUs of a type with a
    real GPU are never planned on what the simulation (its ``truth_factor``, the simulated GPUs'
    ``simulated_power_factor``) taught, not even before their first real run, and the simulated
    GPUs of that type are planned on what the real ones taught. (A region switched from the
    simulated executor to real GPUs of the same types does not plan on the simulation either.)
    """
    kinds = {gpu.executor == "simulated" for gpu in inventory if gpu.device.gpu.name == gpu_type}
    return (not simulated and False in kinds) or (simulated and kinds == {True})


def refold_changed(
    learning: Learning,
    ledger: Ledger,
    before: Sequence[InventoryGpu],
    after: Sequence[InventoryGpu],
) -> list[str]:
    """When the inventory goes from ``before`` to ``after`` (a reload, a Slurm region's GPUs
    discovered after the start): the GPU types of ``after`` whose runs teach otherwise now
    (:func:`teaches`: a simulated-only type that got real GPUs, a mixed one that lost them, a
    type new to the inventory) or whose catalog spec changed (``[catalog.gpus.X]``: the raw
    estimates the factors divide by change with it) get in ``learning`` the factors a restart
    would give them, a fold of the ledger's runs of those types (:func:`measured_history`);
    the other types keep their live factors. Without it a type that became mixed kept planning
    its real GPUs on what the simulation taught until a restart, and a type whose ``tdp_w`` a
    reload raised was planned on the factor learned against its old estimates.
    Logs ``recalibration_refolded`` (the types, the runs that taught them). Returns the types
    refolded, sorted. A ledger that cannot be read changes nothing (logged
    ``recalibration_refold_failed``; the next restart folds them): the reload or the discovery
    goes on."""
    then, now = _kinds(before), _kinds(after)
    specs_then, specs_now = _specs(before), _specs(after)
    changed = sorted(
        name for name, kinds in now.items()
        if then.get(name) != kinds or specs_then.get(name) != specs_now[name]
    )  # fmt: skip
    if not changed:
        return []
    keys = {name.strip().lower() for name in changed}  # as the factors are keyed
    fold = Learning(Recalibration(learning.recalibration.config))
    wanted = set(changed)
    of_types = [gpu for gpu in after if gpu.device.gpu.name in wanted]
    try:
        runs = sum(1 for job, device, e, t in measured_history(ledger, of_types)
                   if fold.taught(job, device, e, t))  # fmt: skip
    except LedgerError as e:
        log.warning("recalibration_refold_failed", gpus=changed, error=str(e))
        return []
    kept = [f for f in learning.recalibration.factors.values() if f.gpu.strip().lower() not in keys]
    learning.recalibration = Recalibration.from_factors(
        (*kept, *fold.recalibration.factors.values()), learning.recalibration.config
    )
    log.info("recalibration_refolded", gpus=changed, runs=runs)
    return changed


def _kinds(inventory: Iterable[InventoryGpu]) -> dict[str, frozenset[bool]]:
    """Per GPU type of ``inventory``: whether its GPUs are simulated (True), real, or both."""
    kinds: dict[str, set[bool]] = {}
    for gpu in inventory:
        kinds.setdefault(gpu.device.gpu.name, set()).add(gpu.executor == "simulated")
    return {name: frozenset(k) for name, k in kinds.items()}


def _specs(inventory: Iterable[InventoryGpu]) -> dict[str, GpuSpec]:
    """Per GPU type of ``inventory``: its catalog spec (the raw estimates' GPU)."""
    return {gpu.device.gpu.name: gpu.device.gpu for gpu in inventory}


def measured_history(
    ledger: Ledger, inventory: Sequence[InventoryGpu], runs: Iterable[MeasuredRun] | None = None
) -> Iterator[tuple[JobSpec, Device, float, float]]:
    """The ledger's measured successful runs, oldest first, for :meth:`Learning.relearn`
    (metered by carbond or by their executor: every row with a ``measured_energy_j``), read in
    one query (:meth:`Ledger.measured_runs <daemon.ledger.Ledger.measured_runs>`; ``runs``:
    those runs instead, e.g. the ones after a checkpoint's watermark).

    Runs on GPU types no longer in ``inventory`` are skipped, and so are the runs that do not
    teach their type (:func:`teaches`: simulated runs of a type with real GPUs, real runs of a
    type with only simulated ones). So are runs whose stored request
    no longer parses (its model left the catalog, or the text is not a request); the others
    are still read. Once the history is read, each reason for skipping is logged once
    (``recalibration_history_skipped``: the error, how many jobs, the first few ids), not once
    per job: a model removed from the catalog would otherwise log every job it ever ran, at
    every restart. Jobs whose
    requests differ only in their id and deadline (one workload submitted again and again)
    share one parse: each gets that view under its own id, submission time and deadline,
    which is what :func:`daemon.planning.job_spec` of its ledger job gives.
    """
    by_type: tuple[dict[str, Device], dict[str, Device]] = ({}, {})  # real, simulated
    for gpu in inventory:
        by_type[gpu.executor == "simulated"][gpu.device.gpu.name] = gpu.device
    for name in by_type[0]:  # real evidence wins (teaches)
        by_type[1].pop(name, None)
    views: dict[str, JobSpec | PoliciesError] = {}  # by request key (MeasuredRun)
    skipped: dict[str, list[str]] = {}  # job ids by the error that skipped them
    for run in ledger.measured_runs() if runs is None else runs:
        device = by_type[run.simulated].get(run.gpu or "")
        if device is None:
            continue
        spec = _job_spec(run, ledger, views)
        if isinstance(spec, str):
            skipped.setdefault(spec, []).append(run.job_id)
        else:
            yield spec, device, run.measured_energy_j, run.duration_s
    for error, job_ids in skipped.items():
        log.warning("recalibration_history_skipped", error=error, jobs=len(job_ids),
                    job_ids=job_ids[:_IDS_LOGGED])  # fmt: skip


def _job_spec(
    run: MeasuredRun, ledger: Ledger, views: dict[str, JobSpec | PoliciesError]
) -> JobSpec | str:
    """The planner's view of ``run``'s job (:func:`daemon.planning.job_spec` of its ledger
    job), parsed once per request key (``views``: emptied when it holds :data:`_VIEWS_KEPT`);
    why not, when it no longer parses."""
    view = views.get(run.request_key) if run.request_key is not None else None
    if view is None:
        try:
            view = job_spec(ledger.job(run.job_id))
        except PoliciesError as e:  # the catalog changed: the same for every job of this key
            view = e
        except (ValueError, KeyError, TypeError) as e:  # not as the daemon stores a job
            return f"unreadable job row: {e!r}"
        if run.request_key is not None:
            if len(views) >= _VIEWS_KEPT:  # bounded: a ledger of all-different requests
                views.clear()
            views[run.request_key] = view
    if isinstance(view, PoliciesError):
        return str(view)
    if view.job_id == run.job_id:
        return view
    return replace(view, job_id=run.job_id, submitted_at=run.submitted_at, deadline=run.deadline)


_VIEWS_KEPT = 4096
_IDS_LOGGED = 5  # job ids named per reason a restart skipped runs
