"""A job's run-now copy at a region with a site, when the copy is not the run itself: its
realised grams are those of its energy split as the site realised it over the copy's window
(grid energy at the realised grid intensity, PV and battery energy at the site's factors), not
its priced grams scaled by a ratio of the grid's intensity to a site-blended one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.service import Service
from daemon.settings import RegionSettings, SiteSettings
from daemon.testing import FakeClock
from tests.daemon.helpers import append, job_line
from tests.daemon.sites.site_service import site_service

J_PER_KWH = 3_600_000
NOON_IN_CALIFORNIA = datetime(2024, 6, 30, 20, 10, tzinfo=UTC)


def _sun(pv_g_per_kwh: float, *, plan: bool) -> SiteSettings:
    """50 kWp in California: it covers a GPU or two wholly around noon."""
    return SiteSettings(pv_kwp=50.0, latitude=37.0, longitude=-120.0,
                        pv_g_per_kwh=pv_g_per_kwh, plan=plan)  # fmt: skip


def _finish_one(service: Service, clock: FakeClock) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit a small job with a 2 h deadline, tick every 5 minutes until it ends; its
    outcome row and its recorded run-now copy."""
    service.start(clock())
    append(service.queue.path, job_line(id="a", model="llama-3.2-1b", requests=64,
                                        batch_size=8, deadline="+2h"))  # fmt: skip
    for _ in range(30):
        if service.tick(clock()).finished == ("a",):
            break
        clock.advance(300)
    outcome, copy = service.ledger.outcome("a"), service.ledger.counterfactual("a")
    assert outcome is not None and copy is not None
    return outcome, copy


def _as_turned_out_g(
    outcome: dict[str, Any], copy: dict[str, Any], pue: float, g_per_kwh: float
) -> float:
    """The copy's grams with its energy and duration scaled as the run turned out, its
    facility energy all at ``g_per_kwh``."""
    energy = copy["energy_j"] * outcome["energy_j"] / outcome["predicted_energy_j"]
    duration = outcome["duration_s"] / outcome["predicted_duration_s"]
    return float(energy * pue * g_per_kwh / J_PER_KWH + copy["embodied_g"] * duration)


def test_a_copy_at_another_region_whose_site_plans_costs_what_the_site_realised(
    tmp_path: Path,
) -> None:
    """The k25 shape: the job runs in Quebec, its run-now copy on the site's GPU, priced at
    the planner's site-blended intensity (the PV's factor: the sun covers it). Re-priced by
    grid intensity over that blended figure, the copy cost 0.099 g, not the 0.059 g the site
    realised: two thirds of the job's saving came from dividing unlike intensities."""
    regions = (
        RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),
        RegionSettings(name="sun", zone="US-CAL-CISO", executor="local", gpus=("RTX6000-Ada",),
                       pue=1.4, site=_sun(100.0, plan=True)),
    )  # fmt: skip
    service, _ = site_service(tmp_path, None, regions, policy="carbon-window")
    outcome, copy = _finish_one(service, FakeClock(NOON_IN_CALIFORNIA))
    assert outcome["region"] == "qc" and copy["region"] == "sun"
    assert copy["intensity_g_per_kwh"] == pytest.approx(100.0)  # priced on the site's PV
    assert float(outcome["realised_intensity_g_per_kwh"]) < 50  # Quebec's grid, not the site
    pv, battery = service.sites.shares("sun", datetime.fromisoformat(copy["start"]),
                                       datetime.fromisoformat(copy["start"])
                                       + timedelta(seconds=copy["duration_s"]))  # fmt: skip
    assert pv == pytest.approx(1.0) and battery == 0.0  # the sun covered the copy's GPU
    assert outcome["run_now_total_g"] == pytest.approx(
        _as_turned_out_g(outcome, copy, 1.4, 100.0), rel=1e-6
    )
    service.ledger.close()


def test_a_copy_beside_the_run_at_a_site_that_does_not_plan_gets_the_pv_too(
    tmp_path: Path,
) -> None:
    """With ``plan = false`` the planner prices on the grid, and the job (on the L4) gets
    PV credit at its region, but its run-now copy on the RTX 6000 beside it, at the same
    time in the same sun, kept the grid's grams: the site's offset read as a saving that
    run-now would have had too."""
    regions = (
        RegionSettings(name="sun", zone="US-CAL-CISO", executor="local",
                       gpus=("RTX6000-Ada", "L4"), site=_sun(40.0, plan=False)),
    )  # fmt: skip
    service, _ = site_service(tmp_path, None, regions, policy="carbon-window")
    outcome, copy = _finish_one(service, FakeClock(NOON_IN_CALIFORNIA))
    assert outcome["gpu"] == "L4" and copy["gpu"] == "RTX6000-Ada"
    assert float(copy["intensity_g_per_kwh"]) > 100  # priced on the grid: the site not seen
    assert outcome["site_pv_j"] == pytest.approx(outcome["energy_j"])  # the job's PV credit
    assert outcome["run_now_total_g"] == pytest.approx(
        _as_turned_out_g(outcome, copy, 1.0, 40.0), rel=1e-6
    )
    service.ledger.close()
