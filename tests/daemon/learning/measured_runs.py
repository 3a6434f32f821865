"""Measured runs as the daemon records them, for the tests of what a restart learns from the
ledger (daemon.learning.checkpoint) and of ``carbond gpus --learned``: a run (``Run``,
``sample_run``), recording it (``record_run``) and every run folded from scratch
(``fold_from_scratch``), on one region ``qc`` with an A100-80GB and a T4 (``INVENTORY``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning.factors import Learning, measured_history
from daemon.ledger import Ledger
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.settings import RegionSettings
from policies import Alternative, Decision
from policies.footprint.recalibration import Recalibration, RecalibrationConfig
from tests.daemon.helpers import job_line

T0 = datetime(2024, 6, 1, tzinfo=UTC)
MODELS = ("llama-3.1-8b", "llama-3.2-3b", "llama-3.2-1b")
REGION = RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("A100-80GB", "T4"))
INVENTORY = build_inventory((REGION,))
CONFIG = RecalibrationConfig(min_samples=2, min_measured_s=0.0)


@dataclass(frozen=True, slots=True)
class Run:
    """One finished job with a measured outcome: its request, GPU type, measurement, final
    state, and when its outcome was recorded (minutes after T0: may go back)."""

    model: str
    requests: int
    gpu: str
    energy_j: float
    duration_s: float
    state: str
    minute: int
    runtime: str = "hf-eager"
    precision: str = "fp16"


def job_request(job_id: str, run: Run) -> JobRequest:
    """``run``'s queue line (8 requests a batch) parsed as the queue would at T0."""
    line = job_line(id=job_id, model=run.model, requests=run.requests, batch_size=8,
                    runtime=run.runtime, precision=run.precision)  # fmt: skip
    request = parse_line(line.strip(), T0)
    assert isinstance(request, JobRequest)
    return request


def record_run(ledger: Ledger, job_id: str, run: Run) -> None:
    """``run`` as the daemon leaves it: the job, a decision on its GPU type, its moves to a
    final state and its outcome row in the same transaction."""
    at = T0 + timedelta(minutes=run.minute)
    plan = Alternative(("qc/0",), "qc", run.gpu, at, run.duration_s, run.energy_j, 30.0, 1, 0.1)
    with ledger.transaction():
        ledger.add_job(job_request(job_id, run), 1000, 1000, "queue.jsonl:1", at)
        ledger.record_decision(Decision(job_id, "start", "start: now", "test", plan, plan), at)
        ledger.transition(job_id, "running", at, "dispatched")
        ledger.transition(job_id, run.state, at, "ended")
        ledger.record_outcome(job_id, at, measured_energy_j=run.energy_j,
                              duration_s=run.duration_s)  # fmt: skip


def fold_from_scratch(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu] = INVENTORY,
    config: RecalibrationConfig = CONFIG,
) -> tuple[Recalibration, int]:
    """What a restart learned before checkpoints: every measured run folded from scratch (the
    factors, and how many runs :meth:`Learning.relearn` folded)."""
    learning = Learning(Recalibration(config))
    runs = learning.relearn(measured_history(ledger, inventory))
    return learning.recalibration, runs


def sample_run(
    n: int, *, minute: int | None = None, gpu: str = "A100-80GB", state: str = "succeeded",
    requests: int = 512,
) -> Run:  # fmt: skip
    """The ``n``-th of a family of runs that differ in model, size, energy and duration (each
    recorded ``n`` minutes after T0 unless ``minute`` says when)."""
    return Run(MODELS[n % 3], requests + n, gpu, 4e4 * (1 + n % 7) / 4, 300.0 + 17 * (n % 11),
               state, n if minute is None else minute)  # fmt: skip
