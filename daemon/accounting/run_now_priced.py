"""The run-now counterfactual's intensity as it turned out (pure but for the ledger read).

The counterfactual stored with a job's first decision is priced at the forecast of its zone
then. The job's own grams use the intensity realised over its run (the ledger's samples,
:mod:`daemon.accounting.realised`), so a saving compared the two signals as much as the two
placements. Here the counterfactual is priced the same way: the mean of the samples its zone
recorded over its own window (its start, for its duration as the run turned out) up to the
job's end, when the samples are known; past that end (a counterfactual run that would still be
running, or one that starts after it: a copy that waited for a GPU while the job ran), the
forecast held now, over the window itself. Without a sample over the known part, or past it
without that forecast, None: it keeps the forecast it was priced at (with its decision, at the
first slot of the planner's grid from its start, 15 minutes apart by default, for its
predicted duration).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from daemon.accounting.realised import realised_from_samples
from daemon.inventory import InventoryGpu
from policies import PoliciesError, ZoneIntensity
from policies.footprint.outcome import time_weighted_intensity

__all__ = ["ratio", "run_now_intensity_g_per_kwh", "run_now_zone"]

Samples = Callable[[str, datetime, datetime], Sequence[tuple[datetime, float, str]]]
"""The ledger's ``intensity_samples(zone, since, until)``."""


def ratio(value: Any, predicted: Any) -> float | None:
    """``value / predicted`` when both are finite numbers and ``predicted`` is above 0 (None
    otherwise): how a run turned out against its prediction (its duration, its energy), which
    scales its counterfactual's priced window and the window it holds GPUs over
    (:mod:`daemon.run_now_busy`) alike."""
    if not isinstance(value, int | float) or not isinstance(predicted, int | float):
        return None
    if not (math.isfinite(value) and math.isfinite(predicted)) or predicted <= 0:
        return None
    return float(value) / float(predicted)


def run_now_zone(
    recorded: Mapping[str, Any], by_device: Mapping[str, InventoryGpu] | None
) -> str | None:
    """The zone of the ``recorded`` counterfactual's first device (None: not known here)."""
    ids = recorded.get("device_ids")
    if not by_device or not isinstance(ids, list) or not ids:
        return None
    gpu = by_device.get(str(ids[0]))
    return None if gpu is None else gpu.device.zone


def run_now_intensity_g_per_kwh(
    samples: Samples,
    zone: str,
    start: datetime,
    duration_s: float,
    known_until: datetime,
    forecast: ZoneIntensity | None,
) -> float | None:
    """The mean intensity over ``[start, start + duration_s]`` in ``zone``: the recorded
    samples up to ``known_until`` (the job's end), ``forecast`` after it (a window wholly
    after it: ``forecast`` over it all); None without a sample over the known part, or past
    it without a forecast covering the rest."""
    if not duration_s > 0:
        return None
    end = start + timedelta(seconds=duration_s)
    known_end = min(end, known_until)
    if known_end <= start:  # it starts after the job's end: nothing recorded over it yet
        return _forecast_mean(forecast, start, end)
    realised = realised_from_samples(zone, samples(zone, start, known_end), start, known_end)
    if realised is None:
        return None
    known_s = (known_end - start).total_seconds()
    weighted = realised.intensity_g_per_kwh * known_s
    if end > known_end:
        rest = _forecast_mean(forecast, known_end, end)
        if rest is None:
            return None
        weighted += rest * (end - known_end).total_seconds()
    return weighted / duration_s


def _forecast_mean(forecast: ZoneIntensity | None, start: datetime, end: datetime) -> float | None:
    """``forecast``'s mean over ``[start, end]`` (None: no forecast, or one that cannot say)."""
    if forecast is None:
        return None
    try:
        mean, _ = time_weighted_intensity(forecast, start, end)
    except PoliciesError:
        return None
    return mean
