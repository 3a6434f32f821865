"""Replay inputs: cluster files, intensity files, and a span refused before any input is
read. Request traces are tested in test_traces.py, their jobs in test_workload.py."""

from __future__ import annotations

import gzip
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import load_setup
from daemon.replay.signals import ReplaySignals, join_zones, read_intensity
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog
from tests.daemon.replay.conftest import START, replay_inputs, write_intensity


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[regions]]\nname = 'a'\nzone = 'X'\ngpus = [{ type = 'Z9', count = 1 }]\n", "Z9"),
        ("[[regions]]\nname = 'a'\nzone = 'X'\ngpus = []\n", r"c\.toml:4: regions\.a\.gpus"),
        ("[[regions]]\nname = 'a b'\nzone = 'X'\ngpus = ['T4']\n", r"c\.toml:2: regions\.0\.name"),
        ("regions = [\n", "not valid TOML"),
        ("[[regions]]\nname = 'a'\nzone = 'X'\npue = 0.5\ngpus = ['T4']\n", ":4: regions.a.pue"),
        (
            "[[regions]]\nname = 'a'\nzone = 'X'\ngpus = ['T4']\n[[regions]]\nzone = 'Y'\n"
            "name = 'a'\ngpus = ['T4']\n",
            r"c\.toml:7: regions\.1\.name: duplicate region name 'a' \(also regions\.0\)",
        ),
        (
            "[[regions]]\nname = 'a'\nzone = 'X'\ngpus = 'discover'\n",
            r"c\.toml:4: regions\.a\.gpus: region 'a' discovers",
        ),
        (  # was "regions: Input should be a valid tuple"
            "[regions]\nname = 'a'\nzone = 'X'\ngpus = ['T4']\n",
            r"c\.toml:1: regions: a list of tables: write \[\[regions\]\] \(double brackets\)",
        ),
    ],
)
def test_bad_cluster_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayInputError, match=message):
        load_cluster(path)


def test_a_cluster_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    """`--cluster intensity.csv.gz` was a UnicodeDecodeError traceback."""
    path = tmp_path / "c.toml.gz"
    path.write_bytes(gzip.compress(b"[[regions]]\n"))
    with pytest.raises(ReplayInputError, match=f"{path}: not a cluster file"):
        load_cluster(path)


def test_cluster_devices(cluster_file: Path) -> None:
    cluster = load_cluster(cluster_file)
    ids = [d.device_id for d in cluster.devices()]
    assert ids == ["quebec/0", "quebec/1", "california/0"]
    assert cluster.devices()[2].pue == 1.1
    assert cluster.zones() == ("CA-QC", "US-CAL-CISO")


def test_a_custom_catalog_gives_the_gpus_and_refuses_one_it_lacks(cluster_file: Path) -> None:
    """The cluster's GPU names are looked up in the catalog handed in, not the built-in one
    (nor the file's [catalog]): its specs are the devices', and a name it lacks is refused at
    its region's gpus line."""
    catalog = DEFAULT_GPU_CATALOG.with_overrides({"T4": {"tdp_w": 55.0}})
    cluster = load_cluster(cluster_file, catalog)
    assert [d.gpu.tdp_w for d in cluster.devices()] == [
        55.0,
        55.0,
        DEFAULT_GPU_CATALOG.get("RTX6000-Ada").tdp_w,
    ]
    without_ada = GpuCatalog(spec for spec in catalog if spec.name != "RTX6000-Ada")
    with pytest.raises(ReplayInputError) as info:
        load_cluster(cluster_file, without_ada)
    assert str(info.value).startswith(
        f"{cluster_file}:11: regions.california.gpus: unknown GPU 'RTX6000-Ada' (known: "
    )


def test_forecasts_use_only_the_past(intensity_files: list[Path]) -> None:
    signals = ReplaySignals(
        [read_intensity(p) for p in intensity_files], ["US-CAL-CISO"], "seasonal-24h"
    )
    signals.covers(START, START + timedelta(days=1))
    actual = signals.actual("US-CAL-CISO")
    now = START + timedelta(hours=9, minutes=30)
    fc = signals.forecast("US-CAL-CISO", now, 6 * 3600)
    assert fc.start == START + timedelta(hours=10)  # the first point not yet known
    assert fc.values_g_per_kwh.tolist() == pytest.approx([100.0] * 6, abs=1.0)
    assert fc.upper_g_per_kwh is not None
    assert np.all(fc.upper_g_per_kwh >= fc.values_g_per_kwh)
    # Changing the future must not change the forecast.
    future = actual.values_g_per_kwh.copy()
    future[8 * 24 + 10 :] = 999.0
    other = ReplaySignals([{"US-CAL-CISO": actual.replace(values_g_per_kwh=future)}],
                          ["US-CAL-CISO"], "seasonal-24h")  # fmt: skip
    assert np.array_equal(other.forecast("US-CAL-CISO", now, 6 * 3600).values_g_per_kwh,
                          fc.values_g_per_kwh)  # fmt: skip


def test_too_short_intensity_is_named(intensity_files: list[Path]) -> None:
    signals = ReplaySignals([read_intensity(p) for p in intensity_files], ["CA-QC"])
    with pytest.raises(ReplayInputError, match="CA-QC"):
        signals.covers(START, START + timedelta(days=30))


def test_intensity_must_cover_the_jobs_last_deadline(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """The files end 3 days after START; a replay of 2.5 days with 12 h of slack holds jobs
    past that: it ran, each run there accounted at the files' last hour, and planning logged
    'intensity_refresh_failed' every hour of every zone. The same span with no slack runs."""
    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    inputs = replay_inputs(trace, cluster_file, intensity_files, days=2.5)
    setup = load_setup(inputs, 0.0)
    assert max(j.deadline for j in setup.jobs if j.deadline) < START + timedelta(days=3)
    message = (r"intensity for CA-QC covers 2023-05-28 00:00 to 2023-06-08 00:00; the replay "
               r"needs a week before 2023-06-05 and up to 2023-06-08 \d\d:\d\d \(the jobs' "
               r"last deadline; the span ends 2023-06-07 12:00\)")  # fmt: skip
    with pytest.raises(ReplayInputError, match=message):
        load_setup(inputs, 12 * 3600.0)


def test_a_zone_in_two_files_is_joined(
    tmp_path: Path, trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """A zone's second file (the next year's) replaced its first, silently: a replay across
    the new year with both yearly files failed, 'intensity for CA-QC covers ...'."""
    from dataclasses import replace

    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    begin = START - timedelta(days=8)
    early = write_intensity(tmp_path / "qc-a.csv", "CA-QC", [10.0] * 48, begin)
    late = write_intensity(tmp_path / "qc-b.csv", "ca-qc", [20.0, 30.0] + [40.0] * 258,
                           begin + timedelta(hours=47))  # fmt: skip
    inputs = replay_inputs(trace, cluster_file, [early, late, intensity_files[1]])
    setup = load_setup(replace(inputs, days=0.5), 0.0)
    series = setup.signals.actual("CA-QC")
    assert series.start == begin and len(series) == 47 + 260
    assert series.values_g_per_kwh[[0, 46, 47, 48, -1]].tolist() == [10.0, 10.0, 20.0, 30.0, 40.0]
    gap = write_intensity(tmp_path / "qc-c.csv", "CA-QC", [40.0] * 200, begin + timedelta(hours=50))
    notes: list[str] = []
    joined = join_zones([read_intensity(early), read_intensity(gap)], notes)["CA-QC"]
    assert joined.values_g_per_kwh[[47, 48, 49, 50]].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert joined.is_estimated[[47, 48, 49, 50]].tolist() == [False, True, True, False]
    assert notes == ["intensity for CA-QC: 2 points between qc-a.csv and qc-c.csv interpolated, "
                     "flagged estimated"]  # fmt: skip
    minutes = tmp_path / "qc-15.csv"
    minutes.write_text("datetime,zone,carbon_intensity_g_per_kwh\n" + "".join(
        f"{START + timedelta(minutes=15 * k):%Y-%m-%dT%H:%M}Z,CA-QC,5\n" for k in range(8)
    ), encoding="utf-8")  # fmt: skip
    with pytest.raises(ReplayInputError, match=r"CA-QC in qc-a\.csv and qc-15\.csv: cannot merge"):
        join_zones([read_intensity(early), read_intensity(minutes)])


def test_a_zones_files_more_than_a_day_apart_are_refused(tmp_path: Path) -> None:
    """A zone's 2023 and 2025 files (2024's forgotten) were joined through a straight line
    over the missing year, named only in a note; a day apart is still interpolated."""
    begin = START - timedelta(days=8)
    early = write_intensity(tmp_path / "qc-a.csv", "CA-QC", [10.0] * 48, begin)
    day = write_intensity(tmp_path / "qc-d.csv", "CA-QC", [40.0] * 48, begin + timedelta(hours=72))
    notes: list[str] = []
    joined = join_zones([read_intensity(early), read_intensity(day)], notes)["CA-QC"]
    assert len(joined) == 120 and notes[0].startswith("intensity for CA-QC: 24 points between")
    year = write_intensity(tmp_path / "qc-y.csv", "CA-QC", [40.0] * 48, begin + timedelta(days=367))
    message = ("intensity for CA-QC: qc-a.csv ends 2023-05-30 00:00 and qc-y.csv starts "
               "2024-05-29 00:00, 365 days later (at most 1 is interpolated): give the file "
               "between them, or only those the replay needs")  # fmt: skip
    for order in ((early, year), (year, early)):
        with pytest.raises(ReplayInputError, match=re.escape(message)):
            join_zones([read_intensity(path) for path in order])
    # the year between them given last: joined whole, nothing interpolated
    between = write_intensity(tmp_path / "qc-b.csv", "CA-QC", [20.0] * 365 * 24,
                              begin + timedelta(hours=48))  # fmt: skip
    notes.clear()
    found = [read_intensity(path) for path in (early, year, between)]
    joined = join_zones(found, notes)["CA-QC"]
    assert len(joined) == 48 + 365 * 24 + 48 and not joined.is_estimated.any() and notes == []


def test_a_month_missing_inside_one_file_is_refused_where_the_replay_needs_it(
    tmp_path: Path, trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """A file with days of rows missing was replayed through a straight line over them, said
    only in a note; a gap longer than a day within the week before the start to the last
    deadline is now refused, naming the file, zone and days. One elsewhere, one of a day, or
    one a later file covers, is interpolated as before, and the file's own estimated rows are
    no gap."""
    begin = START - timedelta(days=8)
    hours = 11 * 24
    values = [30.0] * hours
    qc = tmp_path / "qc-gap.csv"

    def write(missing: range, estimated: range = range(0)) -> Path:
        lines = ["Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA),Data Estimated"]
        lines += [f"{begin + timedelta(hours=h):%Y-%m-%d %H:%M:%S},CA-QC,{values[h]},"
                  f"{h in estimated}" for h in range(hours) if h not in missing]  # fmt: skip
        qc.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return qc

    inputs = replace(replay_inputs(trace, cluster_file, [qc, intensity_files[1]]), days=0.5)
    write(range(3 * 24, 5 * 24))  # two days missing, four days before the start
    message = (f"{qc}: CA-QC has no intensity from 2023-05-31 00:00 to 2023-06-02 00:00 (2 days), "
               "within what the replay needs (2023-05-29 00:00 to 2023-06-05 ")  # fmt: skip
    with pytest.raises(ReplayInputError, match=re.escape(message)):
        load_setup(inputs, 4 * 3600.0)
    # covered by a later file: its points are replayed, not the straight line
    cover = write_intensity(tmp_path / "qc-all.csv", "CA-QC", [20.0] * hours, begin)
    setup = load_setup(replace(inputs, intensity=(qc, cover, intensity_files[1])), 4 * 3600.0)
    assert setup.signals.actual("CA-QC").values_g_per_kwh[3 * 24] == 20.0
    for missing, estimated in (
        (range(9 * 24, 10 * 24 + 12), range(0)),  # 36 h after the last deadline
        (range(3 * 24, 4 * 24), range(0)),  # one day: interpolated, as between two files
        (range(0), range(3 * 24, 6 * 24)),  # three days the file itself calls estimated
    ):
        write(missing, estimated)
        setup = load_setup(inputs, 4 * 3600.0)
        assert setup.signals.actual("CA-QC").missing_count() == 0
        filled = [note for note in setup.notes if "interpolated" in note]
        assert filled == ([f"{qc}: CA-QC: filled: {len(missing)} points interpolated, flagged "
                           "estimated"] if missing else [])  # fmt: skip


def test_missing_zone_is_named(intensity_files: list[Path]) -> None:
    with pytest.raises(ReplayInputError, match="US-NW-PACE"):
        ReplaySignals([read_intensity(p) for p in intensity_files], ["US-NW-PACE"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("days", float("nan"), "--days"), ("days", 0.0, "--days"), ("tick_s", float("nan"), "--tick"),
     ("tick_s", 10**15, "--tick"),
     ("truth_factor", float("nan"), "--truth-factor"),
     ("duration_noise", float("nan"), "--duration-noise"),
     # a run's simulated length past what a clock holds (an OverflowError traceback)
     ("truth_factor", 1e300, "--truth-factor"), ("duration_noise", 1e9, "--duration-noise"),
     # a replay whose dates leave datetime's years (an OverflowError traceback)
     ("days", 1e308, "--days 1e"), ("start", datetime(1, 1, 1, tzinfo=UTC), "--start 0001-01-01"),
     ("start", datetime(9999, 12, 29, tzinfo=UTC), "within years 1 to 9999")],
)  # fmt: skip
def test_a_nan_or_empty_span_is_refused_before_any_input_is_read(
    tmp_path: Path, field: str, value: float, message: str
) -> None:
    """`carbond replay --days nan` used to fail with a ValueError traceback."""
    from dataclasses import replace

    from daemon.replay.inputs import load_setup
    from tests.daemon.replay.conftest import replay_inputs

    missing = tmp_path / "missing"
    inputs = replace(replay_inputs(missing, missing, [missing]), **{field: value})
    with pytest.raises(ReplayInputError, match=message):
        load_setup(inputs, 0.0)
