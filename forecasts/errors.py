"""Errors raised by :mod:`forecasts`.

One root, so callers can catch everything this package raises::

    ForecastsError
"""

from __future__ import annotations

__all__ = ["ForecastsError"]


class ForecastsError(Exception):
    """Root of every error raised by the ``forecasts`` package."""
