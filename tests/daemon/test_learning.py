"""The service learns from every measured outcome while it runs: a Slurm-only daemon (no GPU
metered here) from the energy ``sacct`` reported, a mixed one from both meters without counting a
run twice; a restart relearns the same factors, and an ending that rolls back teaches nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from daemon.gpu import GpuMonitor, SimulatedGpuBackend
from daemon.gpu.factory import simulated_spec
from daemon.intensity import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger, LedgerError, RunEnd
from daemon.measurement import JobMeasurement
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import GpuSettings, RegionSettings, Settings, SlurmRegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line

MODEL, GPU = "llama-3.1-8b", "A100-80GB"
HPC = RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=(GPU,) * 2,
                     slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
NODE = RegionSettings(name="node", zone="CA-QC", executor="local", gpus=(GPU,))


class _FailingLedger(Ledger):
    """A ledger whose next run-ending commit fails (``fail_finish``): its transaction rolls
    back, as a full disk would make it."""

    fail_finish = False

    def finish_runs(self, ends: Sequence[RunEnd], at: datetime) -> None:
        super().finish_runs(ends, at)
        if self.fail_finish:
            raise LedgerError("ledger.db: disk full (test)")


def _service(
    tmp_path: Path,
    executors: Sequence[RecordingExecutor],
    regions: Sequence[RegionSettings] = (HPC,),
    measurement: JobMeasurement | None = None,
) -> Service:
    settings = Settings(state_dir=tmp_path, regions=tuple(regions))
    ledger = _FailingLedger.open(tmp_path / "ledger.db")
    return Service(
        settings=settings,
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=[r.name for r in regions]),
        executors={e.name: e for e in executors},
        inventory=build_inventory(regions),
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
        measurement=measurement,
    )


def _sacct(power_factor: float | None = None) -> RecordingExecutor:
    """A Slurm stand-in whose ended jobs report energy, as ``sacct`` does."""
    executor = RecordingExecutor("slurm")
    executor.reported_power_w = power_factor
    return executor


def _run(
    service: Service, clock: FakeClock, job_id: str, region: str = "hpc"
) -> tuple[float, float]:
    """Submit ``job_id`` (pinned to ``region``) and run it to its end: its planned energy (J)
    and duration (s)."""
    append(service.queue.path, job_line(id=job_id, model=MODEL, requests=1024, batch_size=8,
                                        regions=[region]))  # fmt: skip
    service.tick(clock())
    decision = service.ledger.latest_decision(job_id)
    assert decision is not None and decision.expected_duration_s and decision.expected_energy_j
    service.tick(clock.advance(decision.expected_duration_s * 1.01))
    return decision.expected_energy_j, decision.expected_duration_s


def _raw_power_w(tmp_path: Path) -> float:
    """The catalog's power for the test job on one A100 (a throwaway service's first plan)."""
    clock = FakeClock()
    service = _service(tmp_path / "probe", [_sacct()])
    service.start(clock())
    energy_j, duration_s = _run(service, clock, "probe")
    service.close()
    return energy_j / duration_s


def test_a_slurm_only_daemon_learns_from_sacct_while_it_runs(tmp_path: Path) -> None:
    """No GPU metered here: after ``min_samples`` runs whose ``sacct`` energy is 1.3x the
    estimate, the next job is planned with ~1.3x the energy, without a restart."""
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.start(clock())
    assert service.measurement is None
    planned = [_run(service, clock, f"j{n}")[0] for n in range(5)]
    outcome = service.ledger.outcome("j0")
    assert outcome is not None and outcome["energy_method"] == "slurm-sacct"
    assert outcome["measured_energy_j"] == pytest.approx(1.3 * planned[0], rel=1e-3)
    assert planned[1] == pytest.approx(planned[0], rel=1e-9)  # too little evidence yet
    assert service.learning.recalibration.get(MODEL, GPU).samples == 5
    assert planned[4] == pytest.approx(1.3 * planned[0], rel=0.02), planned


def test_a_restart_relearns_the_same_factors(tmp_path: Path) -> None:
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.start(clock())
    for n in range(4):
        _run(service, clock, f"j{n}")
    learned = service.learning.recalibration.factors
    assert service.learning.recalibration.get(MODEL, GPU).samples == 4
    service.close()

    restarted = _service(tmp_path, [_sacct(1.3 * power_w)])
    restarted.start(clock())
    assert dict(restarted.learning.recalibration.factors) == dict(learned)


def test_an_ending_that_rolls_back_teaches_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(500.0)])
    service.start(clock())
    _run(service, clock, "first")
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    assert isinstance(service.ledger, _FailingLedger)
    service.ledger.fail_finish = True
    with pytest.raises(LedgerError):
        _run(service, clock, "rolled-back")
    assert service.ledger.job("rolled-back").state == "running"  # its end was not recorded
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1


def test_a_mixed_daemon_counts_a_metered_run_once(tmp_path: Path) -> None:
    """GPUs metered here and Slurm's: each run teaches the (model, GPU type) once, the metered
    one through the meter, the Slurm one from ``sacct`` (while the daemon runs)."""
    clock = FakeClock()
    start = clock()

    def monotonic_s() -> float:
        return (clock() - start).total_seconds()

    backend = SimulatedGpuBackend([simulated_spec(DEFAULT_GPU_CATALOG.get(GPU))],
                                  true_power_factor=1.3, clock=monotonic_s)  # fmt: skip
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=monotonic_s, sample=False)
    measurement = JobMeasurement(monitor, lifetime_years=5.0, index_of={"node/0": 0})
    service = _service(tmp_path, [RecordingExecutor("local"), _sacct(500.0)], (NODE, HPC),
                       measurement)  # fmt: skip
    service.start(clock())
    _run(service, clock, "metered", region="node")
    metered = service.ledger.outcome("metered")
    assert metered is not None and metered["energy_method"] == "simulated-counter"
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    _run(service, clock, "sacct", region="hpc")
    sacct = service.ledger.outcome("sacct")
    assert sacct is not None and sacct["energy_method"] == "slurm-sacct"
    assert service.learning.recalibration.get(MODEL, GPU).samples == 2
    assert service.learning is measurement.learning
    service.close()
    measurement.close()
