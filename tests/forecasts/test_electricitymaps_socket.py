"""The Electricity Maps client against real local HTTP servers (127.0.0.1, port 0): what a
hostile or broken server can make it do with the token.

``responses`` cannot show these: the redirect is followed by ``requests``' own machinery, and the
headers the server sends are what a hostile server controls.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from forecasts import (
    ElectricityMapsClient,
    MalformedPayloadError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeoutError,
)
from forecasts.electricitymaps_http import MAX_BODY_BYTES

TOKEN = "socket-test-token"
LATEST = {"zone": "DE", "carbonIntensity": 302, "datetime": "2024-01-01T00:00:00Z"}

Reply = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes | list[bytes]]]


class _Server:
    """A one-route HTTP server in a thread; ``reply`` decides each answer, ``tokens`` records
    the ``auth-token`` header of every request it got. A body given as a list of chunks is
    sent without a ``Content-Length``, ``pause_s`` between chunks."""

    def __init__(self, reply: Reply, pause_s: float = 0.0) -> None:
        self.tokens: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                outer.tokens.append(self.headers.get("auth-token"))
                status, headers, body = reply(self)
                self.send_response(status)
                if isinstance(body, bytes):
                    headers = {"Content-Length": str(len(body)), **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    for chunk in [body] if isinstance(body, bytes) else body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(pause_s)
                except OSError:  # the client gave up
                    self.close_connection = True

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
def servers() -> Iterator[Callable[..., _Server]]:
    started: list[_Server] = []

    def start(reply: Reply, pause_s: float = 0.0) -> _Server:
        started.append(_Server(reply, pause_s))
        return started[-1]

    yield start
    for server in started:
        server.close()


def _client(base_url: str, read_timeout_s: float = 2.0) -> ElectricityMapsClient:
    return ElectricityMapsClient(
        requests.Session(),
        base_url=base_url,
        token=TOKEN,
        max_retries=0,
        read_timeout_s=read_timeout_s,
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


def test_a_body_dripped_byte_by_byte_times_out_on_the_read_timeout(
    servers: Callable[..., _Server],
) -> None:
    """Each byte comes well within the read timeout, the body (10 s) far beyond it."""
    padded = b" " * 200 + json.dumps(LATEST).encode()
    server = servers(lambda _: (200, {}, [bytes([b]) for b in padded]), pause_s=0.05)
    started = time.monotonic()
    slow = pytest.raises(ProviderTimeoutError, match=r"body not received within 0\.5 s")
    with _client(server.url, read_timeout_s=0.5) as client, slow:
        client.latest("DE")
    assert time.monotonic() - started < 3.0


def test_a_huge_body_is_refused_unread(servers: Callable[[Reply], _Server]) -> None:
    declared = servers(lambda _: (200, {"Content-Length": str(10**12)}, [b"[1,"]))
    with _client(declared.url) as client, pytest.raises(MalformedPayloadError, match="longer"):
        client.latest("DE")
    endless = servers(lambda _: (200, {}, [b"[" + b"1," * 2**20] * 5))
    with _client(endless.url) as client, pytest.raises(MalformedPayloadError, match="longer"):
        client.latest("DE")
    assert MAX_BODY_BYTES < 5 * 2**21


def test_a_password_in_the_base_url_is_never_shown() -> None:
    """``cannot connect to {base_url}`` (logged, and in the intensity notes ``carbond doctor``
    and ``health.json`` show) and the client's repr showed ``user:password@`` of the URL."""
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with _client(f"http://alice:s3cret@127.0.0.1:{port}/v3") as client:
        assert "s3cret" not in repr(client)
        with pytest.raises(ProviderTimeoutError) as info:
            client.latest("DE")
    assert str(info.value) == f"latest for DE: cannot connect to http://***@127.0.0.1:{port}/v3"


@pytest.mark.parametrize("token", ["sk\u2019s3cr3t", "s3cr3t\u20ac"])
def test_a_token_no_http_header_can_carry_is_an_auth_error_that_does_not_show_it(
    servers: Callable[[Reply], _Server], token: str
) -> None:
    """A token pasted with a curly quote or a euro sign cannot be encoded in a header: the
    ``UnicodeEncodeError`` from ``http.client`` escaped the client (not a ProviderError), so
    ``SignalChain.refresh`` raised and ``carbond intensity`` printed a traceback."""
    server = servers(_ok)
    client = ElectricityMapsClient(requests.Session(), base_url=server.url, token=token)
    with client, pytest.raises(ProviderAuthError, match="token") as info:
        client.latest("DE")
    assert "s3cr3t" not in str(info.value)
    assert info.value.__context__ is None  # no UnicodeEncodeError holding the token
    assert server.tokens == []
