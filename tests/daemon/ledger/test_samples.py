"""The intensity samples the ledger keeps of the zones it records: every answer equals a read
of the file by another connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger

NOW = datetime(2024, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _windows() -> list[tuple[datetime, datetime]]:
    """Intervals before, across, at and after the samples (some empty, one reversed)."""
    points = [NOW + k * H / 2 for k in range(-3, 12)]
    return [(a, b) for a in points for b in points if b >= a - H]


def _same_answers(ledger: Ledger, reader: Ledger, zones: list[str]) -> None:
    for zone in zones:
        for since, until in _windows():
            assert ledger.intensity_samples(zone, since, until) == reader.intensity_samples(
                zone, since, until
            ), (zone, since, until)
            texts = since.isoformat(), until.isoformat()  # the ends as stored: the same
            assert (
                ledger.intensity_samples(zone, *texts)
                == reader.intensity_samples(zone, *texts)
                == reader.intensity_samples(zone, since, until)
            ), (zone, since, until)


def test_kept_samples_equal_reads_as_they_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as old:  # samples a previous daemon recorded
        old.record_intensity("CA-QC", NOW - H, 31, "electricitymaps", NOW)
    with Ledger.open(path) as ledger, Ledger.open_readonly(path) as reader:
        ledger.record_intensity("CA-QC", NOW + 2 * H, 33.5, "electricitymaps", NOW)
        assert ledger._samples.kept("CA-QC")  # the previous sample was loaded with it
        ledger.record_intensity("CA-QC", NOW, 30.0, "electricitymaps", NOW)  # out of order
        ledger.record_intensity("CA-QC", NOW + 2 * H, 34.0, "electricitymaps", NOW)  # replaced
        ledger.record_intensity("DE", NOW + H, 400.0, "static", NOW)
        _same_answers(ledger, reader, ["CA-QC", "DE", "FR"])


def test_a_zone_with_two_sources_at_one_time_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, Ledger.open_readonly(path) as reader:
        ledger.record_intensity("DE", NOW, 400.0, "electricitymaps", NOW)
        ledger.record_intensity("DE", NOW + H, 410.0, "electricitymaps", NOW)
        ledger.record_intensity("DE", NOW + H, 380.0, "static", NOW)
        assert not ledger._samples.kept("DE")
        ledger.record_intensity("DE", NOW + 2 * H, 390.0, "static", NOW)
        assert not ledger._samples.kept("DE")
        _same_answers(ledger, reader, ["DE"])


def test_a_rollback_forgets_the_kept_samples(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger, Ledger.open_readonly(path) as reader:
        ledger.record_intensity("DE", NOW, 400.0, "electricitymaps", NOW)
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.record_intensity("DE", NOW + H, 410.0, "electricitymaps", NOW)
            raise RuntimeError("the step failed")
        assert not ledger._samples.kept("DE")
        _same_answers(ledger, reader, ["DE"])
        ledger.record_intensity("DE", NOW + 2 * H, 390.0, "electricitymaps", NOW)
        assert ledger._samples.kept("DE")  # loaded again from the committed rows
        _same_answers(ledger, reader, ["DE"])
