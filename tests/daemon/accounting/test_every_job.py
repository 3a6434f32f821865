"""Issue 14 item 1: every finished job has carbon figures, flagged by how its energy was got.

A local-executor job on a machine without NVML (``start_measurement`` finds no driver, so
nothing meters it) ends with realised intensity and grams from an ``estimated`` energy; a job
whose executor measured its energy (Slurm's ``sacct``) is flagged ``slurm-sacct``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.gpu.fake_nvml import FakeNvml
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.measurement import start_measurement
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line

REGIONS = (RegionSettings(name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",)),)
J_PER_KWH = 3_600_000


def _service(tmp_path: Path, executor: RecordingExecutor) -> Service:
    settings = Settings(state_dir=tmp_path, regions=REGIONS, policy={"name": "run-now"})
    inventory = build_inventory(REGIONS)
    no_driver = FakeNvml([], lambda: 0.0, driver_loaded=False)
    measurement = start_measurement(
        settings, DEFAULT_GPU_CATALOG, inventory, sample=False, nvml_module=no_driver
    )
    assert measurement is None  # no NVML on this "machine": nothing meters the job
    ledger = Ledger.open(tmp_path / "ledger.db")
    return Service(
        settings=settings,
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["node"]),
        executors={executor.name: executor},
        inventory=inventory,
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
    )


@pytest.mark.parametrize("overrun", [1.0, 1.5])
def test_an_unmetered_local_job_ends_with_estimated_grams(tmp_path: Path, overrun: float) -> None:
    clock, executor = FakeClock(), RecordingExecutor("local", duration_factor=overrun)
    service = _service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64, batch_size=8))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s and decision.expected_energy_j
    clock.advance(decision.expected_duration_s * overrun + 30)
    assert service.tick(clock()).finished == ("a",)
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    assert outcome["energy_method"] == "estimated"
    assert outcome["measured_energy_j"] is None  # nothing measured it, and it says so
    # the predicted power over the real run (the job ran ``overrun`` times as long)
    assert outcome["energy_j"] == pytest.approx(decision.expected_energy_j * overrun, rel=1e-6)
    assert outcome["duration_s"] == pytest.approx(decision.expected_duration_s * overrun)
    intensity = outcome["realised_intensity_g_per_kwh"]
    assert intensity is not None and intensity > 0
    assert outcome["intensity_source"]
    assert outcome["operational_g"] == pytest.approx(outcome["energy_j"] / J_PER_KWH * intensity)
    assert outcome["total_g"] == pytest.approx(outcome["operational_g"] + outcome["embodied_g"])
    assert (outcome["region"], outcome["zone"], outcome["gpu"]) == ("node", "CA-QC", "A100-80GB")
    service.ledger.close()


def test_an_executor_measured_job_is_flagged_with_its_method(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor("local")
    executor.reported_power_w = 250.0
    service = _service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64, batch_size=8))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s
    clock.advance(decision.expected_duration_s + 1)
    service.tick(clock())
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    assert outcome["energy_method"] == "slurm-sacct"
    expected_j = 250.0 * decision.expected_duration_s
    assert outcome["measured_energy_j"] == pytest.approx(expected_j)
    assert outcome["energy_j"] == pytest.approx(expected_j)
    assert outcome["total_g"] > 0
    service.ledger.close()


def test_realised_intensity_uses_the_samples_recorded_over_the_run(tmp_path: Path) -> None:
    """Two refreshes during a long run: the realised intensity is their time-weighted mean,
    read back from the ledger (so it survives a restart)."""
    clock, executor = FakeClock(), RecordingExecutor("local", auto_finish=False)
    service = _service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    start = clock()
    clock.advance(2 * 3600)
    service.tick(clock())  # refreshes (interval passed): a second sample
    clock.advance(2 * 3600)
    executor.finish("a", clock())
    service.tick(clock())
    samples = service.ledger.intensity_samples("CA-QC", start, clock())
    assert len(samples) >= 2
    values = {at: v for at, v, _ in samples}
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    lo, hi = min(values.values()), max(values.values())
    assert lo <= outcome["realised_intensity_g_per_kwh"] <= hi
    assert outcome["total_g"] is not None
    assert clock() - start == timedelta(hours=4)
    service.ledger.close()


def test_an_executor_energy_no_gpu_could_draw_falls_back_to_the_estimate(tmp_path: Path) -> None:
    """sacct's ConsumedEnergyRaw comes from a node sensor: a broken one (a counter wrapping, a
    plugin in mJ) reported 1e12 J for a minute's job; recorded as measured, it gave the job
    tonnes of CO2 and taught the planner an absurd energy factor."""
    clock, executor = FakeClock(), RecordingExecutor("local")
    executor.reported_power_w = 1e10  # an A100 draws at most 400 W
    service = _service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64, batch_size=8))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s and decision.expected_energy_j
    clock.advance(decision.expected_duration_s)
    with capture_logs() as logs:
        service.tick(clock())
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    assert outcome["energy_method"] == "estimated"
    assert outcome["measured_energy_j"] is None  # neither recorded nor learnt from
    assert outcome["energy_j"] == pytest.approx(decision.expected_energy_j, rel=1e-6)
    [event] = [e for e in logs if e["event"] == "job_energy_implausible"]
    assert event["job_id"] == "a" and event["reported_energy_j"] > 1e11
    assert event["energy_method"] == "slurm-sacct"
    service.ledger.close()
