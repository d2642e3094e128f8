"""Chromium's ``fetch`` of an oversize body, from a page on another origin,
reads the JSON 413 (see ``sessionmood_server.protocol``; the Python clients
are in ``tests/test_protocol.py``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.conftest import LiveServer
from tests.e2e.conftest import publishable
from tests.test_protocol import SIZES, TOO_LARGE, health_watch, nothing_stored

pytestmark = pytest.mark.e2e

# What a page's own code would do: post, then read the answer (CORS lets it
# read the body only with Access-Control-Allow-Origin on the 413 itself).
POST = """async ([url, size, headers]) => {
    try {
        const r = await fetch(url, {method: 'POST', body: ' '.repeat(size), headers});
        return [r.status, await r.text()];
    } catch (e) {
        return [0, String(e)];
    }
}"""


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """An empty page on an origin of its own (another port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>another site</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["publishable", "secret"])
def test_fetch_from_another_origin_reads_the_413(
    page: Page, live_server: LiveServer, other_origin: str, kind: str, size: int
) -> None:
    secret = live_server.new_key()
    sid = f"oversize-fetch-{kind}-{size}"
    url = f"{live_server.base_url}/v1/sessions/{sid}/events"
    if kind == "publishable":
        # As tracker.js sends: the key in the query, text/plain, no preflight.
        url += "?key=" + publishable(live_server, secret, other_origin)
        headers = {"Content-Type": "text/plain"}
    else:  # a preflighted request, with the secret key in a header
        headers = {"Content-Type": "application/json", "X-Api-Key": secret}
    page.goto(other_origin + "/")
    answers = []
    with health_watch(live_server.base_url) as watch:
        while len(answers) < 3 or len(watch.answers) < 5:
            assert len(answers) < 100, "/health never answered during the uploads"
            answers.append(page.evaluate(POST, [url, size, headers]))
    for status, text in answers:
        assert status == 413, text[:200]
        assert json.loads(text) == TOO_LARGE
    nothing_stored(live_server, secret, sid)
