"""The run-now counterfactual's realised intensity (daemon/accounting/run_now_priced.py): the
recorded samples over its window up to the job's end, the held forecast past it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from daemon.accounting.run_now_priced import run_now_intensity_g_per_kwh

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = 3600.0


@dataclass(frozen=True)
class _Series:
    zone: str
    start: datetime
    step_s: int
    values_g_per_kwh: npt.NDArray[np.float64]


Sample = tuple[datetime, float, str]


def _samples(
    values: list[tuple[float, float]],
) -> Callable[[str, datetime, datetime], list[Sample]]:
    """The samples ``(hours after T0, g/kWh)`` as the ledger's ``intensity_samples`` reads
    them: those in ``[since, until]``, led by the last one before ``since``."""
    rows = [(T0 + timedelta(hours=h), v, "test") for h, v in values]

    def read(zone: str, since: datetime, until: datetime) -> list[Sample]:
        before = [r for r in rows if r[0] < since][-1:]
        return before + [r for r in rows if since <= r[0] <= until]

    return read


def test_the_samples_price_the_window_up_to_the_jobs_end_and_the_forecast_past_it() -> None:
    """A 2 h counterfactual run from T0; the job ended 1 h in: the first hour at the samples
    (100 then 300 g/kWh, half an hour each), the second at the held forecast (500)."""
    samples = _samples([(0.0, 100.0), (0.5, 300.0)])
    forecast = _Series("Z", T0 + timedelta(hours=1), 3600, np.array([500.0, 500.0]))
    got = run_now_intensity_g_per_kwh(samples, "Z", T0, 2 * HOUR, T0 + timedelta(hours=1),
                                      forecast)  # fmt: skip
    assert got == pytest.approx((100.0 * 0.5 + 300.0 * 0.5 + 500.0) / 2)
    whole = run_now_intensity_g_per_kwh(samples, "Z", T0, HOUR, T0 + timedelta(hours=3), None)
    assert whole == pytest.approx(200.0)


def test_without_samples_or_forecast_it_keeps_its_forecast() -> None:
    """None (the stored forecast stays): no sample; past the job's end with no forecast; a
    window wholly after the job's end."""
    end = T0 + timedelta(hours=1)
    assert run_now_intensity_g_per_kwh(_samples([]), "Z", T0, HOUR, end, None) is None
    samples = _samples([(0.0, 100.0)])
    assert run_now_intensity_g_per_kwh(samples, "Z", T0, 2 * HOUR, end, None) is None
    assert run_now_intensity_g_per_kwh(samples, "Z", end, HOUR, end, None) is None


def test_a_window_wholly_after_the_jobs_end_is_priced_at_the_held_forecast() -> None:
    """A counterfactual run that starts after its job ended (it waited for a GPU): nothing
    recorded over it, the held forecast over its own window (its start between two 15-min
    values: 10 min at 400, 20 min at 700), not None (the price stored with its decision,
    from the next slot); a forecast that cannot say (none) still gives None."""
    end = T0 + timedelta(hours=1)
    samples = _samples([(0.0, 100.0)])
    forecast = _Series("Z", end, 900, np.array([100.0, 400.0, 700.0, 700.0]))
    start = end + timedelta(minutes=20)
    got = run_now_intensity_g_per_kwh(samples, "Z", start, 1800.0, end, forecast)
    assert got == pytest.approx((400.0 * 10 + 700.0 * 20) / 30)
    assert run_now_intensity_g_per_kwh(samples, "Z", start, 1800.0, end, None) is None
