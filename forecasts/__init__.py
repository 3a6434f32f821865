"""Carbon-intensity signals: time series, sources, forecasters and their backtest.

Imports nothing else of carbond's (``forecasts <- policies <- daemon``).
"""

from forecasts.errors import ForecastsError
from forecasts.static import STATIC_ANNUAL_INTENSITY, UnknownZoneError, static_annual_intensity

__all__ = [
    "STATIC_ANNUAL_INTENSITY",
    "ForecastsError",
    "UnknownZoneError",
    "static_annual_intensity",
]
