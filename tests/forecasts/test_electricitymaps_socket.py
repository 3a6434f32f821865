"""The Electricity Maps client against real local HTTP servers (127.0.0.1, port 0): what a
hostile or broken server can make it do with the token.

``responses`` cannot show these: the redirect is followed by ``requests``' own machinery, and the
headers the server sends are what a hostile server controls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from forecasts import ElectricityMapsClient, MalformedPayloadError, ProviderError

TOKEN = "socket-test-token"
LATEST = {"zone": "DE", "carbonIntensity": 302, "datetime": "2024-01-01T00:00:00Z"}

Reply = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class _Server:
    """A one-route HTTP server in a thread; ``reply`` decides each answer, ``tokens`` records
    the ``auth-token`` header of every request it got."""

    def __init__(self, reply: Reply) -> None:
        self.tokens: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                outer.tokens.append(self.headers.get("auth-token"))
                status, headers, body = reply(self)
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[Callable[[Reply], _Server]]:
    started: list[_Server] = []

    def start(reply: Reply) -> _Server:
        started.append(_Server(reply))
        return started[-1]

    yield start
    for server in started:
        server.close()


def _client(base_url: str) -> ElectricityMapsClient:
    return ElectricityMapsClient(
        requests.Session(), base_url=base_url, token=TOKEN, max_retries=0, read_timeout_s=2.0
    )


def _ok(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(LATEST).encode()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_redirect_to_another_port_never_gets_the_token(
    servers: Callable[[Reply], _Server], host: str
) -> None:
    thief = servers(_ok)
    target = f"http://{host}:{thief.port}/v3/carbon-intensity/latest?zone=DE"
    origin = servers(lambda _: (302, {"Location": target}, b""))
    with _client(origin.url) as client, pytest.raises(ProviderError, match="another origin"):
        client.latest("DE")
    assert origin.tokens == [TOKEN]
    assert thief.tokens == []


def test_a_redirect_within_the_origin_is_followed_with_the_token(
    servers: Callable[[Reply], _Server],
) -> None:
    def reply(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if handler.path.startswith("/old/"):
            return 301, {"Location": "/v3/carbon-intensity/latest?zone=DE"}, b""
        return _ok(handler)

    server = servers(reply)
    with _client(f"http://127.0.0.1:{server.port}/old") as client:
        assert client.latest("DE").intensity_g_per_kwh == 302.0
    assert server.tokens == [TOKEN, TOKEN]


def test_a_redirect_loop_ends(servers: Callable[[Reply], _Server]) -> None:
    server = servers(lambda h: (307, {"Location": h.path}, b""))
    with _client(server.url) as client, pytest.raises(ProviderError, match="redirects"):
        client.latest("DE")
    assert len(server.tokens) == 4


def test_a_content_type_echoing_the_token_stays_out_of_the_error(
    servers: Callable[[Reply], _Server],
) -> None:
    def reply(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        seen = handler.headers.get("auth-token", "")
        return 200, {"Content-Type": f"text/html; token={seen}", "X-Echo": seen}, b"<html>"

    server = servers(reply)
    with _client(server.url) as client, pytest.raises(MalformedPayloadError) as caught:
        client.latest("DE")
    assert server.tokens == [TOKEN]
    assert TOKEN not in str(caught.value)
    assert "not JSON" in str(caught.value)
