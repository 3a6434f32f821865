"""Electricity Maps v3 carbon-intensity client (``requests``, one session per source).

Endpoints: ``carbon-intensity/latest``, ``/history`` (last 24 h), ``/past-range`` (chunked to the
API's 10-day limit at hourly granularity) and ``/forecast``. Auth is the ``auth-token`` header;
``emissionFactorType`` selects lifecycle (default) or direct factors.

Every request has explicit (connect, read) timeouts. Timeouts, connection failures, 429 and 5xx
are retried up to ``max_retries`` times with exponential backoff; a 429's ``Retry-After`` is
honoured (capped at ``max_backoff_s``). ``requests``' read timeout bounds each wait on the
socket, not the body: a server sending a byte every few seconds would hold the caller (the
daemon's tick) indefinitely, so the whole body must also arrive within ``read_timeout_s`` of
the headers (else it is retried like a timeout), and may be at most ``MAX_BODY_BYTES`` long.
401/403, unknown zones, malformed payloads and oversized bodies are not retried. Errors are
the :class:`~forecasts.errors.ProviderError` subclasses; no message, and no field of this
object's ``repr``, contains the token or any header or body the server sent (a hostile server
could echo the token there).

Redirects are followed by hand, and only within the base URL's origin (scheme, host and port):
``requests`` keeps a custom header such as ``auth-token`` on every redirect, so a redirect to
another port or host would hand the token to whoever listens there. Such a redirect is an error.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from forecasts.errors import (
    MalformedPayloadError,
    ProviderAuthError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderZoneError,
    RateLimitedError,
)
from forecasts.series import MAX_INTENSITY_G_PER_KWH, IntensitySeries, SignalKind
from forecasts.urls import without_userinfo

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_BODY_BYTES",
    "MAX_RANGE_S",
    "ElectricityMapsClient",
    "ProviderReading",
]

DEFAULT_BASE_URL: Final = "https://api.electricitymaps.com/v3"
MAX_RANGE_S: Final = 10 * 86_400  # past-range at hourly granularity: at most 10 days a call
HOUR_S: Final = 3600
SOURCE: Final = "electricitymaps"
MAX_REDIRECTS: Final = 3  # same-origin hops followed before giving up
# A 10-day past-range of 5-minute points is about 1 MB; anything much larger is not an answer.
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
_CHUNK_BYTES: Final = 64 * 1024
# The longest span of times one answer may cover (history: 24 h; forecast: days): points
# placed on an hourly grid, a stray datetime in the year 1 or 9999 would allocate gigabytes.
MAX_ANSWER_SPAN_S: Final = 31 * 86_400
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_M = TypeVar("_M", bound="BaseModel")


_CAMEL = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
# A JSON number: not ``true`` (read as 1.0) nor the string ``"300"`` (lax mode takes both).
_Number = Annotated[float, Field(strict=True)]


class _Point(BaseModel):
    model_config = _CAMEL
    carbon_intensity: _Number
    datetime: AwareDatetime
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
    datetime: AwareDatetime


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


def _retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class ElectricityMapsClient:
    """Electricity Maps v3 client. Construct once per source; :meth:`close` the session.

    Args:
        session: the ``requests.Session`` this source owns.
        base_url: API root, e.g. ``https://api.electricitymaps.com/v3``.
        token: the ``auth-token``; None sends none (the API will answer 401).
        connect_timeout_s, read_timeout_s: per-request timeouts in seconds.
        max_retries: retries after the first attempt for timeouts, 429 and 5xx.
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
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._max_retries = max_retries
        self.kind: SignalKind = emission_factor_type
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock

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

    def _headers(self) -> Mapping[str, str]:
        return {"auth-token": self._token} if self._token else {}

    def _wait(self, attempt: int, retry_after_s: float | None) -> None:
        delay = self._backoff_s * 2**attempt if retry_after_s is None else retry_after_s
        self._sleep(min(self._max_backoff_s, delay))

    def _get(self, path: str, zone: str, params: Mapping[str, str]) -> Any:
        """GET with bounded retries; the parsed JSON body.

        Raises:
            ProviderError: the subclass for the last failure.
        """
        url = f"{self._base_url}/{path}"
        query = {"zone": zone, "emissionFactorType": self.kind, **params}
        what = f"{path.rsplit('/', 1)[-1]} for {zone}"
        retry = _Retry(ProviderServerError(f"{what}: no attempt made"), None)
        for attempt in range(self._max_retries + 1):
            if attempt:
                self._wait(attempt - 1, retry.wait_s)
            outcome = self._attempt(url, query, what, zone)
            if not isinstance(outcome, _Retry):
                return outcome
            retry = outcome
        raise retry.error

    def _send(self, url: str, query: Mapping[str, str] | None, what: str) -> requests.Response:
        """One GET, following redirects only within the base URL's origin.

        Raises:
            ProviderError: a redirect elsewhere, or too many; the transport errors pass through.
        """
        origin = _origin(self._base_url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._session.get(
                url,
                params=query,
                headers=self._headers(),
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,  # the body is read by _body, bounded in time and size
            )
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            _close(response)
            url, query = urljoin(response.url or url, location), None
            if _origin(url) != origin:
                raise ProviderError(
                    f"{what}: HTTP {response.status_code} redirect to another origin refused "
                    "(the token is only sent to electricitymaps.base_url's host and port)"
                )
        raise ProviderError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _attempt(self, url: str, query: Mapping[str, str], what: str, zone: str) -> Any:
        """One request: the JSON body, a :class:`_Retry`, or a non-retryable error raised."""
        try:
            response = self._send(url, query, what)
        except requests.Timeout as e:
            return _Retry(ProviderTimeoutError(f"{what}: timed out ({type(e).__name__})"), None)
        except requests.ConnectionError:
            where = without_userinfo(self._base_url)  # its password is never shown
            return _Retry(ProviderTimeoutError(f"{what}: cannot connect to {where}"), None)
        except requests.RequestException as e:
            raise ProviderError(f"{what}: request failed: {type(e).__name__}") from e
        status = response.status_code
        try:
            body = self._body(response, what) if status in (200, 400) else b""
        finally:
            _close(response)
        if isinstance(body, _Retry):
            return body
        if status in (401, 403):
            raise ProviderAuthError(
                f"{what}: HTTP {status}: token missing or rejected "
                "(set electricitymaps.token / CARBOND_ELECTRICITYMAPS__TOKEN)"
            )
        if status == 404 or (status == 400 and b"zone" in body.lower()):
            raise ProviderZoneError(f"{what}: HTTP {status}: unknown zone {zone!r}")
        wait_s = _retry_after_s(response.headers.get("Retry-After"), self._clock())
        if status == 429:
            return _Retry(RateLimitedError(f"{what}: HTTP 429 rate limited", wait_s), wait_s)
        if status >= 500:
            return _Retry(ProviderServerError(f"{what}: HTTP {status} from the provider"), wait_s)
        if status != 200:
            raise ProviderError(f"{what}: unexpected HTTP {status}")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:  # the server's Content-Type is not echoed
            raise MalformedPayloadError(f"{what}: body is not JSON") from e

    def _body(self, response: requests.Response, what: str) -> bytes | _Retry:
        """The whole body, read within ``read_timeout_s`` in all; a :class:`_Retry` when it
        came too slowly or the connection broke.

        Raises:
            MalformedPayloadError: the body is longer than ``MAX_BODY_BYTES``.
        """
        too_big = MalformedPayloadError(f"{what}: body longer than {MAX_BODY_BYTES} bytes")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise too_big
        raw = response.raw
        if raw is None:  # a session that read the body already (test fakes)
            if len(response.content) > MAX_BODY_BYTES:
                raise too_big
            return response.content
        # urllib3 2's read1 returns what one socket read gave; read() waits for a full chunk
        read = getattr(raw, "read1", None) or raw.read
        deadline = time.monotonic() + self._timeout[1]
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := read(_CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise too_big
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    slow = f"{what}: body not received within {self._timeout[1]:g} s"
                    return _Retry(ProviderTimeoutError(slow), None)
        except (OSError, urllib3.exceptions.HTTPError) as e:
            broken = f"{what}: reading the body failed ({type(e).__name__})"
            return _Retry(ProviderTimeoutError(broken), None)
        return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class _Retry:
    """A retryable failure and the server's requested wait (``Retry-After``), if any."""

    error: ProviderError
    wait_s: float | None


def _check_span(times: list[datetime], max_span_s: float, endpoint: str, zone: str) -> None:
    """Raises MalformedPayloadError: ``times`` span more than ``max_span_s``."""
    span_s = (max(times) - min(times)).total_seconds()
    if span_s > max_span_s:
        raise MalformedPayloadError(
            f"{endpoint} for {zone}: field datetime: the points span {span_s / 86_400:.0f} "
            f"days, more than the {max_span_s / 86_400:.0f} an answer can cover"
        )


def _close(response: requests.Response) -> None:
    """Give the connection back (a fake session's answer has no ``raw`` to close)."""
    if response.raw is not None:
        response.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range: matches nothing
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
