"""Errors raised by :mod:`forecasts`.

One root, so callers can catch everything this package raises::

    ForecastsError
     ├── SeriesError              an impossible time-series operation (ValueError)
     │    ├── KindMismatchError   lifecycle, direct and marginal signals mixed in one operation
     │    └── OutOfRangeError     a time outside the series
     ├── TraceFormatError         a CSV trace that cannot be read: names file, line and column
     ├── SolarInputError          a bad PV parameter or power CSV: names file, line and field
     ├── CacheError               the on-disk cache cannot be read or written
     ├── ProviderError            the intensity provider (Electricity Maps) failed
     │    ├── ProviderAuthError       401/403: missing or rejected token
     │    ├── ProviderZoneError       the provider does not know the zone
     │    ├── RateLimitedError        429, after the retries; carries ``retry_after_s``
     │    ├── ProviderServerError     5xx, after the retries
     │    ├── ProviderTimeoutError    connect/read timeout or connection refused
     │    └── MalformedPayloadError   non-JSON body, missing field, ``carbonIntensity: null``
     ├── NoSignalError            every rung of the fallback chain failed for a zone
     ├── UnknownForecasterError   a forecaster name that none has (``name``, ``known``)
     └── UnknownZoneError         (in :mod:`forecasts.static`) a zone no table knows

Messages never contain the API token.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CacheError",
    "ForecastsError",
    "KindMismatchError",
    "LocatedError",
    "MalformedPayloadError",
    "NoSignalError",
    "OutOfRangeError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "ProviderZoneError",
    "RateLimitedError",
    "SeriesError",
    "SolarInputError",
    "TraceFormatError",
    "UnknownForecasterError",
]


class ForecastsError(Exception):
    """Root of every error raised by the ``forecasts`` package."""


class SeriesError(ForecastsError, ValueError):
    """An operation a time series cannot do (misaligned steps, empty range, ...)."""


class KindMismatchError(SeriesError):
    """Average (lifecycle/direct) and marginal signals, or two averages, mixed in one operation."""


class OutOfRangeError(SeriesError):
    """A time or interval that the series does not cover."""


class LocatedError(Exception):
    """An error of a bad input whose message is ``FILE:LINE: PROBLEM`` (``FILE: PROBLEM``
    without a line, ``PROBLEM`` without a file), composed from the parts, which it keeps:
    ``file`` (str), ``line`` (1-based), ``field``, each None where not known, and
    ``problem``. A mixin of each package's own input errors (:class:`SolarInputError`,
    :class:`daemon.replay.errors.ReplayInputError`), under that package's error root; pickled
    whole (the parts travel in ``__dict__``)."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike[str] | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        self.problem = problem
        where = "" if self.file is None else self.file if line is None else f"{self.file}:{line}"
        super().__init__(f"{where}: {problem}" if where else problem)


class SolarInputError(LocatedError, ForecastsError, ValueError):
    """A bad PV parameter or power CSV: ``FILE:LINE: PROBLEM`` (``FILE: PROBLEM`` without a
    line, ``PROBLEM`` without a file), composed from the parts, which the error keeps:
    ``file`` (str), ``line`` (1-based), ``field`` (``datetime``, ``power_w``,
    ``pv.latitude``), each None where not known. ``problem`` names the field in words where
    it has one (``power_w: not a number ...``)."""


class TraceFormatError(ForecastsError, ValueError):
    """A trace file that cannot be read; the message names the file, line and column."""

    def __init__(self, path: str, line: int | None, column: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem
        where = path
        if line is not None:
            where += f":{line}"
        if column is not None:
            where += f": column {column!r}"
        super().__init__(f"{where}: {problem}")


class CacheError(ForecastsError):
    """The intensity cache cannot be read or written (the message names the file)."""


class ProviderError(ForecastsError):
    """The intensity provider failed; subclasses say how."""


class ProviderAuthError(ProviderError):
    """The provider rejected the request's credentials (HTTP 401/403) or none were given;
    ``status`` is the HTTP status (None: no request was sent)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ProviderZoneError(ProviderError):
    """The provider does not know the zone (HTTP 404, or a 400 naming the zone)."""


class RateLimitedError(ProviderError):
    """HTTP 429 after every retry; ``retry_after_s`` is the server's last ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ProviderServerError(ProviderError):
    """HTTP 5xx (or another unexpected status) after every retry."""


class ProviderTimeoutError(ProviderError):
    """Connect or read timeout, or the connection failed, after every retry."""


class MalformedPayloadError(ProviderError):
    """A response that is not the documented JSON: non-JSON body, missing field, null value."""


class NoSignalError(ForecastsError):
    """No rung of the fallback chain (live, cache, history forecast, static) has a value."""


class UnknownForecasterError(ForecastsError, LookupError):
    """A forecaster name (``name``) that no built-in forecaster has; ``known``: their names."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown forecaster {name!r} (known: {', '.join(known)})")
