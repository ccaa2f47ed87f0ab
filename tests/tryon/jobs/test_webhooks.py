"""Webhook delivery to a real local HTTP receiver: signature, retries, SSRF refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tryon.jobs.webhooks import (
    SIGNATURE_HEADER,
    WebhookFailed,
    WebhookRefused,
    deliver,
    resolve_target,
    sign,
    verify_signature,
)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []  # status codes to answer, then 200


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers), body))
            self.send_response(state.script.pop(0) if state.script else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/hook?x=1", state
    server.shutdown()
    server.server_close()


def test_signed_delivery(receiver: tuple[str, Receiver]) -> None:
    url, state = receiver
    document = {"id": "abc", "status": "succeeded"}
    assert deliver(url, document, secret="s3cret", allow_private=True) == 200
    headers, body = state.requests[0]
    assert json.loads(body) == document
    assert headers["Host"].startswith("localhost:")
    assert verify_signature(body, headers[SIGNATURE_HEADER], "s3cret")
    assert not verify_signature(body + b" ", headers[SIGNATURE_HEADER], "s3cret")
    assert not verify_signature(body, headers[SIGNATURE_HEADER], "other")
    assert not verify_signature(body, headers[SIGNATURE_HEADER] + "é", "s3cret")
    assert not verify_signature(body, sign(body, "s3cret", timestamp=1), "s3cret")  # replayed: too old


def test_retries_with_backoff_then_success(receiver: tuple[str, Receiver]) -> None:
    url, state = receiver
    state.script = [503, 429, 500]
    delays: list[float] = []
    assert deliver(url, {"a": 1}, allow_private=True, backoff_s=1.0, sleep=delays.append) == 200
    assert len(state.requests) == 4
    assert [round(d) for d in delays] != [] and all(0.5 * 2**i <= d <= 2**i for i, d in enumerate(delays))


def test_final_client_error_not_retried(receiver: tuple[str, Receiver]) -> None:
    url, state = receiver
    state.script = [404]
    with pytest.raises(WebhookFailed, match="404"):
        deliver(url, {}, allow_private=True, sleep=lambda s: None)
    assert len(state.requests) == 1


def test_gives_up_after_attempts() -> None:
    from tryon.local_services import free_port

    with pytest.raises(WebhookFailed, match="3 attempts"):
        deliver(f"http://127.0.0.1:{free_port()}/", {}, allow_private=True, attempts=3, sleep=lambda s: None)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_private_addresses_refused(url: str) -> None:
    with pytest.raises(WebhookRefused, match="non-public"):
        deliver(url, {}, sleep=lambda s: None)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http:///x", "http://u:p@example.com/"]
)
def test_bad_urls_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        resolve_target(url, allow_private=True)


def test_public_address_is_pinned() -> None:
    pinned, host = resolve_target("https://93.184.215.14:8443/path?q=1", allow_private=False)
    assert pinned == "https://93.184.215.14:8443/path?q=1" and host == "93.184.215.14:8443"
