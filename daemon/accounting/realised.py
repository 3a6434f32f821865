"""Realised intensity of a run from the intensity samples the daemon recorded (pure).

Each sample holds from its time until the next one; before the first sample the first value
holds (``coverage`` < 1 says so). The ledger keeps the samples, so a job's realised intensity
can be computed after a restart, or for a job no GPU meter followed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime

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
    stop = max(start, end)  # the last cut
    first = max(0, bisect_right(times, start) - 1)  # the sample in force at the start
    # the mean over the cuts at each sample inside the run, each stretch at the value then
    # in force (summed in time order)
    used, i, cut, weighted = {first}, first, start, 0.0
    for at in [t for t in times if start < t < end]:
        weighted += samples[i][1] * (at - cut).total_seconds()
        i, cut = max(0, bisect_right(times, at) - 1), at
        used.add(i)
    weighted += samples[i][1] * (stop - cut).total_seconds()
    span_s = (stop - start).total_seconds()
    value = weighted / span_s if span_s > 0 else samples[first][1]
    covered_s = max(0.0, (stop - max(start, times[0])).total_seconds())
    last = samples[max(0, bisect_right(times, stop) - 1)]
    rung = samples[first][2] if len(used) == 1 else "+".join(sorted({samples[k][2] for k in used}))
    return RealisedIntensity(
        zone=zone,
        intensity_g_per_kwh=value,
        rung=rung,
        age_s=max(0.0, (stop - last[0]).total_seconds()),
        coverage=min(1.0, covered_s / span_s) if span_s > 0 else float(times[0] <= start),
    )
