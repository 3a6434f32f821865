"""Fuzzing Electricity Maps payloads: whatever body, status and headers the server sends, every
endpoint returns a value or raises a ``ProviderError`` (never anything else), and no message
carries the token, even when the server echoes it back.

The session is a fake (``requests.Response`` objects built here), so hypothesis can run tens of
thousands of payloads a minute; the real-socket behaviour is in ``test_electricitymaps_socket``.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
import urllib3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from forecasts import ElectricityMapsClient, ProviderError
from tests.fuzzing import examples

TOKEN = "fuzz-token-0123"
ENDPOINTS = ("latest", "history", "past-range", "forecast")

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.just(TOKEN),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip
_time = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.datetimes(
        timezones=st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
    ).map(datetime.isoformat),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:00:00-14:00",
            "9999-12-31T23:00:00Z",
            "0001-01-01T00:00:00Z",
        ]
    ),
    st.datetimes().map(datetime.isoformat),
    st.text(max_size=25),
    _json,
)
_intensity = st.one_of(
    st.floats(), st.integers(), st.integers(min_value=10**300, max_value=10**320),
    st.text(max_size=8), st.none(), _json,
)  # fmt: skip


def _point(draw: st.DrawFn) -> dict[str, Any]:
    point: dict[str, Any] = {
        "zone": draw(st.one_of(st.just("DE"), _json)),
        "carbonIntensity": draw(_intensity),
        "datetime": draw(_time),
        "isEstimated": draw(st.one_of(st.booleans(), _json)),
    }
    for key in draw(st.lists(st.sampled_from(list(point)), max_size=2)):
        point.pop(key, None)
    return point


@st.composite
def _body(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(_json)).encode()
    if kind == 2:
        depth = draw(st.integers(1, 30_000))
        return b"[" * depth + b"]" * draw(st.integers(0, depth))
    points = [_point(draw) for _ in range(draw(st.integers(0, 5)))]
    payload: dict[str, Any] = {"zone": "DE", **(points[0] if points else {})}
    for key in ("history", "data", "forecast"):
        if draw(st.booleans()):
            payload[key] = points if draw(st.integers(0, 4)) else draw(_json)
    text = json.dumps(payload, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


class _FakeSession(requests.Session):
    """Answers every GET with the one drawn response (its headers may echo the token)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__()
        self.answer = (status, headers, body)

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        status, headers, body = self.answer
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        # as requests' adapter does with stream=True: the body is still to be read
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False
        )
        response.url = str(url)
        response.encoding = "utf-8"
        return response


_headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Retry-After", "Location", "X-Echo"]),
    st.one_of(
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        st.just(f"text/html; token={TOKEN}"),
        st.just(f"http://127.0.0.1:1/{TOKEN}"),
    ),
)


@settings(max_examples=examples(1.2))
@given(
    st.sampled_from(ENDPOINTS),
    st.one_of(st.just(200), st.integers(100, 599)),
    _headers,
    _body(),
)
@example(
    "history",
    200,
    {},
    b'{"zone": "DE", "history": [{"carbonIntensity": 1, "datetime": "0001-01-01T00:00:00+14:00"}]}',
)  # year 0 in UTC: was OverflowError
@example(
    "forecast",
    200,
    {},
    b'{"zone": "DE", "forecast": [{"carbonIntensity": 1, "datetime": "9999-12-31T23:00:00Z"}]}',
)  # its hour ends in year 10000
def test_any_response_is_a_value_or_a_provider_error(
    endpoint: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    client = ElectricityMapsClient(
        _FakeSession(status, headers, body),
        base_url="https://em.test/v3",
        token=TOKEN,
        max_retries=1,
        sleep=lambda _: None,
        clock=lambda: datetime(2024, 1, 1, tzinfo=UTC),
    )
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    calls = {
        "latest": lambda: client.latest("DE"),
        "history": lambda: client.history("DE"),
        "past-range": lambda: client.past_range("DE", start, end),
        "forecast": lambda: client.forecast("DE", 24),
    }
    try:
        value = calls[endpoint]()
    except ProviderError as exc:
        assert TOKEN not in str(exc)
        assert TOKEN not in repr(exc.args)
        return
    assert status == 200
    assert getattr(value, "end", value.fetched_at) is not None  # a series' end is a time
    figures = (
        [value.intensity_g_per_kwh]
        if hasattr(value, "intensity_g_per_kwh")
        else list(value.values_g_per_kwh)  # type: ignore[union-attr]
    )
    assert all(math.isnan(v) or (math.isfinite(v) and v >= 0) for v in figures)


@settings(max_examples=examples(0.3))
@given(
    st.sampled_from(["history", "forecast"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.just(UTC)),
    st.lists(st.floats(0, 2000), min_size=1, max_size=30).flatmap(
        lambda v: st.tuples(st.just(v), st.permutations(range(len(v))))),
    st.lists(st.integers(-840, 840), min_size=30, max_size=30),
)  # fmt: skip
def test_hourly_points_in_any_order_and_offset_read_as_one_series(
    endpoint: str, start: datetime, drawn: tuple[list[float], list[int]], offsets: list[int]
) -> None:
    """The provider's points out of time order, each time in its own UTC offset, read as the
    same series as in order: every hour at its place, none lost or moved."""
    values, order = drawn
    start = start.replace(minute=0, second=0, microsecond=0)
    points = []
    for k in order:
        at = (start + timedelta(hours=k)).astimezone(timezone(timedelta(minutes=offsets[k])))
        points.append({"carbonIntensity": values[k], "datetime": at.isoformat()})
    key = "history" if endpoint == "history" else "forecast"
    body = json.dumps({"zone": "DE", key: points}).encode()
    client = ElectricityMapsClient(
        _FakeSession(200, {"Content-Type": "application/json"}, body),
        base_url="https://em.test/v3", token=TOKEN, max_retries=1, sleep=lambda _: None,
        clock=lambda: datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    series = client.history("DE") if endpoint == "history" else client.forecast("DE")
    assert series.start == start and series.step_s == 3600
    assert list(series.values_g_per_kwh) == values
