"""Carbon-intensity signals: time series, sources, forecasters and their backtest.

Imports nothing else of carbond's (``forecasts <- policies <- daemon``).
"""

from forecasts.backtest import (
    BACKTEST_HORIZONS_H,
    BacktestResult,
    HistoricalForecasts,
    HorizonScore,
    backtest,
    score_recent,
)
from forecasts.cache import SeriesCache
from forecasts.chain import SignalChain
from forecasts.electricitymaps import ElectricityMapsClient, ProviderReading
from forecasts.errors import (
    CacheError,
    ForecastsError,
    KindMismatchError,
    MalformedPayloadError,
    NoSignalError,
    OutOfRangeError,
    ProviderAuthError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderZoneError,
    RateLimitedError,
    SeriesError,
    TraceFormatError,
    UnknownForecasterError,
)
from forecasts.forecasters import (
    FORECASTERS,
    BlendForecaster,
    Forecaster,
    PersistenceForecaster,
    ProviderForecaster,
    SeasonalNaiveForecaster,
    VectorForecaster,
    make_forecaster,
)
from forecasts.readings import (
    HISTORY_FORECAST_FAILED,
    NO_PROVIDER,
    OFFLINE_PROBLEM,
    RUNGS,
    IntensityProvider,
    IntensityReading,
    Rung,
    StaleHistory,
    ZoneForecast,
)
from forecasts.series import (
    J_PER_KWH,
    MAX_INTENSITY_G_PER_KWH,
    SIGNAL_KINDS,
    IntensitySeries,
    SignalKind,
    check_same_kind,
)
from forecasts.static import STATIC_ANNUAL_INTENSITY, UnknownZoneError, static_annual_intensity
from forecasts.trace_grid import fill_gaps
from forecasts.trace_provider import TraceProvider
from forecasts.trace_rows import DataIssue
from forecasts.traces import TraceReadResult, read_trace

__all__ = [
    "BACKTEST_HORIZONS_H",
    "FORECASTERS",
    "HISTORY_FORECAST_FAILED",
    "J_PER_KWH",
    "MAX_INTENSITY_G_PER_KWH",
    "NO_PROVIDER",
    "OFFLINE_PROBLEM",
    "RUNGS",
    "SIGNAL_KINDS",
    "STATIC_ANNUAL_INTENSITY",
    "BacktestResult",
    "BlendForecaster",
    "CacheError",
    "DataIssue",
    "ElectricityMapsClient",
    "Forecaster",
    "ForecastsError",
    "HistoricalForecasts",
    "HorizonScore",
    "IntensityProvider",
    "IntensityReading",
    "IntensitySeries",
    "KindMismatchError",
    "MalformedPayloadError",
    "NoSignalError",
    "OutOfRangeError",
    "PersistenceForecaster",
    "ProviderAuthError",
    "ProviderError",
    "ProviderForecaster",
    "ProviderReading",
    "ProviderServerError",
    "ProviderTimeoutError",
    "ProviderZoneError",
    "RateLimitedError",
    "Rung",
    "SeasonalNaiveForecaster",
    "SeriesCache",
    "SeriesError",
    "SignalChain",
    "SignalKind",
    "StaleHistory",
    "TraceFormatError",
    "TraceProvider",
    "TraceReadResult",
    "UnknownForecasterError",
    "UnknownZoneError",
    "VectorForecaster",
    "ZoneForecast",
    "backtest",
    "check_same_kind",
    "fill_gaps",
    "make_forecaster",
    "read_trace",
    "score_recent",
    "static_annual_intensity",
]
