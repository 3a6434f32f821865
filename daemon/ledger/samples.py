"""The intensity samples of the zones this ledger connection records, kept so that an ending
does not read them back (two statements per finished job).

The daemon is the ledger's one writer and records every sample itself. When it first records
one for a zone, that zone's stored samples are read once; each sample recorded after is added,
and :meth:`KeptSamples.between` answers what the two ``intensity_samples`` queries of
:meth:`daemon.ledger.accounting.Accounting.intensity_samples` would: times compared as the
stored text, as SQLite compares them. A zone with two samples at one time (different sources),
whose order SQLite does not define, is no longer kept (its answers are read), nor is any zone
after a rollback. A connection that never records (the CLI's) keeps nothing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["KeptSamples"]

Sample = tuple[datetime, float, str]  # (at, intensity_g_per_kwh, source), as read back


@dataclass(slots=True)
class _Zone:
    texts: list[str] = field(default_factory=list)  # the stored ``at`` texts, sorted
    samples: list[Sample] = field(default_factory=list)  # in the same order


class KeptSamples:
    """The kept samples by zone (a zone absent: not kept, read it)."""

    def __init__(self) -> None:
        self._zones: dict[str, _Zone] = {}
        self._mixed: set[str] = set()  # zones with two sources at one time: never kept again

    def kept(self, zone: str) -> bool:
        """Whether ``zone``'s samples are kept."""
        return zone in self._zones

    def wanted(self, zone: str) -> bool:
        """Whether ``zone``'s stored samples should be loaded (:meth:`load`) before a sample
        of it is recorded."""
        return zone not in self._zones and zone not in self._mixed

    def load(self, zone: str, rows: Iterable[tuple[str, Sample]]) -> None:
        """Keep ``zone``'s stored samples: ``(at text, sample)`` sorted by the text."""
        kept = _Zone()
        for text, sample in rows:
            if kept.texts and kept.texts[-1] == text:
                self._drop(zone)
                return
            kept.texts.append(text)
            kept.samples.append(sample)
        self._zones[zone] = kept

    def recorded(self, zone: str, text: str, sample: Sample) -> None:
        """A sample of ``zone`` at ``text`` was written (inserted, or replacing the one with
        the same time and source)."""
        kept = self._zones.get(zone)
        if kept is None:
            return
        i = bisect_left(kept.texts, text)
        if i < len(kept.texts) and kept.texts[i] == text:
            if kept.samples[i][2] != sample[2]:
                self._drop(zone)
                return
            kept.samples[i] = sample
            return
        kept.texts.insert(i, text)
        kept.samples.insert(i, sample)

    def between(self, zone: str, since: str, until: str) -> list[Sample]:
        """The last sample before ``since`` (if any), then those at ``since`` .. ``until``
        (stored texts), oldest first; ``zone`` must be kept."""
        kept = self._zones[zone]
        first = bisect_left(kept.texts, since)
        last = bisect_right(kept.texts, until)
        return kept.samples[max(0, first - 1) : max(first, last)]

    def forget(self) -> None:
        """A transaction rolled back: what was kept may not have been committed."""
        self._zones.clear()

    def _drop(self, zone: str) -> None:
        self._zones.pop(zone, None)
        self._mixed.add(zone)
