"""PV generation (pvlib clear sky), measured power CSVs and power series on other grids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from forecasts.errors import SolarInputError
from forecasts.solar import PowerSeries, PvArray, clear_sky_pv, load_power_csv

SAN_FRANCISCO = PvArray(peak_kw=6.0, latitude=37.77, longitude=-122.42, tilt_deg=20.0)


def test_clear_sky_pv_follows_the_sun() -> None:
    start = datetime(2023, 6, 5, tzinfo=UTC)
    series = clear_sky_pv(SAN_FRANCISCO, start, 900, 96)
    power = series.values_w
    hours = (np.arange(96) + 0.5) / 4  # UTC; San Francisco is UTC-7 in June
    assert np.all(power[(hours > 4) & (hours < 12)] == 0)  # local night 21:00-05:00
    noon = int(np.argmax(power))
    assert 19 <= hours[noon] <= 21  # solar noon ~13:10 PDT = 20:10 UTC
    assert 0.6 * 6000 < power[noon] < 6000  # below the peak rating after losses and heat
    daily_kwh = power.sum() * 900 / 3.6e6
    assert 35 < daily_kwh < 50  # ~6-8 full-sun hours of a 6 kWp array on a clear June day


def test_winter_gives_less_than_summer() -> None:
    summer = clear_sky_pv(SAN_FRANCISCO, datetime(2023, 6, 21, tzinfo=UTC), 3600, 24)
    winter = clear_sky_pv(SAN_FRANCISCO, datetime(2023, 12, 21, tzinfo=UTC), 3600, 24)
    assert winter.values_w.sum() < 0.8 * summer.values_w.sum()


def test_zero_kwp_generates_nothing() -> None:
    none = PvArray(peak_kw=0.0, latitude=37.77, longitude=-122.42)
    series = clear_sky_pv(none, datetime(2023, 6, 5, tzinfo=UTC), 3600, 24)
    np.testing.assert_array_equal(series.values_w, 0.0)


@pytest.mark.parametrize(("field", "value"), [("latitude", 95.0), ("losses", 1.0),
                                              ("peak_kw", -1.0), ("tilt_deg", 91.0)])  # fmt: skip
def test_bad_pv_parameters_name_the_field(field: str, value: float) -> None:
    with pytest.raises(SolarInputError, match=f"pv.{field}"):
        PvArray(**{"peak_kw": 1.0, "latitude": 0.0, "longitude": 0.0, field: value})


def test_on_grid_is_time_weighted_and_holds_the_ends() -> None:
    series = PowerSeries(datetime(2023, 1, 1, tzinfo=UTC), 3600, np.array([0.0, 100.0, 300.0]))
    start = datetime(2022, 12, 31, 23, tzinfo=UTC)
    np.testing.assert_allclose(series.on_grid(start, 1800, 10),
                               [0, 0, 0, 0, 100, 100, 300, 300, 300, 300])  # fmt: skip
    np.testing.assert_allclose(series.on_grid(datetime(2023, 1, 1, tzinfo=UTC), 7200, 1), [50.0])


def test_power_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "pv.csv"
    path.write_text("datetime,power_w\n2023-06-05T00:00:00Z,0\n2023-06-05T00:15:00Z,12.5\n"
                    "2023-06-05T00:30:00+00:00,20\n")  # fmt: skip
    series = load_power_csv(path)
    assert series.start == datetime(2023, 6, 5, tzinfo=UTC)
    assert series.step_s == 900
    np.testing.assert_array_equal(series.values_w, [0.0, 12.5, 20.0])


def test_power_csv_reads_a_time_without_offset_as_utc(tmp_path: Path) -> None:
    """docs/sites.md says so: a local-time logger must write its offset."""
    naive, local = tmp_path / "naive.csv", tmp_path / "local.csv"
    naive.write_text("datetime,power_w\n2023-06-05T16:00:00,1\n2023-06-05T16:15:00,2\n")
    local.write_text("datetime,power_w\n2023-06-05T09:00-07:00,1\n2023-06-05T09:15-07:00,2\n")
    assert load_power_csv(naive).start == datetime(2023, 6, 5, 16, tzinfo=UTC)
    assert load_power_csv(local).start == datetime(2023, 6, 5, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("datetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,-3\n", r"pv.csv:3: power_w"),
        ("datetime,power_w\n2023-06-05T00:00Z,0\nyesterday,3\n", r"pv.csv:3: datetime"),
        ("datetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,1\n2023-06-05T01:00Z,1\n",
         r"pv.csv:4: datetime: .* rows must be equally spaced"),
        ("when,watts\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,1\n", r"header"),
        # a repeated or out-of-order row was "not equally spaced (0 s)" or "(-900 s)"
        ("datetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:00Z,1\n2023-06-05T00:15Z,1\n",
         r"pv.csv:3: datetime: 2023-06-05T00:00:00\+00:00 repeats the row above"),
        ("datetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,1\n2023-06-05T00:15Z,1\n",
         r"pv.csv:4: datetime: 2023-06-05T00:15:00\+00:00 repeats the row above"),
        ("datetime,power_w\n2023-06-05T00:15Z,0\n2023-06-05T00:00Z,1\n2023-06-05T00:30Z,1\n",
         r"pv.csv:3: datetime: 2023-06-05T00:00:00\+00:00 is before the row above"),
        ("datetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,1\n2023-06-05T00:45Z,1\n",
         r"pv.csv:4: datetime: .* is 1800 s after the row above; .* equally spaced \(900 s\)"),
    ],
)  # fmt: skip
def test_bad_power_csv_names_file_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "pv.csv"
    path.write_text(body)
    with pytest.raises(SolarInputError, match=message):
        load_power_csv(path)


@pytest.mark.parametrize("value", ["1e300", "1e308"])
def test_a_power_no_site_has_is_refused_with_its_line(tmp_path: Path, value: str) -> None:
    """One absurd row was read: 1e300 W wiped every later row to 0 W in ``on_grid`` (its
    running sum swallowed them), 1e308 W overflowed into inf at the site's dispatch."""
    path = tmp_path / "pv.csv"
    path.write_text("datetime,power_w\n" + "".join(
        f"2023-06-05T{h:02d}:00Z,{value if h == 1 else 500}\n" for h in range(4)
    ))  # fmt: skip
    with pytest.raises(SolarInputError, match=rf"pv.csv:3: power_w: .*{value}"):
        load_power_csv(path)
    path.write_text("datetime,power_w\n2023-06-05T00:00Z,5e9\n2023-06-05T01:00Z,500\n")
    np.testing.assert_allclose(
        load_power_csv(path).on_grid(datetime(2023, 6, 5, 1, tzinfo=UTC), 3600, 1), [500.0]
    )


def test_power_csv_with_a_byte_order_mark_reads_its_header(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 export starts with a BOM: the header is still ``datetime``."""
    path = tmp_path / "pv.csv"
    path.write_bytes(b"\xef\xbb\xbfdatetime,power_w\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,5\n")
    np.testing.assert_array_equal(load_power_csv(path).values_w, [0.0, 5.0])


@pytest.mark.parametrize(
    "body", [b"datetime,power_w,note\n2023-06-05T00:00Z,1,caf\xe9\n", b"\x89PNG\r\n\x1a\n\x00\xff"]
)
def test_power_csv_not_utf8_is_a_solar_input_error(tmp_path: Path, body: bytes) -> None:
    """Not a UnicodeDecodeError traceback: the file is named."""
    path = tmp_path / "pv.csv"
    path.write_bytes(body)
    with pytest.raises(SolarInputError, match=r"pv.csv: not a UTF-8 CSV file"):
        load_power_csv(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("datetime,power_w\n2023-06-05T00:00Z,0\n\n2023-06-05T00:15Z,1\n2023-06-05T00:30Z,x\n",
         r"pv.csv:5: power_w"),
        ("datetime,power_w\n\n2023-06-05T00:00Z,0\n2023-06-05T00:15Z,1\n2023-06-05T01:00Z,1\n",
         r"pv.csv:5: datetime: .* rows must be equally spaced"),
    ],
)  # fmt: skip
def test_power_csv_lines_count_blank_lines(tmp_path: Path, body: str, message: str) -> None:
    """The line named is the file's line, blank lines (which the reader skips) included."""
    path = tmp_path / "pv.csv"
    path.write_text(body)
    with pytest.raises(SolarInputError, match=message):
        load_power_csv(path)
