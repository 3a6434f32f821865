"""Write-through, bounded, on-disk cache of what the provider returned, per zone and kind.

One JSON file per (zone, kind) for the measured history and one for the provider's latest
forecast, under one directory (the daemon uses ``<state_dir>/cache/intensity/``). Writes go to
a temporary file in the same directory, are fsynced and renamed over the old file, so a crash
leaves either the old or the new file, never half of one. Each history is bounded to the most
recent ``max_points`` points; new points are merged over old ones (newer values win).

Two writers may share the directory (the daemon and ``carbond intensity``, two daemons' CLI
runs): each store holds an exclusive ``flock`` on the directory from its read to its rename,
so a history merge never overwrites points another writer stored meanwhile (the last rename
won). A temporary file a killed writer left (``.<name>.<random>.tmp``) is removed by a later
write once it is :data:`STALE_TMP_S` older than that write's own temporary file (the file
system's clock, not this process's).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from forecasts.errors import CacheError, SeriesError
from forecasts.series import SIGNAL_KINDS, IntensitySeries, SignalKind

__all__ = ["CACHE_FORMAT_VERSION", "STALE_TMP_S", "SeriesCache"]

CACHE_FORMAT_VERSION: Final = 1
STALE_TMP_S: Final = 3600  # a write takes milliseconds: a temporary file this old was left
_ZONE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TMP_RE: Final = re.compile(r"^\.[A-Za-z0-9_-]+\.[a-z]+\.(history|forecast)\.json\..+\.tmp$")


class SeriesCache:
    """Per-zone intensity history and provider forecast, kept across restarts.

    Args:
        directory: where the files live; created on first write.
        max_points: history points kept per zone (default 60 days of hours).
    """

    def __init__(self, directory: Path, *, max_points: int = 60 * 24) -> None:
        if max_points < 1:
            raise CacheError(f"{directory}: max_points must be >= 1, got {max_points}")
        self.directory = Path(directory)
        self.max_points = max_points

    def _path(self, zone: str, kind: SignalKind, what: str) -> Path:
        if not _ZONE_RE.fullmatch(zone):
            raise CacheError(f"zone {zone!r} cannot name a cache file")
        return self.directory / f"{zone}.{kind}.{what}.json"

    # -- history -------------------------------------------------------------------------
    def load(self, zone: str, kind: SignalKind = "lifecycle") -> IntensitySeries | None:
        """The cached history of ``zone``, or None when there is none.

        Raises:
            CacheError: the file exists but is unreadable, corrupt, or holds another zone's or
                kind's values (named in the message).
        """
        return self._read(self._path(zone, kind, "history"), zone, kind)

    def store(self, series: IntensitySeries) -> IntensitySeries:
        """Merge ``series`` into the cached history (newer wins), trim, write atomically.

        Returns the merged, trimmed series now on disk.

        Raises:
            CacheError: the file cannot be written, or the grids do not align.
        """
        path = self._path(series.zone, series.kind, "history")
        with self._locked(path):
            try:
                old = self._read(path, series.zone, series.kind)
            except CacheError:
                old = None  # a corrupt cache is replaced by fresh data
            try:
                merged = series if old is None else old.merge(series)
            except SeriesError:
                merged = series  # step or grid changed: the new data replaces the old
            if len(merged) > self.max_points:
                drop = len(merged) - self.max_points
                merged = merged.slice(
                    merged.start + timedelta(seconds=merged.step_s * drop), merged.end
                )
            self._write(path, merged)
        return merged

    # -- provider forecast ---------------------------------------------------------------
    def load_forecast(self, zone: str, kind: SignalKind = "lifecycle") -> IntensitySeries | None:
        """The provider forecast last stored for ``zone``, or None.

        Raises:
            CacheError: corrupt file, or another zone's or kind's forecast.
        """
        return self._read(self._path(zone, kind, "forecast"), zone, kind)

    def store_forecast(self, series: IntensitySeries) -> None:
        """Replace the stored provider forecast of ``series.zone`` (atomic write).

        Raises:
            CacheError: the file cannot be written.
        """
        path = self._path(series.zone, series.kind, "forecast")
        with self._locked(path):
            self._write(path, series)

    # -- files ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the cache directory (created if missing) while a
        store reads, merges and renames: another writer's store waits for this one.

        Raises:
            CacheError: the directory cannot be created or opened.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CacheError(f"{path}: cannot write cache: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _remove_stale_tmp(self, fresh_mtime: float) -> None:
        """Remove cache temporary files :data:`STALE_TMP_S` older than ``fresh_mtime`` (the
        mtime of the temporary file this write just created): a writer killed between its
        create and its rename left them. Best effort: a file that cannot go stays."""
        try:
            names = [n for n in os.listdir(self.directory) if _TMP_RE.fullmatch(n)]
        except OSError:
            return
        for name in names:
            left = self.directory / name
            try:
                st = os.lstat(left)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < fresh_mtime - STALE_TMP_S:
                    left.unlink()
            except OSError:
                continue

    def _write(self, path: Path, series: IntensitySeries) -> None:
        payload = {
            "format": CACHE_FORMAT_VERSION,
            "zone": series.zone,
            "kind": series.kind,
            "start": series.start.isoformat(),
            "step_s": series.step_s,
            "source": series.source,
            "fetched_at": series.fetched_at.isoformat() if series.fetched_at else None,
            "values_g_per_kwh": [
                None if not math.isfinite(v) else round(v, 4)
                for v in series.values_g_per_kwh.tolist()
            ],
            "is_estimated": series.is_estimated.tolist(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    self._remove_stale_tmp(os.fstat(handle.fileno()).st_mtime)
                    json.dump(payload, handle, separators=(",", ":"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise CacheError(f"{path}: cannot write cache: {e.strerror or e}") from e

    @staticmethod
    def _read(path: Path, zone: str, kind: SignalKind) -> IntensitySeries | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CacheError(f"{path}: cannot read cache: {e.strerror or e}") from e
        try:
            data: dict[str, Any] = json.loads(text)
            if data.get("format") != CACHE_FORMAT_VERSION:
                raise CacheError(f"{path}: unknown cache format {data.get('format')!r}")
            if data["kind"] not in SIGNAL_KINDS:
                raise CacheError(f"{path}: unknown kind {data['kind']!r}")
            if str(data["zone"]).upper() != zone.upper() or data["kind"] != kind:
                # a file copied or renamed by hand: served, it would pass for this zone's
                raise CacheError(
                    f"{path}: holds {data['zone']} {data['kind']} values, not {zone} {kind}"
                )
            values = np.array(
                [math.nan if v is None else float(v) for v in data["values_g_per_kwh"]]
            )
            fetched = data.get("fetched_at")
            return IntensitySeries(
                zone=str(data["zone"]),
                start=datetime.fromisoformat(data["start"]),
                step_s=int(data["step_s"]),
                values_g_per_kwh=values,
                is_estimated=np.array(data["is_estimated"], dtype=np.bool_),
                kind=data["kind"],
                source=str(data.get("source", "")),
                fetched_at=datetime.fromisoformat(fetched) if fetched else None,
            )
        except CacheError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise CacheError(f"{path}: corrupt cache file: {e}") from e
