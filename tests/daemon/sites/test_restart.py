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
from tests.daemon.sites.site_service import site_service

NIGHT = datetime(2024, 6, 1, 5, tzinfo=UTC)  # 01:00 in Quebec: no PV, the battery serves
BATTERY = BatterySettings(capacity_kwh=2.0, charge_power_w=1000, discharge_power_w=1000,
                          min_soc=0.1, initial_soc=0.9)  # fmt: skip
SITE = SiteSettings(pv_kwp=50.0, latitude=46.8, longitude=-71.2, battery=BATTERY)


def test_a_restart_resumes_the_battery_from_its_last_charge(tmp_path: Path) -> None:
    """A restart reset the battery to ``initial_soc``: the charge a night's jobs had drawn
    came back, and the next jobs were planned and accounted on energy the site did not have."""
    clock = FakeClock(NIGHT)
    first, _ = site_service(tmp_path, SITE)
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

    second, _ = site_service(tmp_path, SITE)
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
    service, _ = site_service(tmp_path, SITE)
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
    service, _ = site_service(tmp_path, SITE)
    service.start(NIGHT)
    assert service.sites is not None and service.sites.soc("node") == 0.5
    gpu = DEFAULT_GPU_CATALOG.get("A100-80GB")
    busy = [Device("node/0", "node", "CA-QC", gpu, 1.0, NIGHT + timedelta(hours=1))]
    service.sites.observe(NIGHT, busy)
    service.sites.observe(NIGHT + timedelta(minutes=10), busy)
    drawn_j = gpu.tdp_w * 600 / BATTERY.round_trip_efficiency**0.5
    assert service.sites.soc("node") == pytest.approx(0.5 - drawn_j / 7.2e6)
    service.ledger.close()


NOON = datetime(2024, 6, 1, 16, tzinfo=UTC)  # noon in Quebec: PV charges the battery
BIG = BatterySettings(capacity_kwh=200.0, charge_power_w=3000, discharge_power_w=3000,
                      min_soc=0.1, initial_soc=0.2)  # fmt: skip
SUNNY = SiteSettings(pv_kwp=3.0, latitude=46.8, longitude=-71.2, battery=BIG)
PLAN_S = 600.0  # a planning round of ten minutes (a large queue, the LP)


def test_a_restart_mid_day_resumes_from_when_the_jobs_were_launched(tmp_path: Path) -> None:
    """Live, a round's jobs are launched when its planning is done (the wall clock), not at
    the round's start. The site took them on from the round's start: the battery carried a
    job for the ten minutes before it existed, and ``sites.json`` stamped that start on a
    state that held the job, so a daemon restarted mid-day resumed from the wrong point. The
    battery is now advanced to the launch and the state stamped there: a restart an hour
    later ends where a daemon that had launched the job at that time, and never stopped,
    does."""
    job = job_line(id="a", model="llama-3.1-8b", requests=200_000, batch_size=8)
    clock = FakeClock(NOON)
    first, _ = site_service(tmp_path / "live", SUNNY)
    first.launch_clock = lambda: clock() + timedelta(seconds=PLAN_S)
    first.start(clock())
    append(first.queue.path, job)
    first.tick(clock())
    first.after_step("plan", None, clock())
    launched = NOON + timedelta(seconds=PLAN_S)
    run = first.ledger.active_runs()[0]
    assert run.started_at == launched
    saved = json.loads((tmp_path / "live" / SITES_NAME).read_text())["batteries"]["node"]
    assert datetime.fromisoformat(saved["at"]) == launched and saved["running_w"] > 0
    clock.advance(PLAN_S)
    first.close()
    first.ledger.close()

    clock.advance(3000)  # down for 50 minutes; the job runs on
    second, _ = site_service(tmp_path / "live", SUNNY)
    second.start(clock())
    second.tick(clock())
    assert second.sites is not None

    # the same job launched at the same time by a round then, and no restart
    truth_clock = FakeClock(NOON)
    truth, _ = site_service(tmp_path / "truth", SUNNY)
    truth.start(truth_clock())
    truth.tick(truth_clock())  # the round before: nothing runs
    truth_clock.advance(PLAN_S)
    append(truth.queue.path, job)
    truth.tick(truth_clock())
    assert truth.ledger.active_runs()[0].started_at == launched
    truth_clock.advance(3000)
    truth.tick(truth_clock())
    assert truth.sites is not None and truth_clock() == clock()
    assert second.sites.soc("node") == pytest.approx(truth.sites.soc("node"), rel=1e-9)
    second.ledger.close()
    truth.ledger.close()
