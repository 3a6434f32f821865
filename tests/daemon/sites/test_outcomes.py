"""Live outcomes at a region with a site: the energy split by source, grams of the grid part
only, and ``carbond report``'s on-site columns (issue 16 item 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.reports.audit import audit_statement
from daemon.reports.lines import ledger_lines
from daemon.reports.render import fixed, render
from daemon.reports.summary import COLUMNS, summarise
from daemon.service import Service
from daemon.settings import BatterySettings, RegionSettings, SiteSettings
from daemon.testing import FakeClock
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line
from tests.daemon.sites.site_service import site_service

J_PER_KWH = 3_600_000
QUEBEC_PV = SiteSettings(pv_kwp=50.0, latitude=46.8, longitude=-71.2, pv_g_per_kwh=40.0)


def _run_one(service: Service, clock: FakeClock) -> dict[str, object]:
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64, batch_size=8))
    service.tick(clock())
    decision = service.ledger.latest_decision("a")
    assert decision is not None and decision.expected_duration_s
    clock.advance(decision.expected_duration_s + 30)
    assert service.tick(clock()).finished == ("a",)
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    return outcome


def test_a_job_in_the_sun_is_covered_by_pv_and_charged_at_its_factor(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2024, 6, 1, 16, tzinfo=UTC))  # around noon in Quebec
    service, _ = site_service(tmp_path, QUEBEC_PV)
    outcome = _run_one(service, clock)
    energy = float(outcome["energy_j"])
    assert outcome["site_pv_j"] == pytest.approx(energy)  # 50 kWp covers one A100
    assert outcome["site_battery_j"] == 0.0
    assert outcome["site_grid_j"] == pytest.approx(0.0, abs=1e-6 * energy)
    assert outcome["operational_g"] == pytest.approx(energy * 40.0 / J_PER_KWH)
    assert outcome["total_g"] == pytest.approx(
        float(outcome["operational_g"]) + float(outcome["embodied_g"])
    )
    rows, totals = summarise(ledger_lines(service.ledger), "day")
    assert totals.offset_share == pytest.approx(1.0) and totals.pv_kwh == pytest.approx(
        energy / J_PER_KWH
    )
    assert rows[0].offset_share == pytest.approx(1.0)
    text = render("table", rows, totals, {"title": "t"})
    assert "PV kWh" in text and "on-site" in text
    payload = json.loads(render("json", rows, totals, {"title": "t"}))
    assert payload["totals"]["offset_share"] == pytest.approx(1.0)
    lines = ledger_lines(service.ledger)
    statement = audit_statement(service.ledger, lines, service.settings, None, None, clock())
    assert "## On-site energy" in statement and "| 100.0% | 40 / 41 |" in statement
    onsite = statement.split("## On-site energy", 1)[1].split("\n## ", 1)[0]
    kwh = fixed(energy / J_PER_KWH, 6)  # the period's total row: summed kWh, the share of sums
    assert f"| total | all | {kwh} | {kwh} | 0 | 0 | 100.0% | - |" in onsite
    service.ledger.close()


def test_at_night_the_site_changes_nothing(tmp_path: Path) -> None:
    night = datetime(2024, 6, 1, 5, tzinfo=UTC)  # 01:00 in Quebec
    with_site, _ = site_service(tmp_path / "a", QUEBEC_PV)
    without, _ = site_service(tmp_path / "b", None)
    a = _run_one(with_site, FakeClock(night))
    b = _run_one(without, FakeClock(night))
    assert a["site_pv_j"] == 0.0 and a["site_grid_j"] == pytest.approx(a["energy_j"])
    assert b["site_pv_j"] is None and b["site_grid_j"] is None
    for key in ("energy_j", "operational_g", "embodied_g", "total_g"):
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    rows, totals = summarise(ledger_lines(without.ledger), "job")
    assert totals.offset_share == 0.0
    assert totals.grid_kwh == pytest.approx(b["energy_j"] / J_PER_KWH)
    assert "PV kWh" not in render("table", rows, totals, {"title": "t"})
    lines = ledger_lines(without.ledger)
    statement = audit_statement(without.ledger, lines, without.settings, None, None, night)
    assert "On-site energy" not in statement
    with_site.ledger.close()
    without.ledger.close()


def test_a_run_that_is_its_own_run_now_copy_saves_nothing_at_a_site(tmp_path: Path) -> None:
    """Under run-now the counterfactual is the run itself (its devices, its start, its
    estimate), so it must cost the run's grams. At a site its run-now grams were the grid-only
    grams from before the split: a job wholly on PV read as saving its whole grid footprint
    (8.44 g of a 2.56 g job in a replay with a 2 kWp site), the site's PV credited as a saving
    that run-now, on the same GPU at the same time, would have had too."""
    service, _ = site_service(tmp_path, QUEBEC_PV)
    outcome = _run_one(service, FakeClock(datetime(2024, 6, 1, 16, tzinfo=UTC)))
    assert float(outcome["site_pv_j"]) > 0  # it ran in the sun
    assert outcome["run_now_total_g"] == outcome["total_g"]
    _, totals = summarise(ledger_lines(service.ledger), "job")
    assert totals.saved_kg == 0.0
    service.ledger.close()


def test_site_columns_recompute_the_prediction_errors_of_the_split() -> None:
    """A measured outcome's details hold errors against the grid-only grams; at a site the
    decision priced on-site energy too, so the errors are those of the split's grams."""
    from daemon.sites.outcome import site_columns
    from policies.footprint.site import SiteFactors

    energy, grid_ci, embodied = 3_600_000.0, 350.0, 0.2  # 1 kWh, all from the battery
    details = {
        "energy_error_rel": 0.0,
        "intensity_error_rel": grid_ci / 41 - 1,
        "total_error_rel": (grid_ci + embodied) / (41 + embodied) - 1,
        "devices": [],
    }
    columns = {"energy_j": energy, "pue": 1.0, "realised_intensity_g_per_kwh": grid_ci,
               "operational_g": grid_ci, "embodied_g": embodied, "total_g": grid_ci + embodied,
               "predicted_intensity_g_per_kwh": 41.0, "predicted_total_g": 41.0 + embodied,
               "details_json": json.dumps(details)}  # fmt: skip
    out = site_columns(columns, 0.0, 1.0, SiteFactors(40.0, 41.0))
    assert out["total_g"] == pytest.approx(41.0 + embodied)
    errors = json.loads(out["details_json"])
    assert errors["intensity_error_rel"] == pytest.approx(0.0)
    assert errors["total_error_rel"] == pytest.approx(0.0)
    assert errors["energy_error_rel"] == 0.0 and errors["devices"] == []
    assert (
        site_columns(columns | {"details_json": None}, 0.0, 1.0, SiteFactors(40.0, 41.0))[
            "details_json"
        ]
        is None
    )


def test_status_says_how_much_of_a_jobs_energy_the_site_covered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``carbond status`` printed a job's grams at a site with no word of why they were so
    low; it now shows the on-site share and the energy by source, as ``--json`` has it."""
    service, _ = site_service(tmp_path, QUEBEC_PV)
    outcome = _run_one(service, FakeClock(datetime(2024, 6, 1, 16, tzinfo=UTC)))
    service.ledger.close()
    capsys.readouterr()
    assert main(["status", "a", "--state-dir", str(tmp_path)]) == 0
    kwh = float(outcome["energy_j"]) / J_PER_KWH
    shown = f"on site: 100.0% of {fixed(kwh)} kWh (PV 100.0%, battery 0.0%), the rest from the grid"
    assert shown in capsys.readouterr().out
    night = tmp_path / "night"
    service, _ = site_service(night, None)
    _run_one(service, FakeClock(datetime(2024, 6, 1, 5, tzinfo=UTC)))
    service.ledger.close()
    capsys.readouterr()
    assert main(["status", "a", "--state-dir", str(night)]) == 0
    assert "on site" not in capsys.readouterr().out  # no site there


def test_the_battery_carries_each_live_job_from_its_start_to_its_end(tmp_path: Path) -> None:
    """Two one-GPU jobs at night, the second started while the first runs and ending first:
    the battery gives exactly one GPU's TDP for every second each ran (the site carried a job
    from the round after its launch, and a finished job until the next round)."""
    tdp = DEFAULT_GPU_CATALOG.get("A100-80GB").tdp_w
    battery = BatterySettings(capacity_kwh=10.0, charge_power_w=0.0, discharge_power_w=10_000,
                              round_trip_efficiency=1.0, min_soc=0.0, initial_soc=1.0)  # fmt: skip
    site = SiteSettings(battery=battery)
    regions = (
        RegionSettings(
            name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",) * 2, site=site
        ),
    )
    service, _ = site_service(tmp_path, None, regions)
    clock = FakeClock(datetime(2024, 6, 1, 5, tzinfo=UTC))
    service.start(clock())
    append(service.queue.path, job_line(id="long", model="llama-3.1-8b", requests=2000))
    assert service.tick(clock()).started == ("long",)
    append(service.queue.path, job_line(id="short", model="llama-3.1-8b", requests=200))
    assert service.tick(clock.advance(90)).started == ("short",)
    finished: list[str] = []
    while len(finished) < 2:
        finished += service.tick(clock.advance(60)).finished
    assert finished == ["short", "long"]
    ran_s = 0.0
    for job in finished:
        outcome = service.ledger.outcome(job)
        assert outcome is not None and outcome["site_grid_j"] == pytest.approx(0.0, abs=1e-6)
        ran_s += (
            datetime.fromisoformat(str(outcome["finished_at"]))
            - datetime.fromisoformat(str(outcome["started_at"]))
        ).total_seconds()
    assert service.sites is not None
    assert service.sites.soc("node") == pytest.approx(1.0 - tdp * ran_s / (10.0 * J_PER_KWH))
    service.ledger.close()


def test_a_job_started_live_draws_the_battery_at_its_own_load(tmp_path: Path) -> None:
    """The load a site carries from a round on includes the jobs that round started: a 4-GPU
    job at night drains the battery at 4 GPUs' power and gets the share the discharge power
    leaves it (the site used to carry the load of before the launch: nothing, so the battery
    stayed full and the job was priced as one GPU)."""
    gpus, tdp = 4, DEFAULT_GPU_CATALOG.get("A100-80GB").tdp_w
    battery = BatterySettings(capacity_kwh=10.0, charge_power_w=0.0, discharge_power_w=tdp,
                              round_trip_efficiency=1.0, min_soc=0.0, initial_soc=1.0)  # fmt: skip
    site = SiteSettings(battery=battery)
    regions = (
        RegionSettings(
            name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",) * gpus, site=site
        ),
    )
    service, _ = site_service(tmp_path, None, regions)
    clock = FakeClock(datetime(2024, 6, 1, 5, tzinfo=UTC))  # night: the battery only
    service.start(clock())
    line = job_line(id="a", model="llama-3.1-8b", requests=2000, batch_size=8, tensor_parallel=4)
    append(service.queue.path, line)
    assert service.tick(clock()).started == ("a",)
    while not service.tick(clock.advance(60)).finished:
        pass
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    facility = float(outcome["energy_j"]) * float(outcome["pue"])
    assert outcome["site_battery_j"] == pytest.approx(facility / gpus)
    assert outcome["site_grid_j"] == pytest.approx(facility * (gpus - 1) / gpus)
    ran_s = (
        datetime.fromisoformat(str(outcome["finished_at"]))
        - datetime.fromisoformat(str(outcome["started_at"]))
    ).total_seconds()
    assert service.sites is not None
    assert service.sites.soc("node") == pytest.approx(1.0 - tdp * ran_s / (10.0 * J_PER_KWH))
    service.ledger.close()


def test_the_battery_charges_in_the_sun_while_no_job_waits(tmp_path: Path) -> None:
    """A daemon started in the morning with an empty queue: its rounds plan nothing all day,
    yet the PV fills the battery, and a job at night draws it (the battery was advanced only
    by rounds that planned or ended a job, so it still held its start's charge then)."""
    battery = BatterySettings(capacity_kwh=5.0, charge_power_w=5000.0, discharge_power_w=5000.0,
                              round_trip_efficiency=1.0, min_soc=0.2, initial_soc=0.2)  # fmt: skip
    site = QUEBEC_PV.model_copy(update={"battery": battery})
    service, _ = site_service(tmp_path, site)
    clock = FakeClock(datetime(2024, 6, 1, 12, tzinfo=UTC))  # 08:00 in Quebec
    service.start(clock())
    while clock() < datetime(2024, 6, 2, 3, tzinfo=UTC):  # 23:00 in Quebec: dark
        assert service.tick(clock()).decisions == 0
        clock.advance(600)
    assert service.sites is not None and service.sites.soc("node") == pytest.approx(1.0)
    append(service.queue.path, job_line(id="a", model="llama-3.1-8b", requests=64, batch_size=8))
    assert service.tick(clock()).started == ("a",)
    while not service.tick(clock.advance(60)).finished:
        pass
    outcome = service.ledger.outcome("a")
    assert outcome is not None and outcome["site_pv_j"] == 0.0
    facility = float(outcome["energy_j"]) * float(outcome["pue"])
    assert outcome["site_battery_j"] == pytest.approx(facility)
    service.ledger.close()


def test_every_share_of_the_report_is_named_as_one() -> None:
    """The on-site share was ``offset`` beside ``measured_share`` and ``saved_share``: a
    script reading the report's JSON or CSV for the shares (fractions, 0 to 1) missed it."""
    shares = {"measured_share", "saved_share", "offset_share"}
    assert shares <= set(COLUMNS)
    assert "offset" not in COLUMNS


def test_the_audit_writes_tiny_site_factors_in_fixed_notation(tmp_path: Path) -> None:
    """A site's PV and battery factors read ``1e-05 / 5e-05`` in the statement's on-site
    table (``:g``; until 2026-12-07)."""
    clock = FakeClock(datetime(2024, 6, 1, 16, tzinfo=UTC))
    site = QUEBEC_PV.model_copy(update={"pv_g_per_kwh": 0.00001, "battery_g_per_kwh": 0.00005})
    service, _ = site_service(tmp_path, site)
    _run_one(service, clock)
    lines = ledger_lines(service.ledger)
    statement = audit_statement(service.ledger, lines, service.settings, None, None, clock())
    service.ledger.close()
    assert "| 0.00001 / 0.00005 |" in statement, statement
