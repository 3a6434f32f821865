"""The Electricity Maps client's HTTP: GETs of one API root carrying the ``auth-token``
header, bounded in time, size and redirects (one per source, built by
:class:`forecasts.electricitymaps.ElectricityMapsClient`, where the endpoints and their
payloads are).

Every request has explicit (connect, read) timeouts. Connection failures, 429 and 5xx are
retried up to ``max_retries`` times with exponential backoff, a timeout at most
:data:`MAX_TIMEOUT_RETRIES` times (each costs a whole timeout: until 2026-12-08 four tries,
44 s with the defaults, against a server that never answers); a 429's ``Retry-After`` is
honoured: waited for when at most ``max_backoff_s``, else not retried (the
:class:`~forecasts.errors.RateLimitedError` carries it, for the caller to wait).
``requests``' read timeout bounds each wait on the socket, not the body: a server sending a
byte every few seconds would hold the caller (the daemon's tick) indefinitely, so the whole
body must also arrive within ``read_timeout_s`` of the headers (else it is a timeout), and
may be at most ``MAX_BODY_BYTES`` long.
401/403, unknown zones, non-JSON and oversized bodies are not retried. Errors are the
:class:`~forecasts.errors.ProviderError` subclasses; no message contains the token or any
header or body the server sent (a hostile server could echo the token there).

Redirects are followed by hand, and only within the base URL's origin (scheme, host and port):
``requests`` keeps a custom header such as ``auth-token`` on every redirect, so a redirect to
another port or host would hand the token to whoever listens there. Such a redirect is an error.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from forecasts.errors import (
    MalformedPayloadError,
    ProviderAuthError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderZoneError,
    RateLimitedError,
)
from forecasts.urls import without_userinfo

__all__ = ["MAX_BODY_BYTES", "MAX_TIMEOUT_RETRIES", "ElectricityMapsHttp", "header_safe"]

MAX_REDIRECTS: Final = 3  # same-origin hops followed before giving up
# a request timed out (connect, read, or the body) is retried at most this often, within
# max_retries: a server that did not answer in a whole timeout rarely does in the next
MAX_TIMEOUT_RETRIES: Final = 1
# A 10-day past-range of 5-minute points is about 1 MB; anything much larger is not an answer.
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
_CHUNK_BYTES: Final = 64 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def header_safe(token: str) -> bool:
    """Whether ``token`` can travel in an HTTP header as sent: printable ASCII only (a curly
    quote or a euro sign raised ``UnicodeEncodeError`` deep in ``http.client``, which no
    caller expected; a control character is no token)."""
    return all(" " <= c <= "~" for c in token)


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


class ElectricityMapsHttp:
    """GETs of the API at ``base_url`` through ``session`` (see the module docstring).

    Args:
        session: the ``requests.Session`` the source owns (its client closes it).
        base_url: API root, without a trailing ``/``.
        token: the ``auth-token``; None sends none.
        timeout: (connect, read) timeouts in seconds.
        max_retries: retries after the first attempt for connection failures, 429 and 5xx
            (for timeouts at most :data:`MAX_TIMEOUT_RETRIES`).
        backoff_s: first backoff; doubles per retry, capped at ``max_backoff_s``.
        sleep: how to wait; clock: the time a ``Retry-After`` date is counted from.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        base_url: str,
        token: str | None,
        timeout: tuple[float, float],
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._token = token
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock

    def get_json(self, path: str, zone: str, query: Mapping[str, str]) -> Any:
        """GET ``path`` (under the base URL) about ``zone`` with ``query``, with bounded
        retries; the parsed JSON body.

        Raises:
            ProviderError: the subclass for the last failure.
        """
        url = f"{self._base_url}/{path}"
        what = f"{path.rsplit('/', 1)[-1]} for {zone}"
        if self._token is not None and not header_safe(self._token):  # never sent, nor shown
            raise ProviderAuthError(
                f"{what}: the token has a character an HTTP header cannot carry (printable "
                "ASCII only): check electricitymaps.token / CARBOND_ELECTRICITYMAPS__TOKEN"
            )
        retry = _Retry(ProviderServerError(f"{what}: no attempt made"), None)
        timeouts = 0
        for attempt in range(self._max_retries + 1):
            if attempt:
                self._wait(attempt - 1, retry.wait_s)
            outcome = self._attempt(url, query, what, zone)
            if not isinstance(outcome, _Retry):
                return outcome
            retry = outcome
            timeouts += retry.timed_out
            if timeouts > MAX_TIMEOUT_RETRIES or _refused_until_later(retry, self._max_backoff_s):
                break
        raise retry.error

    def _headers(self) -> Mapping[str, str]:
        return {"auth-token": self._token} if self._token else {}

    def _wait(self, attempt: int, retry_after_s: float | None) -> None:
        delay = self._backoff_s * 2**attempt if retry_after_s is None else retry_after_s
        self._sleep(min(self._max_backoff_s, delay))

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
            error = ProviderTimeoutError(f"{what}: timed out ({type(e).__name__})")
            return _Retry(error, None, timed_out=True)
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
                "(set electricitymaps.token / CARBOND_ELECTRICITYMAPS__TOKEN)",
                status,
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
                    return _Retry(ProviderTimeoutError(slow), None, timed_out=True)
        except (OSError, urllib3.exceptions.HTTPError) as e:
            broken = f"{what}: reading the body failed ({type(e).__name__})"
            return _Retry(ProviderTimeoutError(broken), None)
        return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class _Retry:
    """A retryable failure and the server's requested wait (``Retry-After``), if any;
    ``timed_out``: the server did not answer (or send the body) within a timeout."""

    error: ProviderError
    wait_s: float | None
    timed_out: bool = False


def _refused_until_later(retry: _Retry, max_backoff_s: float) -> bool:
    """A 429 whose ``Retry-After`` is longer than the backoff cap: a retry sooner is one the
    server said it would refuse (until 2026-12-07 each was made after the cap, holding the
    caller ``max_retries`` times the cap)."""
    limited = isinstance(retry.error, RateLimitedError)
    return limited and retry.wait_s is not None and retry.wait_s > max_backoff_s


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
