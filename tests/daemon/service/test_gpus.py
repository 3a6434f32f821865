"""The service's GPUs changing under it (:mod:`daemon.service.gpus`): a region discovered late."""

from __future__ import annotations

from pathlib import Path

from daemon.assemble import build_daemon
from daemon.intensity.providers import EmbeddedIntensity
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.late_slurm import LateSlurm

SIM = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
HPC = RegionSettings(name="hpc", zone="US-CAL-CISO", executor="slurm", gpus="discover",
                     slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip


def test_a_region_discovered_late_in_a_new_zone_is_planned_on_that_zones_forecast_at_once(
    tmp_path: Path,
) -> None:
    """Slurm did not answer at start, so only CA-QC's forecast was fetched. The round that
    finds the Slurm region's GPUs fetches its zone's forecast before planning on them, not
    ``intervals.refresh_s`` (300 s) after the last refresh."""
    clock = FakeClock()
    slurm = LateSlurm({"hpc": [(0, "T4")]})
    settings = Settings(state_dir=tmp_path, regions=(SIM, HPC), policy={"name": "run-now"})
    executors = {"simulated": RecordingExecutor("simulated"), "slurm": slurm}
    daemon = build_daemon(settings, executors=executors, intensity=EmbeddedIntensity(),
                          gpu_clock=clock.monotonic())  # fmt: skip
    try:
        service, ledger = daemon.service, daemon.ledger
        service.start(clock())
        service.tick(clock())
        assert set(service.forecasts) == {"CA-QC"}
        slurm.up = True
        append(service.queue.path, job_line(id="j", regions=["hpc"]))
        service.tick(clock.advance(60))  # the refresh is not due for 240 s more
        assert set(service.forecasts) == {"CA-QC", "US-CAL-CISO"}
        assert {row["zone"] for row in ledger.rows("intensity_samples")} == set(service.forecasts)
        decision = ledger.latest_decision("j")
        assert decision is not None and (decision.action, decision.region) == ("start", "hpc")
        assert ledger.job("j").state in {"running", "succeeded"}
    finally:
        daemon.close()
