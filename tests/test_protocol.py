"""The server protocol (``sessionmood_server.protocol``) with real clients: an
answer sent before its request's body has arrived (the 413 for a declared
oversize body) reaches clients that send their whole body before they read,
and the rest of the body is thrown away within its bounds.

Deadlines on slow heads and bodies are tested in ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests

from sessionmood_server.http.validation import BODY_TIMEOUT_S
from sessionmood_server.protocol import DRAIN_MAX_BYTES, SWEEP_S
from tests.conftest import LiveServer

MIB = 1024 * 1024
SIZES = [pytest.param(2 * MIB, id="2MiB"), pytest.param(10 * MIB, id="10MiB")]
TOO_LARGE = {"error": "Payload too large", "message": "request bodies are limited to 1048576 bytes"}


def test_the_bound_leaves_room_for_ten_megabytes() -> None:
    assert DRAIN_MAX_BYTES >= 16 * MIB


@dataclass
class HealthWatch:
    """``/health`` asked over and over from a thread of its own while a test
    works: every answer's status and how long it took."""

    base_url: str
    answers: list[tuple[int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as c:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = c.get(self.base_url + "/health").status_code
                except httpx.TransportError:
                    status = 0
                self.answers.append((status, time.perf_counter() - started))
                time.sleep(0.005)

    @property
    def slowest(self) -> float:
        return max(seconds for _, seconds in self.answers)


@contextlib.contextmanager
def health_watch(base_url: str) -> Iterator[HealthWatch]:
    watch = HealthWatch(base_url)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch._stop.set()
        thread.join(15)
    # Answered all along, never held up behind a drain (other tests and jobs
    # share the machine's two cores: the bound is generous, the point is
    # that no answer waits for a whole upload).
    assert {status for status, _ in watch.answers} == {200}, watch.answers
    assert watch.slowest < 1.0, watch.answers


def nothing_stored(server: LiveServer, key: str, session_id: str) -> None:
    h = {"X-Api-Key": key}
    r = httpx.get(f"{server.base_url}/v1/sessions/{session_id}/events", headers=h)
    assert r.status_code == 404, r.text
    assert httpx.get(server.base_url + "/v1/usage", headers=h).json()["sessions_used"] == 0


def by_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    # urllib sends Connection: close and the whole body before it reads.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def by_httpx(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    r = httpx.post(url, content=body, headers=headers, timeout=30)
    return r.status_code, r.content


def by_requests(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    r = requests.post(url, data=body, headers=headers, timeout=30)
    return r.status_code, r.content


CLIENTS: dict[str, Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]] = {
    "urllib": by_urllib,
    "httpx": by_httpx,
    "requests": by_requests,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_clients_that_send_everything_first_read_the_413(
    fresh_server: LiveServer, client: str, size: int
) -> None:
    key = fresh_server.new_key()
    sid = f"oversize-{client}-{size}"
    url = f"{fresh_server.base_url}/v1/sessions/{sid}/events"
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    sent = 0
    with health_watch(fresh_server.base_url) as watch:
        # Uploads go on until /health has answered several times meanwhile.
        while sent < 3 or len(watch.answers) < 5:
            assert sent < 200, "/health never answered during the uploads"
            status, body = CLIENTS[client](url, b" " * size, headers)
            assert status == 413, body[:200]
            assert json.loads(body) == TOO_LARGE
            sent += 1
    nothing_stored(fresh_server, key, sid)
    # The server is as it was: the same key stores a batch.
    ok = httpx.post(url, json={"events": [{"type": "click"}]}, headers={"X-Api-Key": key})
    assert ok.status_code == 200, ok.text


def _post_head(port: int, path: str, key: str, length: int, close: bool) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        ).encode()
    )
    return s


def _read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length body: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, (head, body)
        body += chunk
    return head, body


def test_a_keep_alive_connection_serves_the_next_request_after_the_drain(
    live_server: LiveServer, api_key: str
) -> None:
    with _post_head(live_server.port, "/v1/sessions/drained/events", api_key, 3 * MIB, False) as s:
        s.sendall(b" " * (3 * MIB))
        head, body = _read_response(s)
        assert head.startswith(b"HTTP/1.1 413") and json.loads(body) == TOO_LARGE
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = _read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["status"] == "ok"


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
def test_past_the_bound_the_connection_is_closed(
    live_server: LiveServer, api_key: str, close: bool
) -> None:
    """An upload far past the bound is not read to its end: the server closes
    the connection, whatever the client sends."""
    total = 4 * DRAIN_MAX_BYTES
    with _post_head(live_server.port, "/v1/sessions/past-bound/events", api_key, total, close) as s:
        sent = 0
        chunk = b" " * MIB
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
        # Kernel buffers on loopback hold a few MiB beyond what was read.
        assert sent < total, "the server read the whole upload"
    assert httpx.get(live_server.base_url + "/health").status_code == 200


def _closed_at(s: socket.socket, started: float, limit: float) -> float | None:
    """When the server closed ``s``, a byte sent every 0.2 s meanwhile (which
    keeps the drain busy without moving its deadline); None if it never did."""
    while time.monotonic() - started < limit:
        try:
            s.sendall(b" ")
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
def test_a_drain_ends_at_the_body_deadline(
    live_server: LiveServer, api_key: str, close: bool
) -> None:
    """A client that trickles the rest of its body after the answer is cut off
    at the body deadline (counted from the request head), not drained forever."""
    started = time.monotonic()
    path = "/v1/sessions/trickled-drain/events"
    with _post_head(live_server.port, path, api_key, 8 * MIB, close) as s:
        s.sendall(b" " * (2 * MIB))  # past the limit: answered, the rest drained
        head, _ = _read_response(s)
        assert head.startswith(b"HTTP/1.1 413"), head
        closed = _closed_at(s, started, BODY_TIMEOUT_S + 10)
    # Drained until the deadline (not closed at once), and closed by its sweep.
    assert closed is not None, "the connection was never closed"
    assert BODY_TIMEOUT_S - 0.5 < closed < BODY_TIMEOUT_S + 2 * SWEEP_S + 1, closed
