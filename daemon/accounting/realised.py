"""Realised intensity of a run from the intensity samples the daemon recorded (pure).

Each sample holds from its time until the next one; before the first sample the first value
holds (``coverage`` < 1 says so). The ledger keeps the samples, so a job's realised intensity
can be computed after a restart, or for a job no GPU meter followed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from policies.footprint.outcome import RealisedIntensity

__all__ = ["realised_from_samples"]


def realised_from_samples(
    zone: str,
    samples: Sequence[tuple[datetime, float, str]],
    start: datetime,
    end: datetime,
) -> RealisedIntensity | None:
    """The time-weighted mean of ``samples`` (``(at, g/kWh, source)``, oldest first) over
    ``[start, end]``: the sources used as the rung, the age at ``end`` of the sample then in
    force, and the fraction of the run at or after the first sample. A zero-length run takes
    the value in force at ``start``. None without samples."""
    if not samples:
        return None
    times = [s[0] for s in samples]

    def in_force(t: datetime) -> int:
        return max(0, bisect_right(times, t) - 1)

    cuts = [start, *(t for t in times if start < t < end), max(start, end)]
    span_s = (cuts[-1] - start).total_seconds()
    used = {in_force(start)}
    weighted = 0.0
    for a, b in pairwise(cuts):
        i = in_force(a)
        used.add(i)
        weighted += samples[i][1] * (b - a).total_seconds()
    value = weighted / span_s if span_s > 0 else samples[in_force(start)][1]
    covered_s = max(0.0, (cuts[-1] - max(start, times[0])).total_seconds())
    last = samples[in_force(cuts[-1])]
    return RealisedIntensity(
        zone=zone,
        intensity_g_per_kwh=value,
        rung="+".join(sorted({samples[i][2] for i in used})),
        age_s=max(0.0, (cuts[-1] - last[0]).total_seconds()),
        coverage=min(1.0, covered_s / span_s) if span_s > 0 else float(times[0] <= start),
    )
