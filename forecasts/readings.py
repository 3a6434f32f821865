"""What the fallback chain hands out: readings and forecasts labelled with rung and age.

Also the :class:`IntensityProvider` protocol that a live source (the Electricity Maps client,
or a fake in tests) satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from forecasts.electricitymaps import ProviderReading
from forecasts.series import FloatArray, IntensitySeries, SignalKind

__all__ = [
    "HISTORY_FORECAST_FAILED",
    "NO_PROVIDER",
    "OFFLINE_PROBLEM",
    "RUNGS",
    "IntensityProvider",
    "IntensityReading",
    "Rung",
    "StaleHistory",
    "ZoneForecast",
    "history_ends",
]

Rung = Literal["live", "cache", "history-forecast", "static"]
RUNGS: Final[tuple[Rung, ...]] = ("live", "cache", "history-forecast", "static")

# The chain's words that its users match (``carbond doctor``, the service): said here once so
# that a change of wording reaches them (until 2026-12-08 they re-typed these strings).
NO_PROVIDER: Final = "no provider configured"  # refresh's outcome per zone of an offline chain
OFFLINE_PROBLEM: Final = f"live: {NO_PROVIDER}"  # in every reading's problem of an offline chain
HISTORY_FORECAST_FAILED: Final = "history forecast: "  # before why that rung had no value


def history_ends(gap_s: float) -> str:
    """Why the history forecast refuses a history ending ``gap_s`` before the hour of now."""
    return f"history ends {gap_s / 86_400:.1f} days before now"


class IntensityProvider(Protocol):
    """A live source (the Electricity Maps client, or a fake in tests)."""

    @property
    def kind(self) -> SignalKind:
        """The signal kind this source returns."""
        ...

    def latest(self, zone: str) -> ProviderReading:
        """The newest value. Raises: ProviderError."""
        ...

    def history(self, zone: str) -> IntensitySeries:
        """The last 24 h. Raises: ProviderError."""
        ...

    def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
        """The provider's own forecast. Raises: ProviderError."""
        ...


@dataclass(frozen=True, slots=True)
class IntensityReading:
    """The intensity of a zone now, with where it came from and how old it is.

    ``at`` is the start of the period the value describes; ``age_s`` the seconds since it was
    fetched (live) or since the end of that period (cache, history); ``stale`` is true for
    every rung but a fresh live value. ``problem`` says why higher rungs were skipped.
    """

    zone: str
    intensity_g_per_kwh: float
    at: datetime
    rung: Rung
    age_s: float
    stale: bool
    source: str
    kind: SignalKind
    is_estimated: bool
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class StaleHistory:
    """A zone has history (cache or trace) but its newest point is too old to forecast from:
    it ended ``gap_s`` seconds before the hour of now, more than ``max_gap_s``
    (``signals.max_history_gap_s``), so the chain falls to the static rung. A zone with no
    history at all has none of these: that is a fresh install, not stale data."""

    zone: str
    newest_at: datetime  # start of the newest valid point
    gap_s: float  # from the end of the history to the start of now's hour
    max_gap_s: float

    @property
    def forecast_problem(self) -> str:
        """What the chain's readings and forecasts say of it among their problems:
        ``history forecast: history ends 90.0 days before now``."""
        return HISTORY_FORECAST_FAILED + history_ends(self.gap_s)


@dataclass(frozen=True, slots=True)
class ZoneForecast:
    """A forecast from ``now`` over the horizon, for planners.

    ``abs_error_p90_g_per_kwh`` is, per point, the 90th percentile of the absolute error this
    forecaster made at that lead time in its latest backtest (a rough fraction of the value when
    unscored); ``pessimistic_g_per_kwh()`` (also ``upper_g_per_kwh``) adds it to the values.
    It has ``zone``, ``start``, ``step_s`` and ``values_g_per_kwh``, so policies can take it
    wherever they take a zone's intensity on a grid.
    """

    series: IntensitySeries
    forecaster: str
    rung: Rung
    age_s: float
    source: str
    abs_error_p90_g_per_kwh: FloatArray
    mape_24h_pct: float | None = None
    problem: str | None = None
    error_note: str | None = None  # why the p90 error is assumed though a backtest ran ("not
    # enough history (1 backtest issue, 10 needed)"); None: backtested, or none ran

    @property
    def zone(self) -> str:
        """The zone key."""
        return self.series.zone

    @property
    def start(self) -> datetime:
        """Start of the first point (aware UTC)."""
        return self.series.start

    @property
    def step_s(self) -> int:
        """Point length in seconds."""
        return self.series.step_s

    @property
    def values_g_per_kwh(self) -> FloatArray:
        """The forecast values, gCO2e/kWh (read-only)."""
        return self.series.values_g_per_kwh

    @property
    def upper_g_per_kwh(self) -> FloatArray:
        """Pessimistic bound: values plus their p90 absolute error (same shape)."""
        return self.pessimistic_g_per_kwh()

    def pessimistic_g_per_kwh(self) -> FloatArray:
        """Values plus their p90 absolute error, gCO2e/kWh."""
        return self.series.values_g_per_kwh + self.abs_error_p90_g_per_kwh
