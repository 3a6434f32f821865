"""Electricity Maps client against `responses`: payloads, retries, and one error per failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from forecasts import (
    ElectricityMapsClient,
    MalformedPayloadError,
    ProviderAuthError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderZoneError,
    RateLimitedError,
)

BASE = "https://em.test/v3"
TOKEN = "s3cret-token"
LATEST = {
    "zone": "DE",
    "carbonIntensity": 302,
    "datetime": "2018-04-25T18:07:00.350Z",
    "updatedAt": "2018-04-25T18:07:01.000Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": True,
    "estimationMethod": "TIME_SLICER_AVERAGE",
}


def _point(ts: str, value: float | None) -> dict[str, Any]:
    return {**LATEST, "datetime": ts, "carbonIntensity": value, "isEstimated": False}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> ElectricityMapsClient:
    return ElectricityMapsClient(
        requests.Session(),
        base_url=BASE,
        token=TOKEN,
        max_retries=2,
        sleep=sleeps.append,
        clock=lambda: datetime(2024, 1, 1, tzinfo=UTC),
    )


@responses.activate
def test_latest_sends_token_zone_and_factor_type(client: ElectricityMapsClient) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", json=LATEST)
    reading = client.latest("DE")
    assert reading.intensity_g_per_kwh == 302.0 and reading.is_estimated
    assert reading.at == datetime(2018, 4, 25, 18, 7, 0, 350000, tzinfo=UTC)
    sent = responses.calls[0].request
    assert sent.headers["auth-token"] == TOKEN
    assert "zone=DE" in sent.url and "emissionFactorType=lifecycle" in sent.url


@responses.activate
def test_history_becomes_an_hourly_series(client: ElectricityMapsClient) -> None:
    history = [_point("2021-08-18T13:00:00.000Z", 413), _point("2021-08-18T15:00:00.000Z", 338)]
    responses.get(f"{BASE}/carbon-intensity/history", json={"zone": "DE", "history": history})
    s = client.history("DE")
    assert s.step_s == 3600 and len(s) == 3 and s.missing_count() == 1
    assert s.source == "electricitymaps"


@responses.activate
def test_past_range_is_chunked_to_ten_days(client: ElectricityMapsClient) -> None:
    responses.get(
        f"{BASE}/carbon-intensity/past-range",
        json={"zone": "DE", "data": [_point("2023-01-01T00:00:00Z", 100)]},
    )
    client.past_range("DE", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 25, tzinfo=UTC))
    assert len(responses.calls) == 3
    assert "end=2023-01-11T00%3A00%3A00Z" in responses.calls[0].request.url


@responses.activate
def test_forecast(client: ElectricityMapsClient) -> None:
    body = {
        "zone": "DK-DK2",
        "forecast": [
            {"carbonIntensity": 326, "datetime": "2018-11-26T17:00:00.000Z"},
            {"carbonIntensity": 297, "datetime": "2018-11-26T18:00:00.000Z"},
        ],
        "updatedAt": "2018-11-26T17:25:24.685Z",
    }
    responses.get(f"{BASE}/carbon-intensity/forecast", json=body)
    s = client.forecast("DK-DK2", 48)
    assert list(s.values_g_per_kwh) == [326.0, 297.0] and s.is_estimated.all()
    assert "horizonHours=48" in responses.calls[0].request.url


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "unauthorized"}, ProviderAuthError),
        (403, {"error": "forbidden"}, ProviderAuthError),
        (404, {"error": "Zone 'XX' does not exist"}, ProviderZoneError),
        (400, {"error": "unknown zone key"}, ProviderZoneError),
    ],
)
@responses.activate
def test_client_errors_are_not_retried(
    client: ElectricityMapsClient, status: int, body: dict[str, str], error: type[Exception]
) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", json=body, status=status)
    with pytest.raises(error) as caught:
        client.latest("XX")
    assert len(responses.calls) == 1
    assert TOKEN not in str(caught.value)


@responses.activate
def test_rate_limit_honours_retry_after_then_succeeds(
    client: ElectricityMapsClient, sleeps: list[float]
) -> None:
    url = f"{BASE}/carbon-intensity/latest"
    responses.get(url, status=429, headers={"Retry-After": "7"})
    responses.get(url, json=LATEST)
    assert client.latest("DE").intensity_g_per_kwh == 302.0
    assert sleeps == [7.0]


@responses.activate
def test_rate_limit_exhausted(client: ElectricityMapsClient, sleeps: list[float]) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", status=429, headers={"Retry-After": "2"})
    with pytest.raises(RateLimitedError) as caught:
        client.latest("DE")
    assert caught.value.retry_after_s == 2.0 and len(responses.calls) == 3


@responses.activate
def test_a_rate_limit_longer_than_the_backoff_cap_is_not_retried_early(
    sleeps: list[float],
) -> None:
    """A 429 asking for 3600 s: until 2026-12-07 the client slept its 30 s cap and asked again
    (a request the server had said it would refuse), each retry, holding the caller."""
    client = ElectricityMapsClient(
        requests.Session(),
        base_url=BASE,
        token=TOKEN,
        max_retries=3,
        max_backoff_s=30.0,
        sleep=sleeps.append,
    )
    url = f"{BASE}/carbon-intensity/latest"
    responses.get(url, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitedError) as caught:
        client.latest("DE")
    assert caught.value.retry_after_s == 3600.0
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_server_errors_back_off_exponentially(
    client: ElectricityMapsClient, sleeps: list[float]
) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", status=503, body="<html>down</html>")
    with pytest.raises(ProviderServerError, match="HTTP 503"):
        client.latest("DE")
    assert sleeps == [0.5, 1.0]


@responses.activate
@pytest.mark.parametrize("timeout", [requests.ReadTimeout("slow"), requests.ConnectTimeout("x")])
def test_timeouts_are_retried_once_then_reported(
    sleeps: list[float], timeout: requests.Timeout
) -> None:
    """A server that does not answer within the read timeout is asked once more, not
    ``max_retries`` times: until 2026-12-08 four tries of 10 s held a refresh 44 s under
    the daemon's tick lock, where the chain now pauses the provider after one failed
    ``latest`` anyway. 5xx keep every retry (``test_server_errors_back_off_exponentially``)."""
    client = ElectricityMapsClient(
        requests.Session(), base_url=BASE, token=TOKEN, max_retries=3, sleep=sleeps.append
    )
    url = f"{BASE}/carbon-intensity/latest"
    responses.get(url, body=timeout)
    with pytest.raises(ProviderTimeoutError, match="timed out"):
        client.latest("DE")
    assert len(responses.calls) == 2 and sleeps == [0.5]
    responses.replace(responses.GET, url, body=timeout)  # a timeout, then an answer
    responses.add(responses.GET, url, json=LATEST)
    assert client.latest("DE").intensity_g_per_kwh == 302.0


@responses.activate
def test_refused_connections_keep_every_retry(sleeps: list[float]) -> None:
    """Refused at once, not after a timeout: cheap to retry (a restarting proxy)."""
    client = ElectricityMapsClient(
        requests.Session(), base_url=BASE, token=TOKEN, max_retries=3, sleep=sleeps.append
    )
    responses.get(f"{BASE}/carbon-intensity/latest", body=requests.ConnectionError("refused"))
    with pytest.raises(ProviderTimeoutError, match="cannot connect"):
        client.latest("DE")
    assert len(responses.calls) == 4 and sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("<html><body>Bad gateway</body></html>", "not JSON"),
        ('{"zone": "DE", "carbonIntensity": ', "not JSON"),
        (json.dumps({**LATEST, "carbonIntensity": None}), "carbonIntensity"),
        (json.dumps({"zone": "DE", "datetime": "2018-04-25T18:07:00Z"}), "carbonIntensity"),
        (json.dumps({**LATEST, "datetime": "2018-04-25 18:07"}), "datetime"),
        (json.dumps({**LATEST, "carbonIntensity": -3}), "carbonIntensity"),
        # lax reading took true as 1.0 and "300" as 300; no bound took 1e300
        (json.dumps({**LATEST, "carbonIntensity": True}), "carbonIntensity"),
        (json.dumps({**LATEST, "carbonIntensity": "300"}), "carbonIntensity"),
        (json.dumps({**LATEST, "carbonIntensity": 1e300}), r"1e\+300 is not 0 to 10,000 g/kWh"),
    ],
)
@responses.activate
def test_malformed_payloads(client: ElectricityMapsClient, body: str, match: str) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", body=body, status=200)
    with pytest.raises(MalformedPayloadError, match=match):
        client.latest("DE")


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("latest", {**LATEST, "zone": "FR"}),
        ("history", {"zone": "FR", "history": [_point("2021-08-18T13:00:00.000Z", 413)]}),
        (
            "forecast",
            {"zone": "FR", "forecast": [{"carbonIntensity": 1, "datetime": "2021-08-18T13:00Z"}]},
        ),
    ],
)
@responses.activate
def test_another_zones_payload_is_refused(
    client: ElectricityMapsClient, endpoint: str, body: dict[str, Any]
) -> None:
    responses.get(f"{BASE}/carbon-intensity/{endpoint}", json=body)
    with pytest.raises(MalformedPayloadError, match="for DE: field zone: another zone") as caught:
        getattr(client, endpoint)("DE")
    assert "FR" not in str(caught.value)  # nothing the server sent is echoed


@responses.activate
def test_the_zone_is_compared_without_case(client: ElectricityMapsClient) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", json={**LATEST, "zone": "de"})
    assert client.latest("DE").intensity_g_per_kwh == 302.0


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (
            "history",
            {
                "zone": "DE",
                "history": [
                    _point("0001-01-01T00:00:00Z", 1),
                    _point("2021-08-18T13:00:00.000Z", 413),
                ],
            },
        ),
        (
            "forecast",
            {
                "zone": "DE",
                "forecast": [
                    {"carbonIntensity": 1, "datetime": "2021-08-18T13:00Z"},
                    {"carbonIntensity": 1, "datetime": "9999-12-31T00:00Z"},
                ],
            },
        ),
    ],
)
@responses.activate
def test_a_stray_datetime_is_refused_before_a_grid_is_allocated(
    client: ElectricityMapsClient, endpoint: str, body: dict[str, Any]
) -> None:
    """Placed on an hourly grid, these would be 17 to 70 million points (gigabytes)."""
    responses.get(f"{BASE}/carbon-intensity/{endpoint}", json=body)
    with pytest.raises(MalformedPayloadError, match="field datetime: the points span"):
        getattr(client, endpoint)("DE")


def test_repr_hides_the_token(client: ElectricityMapsClient) -> None:
    assert TOKEN not in repr(client)


@pytest.mark.shared_data
@responses.activate
def test_documented_payloads_parse(shared_data: Path, client: ElectricityMapsClient) -> None:
    examples = json.loads(
        (shared_data / "api_payloads/electricitymaps_v3_examples.json").read_text()
    )
    by_endpoint = {
        key.split()[1].split("?")[0]: value for key, value in examples.items() if " " in key
    }
    for endpoint, payload in by_endpoint.items():
        responses.get(f"{BASE}{endpoint.removeprefix('/v3')}", json=payload)
    assert client.latest("DE").intensity_g_per_kwh == 302
    assert len(client.history("DE")) > 1
    start, end = datetime(2019, 5, 21, 21, tzinfo=UTC), datetime(2019, 5, 22, tzinfo=UTC)
    assert list(client.past_range("DE", start, end).values_g_per_kwh) == [339, 317, 305]
    assert client.forecast("DK-DK2").values_g_per_kwh[0] == 326


@responses.activate
def test_503_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    client = ElectricityMapsClient(
        requests.Session(),
        base_url=BASE,
        token=TOKEN,
        max_retries=1,
        max_backoff_s=5.0,
        sleep=sleeps.append,
    )
    url = f"{BASE}/carbon-intensity/latest"
    responses.get(url, status=503, headers={"Retry-After": "120"})
    responses.get(url, json=LATEST)
    assert client.latest("DE").intensity_g_per_kwh == 302.0
    assert sleeps == [5.0]


@responses.activate
def test_connection_refused_is_a_timeout_error(client: ElectricityMapsClient) -> None:
    responses.get(f"{BASE}/carbon-intensity/latest", body=requests.ConnectionError("refused"))
    with pytest.raises(ProviderTimeoutError, match="cannot connect"):
        client.latest("DE")
