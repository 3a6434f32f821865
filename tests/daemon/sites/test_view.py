"""Sites from settings, and what planners see of them (the effective intensity per zone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.settings import RegionSettings, SiteSettings
from daemon.sites import SiteConfigError, SiteIntensity, SiteView, build_site, build_sites
from forecasts.solar import PowerSeries
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG

START = datetime(2023, 6, 5, tzinfo=UTC)  # 17:00 PDT the day before: sun until ~03:00 UTC
RTX = DEFAULT_GPU_CATALOG.get("RTX6000-Ada")


@dataclass(frozen=True)
class _Forecast:
    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: np.ndarray
    upper_g_per_kwh: np.ndarray | None = None


def _site(**fields: object) -> SiteSettings:
    return SiteSettings.model_validate(
        {"pv_kwp": 2.0, "latitude": 37.77, "longitude": -122.42, **fields}
    )


def _devices(busy_until: datetime | None = None) -> list[Device]:
    return [
        Device("sf/0", "sf", "US-CAL-CISO", RTX, 1.0, busy_until),
        Device("sf/1", "sf", "US-CAL-CISO", RTX, 1.0, None),
    ]


def _forecasts() -> dict[str, _Forecast]:
    flat = np.full(24, 300.0)
    return {
        "US-CAL-CISO": _Forecast("US-CAL-CISO", START, 3600, flat, flat * 1.2),
        "CA-QC": _Forecast("CA-QC", START, 3600, np.full(24, 30.0)),
    }


def test_the_site_zone_is_cheaper_in_the_sun_and_other_zones_are_untouched() -> None:
    site = build_site("sf", "US-CAL-CISO", _site())
    seen = SiteView({"sf": site}).forecasts(START, _devices(), _forecasts())
    values = np.asarray(seen["US-CAL-CISO"].values_g_per_kwh)
    pv = site.pv_w(START, 3600, 24)
    assert np.all(values[pv == 0] == 300.0)  # night: the grid
    assert values[int(np.argmax(pv))] == pytest.approx(41.0)  # 2 kWp covers both GPUs at noon
    assert np.all(values >= 41.0 - 1e-9) and np.all(values <= 300.0)
    through = seen["US-CAL-CISO"]
    assert isinstance(through, SiteIntensity)
    upper = np.asarray(through.upper_g_per_kwh)
    assert np.all(upper >= values) and upper[pv == 0][0] == 360.0
    assert np.all(np.asarray(seen["CA-QC"].values_g_per_kwh) == 30.0)


def test_busy_gpus_take_the_surplus_first() -> None:
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.4))
    free = SiteView({"sf": site}).forecasts(START, _devices(), _forecasts())
    busy = SiteView({"sf": site}).forecasts(
        START, _devices(START + timedelta(days=2)), _forecasts()
    )
    assert np.all(
        np.asarray(busy["US-CAL-CISO"].values_g_per_kwh)
        >= np.asarray(free["US-CAL-CISO"].values_g_per_kwh) - 1e-9
    )
    assert np.any(
        np.asarray(busy["US-CAL-CISO"].values_g_per_kwh)
        > np.asarray(free["US-CAL-CISO"].values_g_per_kwh)
    )


def test_the_battery_drains_under_running_load_at_night() -> None:
    battery = {"capacity_kwh": 2.0, "charge_power_w": 1000, "discharge_power_w": 1000,
               "min_soc": 0.1, "initial_soc": 0.9}  # fmt: skip
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(battery=battery))})
    night = START + timedelta(hours=6)  # 23:00 PDT
    view.forecasts(night, _devices(night + timedelta(hours=5)), _forecasts())
    view.forecasts(night + timedelta(hours=1), _devices(night + timedelta(hours=5)), _forecasts())
    drawn = RTX.tdp_w * 3600 / 0.9**0.5  # one busy GPU for an hour, through the battery
    assert view.soc("sf") == pytest.approx(0.9 - drawn / (2.0 * 3.6e6), rel=1e-6)


def test_the_battery_state_now_is_not_drained_again_for_the_hour_already_past() -> None:
    """The forecast starts at the hour's top (``floor_hour``), the battery's state is as of
    now: the planner dispatched the hour's elapsed part again from it. At 00:55 a full 1 kWh
    battery under one busy GPU (300 W) has 375 Wh left after 02:00 and covers all of the
    other GPU's 300 Wh in the dirtiest hour (41 g/kWh); drained again for 00:00-00:55 it had
    100 Wh left there and priced that hour at 347 g/kWh."""
    battery = {"capacity_kwh": 1.0, "charge_power_w": 10_000, "discharge_power_w": 10_000,
               "round_trip_efficiency": 1.0, "min_soc": 0.0, "initial_soc": 1.0}  # fmt: skip
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, battery=battery))})
    top = START + timedelta(hours=8)  # 01:00 PDT: no PV either way
    now = top + timedelta(minutes=55)
    grid = np.array([300.0, 300.0, 500.0])
    forecasts = {"US-CAL-CISO": _Forecast("US-CAL-CISO", top, 3600, grid)}
    devices = [
        Device("sf/0", "sf", "US-CAL-CISO", RTX, 1.0, top + timedelta(hours=3)),
        Device("sf/1", "sf", "US-CAL-CISO", RTX, 1.0, None),
    ]
    seen = view.forecasts(now, devices, forecasts)["US-CAL-CISO"].values_g_per_kwh
    assert seen[2] == pytest.approx(41.0)


def test_measured_pv_is_forecast_from_the_day_before(tmp_path: Path) -> None:
    path = tmp_path / "pv.csv"
    rows = ["datetime,power_w"]
    rows += [f"{(START + timedelta(hours=h)).isoformat()},{100.0 * h}" for h in range(72)]
    path.write_text("\n".join(rows) + "\n")
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, pv_csv=path))
    now = START + timedelta(hours=30)
    seen = site.pv_forecast_w(now, START + timedelta(hours=28), 3600, 4)
    np.testing.assert_allclose(seen, [2800.0, 2900.0, 600.0, 700.0])


def test_measured_pv_more_than_a_day_ahead_is_forecast_from_a_day_already_measured(
    tmp_path: Path,
) -> None:
    """Over a 48 h horizon (the daemon's default) the steps of the second day saw "the day
    before", which is after ``now``: measured future generation in a replay, and the last
    row held (sun at night) live. They now see two days before."""
    path = tmp_path / "pv.csv"
    rows = ["datetime,power_w"]
    rows += [f"{(START + timedelta(hours=h)).isoformat()},{100.0 * h}" for h in range(72)]
    path.write_text("\n".join(rows) + "\n")
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, pv_csv=path))
    now = START + timedelta(hours=30)
    seen = site.pv_forecast_w(now, now, 3600, 48)
    days_back = [(k + 24) // 24 for k in range(48)]  # step k ends k + 1 h after now
    expected = [100.0 * (30 + k - 24 * d) for k, d in enumerate(days_back)]
    np.testing.assert_allclose(seen, expected)
    assert max(seen) < 100.0 * 30  # nothing measured after now


def test_a_site_needs_its_zone_alone_and_readable_csvs(tmp_path: Path) -> None:
    a = RegionSettings(name="a", zone="DE", gpus=("T4",), site=_site())
    b = RegionSettings(name="b", zone="DE", gpus=("T4",))
    with pytest.raises(SiteConfigError, match=r"^regions\.a\.zone: zone DE is shared with b"):
        build_sites([a, b])
    missing = replace_site(a, pv_csv=tmp_path / "nope.csv")
    with pytest.raises(SiteConfigError, match=r"^regions\.a\.site\.pv_csv: .*nope\.csv"):
        build_sites([missing])


def replace_site(region: RegionSettings, **fields: object) -> RegionSettings:
    assert region.site is not None
    return region.model_copy(update={"site": region.site.model_copy(update=fields)})


def test_pv_without_a_place_is_refused() -> None:
    with pytest.raises(ValueError, match="latitude and longitude"):
        SiteSettings(pv_kwp=1.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"pv_kwp": 1e300}, "pv_kwp"),
        ({"other_load_w": 1e308}, "other_load_w"),
        ({"pv_g_per_kwh": 1e308}, "pv_g_per_kwh"),
        ({"battery_g_per_kwh": 1e308}, "battery_g_per_kwh"),
        ({"battery": {"capacity_kwh": 1e308, "charge_power_w": 1, "discharge_power_w": 1}},
         "battery.capacity_kwh"),
        ({"battery": {"capacity_kwh": 1, "charge_power_w": 1e308, "discharge_power_w": 1}},
         "battery.charge_power_w"),
        ({"battery": {"capacity_kwh": 1, "charge_power_w": 1, "discharge_power_w": 1e308}},
         "battery.discharge_power_w"),
    ],
)  # fmt: skip
def test_a_site_no_one_has_is_refused_naming_the_field(
    fields: dict[str, object], field: str
) -> None:
    """Finite but absurd sizes were accepted: a 1e308 W other load or battery power
    overflowed to inf or nan in the site's dispatch, and every planning round then failed,
    for every region; 1e308 g/kWh priced every job at inf."""
    with pytest.raises(ValueError, match=rf"{field}\n  Input should be less than or equal"):
        _site(**fields)


@pytest.mark.parametrize(
    ("latitude", "fields", "azimuth_deg"),
    [
        (37.77, {}, 180.0),
        (-33.87, {}, 0.0),  # Sydney: facing the equator is facing north
        (0.0, {}, 180.0),
        (-33.87, {"azimuth_deg": 180.0}, 180.0),  # as given
    ],
)
def test_modelled_pv_faces_the_equator_unless_told(
    latitude: float, fields: dict[str, object], azimuth_deg: float
) -> None:
    """The default azimuth was 180 (south) everywhere: south of the equator the panels faced
    away from the sun, and a 6 kWp array in Sydney modelled 6.5 kWh on a clear June day
    instead of 22.5 (PVWatts' default faces the equator)."""
    site = build_site("sf", "US-CAL-CISO", _site(latitude=latitude, **fields))
    assert site.pv_array is not None
    assert site.pv_array.azimuth_deg == azimuth_deg


def test_modelled_and_measured_pv_together_are_refused(tmp_path: Path) -> None:
    """``pv_kwp`` beside ``pv_csv`` was accepted and the kWp silently ignored (the CSV won)."""
    with pytest.raises(ValueError, match="pv_kwp and pv_csv both set: give one of them"):
        _site(pv_csv=tmp_path / "pv.csv")
    assert _site(pv_kwp=0.0, pv_csv=tmp_path / "pv.csv").pv_csv == tmp_path / "pv.csv"


def test_sites_kept_out_of_planning_are_not_seen() -> None:
    site = build_site("sf", "US-CAL-CISO", _site(plan=False))
    forecasts = _forecasts()
    assert SiteView({"sf": site}).forecasts(START, _devices(), forecasts) == forecasts


def test_shares_follow_the_rounds_the_service_saw() -> None:
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(pv_kwp=6.0))})
    noon = START + timedelta(hours=20)  # 13:00 PDT: 6 kWp covers one busy GPU
    night = START + timedelta(hours=8)  # 01:00 PDT
    busy = _devices(START + timedelta(days=2))
    for when in (night, night + timedelta(hours=1), noon, noon + timedelta(hours=1)):
        view.forecasts(when, busy, _forecasts())
    pv, battery = view.shares("sf", noon, noon + timedelta(hours=1))
    assert (pv, battery) == (pytest.approx(1.0), 0.0)
    assert view.shares("sf", night, night + timedelta(hours=1)) == (0.0, 0.0)
    assert view.shares("elsewhere", noon, noon + timedelta(hours=1)) == (0.0, 0.0)


def test_shares_are_seen_only_over_windows_the_rounds_covered() -> None:
    """A run-now copy is re-priced on the site's shares only where the rounds saw its window
    whole: past the last round (or before the first) what the site covered is not known."""
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(pv_kwp=6.0))})
    noon = START + timedelta(hours=20)  # 13:00 PDT
    busy = _devices(START + timedelta(days=2))
    for when in (noon, noon + timedelta(hours=1)):
        view.forecasts(when, busy, _forecasts())
    hour = noon, noon + timedelta(hours=1)
    assert view.seen_shares("sf", *hour) == view.shares("sf", *hour)
    assert view.seen_shares("sf", noon, noon + timedelta(hours=1, seconds=0.5)) is not None
    assert view.seen_shares("sf", noon, noon + timedelta(hours=1, minutes=1)) is None
    assert view.seen_shares("sf", noon - timedelta(minutes=1), noon) is None
    assert view.seen_shares("sf", noon, noon) is None
    assert view.seen_shares("elsewhere", *hour) is None


def test_an_idle_site_keeps_its_battery_charge() -> None:
    battery = {"capacity_kwh": 2.0, "charge_power_w": 1000, "discharge_power_w": 1000,
               "min_soc": 0.1, "initial_soc": 0.9}  # fmt: skip
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(battery=battery))})
    night = START + timedelta(hours=6)
    for hour in range(3):
        view.forecasts(night + timedelta(hours=hour), _devices(), _forecasts())
    assert view.soc("sf") == pytest.approx(0.9)
    # what a job would have got: one GPU's load served from the battery, at night
    assert view.shares("sf", night, night + timedelta(hours=2)) == (0.0, pytest.approx(1.0))


def test_a_reload_keeps_the_battery_state_and_the_share_history() -> None:
    battery = {"capacity_kwh": 2.0, "charge_power_w": 1000, "discharge_power_w": 1000,
               "min_soc": 0.1, "initial_soc": 0.9}  # fmt: skip
    site = _site(battery=battery)
    before = SiteView({"sf": build_site("sf", "US-CAL-CISO", site)})
    night = START + timedelta(hours=6)
    busy = _devices(night + timedelta(hours=5))
    before.forecasts(night, busy, _forecasts())
    before.forecasts(night + timedelta(hours=1), busy, _forecasts())
    after = SiteView({"sf": build_site("sf", "US-CAL-CISO", site)})
    after.carry_over(before)
    assert after.soc("sf") == before.soc("sf") < 0.9
    span = (night, night + timedelta(hours=1))
    assert after.shares("sf", *span) == before.shares("sf", *span)


def test_an_end_reported_after_a_later_round_does_not_replay_the_time_between() -> None:
    """The service plans (and advances the site to ``now``) before it reconciles, so a job's
    end comes in stamped before the round just seen. The site must not be advanced over that
    stretch a second time: the battery drained twice and a later window showed a share of
    1.5 of the GPU energy covered by the battery."""
    battery = {"capacity_kwh": 10.0, "charge_power_w": 0, "discharge_power_w": 10_000,
               "round_trip_efficiency": 1.0, "min_soc": 0.0, "initial_soc": 1.0}  # fmt: skip
    view = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, battery=battery))})
    night = START + timedelta(hours=8)
    until = night + timedelta(hours=2)
    both = [Device(f"sf/{i}", "sf", "US-CAL-CISO", RTX, 1.0, until) for i in range(2)]
    view.observe(night, both)
    view.observe(night + timedelta(seconds=60), both)
    one = _devices(until)  # sf/1's job ended at +30 s, reported at the +60 s round
    view.observe(night + timedelta(seconds=30), one)
    view.observe(night + timedelta(seconds=120), one)
    drawn_j = RTX.tdp_w * (2 * 60 + 60)  # two GPUs for a minute, then one
    assert view.soc("sf") == pytest.approx(1.0 - drawn_j / (10.0 * 3.6e6), rel=1e-9)
    later = (night + timedelta(seconds=60), night + timedelta(seconds=120))
    assert view.shares("sf", *later) == (0.0, pytest.approx(1.0))


def test_a_reload_that_raises_the_floor_above_the_charge_keeps_planning() -> None:
    """A SIGHUP with a higher ``min_soc`` (or a smaller battery's settings) than the charge
    carried over: every round failed (``plan_failed: initial_soc 0.15 outside [0.3, 1]``), so
    no job was planned again anywhere. The carried charge now sits at the new floor (nothing
    deliverable until PV charges it)."""
    night = START + timedelta(hours=6)
    busy = _devices(night + timedelta(hours=5))
    low = {"capacity_kwh": 1.0, "charge_power_w": 1000, "discharge_power_w": 1000,
           "min_soc": 0.1, "initial_soc": 0.15}  # fmt: skip
    before = SiteView({"sf": build_site("sf", "US-CAL-CISO", _site(battery=low))})
    before.forecasts(night, busy, _forecasts())
    raised = _site(battery=low | {"min_soc": 0.3, "initial_soc": 0.9})
    site = build_site("sf", "US-CAL-CISO", raised)
    after = SiteView({"sf": site})
    after.carry_over(before)
    assert after.soc("sf") == 0.3
    later = night + timedelta(hours=1)
    seen = np.asarray(after.forecasts(later, busy, _forecasts())["US-CAL-CISO"].values_g_per_kwh)
    night_steps = site.pv_w(START, 3600, 24) == 0
    assert np.all(seen[night_steps] == 300.0)  # the battery at its floor: the grid
    assert after.soc("sf") == 0.3


def test_measured_other_load_is_not_seen_ahead_of_now(tmp_path: Path) -> None:
    """The planner read a measured ``other_load_csv`` at its future rows (in a replay: the
    site's load hours ahead, as measured); it now forecasts it as measured PV is."""
    path = tmp_path / "other.csv"
    rows = ["datetime,power_w"]
    rows += [f"{(START + timedelta(hours=h)).isoformat()},{100.0 * h}" for h in range(72)]
    path.write_text("\n".join(rows) + "\n")
    site = build_site("sf", "US-CAL-CISO", _site(other_load_csv=path))
    now = START + timedelta(hours=30)
    np.testing.assert_allclose(
        site.other_forecast_w(now, START + timedelta(hours=28), 3600, 4),
        [2800.0, 2900.0, 600.0, 700.0],
    )
    flat = build_site("sf", "US-CAL-CISO", _site(other_load_w=250.0))
    np.testing.assert_allclose(flat.other_forecast_w(now, now, 3600, 3), [250.0] * 3)
    # what the planner sees: at 08:00 PDT the load measured the day before (none), not the
    # 10 kW the site will draw at noon (which would take all the PV)
    path.write_text("datetime,power_w\n" + "".join(
        f"{(START + timedelta(hours=h)).isoformat()},{0.0 if h < 24 else 10_000.0}\n"
        for h in range(48)
    ))  # fmt: skip
    site = build_site("sf", "US-CAL-CISO", _site(other_load_csv=path))
    morning = START + timedelta(hours=39)  # 08:00 PDT on the second day
    grid = {"US-CAL-CISO": _Forecast("US-CAL-CISO", morning, 3600, np.full(24, 300.0))}
    seen = SiteView({"sf": site}).forecasts(morning, _devices(), grid)["US-CAL-CISO"]
    assert np.asarray(seen.values_g_per_kwh)[4] == pytest.approx(41.0)  # 12:00 PDT


def _write_hours(path: Path, hours: range, power_w: float) -> None:
    rows = [f"{(START + timedelta(hours=h)).isoformat()},{power_w}\n" for h in hours]
    path.write_text("datetime,power_w\n" + "".join(rows))


def test_a_live_measured_csv_is_reread_when_it_grows_and_said_stale_past_its_end(
    tmp_path: Path,
) -> None:
    """A measured ``pv_csv`` was read at start (or SIGHUP) only: rows a measurement logger
    appended later were never seen, and past its last row that row's power held for good with
    nothing said. The view rereads a CSV whose file changed and warns, once, when it is stale."""
    path = tmp_path / "pv.csv"
    _write_hours(path, range(24), 800.0)
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, pv_csv=path))
    view = SiteView({"sf": site})
    with capture_logs() as logs:
        view.observe(START + timedelta(hours=12), _devices())
        assert not logs
        _write_hours(path, range(48), 300.0)  # rewritten with a day more
        view.observe(START + timedelta(hours=30), _devices())
        np.testing.assert_allclose(site.pv_w(START + timedelta(hours=40), 3600, 1), [300.0])
        assert [e["event"] for e in logs] == ["site_csv_reread"]
        logs.clear()
        view.observe(START + timedelta(hours=51), _devices())  # 3 h past its last row
        view.observe(START + timedelta(hours=52), _devices())
        [stale] = logs
        assert stale["event"] == "site_csv_stale" and stale["log_level"] == "warning"
        assert stale["region"] == "sf" and stale["field"] == "pv_csv"
        assert stale["last_row_end"] == (START + timedelta(hours=48)).isoformat()
        logs.clear()
        path.write_text("datetime,power_w\n2023-06-07T00:00Z,1\n")  # half written: one row
        view.observe(START + timedelta(hours=53), _devices())
        [unreadable] = logs
        assert unreadable["event"] == "site_csv_unreadable" and "pv.csv" in unreadable["error"]
    np.testing.assert_allclose(site.pv_w(START + timedelta(hours=40), 3600, 1), [300.0])  # kept


def test_a_failing_site_falls_back_to_the_grid_and_the_other_sites_plan_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One site's error (here a PV series of NaN, which no loader lets in: a stand-in for
    any fault of one site's model) failed every planning round for every region: the planner
    got no forecasts at all. That site's zone now keeps its grid forecast, said once."""
    good = build_site("sf", "US-CAL-CISO", _site())
    bad = build_site("qc", "CA-QC", _site(pv_kwp=0.0))
    bad.pv_trace = PowerSeries(START, 3600, np.full(48, np.nan))
    view = SiteView({"sf": good, "qc": bad})
    devices = [*_devices(), Device("qc/0", "qc", "CA-QC", RTX, 1.0, None)]
    with capture_logs() as logs:
        for hour in range(3):
            seen = view.forecasts(START + timedelta(hours=hour), devices, _forecasts())
    assert np.all(np.asarray(seen["CA-QC"].values_g_per_kwh) == 30.0)  # the grid's
    assert isinstance(seen["US-CAL-CISO"], SiteIntensity)
    failed = [e for e in logs if e["event"] == "site_failed"]
    assert len(failed) == 1 and failed[0]["region"] == "qc" and "pv_w" in failed[0]["error"]
    assert view.shares("qc", START, START + timedelta(hours=2)) == (0.0, 0.0)  # all grid
    assert list(view.problems()) == ["site:qc"] and "pv_w" in view.problems()["site:qc"]
    bad.pv_trace = PowerSeries(START, 3600, np.zeros(48))
    with capture_logs() as logs:
        seen = view.forecasts(START + timedelta(hours=3), devices, _forecasts())
    assert [e["event"] for e in logs] == ["site_recovered"] and view.problems() == {}
    assert isinstance(seen["CA-QC"], SiteIntensity)


def test_measured_pv_forecast_before_the_first_row_is_no_pv(tmp_path: Path) -> None:
    """On a measured CSV's first day (a replay's, a new logger's) the day before precedes its
    first row: the planner saw that row's power held all day (a midday first row: sun all
    night). Such steps now promise no PV; a day later the measured day is seen."""
    path = tmp_path / "pv.csv"
    rows = ["datetime,power_w"]
    rows += [f"{(START + timedelta(hours=h)).isoformat()},{500.0 + h}" for h in range(72)]
    path.write_text("\n".join(rows) + "\n")
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, pv_csv=path))
    now = START + timedelta(hours=2)
    seen = site.pv_forecast_w(now, START, 3600, 48)
    np.testing.assert_allclose(seen[:2], [500.0, 501.0])  # measured by now
    # a step ending h hours after now reads the latest day measured by now: the day before
    # up to 24 h ahead, two days before past that; measured only from START on
    assert np.all(seen[2:24] == 0.0) and np.all(seen[26:] == 0.0)
    np.testing.assert_allclose(seen[24:26], [500.0, 501.0])
    later = site.pv_forecast_w(now + timedelta(days=1), now + timedelta(days=1), 3600, 3)
    np.testing.assert_allclose(later, [502.0, 503.0, 504.0])


def test_past_a_live_pv_csvs_last_row_and_its_grace_there_is_no_pv(tmp_path: Path) -> None:
    """A measurement logger that stopped at noon had its last row's power held for good: a
    night of sun for the battery, the jobs' on-site shares and the planner. The last row now
    stands for an hour (or two rows) past it, then the site has no PV (0 W) until the file
    grows again; a stale other load keeps its last row (the site still draws)."""
    pv, other = tmp_path / "pv.csv", tmp_path / "other.csv"
    _write_hours(pv, range(24), 800.0)
    _write_hours(other, range(24), 200.0)
    site = build_site("sf", "US-CAL-CISO", _site(pv_kwp=0.0, pv_csv=pv, other_load_csv=other))
    np.testing.assert_allclose(
        site.pv_w(START + timedelta(hours=23), 1800, 8), [800.0] * 6 + [0.0] * 2
    )  # the last row ends at 00:00; the grace is two hourly rows: 0 W from 02:00
    np.testing.assert_allclose(site.other_w(START + timedelta(hours=30), 3600, 2), [200.0] * 2)
    view = SiteView({"sf": site})
    with capture_logs() as logs:
        view.observe(START + timedelta(hours=27), _devices())
    stale = {e["field"]: e["held_w"] for e in logs if e["event"] == "site_csv_stale"}
    assert stale == {"pv_csv": 0.0, "other_load_csv": 200.0}
    [pv_line, other_line] = site.problems()
    since = (START + timedelta(hours=26)).isoformat()
    assert pv_line.endswith(f"no PV is counted after {since} (0 W)")
    assert other_line.endswith("its last row (200 W) stands for every step since")
    _write_hours(pv, range(30), 500.0)  # the logger caught up
    view.observe(START + timedelta(hours=28), _devices())
    np.testing.assert_allclose(site.pv_w(START + timedelta(hours=27), 3600, 1), [500.0])
