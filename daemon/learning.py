"""What the daemon learns from measured outcomes: the recalibration factors per (model, GPU
type), whoever measured the energy.

Every service holds one :class:`Learning`. Its factors are folded from each succeeded run whose
energy was measured: by carbond's own GPU meter (:class:`daemon.measurement.JobMeasurement`,
which uses the service's :class:`Learning`) or by the run's executor (Slurm's ``sacct``,
folded by :mod:`daemon.finishing` once the run's end is committed). At start the service
relearns them from the ledger's outcome rows (:func:`measured_history`): they are derived state,
nothing else is stored. Replay attaches no measurement and its executor reports no energy, so
nothing is learned there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import structlog

from daemon.inventory import InventoryGpu
from daemon.ledger import Ledger
from daemon.planning import job_spec
from policies import Device, JobSpec, PoliciesError
from policies.candidates import estimate_on
from policies.footprint.recalibration import Observation, Recalibration

__all__ = ["Learning", "measured_history"]

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
        """Fold one measured run in (:meth:`observe`) and log ``recalibrated`` with the
        (model, GPU type)'s state; False when the run could not be estimated."""
        if not self.observe(job, device, measured_energy_j, measured_duration_s):
            return False
        model, gpu = job.model.name, device.gpu.name
        state = self.recalibration.get(model, gpu)
        log.info(
            "recalibrated",
            model=model,
            gpu=gpu,
            samples=state.samples,
            measured_s=state.measured_s,
            learned_energy_factor=state.energy_factor,
            learned_duration_factor=state.duration_factor,
            in_use=self.recalibration.in_use(model, gpu),
            energy_factor=self.recalibration.energy_factor(model, gpu),
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
            )
        )
        return True

    def relearn(self, history: Iterable[tuple[JobSpec, Device, float, float]]) -> int:
        """Rebuild :attr:`recalibration` from measured runs, oldest first, after a restart.

        Each item is ``(job, device, measured_energy_j, measured_duration_s)``; ``device`` only
        names the GPU type. The factors are derived state: the ledger's outcome rows are their
        record, so nothing else is stored. Starts from no factors, so calling it twice is safe.
        Returns how many runs were folded in.
        """
        self.recalibration = Recalibration(self.recalibration.config)  # idempotent: from scratch
        folded = sum(1 for job, device, e, t in history if self.observe(job, device, e, t))
        if folded:
            log.info("recalibration_relearned", runs=folded,
                     pairs=len(self.recalibration.factors))  # fmt: skip
        return folded


def measured_history(
    ledger: Ledger, inventory: Sequence[InventoryGpu]
) -> Iterator[tuple[JobSpec, Device, float, float]]:
    """The ledger's measured successful runs, oldest first, for :meth:`Learning.relearn`
    (metered by carbond or by their executor: every row with a ``measured_energy_j``).

    Runs on GPU types no longer in ``inventory``, or whose job no longer parses, are skipped.
    """
    by_type = {gpu.device.gpu.name: gpu.device for gpu in inventory}
    rows = [
        row
        for row in ledger.rows("outcomes")
        if row.get("measured_energy_j") is not None and row.get("duration_s")
    ]
    for row in sorted(rows, key=lambda r: str(r["recorded_at"])):
        job = ledger.job(row["job_id"])
        decision = ledger.latest_decision(job.job_id)
        device = by_type.get(decision.gpu or "") if decision else None
        if job.state != "succeeded" or device is None:
            continue
        try:
            spec = job_spec(job)
        except PoliciesError:
            continue
        yield spec, device, float(row["measured_energy_j"]), float(row["duration_s"])
