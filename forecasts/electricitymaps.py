"""Electricity Maps v3 carbon-intensity client (``requests``, one session per source).

Endpoints: ``carbon-intensity/latest``, ``/history`` (last 24 h), ``/past-range`` (chunked to the
API's 10-day limit at hourly granularity) and ``/forecast``. Auth is the ``auth-token`` header;
``emissionFactorType`` selects lifecycle (default) or direct factors.

Requests go through :class:`~forecasts.electricitymaps_http.ElectricityMapsHttp`: explicit
(connect, read) timeouts, the whole body within the read timeout and at most
``MAX_BODY_BYTES``, bounded retries with backoff honouring ``Retry-After``, redirects followed
only within the base URL's origin. Payloads are parsed here: a missing or wrong field, another
zone's data or an implausible value is a :class:`~forecasts.errors.MalformedPayloadError`, not
retried. Errors are the :class:`~forecasts.errors.ProviderError` subclasses; no message, and
no field of this object's ``repr``, contains the token or any header or body the server sent
(a hostile server could echo the token there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

import requests
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from forecasts.electricitymaps_http import ElectricityMapsHttp
from forecasts.errors import MalformedPayloadError
from forecasts.series import MAX_INTENSITY_G_PER_KWH, IntensitySeries, SignalKind
from forecasts.urls import without_userinfo

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_RANGE_S",
    "ElectricityMapsClient",
    "ProviderReading",
]

DEFAULT_BASE_URL: Final = "https://api.electricitymaps.com/v3"
MAX_RANGE_S: Final = 10 * 86_400  # past-range at hourly granularity: at most 10 days a call
HOUR_S: Final = 3600
SOURCE: Final = "electricitymaps"
# The longest span of times one answer may cover (history: 24 h; forecast: days): points
# placed on an hourly grid, a stray datetime in the year 1 or 9999 would allocate gigabytes.
MAX_ANSWER_SPAN_S: Final = 31 * 86_400
_M = TypeVar("_M", bound="BaseModel")


_CAMEL = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
# A JSON number: not ``true`` (read as 1.0) nor the string ``"300"`` (lax mode takes both).
_Number = Annotated[float, Field(strict=True)]
_LAST_HOUR: Final = datetime(9999, 12, 31, 22, tzinfo=UTC)  # its hour ends within datetime's range


def _in_utc(t: datetime) -> datetime:
    """``t`` in UTC, whose hour ends before the calendar does (0001-01-01T00:00+14:00 is in
    year 0 in UTC; an hour from 9999-12-31T23:00Z ends in year 10000).

    Raises:
        ValueError: out of range (pydantic names the field).
    """
    try:
        utc = t.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range in UTC") from None
    if utc > _LAST_HOUR:
        raise ValueError("its hour ends past the year 9999")
    return utc


_Time = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class _Point(BaseModel):
    model_config = _CAMEL
    carbon_intensity: _Number
    datetime: _Time
    is_estimated: bool | None = None
    emission_factor_type: str | None = None


class _Latest(_Point):
    zone: str


class _History(BaseModel):
    model_config = _CAMEL
    zone: str
    history: list[_Point]


class _PastRange(BaseModel):
    model_config = _CAMEL
    zone: str
    data: list[_Point]


class _ForecastPoint(BaseModel):
    model_config = _CAMEL
    carbon_intensity: _Number
    datetime: _Time


class _Forecast(BaseModel):
    model_config = _CAMEL
    zone: str
    forecast: list[_ForecastPoint]
    updated_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class ProviderReading:
    """One value from ``/latest``: ``at`` is the start of the period it describes."""

    zone: str
    intensity_g_per_kwh: float
    at: datetime
    is_estimated: bool
    kind: SignalKind
    fetched_at: datetime
    source: str = SOURCE


class ElectricityMapsClient:
    """Electricity Maps v3 client. Construct once per source; :meth:`close` the session.

    Args:
        session: the ``requests.Session`` this source owns.
        base_url: API root, e.g. ``https://api.electricitymaps.com/v3``.
        token: the ``auth-token``; None sends none (the API will answer 401).
        connect_timeout_s, read_timeout_s: per-request timeouts in seconds.
        max_retries: retries after the first attempt for connection failures, 429 and 5xx
            (a timeout: at most once, ``MAX_TIMEOUT_RETRIES``).
        emission_factor_type: ``lifecycle`` (the API default) or ``direct``.
        backoff_s: first backoff; doubles per retry, capped at ``max_backoff_s``.
        sleep: how to wait (tests pass a no-op); clock: the time source for ``fetched_at``.
    """

    name: Final = SOURCE

    def __init__(
        self,
        session: requests.Session,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        connect_timeout_s: float = 3.05,
        read_timeout_s: float = 10.0,
        max_retries: int = 3,
        emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle",
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._token = token
        self.kind: SignalKind = emission_factor_type
        self._clock = clock
        self._http = ElectricityMapsHttp(
            session,
            base_url=self._base_url,
            token=token,
            timeout=(connect_timeout_s, read_timeout_s),
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        shown = without_userinfo(self._base_url)
        return f"ElectricityMapsClient(base_url={shown!r}, token={token})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> ElectricityMapsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints -----------------------------------------------------------------------
    def latest(self, zone: str) -> ProviderReading:
        """The latest intensity of ``zone``.

        Raises:
            ProviderError: any failure (see the module docstring).
        """
        payload = self._get("carbon-intensity/latest", zone, {})
        point = self._parse(_Latest, payload, "latest", zone)
        return ProviderReading(
            zone=zone,
            intensity_g_per_kwh=self._value(point.carbon_intensity, "latest", zone),
            at=point.datetime.astimezone(UTC),
            is_estimated=bool(point.is_estimated),
            kind=self.kind,
            fetched_at=self._clock(),
        )

    def history(self, zone: str) -> IntensitySeries:
        """The last 24 hours of ``zone``, hourly.

        Raises:
            ProviderError: any failure.
        """
        payload = self._get("carbon-intensity/history", zone, {})
        return self._series(
            zone, self._parse(_History, payload, "history", zone).history, "history"
        )

    def past_range(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Hourly history of ``zone`` over ``[start, end)``, in calls of at most 10 days.

        Raises:
            ProviderError: any failure; MalformedPayloadError if no point came back.
        """
        points: list[_Point] = []
        cursor = start.astimezone(UTC)
        end = end.astimezone(UTC)
        while cursor < end:
            chunk_end = min(end, cursor + timedelta(seconds=MAX_RANGE_S))
            params = {"start": _iso(cursor), "end": _iso(chunk_end)}
            payload = self._get("carbon-intensity/past-range", zone, params)
            points.extend(self._parse(_PastRange, payload, "past-range", zone).data)
            cursor = chunk_end
        span_s = (end - start).total_seconds() + MAX_ANSWER_SPAN_S
        return self._series(zone, points, "past-range", span_s)

    def forecast(self, zone: str, horizon_hours: int | None = None) -> IntensitySeries:
        """The provider's own forecast for ``zone`` (hourly).

        Raises:
            ProviderError: any failure (many plans answer 401/403 here).
        """
        params = {"horizonHours": str(horizon_hours)} if horizon_hours else {}
        payload = self._get("carbon-intensity/forecast", zone, params)
        parsed = self._parse(_Forecast, payload, "forecast", zone)
        if not parsed.forecast:
            raise MalformedPayloadError(f"forecast for {zone}: empty 'forecast' list")
        times = [p.datetime.astimezone(UTC) for p in parsed.forecast]
        _check_span(times, MAX_ANSWER_SPAN_S, "forecast", zone)
        values = [self._value(p.carbon_intensity, "forecast", zone) for p in parsed.forecast]
        return IntensitySeries.from_points(
            zone,
            times,
            values,
            [True] * len(values),
            step_s=HOUR_S,
            kind=self.kind,
            source=f"{SOURCE}:forecast",
            fetched_at=self._clock(),
        )

    # -- plumbing ------------------------------------------------------------------------
    def _series(
        self,
        zone: str,
        points: list[_Point],
        endpoint: str,
        max_span_s: float = MAX_ANSWER_SPAN_S,
    ) -> IntensitySeries:
        if not points:
            raise MalformedPayloadError(f"{endpoint} for {zone}: no data points")
        times = [p.datetime.astimezone(UTC) for p in points]
        _check_span(times, max_span_s, endpoint, zone)
        return IntensitySeries.from_points(
            zone,
            times,
            [self._value(p.carbon_intensity, endpoint, zone) for p in points],
            [bool(p.is_estimated) for p in points],
            step_s=HOUR_S,
            kind=self.kind,
            source=SOURCE,
            fetched_at=self._clock(),
        )

    @staticmethod
    def _value(value: float, endpoint: str, zone: str) -> float:
        if not math.isfinite(value) or not 0 <= value <= MAX_INTENSITY_G_PER_KWH:
            raise MalformedPayloadError(
                f"{endpoint} for {zone}: carbonIntensity {value!r} is not 0 to "
                f"{MAX_INTENSITY_G_PER_KWH:,.0f} g/kWh"
            )
        return float(value)

    @staticmethod
    def _parse(model: type[_M], payload: Any, endpoint: str, zone: str) -> _M:
        """``payload`` as ``model``, checked to be about ``zone`` (case aside).

        Raises:
            MalformedPayloadError: a field is missing or wrong, or the payload names another
                zone (which one is not said: it is text the server sent).
        """
        try:
            parsed = model.model_validate(payload)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise MalformedPayloadError(
                f"{endpoint} for {zone}: field {field}: {first['msg']}"
            ) from e
        if str(getattr(parsed, "zone", zone)).strip().upper() != zone.strip().upper():
            raise MalformedPayloadError(f"{endpoint} for {zone}: field zone: another zone's data")
        return parsed

    def _get(self, path: str, zone: str, params: Mapping[str, str]) -> Any:
        """GET ``path`` about ``zone`` in this client's emission factors, with ``params``;
        the parsed JSON body (:meth:`ElectricityMapsHttp.get_json`).

        Raises:
            ProviderError: the subclass for the last failure.
        """
        query = {"zone": zone, "emissionFactorType": self.kind, **params}
        return self._http.get_json(path, zone, query)


def _check_span(times: list[datetime], max_span_s: float, endpoint: str, zone: str) -> None:
    """Raises MalformedPayloadError: ``times`` span more than ``max_span_s``."""
    span_s = (max(times) - min(times)).total_seconds()
    if span_s > max_span_s:
        raise MalformedPayloadError(
            f"{endpoint} for {zone}: field datetime: the points span {span_s / 86_400:.0f} "
            f"days, more than the {max_span_s / 86_400:.0f} an answer can cover"
        )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
