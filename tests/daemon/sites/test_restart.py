"""A site's battery across a daemon restart: the state of charge is kept in the state dir
(``sites.json``) and the next daemon resumes from it instead of ``initial_soc``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.settings import BatterySettings, SiteSettings
from daemon.sites.view import SITES_NAME
from daemon.testing import FakeClock
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line
from tests.daemon.sites.test_outcomes import _service

NIGHT = datetime(2024, 6, 1, 5, tzinfo=UTC)  # 01:00 in Quebec: no PV, the battery serves
BATTERY = BatterySettings(capacity_kwh=2.0, charge_power_w=1000, discharge_power_w=1000,
                          min_soc=0.1, initial_soc=0.9)  # fmt: skip
SITE = SiteSettings(pv_kwp=50.0, latitude=46.8, longitude=-71.2, battery=BATTERY)


def test_a_restart_resumes_the_battery_from_its_last_charge(tmp_path: Path) -> None:
    """A restart reset the battery to ``initial_soc``: the charge a night's jobs had drawn
    came back, and the next jobs were planned and accounted on energy the site did not have."""
    clock = FakeClock(NIGHT)
    first, _ = _service(tmp_path, SITE)
    first.start(clock())
    append(first.queue.path, job_line(id="a", model="llama-3.1-8b", requests=4096, batch_size=8))
    first.tick(clock())
    clock.advance(600)
    append(first.queue.path, job_line(id="b", model="llama-3.1-8b"))  # a round plans: the
    first.tick(clock())  # battery is advanced under the job running
    first.after_step("plan", None, clock())
    assert first.sites is not None
    drawn = first.sites.soc("node")
    assert drawn is not None and drawn < 0.9 - 0.01
    saved = json.loads((tmp_path / SITES_NAME).read_text())
    assert saved["batteries"]["node"]["soc"] == pytest.approx(drawn)
    clock.advance(10)  # a later round, written at the stop (not 30 s after the last write)
    append(first.queue.path, job_line(id="c", model="llama-3.1-8b"))
    first.tick(clock())
    first.after_step("plan", None, clock())
    assert first.sites.soc("node") < drawn
    drawn = first.sites.soc("node")
    first.close()
    saved = json.loads((tmp_path / SITES_NAME).read_text())
    assert saved["batteries"]["node"]["soc"] == pytest.approx(drawn)
    first.ledger.close()

    second, _ = _service(tmp_path, SITE)
    with capture_logs() as logs:
        second.start(clock())
    assert second.sites is not None and second.sites.soc("node") == pytest.approx(drawn)
    [restored] = [e for e in logs if e["event"] == "site_battery_restored"]
    assert restored["region"] == "node" and restored["soc"] == pytest.approx(drawn)
    second.ledger.close()


@pytest.mark.parametrize("body", ["{not json", '{"batteries": {"node": {"soc": "high"}}}'])
def test_an_unreadable_state_file_starts_from_initial_soc_and_says_so(
    tmp_path: Path, body: str
) -> None:
    (tmp_path / SITES_NAME).write_text(body)
    service, _ = _service(tmp_path, SITE)
    with capture_logs() as logs:
        service.start(NIGHT + timedelta(hours=1))
    assert service.sites is not None and service.sites.soc("node") == 0.9
    [warning] = [e for e in logs if e["event"] == "site_state_unreadable"]
    assert SITES_NAME in warning["path"] and warning["log_level"] == "warning"
    service.ledger.close()


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+00:00", "9999-01-01T00:00:00+00:00"])
def test_a_saved_round_far_from_the_start_keeps_the_charge_but_not_the_gap(
    tmp_path: Path, at: str
) -> None:
    """Advanced from year 1, the battery would step two thousand years; from year 9999 it
    stayed put until then. Either is taken as the charge at the start, advanced from there."""
    entry = {"soc": 0.5, "at": at, "running_w": 300.0, "nominal_w": 300.0}
    (tmp_path / SITES_NAME).write_text(json.dumps({"batteries": {"node": entry}}))
    service, _ = _service(tmp_path, SITE)
    service.start(NIGHT)
    assert service.sites is not None and service.sites.soc("node") == 0.5
    gpu = DEFAULT_GPU_CATALOG.get("A100-80GB")
    busy = [Device("node/0", "node", "CA-QC", gpu, 1.0, NIGHT + timedelta(hours=1))]
    service.sites.observe(NIGHT, busy)
    service.sites.observe(NIGHT + timedelta(minutes=10), busy)
    drawn_j = gpu.tdp_w * 600 / BATTERY.round_trip_efficiency**0.5
    assert service.sites.soc("node") == pytest.approx(0.5 - drawn_j / 7.2e6)
    service.ledger.close()
