"""A SIGHUP reload that gives a simulated GPU another type at the same device id: the GPU
meter, built at start-up, holds the old type's simulated device there; it stops metering it
(the job's energy is estimated, not drawn by the wrong GPU) and the reload says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.assemble import Daemon, build_daemon, rebuild_service
from daemon.cli.run_cmd import metered_ids, unmetered_by_reload
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line

MODEL = "llama-3.1-8b"


def _settings(tmp_path: Path, *gpus: str, catalog: dict[str, Any] | None = None) -> Settings:
    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=gpus)
    return Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                    gpu={"backend": "simulated"}, catalog={"gpus": catalog or {}})  # fmt: skip


def _daemon(tmp_path: Path, clock: FakeClock, *gpus: str) -> Daemon:
    daemon = build_daemon(_settings(tmp_path, *gpus),
                          executors={"simulated": RecordingExecutor("simulated")},
                          gpu_clock=clock.monotonic())  # fmt: skip
    daemon.service.start(clock())
    return daemon


def test_a_gpu_retyped_by_a_reload_is_not_metered_as_its_old_type(tmp_path: Path) -> None:
    """sim/0 was a T4 (70 W TDP) and a reload made it an H100-SXM: its next job was metered on
    the T4's simulated device, a tenth of the H100's power, and the outcome said 'measured'.
    It is now estimated (no measured energy), and the reload names sim/0 as unmetered; sim/1,
    an L4 before and after, stays metered."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, "T4", "L4")
    try:
        measurement = daemon.measurement
        assert measurement is not None
        before = daemon.service.inventory
        metered = metered_ids(measurement, before)
        assert metered == {"sim/0", "sim/1"}
        service = rebuild_service(daemon, _settings(tmp_path, "H100-SXM", "L4"), None)
        assert unmetered_by_reload(measurement, before, metered, service.inventory) == ["sim/0"]
        assert [g.device_id for g in service.inventory if measurement.measures((g,))] == ["sim/1"]
        append(service.queue.path, job_line(id="h100", model=MODEL, requests=1024, batch_size=8,
                                            gpu_types=["H100-SXM"]))  # fmt: skip
        service.tick(clock())
        decision = service.ledger.latest_decision("h100")
        assert decision is not None and decision.gpu == "H100-SXM"
        assert decision.expected_duration_s
        service.tick(clock.advance(decision.expected_duration_s * 1.01))
        assert service.ledger.job("h100").state == "succeeded"
        outcome = service.ledger.outcome("h100")
        assert outcome is not None
        assert outcome["measured_energy_j"] is None, outcome  # not the T4 device's draw
        # a reload that changes nothing names nothing
        again = rebuild_service(daemon, _settings(tmp_path, "H100-SXM", "L4"), None)
        kept = metered_ids(measurement, service.inventory)
        assert unmetered_by_reload(measurement, service.inventory, kept, again.inventory) == []
    finally:
        daemon.close()


def test_a_catalog_power_changed_by_a_reload_is_not_metered_at_the_old_power(
    tmp_path: Path,
) -> None:
    """A reload raising ``[catalog.gpus.T4] tdp_w`` from 70 to 140 W: the T4's simulated
    device, built at start-up, still drew 70 W at full load, so sim/0's next job was metered
    at half the power the catalog (and its estimate) now gives, and said 'measured'. It is now
    estimated, and the reload names sim/0 as unmetered until a restart; sim/1 (an L4) and a
    change the device does not draw (the T4's embodied carbon) keep metering."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, "T4", "L4")
    try:
        measurement = daemon.measurement
        assert measurement is not None
        before = daemon.service.inventory
        metered = metered_ids(measurement, before)
        embodied = _settings(tmp_path, "T4", "L4", catalog={"T4": {"embodied_kg": 99.0}})
        service = rebuild_service(daemon, embodied, None)
        assert unmetered_by_reload(measurement, before, metered, service.inventory) == []
        before, metered = service.inventory, metered_ids(measurement, service.inventory)
        hotter = _settings(tmp_path, "T4", "L4", catalog={"T4": {"tdp_w": 140.0}})
        service = rebuild_service(daemon, hotter, None)
        assert service.inventory[0].device.gpu.tdp_w == 140.0
        assert unmetered_by_reload(measurement, before, metered, service.inventory) == ["sim/0"]
        assert [g.device_id for g in service.inventory if measurement.measures((g,))] == ["sim/1"]
        append(service.queue.path, job_line(id="t4", model="llama-1b", requests=64, batch_size=8,
                                            gpu_types=["T4"]))  # fmt: skip
        service.tick(clock())
        decision = service.ledger.latest_decision("t4")
        assert decision is not None and decision.gpu == "T4" and decision.expected_duration_s
        service.tick(clock.advance(decision.expected_duration_s * 1.01))
        assert service.ledger.job("t4").state == "succeeded"
        outcome = service.ledger.outcome("t4")
        assert outcome is not None and outcome["measured_energy_j"] is None, outcome
    finally:
        daemon.close()
