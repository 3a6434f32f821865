"""SeriesCache: survives restarts, merges, stays bounded, writes atomically, reports corruption."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasts import CacheError, IntensitySeries, SeriesCache
from forecasts.cache import STALE_TMP_S
from forecasts.series import SignalKind

T0 = datetime(2023, 1, 1, tzinfo=UTC)


def _series(start: datetime, values: list[float]) -> IntensitySeries:
    return IntensitySeries(
        "DE", start, 3600, np.array(values), source="electricitymaps", fetched_at=start
    )


def test_round_trip_survives_a_new_instance(tmp_path: Path) -> None:
    SeriesCache(tmp_path).store(_series(T0, [1.0, float("nan"), 3.0]))
    loaded = SeriesCache(tmp_path).load("DE")
    assert loaded is not None
    assert loaded.start == T0 and loaded.source == "electricitymaps"
    assert loaded.values_g_per_kwh[0] == 1.0 and loaded.missing_count() == 1
    assert SeriesCache(tmp_path).load("FR") is None


def test_merge_newer_wins_and_bounded(tmp_path: Path) -> None:
    cache = SeriesCache(tmp_path, max_points=3)
    cache.store(_series(T0, [1.0, 2.0, 3.0]))
    merged = cache.store(_series(T0 + timedelta(hours=2), [30.0, 40.0]))
    assert list(merged.values_g_per_kwh) == [2.0, 30.0, 40.0]
    on_disk = cache.load("DE")
    assert on_disk is not None and list(on_disk.values_g_per_kwh) == [2.0, 30.0, 40.0]
    assert [p.name for p in tmp_path.iterdir()] == ["DE.lifecycle.history.json"]  # no temp left


def test_corrupt_file_is_named_and_then_replaced(tmp_path: Path) -> None:
    cache = SeriesCache(tmp_path)
    (tmp_path / "DE.lifecycle.history.json").write_text("{not json")
    with pytest.raises(CacheError, match=r"DE\.lifecycle\.history\.json"):
        cache.load("DE")
    cache.store(_series(T0, [5.0]))
    assert cache.load("DE") is not None


@pytest.mark.parametrize(
    ("copied_to", "kind", "holds"),
    [("FR.lifecycle", "lifecycle", "DE lifecycle"), ("DE.direct", "direct", "DE lifecycle")],
    ids=["another zone", "another kind"],
)
@pytest.mark.parametrize("what", ["history", "forecast"])
def test_a_file_of_another_zone_or_kind_is_refused_then_replaced(
    tmp_path: Path, copied_to: str, kind: SignalKind, holds: str, what: str
) -> None:
    """A cache file copied or renamed by hand (``cp DE.* FR.*``) was served as the other
    zone's (or kind's) values: DE's grams planned FR's jobs."""
    cache = SeriesCache(tmp_path)
    cache.store(_series(T0, [400.0, 410.0]))
    cache.store_forecast(_series(T0, [400.0, 410.0]))
    source = tmp_path / f"DE.lifecycle.{what}.json"
    (tmp_path / f"{copied_to}.{what}.json").write_bytes(source.read_bytes())
    zone, _ = copied_to.split(".")
    load = cache.load if what == "history" else cache.load_forecast
    with pytest.raises(CacheError, match=f"{copied_to}.{what}.json: holds {holds} values, not"):
        load(zone, kind)
    if what == "history":
        stored = cache.store(_series(T0, [7.0]).replace(zone=zone, kind=kind))
        assert list(stored.values_g_per_kwh) == [7.0]  # the misfit is replaced, not merged


def test_forecast_is_replaced_not_merged(tmp_path: Path) -> None:
    cache = SeriesCache(tmp_path)
    cache.store_forecast(_series(T0, [1.0, 2.0]))
    cache.store_forecast(_series(T0 + timedelta(hours=5), [9.0]))
    loaded = cache.load_forecast("DE")
    assert loaded is not None and len(loaded) == 1


@pytest.mark.parametrize("zone", ["../etc", "", "a/b", "DE\n"])  # "$" matched before "\n"
def test_zone_cannot_escape_the_directory(tmp_path: Path, zone: str) -> None:
    with pytest.raises(CacheError):
        SeriesCache(tmp_path).load(zone)


def test_unwritable_directory_is_a_cache_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="cannot write"):
        SeriesCache(blocker / "sub").store(_series(T0, [1.0]))


def test_a_store_waits_for_another_writers_store_and_keeps_its_points(tmp_path: Path) -> None:
    """Two writers (the daemon and ``carbond intensity``) each read, merged and renamed: the
    last rename won and the other's new points were lost. A store now holds the directory's
    lock from its read to its rename: one that starts while another writer holds it merges
    over what that writer stored."""
    cache_dir = tmp_path / "cache"
    staging = tmp_path / "staging"
    SeriesCache(staging).store(_series(T0, [1.0, 2.0]))  # the other writer's result
    cache_dir.mkdir()
    held = os.open(cache_dir, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)  # the other writer is between its read and its rename
    ours = threading.Thread(
        target=SeriesCache(cache_dir).store, args=(_series(T0 + timedelta(hours=2), [3.0]),)
    )
    ours.start()
    ours.join(timeout=0.5)
    assert ours.is_alive()  # waiting, not writing over the other writer
    os.replace(staging / "DE.lifecycle.history.json", cache_dir / "DE.lifecycle.history.json")
    os.close(held)  # the other writer is done
    ours.join(timeout=30)

    loaded = SeriesCache(cache_dir).load("DE")
    assert loaded is not None
    assert loaded.values_g_per_kwh.tolist() == [1.0, 2.0, 3.0]


def test_a_killed_writers_temporary_file_is_removed_once_stale(tmp_path: Path) -> None:
    """A writer killed between its create and its rename left ``.<name>.<random>.tmp``, and
    nothing ever removed it. A later write removes those :data:`STALE_TMP_S` old; one that is
    fresh (another writer's, in flight) and files not of the cache's shape stay."""
    stale = tmp_path / ".DE.lifecycle.history.json.k1ll3d.tmp"
    fresh = tmp_path / ".FR.lifecycle.forecast.json.inflight.tmp"
    other = tmp_path / ".notes.tmp"
    for path in (stale, fresh, other):
        path.write_text("{")
    old = time.time() - STALE_TMP_S - 600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))

    SeriesCache(tmp_path).store_forecast(_series(T0, [1.0]))

    assert not stale.exists() and fresh.exists() and other.exists()
    assert {p.name for p in tmp_path.iterdir()} == {
        fresh.name,
        other.name,
        "DE.lifecycle.forecast.json",
    }
