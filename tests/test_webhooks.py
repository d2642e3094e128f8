"""Webhooks: management API, SSRF rules, signed delivery through a durable outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from sessionmood_server.app import create_app
from sessionmood_server.settings import Settings
from sessionmood_server.webhooks import backoff_s, check_webhook_url, sign
from tests.conftest import ADMIN_TOKEN, LiveServer, free_port, make_key

FRUSTRATED = [
    {"type": "page_view", "url": "/checkout"},
    {"type": "rage_click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment failed"},
    {"type": "error", "message": "Payment failed"},
    {"type": "rage_click", "x": 2, "y": 2},
]


class Receiver:
    """A real HTTP receiver on loopback that fails its first ``fail_first`` calls."""

    def __init__(self, port: int | None = None, fail_first: int = 0) -> None:
        self.port = port or free_port()
        self.fail_first = fail_first
        self.calls: list[tuple[int, dict[str, str], bytes]] = []  # (status sent, headers, body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = 500 if len(receiver.calls) < receiver.fail_first else 200
                    receiver.calls.append((status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for status, h, b in self.calls if status == 200]

    def wait_delivered(self, n: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.delivered()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'hooks.db'}",
        env={
            "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1",
            "SESSIONMOOD_WEBHOOK_RETRY_BASE_S": "0.2",
        },
        log_path=tmp_path / "hooks.log",
    )
    server.start()
    yield server
    server.stop()


def _subscribe(server: LiveServer, key: str, url: str, **extra: Any) -> dict[str, Any]:
    r = httpx.post(
        server.base_url + "/v1/webhooks", json={"url": url, **extra}, headers={"X-Api-Key": key}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _frustrate(server: LiveServer, key: str, sid: str) -> None:
    r = httpx.post(
        f"{server.base_url}/v1/sessions/{sid}/events",
        json={"events": FRUSTRATED},
        headers={"X-Api-Key": key},
    )
    assert r.json()["current_mood"] == "frustrated"


def _verify(headers: dict[str, str], body: bytes, secret: str) -> dict[str, Any]:
    from sessionmood_client import verify_webhook

    event = verify_webhook(body, headers["SessionMood-Signature"], secret)
    return event.model_dump(mode="json")


# -- end to end --------------------------------------------------------------------


def test_frustration_produces_exactly_one_signed_delivery(hook_server: LiveServer) -> None:
    receiver = Receiver()
    try:
        key = hook_server.new_key("growth")
        hook = _subscribe(hook_server, key, receiver.url)
        assert hook["secret"].startswith("whsec_") and hook["id"].startswith("wh_")
        _frustrate(hook_server, key, "buyer-1")
        got = receiver.wait_delivered(1)
        time.sleep(0.5)  # anything extra would arrive now
        assert len(receiver.calls) == 1 and len(got) == 1
        headers, body = got[0]
        event = _verify(headers, body, hook["secret"])
        assert event["type"] == "mood.changed"
        assert event["session_id"] == "buyer-1"
        assert (event["previous_mood"], event["mood"]) == ("neutral", "frustrated")
        assert event["suggested_action"] == "show_live_chat"
        assert event["signals"] and 0 < event["confidence"] <= 1
        # a wrong secret is refused by the same verifier
        from sessionmood_client import WebhookVerificationError, verify_webhook

        with pytest.raises(WebhookVerificationError):
            verify_webhook(body, headers["SessionMood-Signature"], "whsec_wrong")
        deliveries = httpx.get(
            f"{hook_server.base_url}/v1/webhooks/{hook['id']}/deliveries",
            headers={"X-Api-Key": key},
        ).json()["deliveries"]
        assert [d["status"] for d in deliveries] == ["delivered"]
        assert deliveries[0]["attempts"] == 1 and deliveries[0]["last_status_code"] == 200
        assert deliveries[0]["latency_ms"] is not None
    finally:
        receiver.close()


def test_receiver_failing_three_times_gets_it_on_the_fourth(hook_server: LiveServer) -> None:
    receiver = Receiver(fail_first=3)
    try:
        key = hook_server.new_key("pro")
        hook = _subscribe(hook_server, key, receiver.url)
        _frustrate(hook_server, key, "flaky")
        got = receiver.wait_delivered(1, timeout=30)
        assert len(got) == 1
        assert [status for status, _, _ in receiver.calls] == [500, 500, 500, 200]
        # every attempt carried the same change, signed
        ids = {json.loads(body)["id"] for _, _, body in receiver.calls}
        assert len(ids) == 1
        d = httpx.get(
            f"{hook_server.base_url}/v1/webhooks/{hook['id']}/deliveries",
            headers={"X-Api-Key": key},
        ).json()["deliveries"][0]
        assert d["status"] == "delivered" and d["attempts"] == 4
    finally:
        receiver.close()


def test_sigkill_between_batch_and_delivery_still_delivers(hook_server: LiveServer) -> None:
    # The receiver is down while the batch is stored, so the delivery cannot
    # have happened before the kill: it exists only in the outbox.
    port = free_port()
    key = hook_server.new_key("growth")
    hook = _subscribe(hook_server, key, f"http://127.0.0.1:{port}/hook")
    _frustrate(hook_server, key, "crash")
    hook_server.kill()
    receiver = Receiver(port=port)
    try:
        hook_server.start()
        got = receiver.wait_delivered(1, timeout=30)
        time.sleep(0.5)
        assert len(got) == 1 and len(receiver.delivered()) == 1
        event = _verify(*got[0], hook["secret"])
        assert event["session_id"] == "crash" and event["mood"] == "frustrated"
    finally:
        receiver.close()


def test_changes_of_one_session_arrive_in_order(hook_server: LiveServer) -> None:
    receiver = Receiver(fail_first=1)  # the first change is retried; the second must wait
    try:
        key = hook_server.new_key("growth")
        _subscribe(hook_server, key, receiver.url)
        _frustrate(hook_server, key, "ordered")
        later = [
            {"type": "idle", "duration_ms": 60_000, "ts": time.time() + 900 + i} for i in range(4)
        ]
        r = httpx.post(
            f"{hook_server.base_url}/v1/sessions/ordered/events",
            json={"events": later},
            headers={"X-Api-Key": key},
        )
        assert r.json()["current_mood"] != "frustrated"
        got = receiver.wait_delivered(2, timeout=30)
        moods = [json.loads(body)["mood"] for _, body in got]
        assert moods[0] == "frustrated" and len(moods) == 2
        ids = [json.loads(body)["id"] for _, body in got]
        assert ids == sorted(ids)
    finally:
        receiver.close()


def test_mood_filter(hook_server: LiveServer) -> None:
    receiver = Receiver()
    try:
        key = hook_server.new_key("growth")
        _subscribe(hook_server, key, receiver.url, moods=["disengaged"])
        _frustrate(hook_server, key, "filtered")
        time.sleep(1.0)
        assert receiver.calls == []
    finally:
        receiver.close()


# -- management API and SSRF (in-process) -----------------------------------------


def test_webhooks_need_a_paid_plan(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=auth)
    assert r.status_code == 403
    assert "growth and pro" in r.json()["message"]
    assert client.get("/v1/webhooks", headers=auth).status_code == 403


@pytest.fixture
def growth(client: TestClient) -> dict[str, str]:
    return {"X-Api-Key": make_key(client, "growth")}


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://127.0.0.1:9000/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://10.1.2.3/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://192.168.0.10/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://[::1]/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://[::ffff:127.0.0.1]/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://localhost:9000/x", "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
        ("http://0.0.0.0/x", "unicast"),
        ("http://no-such-host.invalid/x", "resolve"),
        ("http://[::1/x", "not a valid URL"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http://" + "a" * 64 + ".example/x", "resolve"),
    ],
)
def test_refused_urls(client: TestClient, growth: dict[str, str], url: str, why: str) -> None:
    r = client.post("/v1/webhooks", json={"url": url}, headers=growth)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "Webhook URL refused" and r.json()["field"] == "url"
    assert why in r.json()["message"]


@pytest.mark.anyio
async def test_private_allowed_with_setting_but_never_link_local() -> None:
    assert await check_webhook_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(ValueError, match="link-local"):
        await check_webhook_url("http://169.254.169.254/x", allow_private=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def private_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'wh.db'}",
        admin_token=ADMIN_TOKEN,
        allow_private_webhooks=True,
        webhooks_enabled=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_create_list_delete(private_client: TestClient) -> None:
    h = {"X-Api-Key": make_key(private_client, "growth")}
    created = private_client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/in", "moods": ["frustrated", "frustrated"]},
        headers=h,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["moods"] == ["frustrated"] and body["url"] == "http://127.0.0.1:9/in"
    listed = private_client.get("/v1/webhooks", headers=h).json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]  # shown once, at creation
    other = {"X-Api-Key": make_key(private_client, "pro")}
    assert private_client.get("/v1/webhooks", headers=other).json()["webhooks"] == []
    assert private_client.delete(f"/v1/webhooks/{body['id']}", headers=other).status_code == 404
    gone = private_client.delete(f"/v1/webhooks/{body['id']}", headers=h)
    assert gone.json() == {"id": body["id"], "deleted": True}
    assert private_client.get("/v1/webhooks", headers=h).json()["webhooks"] == []


def test_outbox_rows_are_written_with_the_batch(private_client: TestClient) -> None:
    h = {"X-Api-Key": make_key(private_client, "growth")}
    hook = private_client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/in"}, headers=h
    ).json()
    r = private_client.post("/v1/sessions/o/events", json={"events": FRUSTRATED}, headers=h)
    assert r.json()["current_mood"] == "frustrated"
    rows = private_client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=h).json()
    assert [(d["status"], d["session_id"], d["attempts"]) for d in rows["deliveries"]] == [
        ("pending", "o", 0)
    ]
    # erasing the session erases its queued deliveries too
    private_client.delete("/v1/sessions/o", headers=h)
    rows = private_client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=h).json()
    assert rows["deliveries"] == []


def test_bad_bodies(client: TestClient, growth: dict[str, str]) -> None:
    assert client.post("/v1/webhooks", json={}, headers=growth).json()["field"] == "url"
    r = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "moods": ["happy"]}, headers=growth
    )
    assert r.status_code == 400 and r.json()["field"].startswith("moods")
    assert client.delete("/v1/webhooks/wh_nope", headers=growth).status_code == 404
    assert client.get("/v1/webhooks/wh_nope/deliveries", headers=growth).status_code == 404


# -- pure pieces ---------------------------------------------------------------------


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    header = sign('{"a":1}', "whsec_x", 1700000000)
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(n, 5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_s(30, 5) == 3600


# -- review findings: rebinding, slow receivers, metadata ----------------------------


@pytest.mark.parametrize("ip", ["100.100.100.200", "fd00:ec2::254", "169.254.169.254"])
@pytest.mark.anyio
async def test_metadata_addresses_are_refused_even_when_private_is_allowed(ip: str) -> None:
    host = f"[{ip}]" if ":" in ip else ip
    with pytest.raises(ValueError, match="metadata"):
        await check_webhook_url(f"http://{host}/x", allow_private=True)


@pytest.mark.anyio
async def test_shared_address_space_is_not_public() -> None:
    with pytest.raises(ValueError, match="non-public"):
        await check_webhook_url("http://100.64.1.2/x", allow_private=False)


@pytest.mark.anyio
async def test_delivery_connects_to_the_vetted_address_not_a_rebound_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS answers loopback (allowed here) when vetted, then a forbidden address
    for any later look-up: the request must still go to the vetted address."""
    import asyncio
    import socket

    from sessionmood_server.storage import DeliveryJob
    from sessionmood_server.webhooks import DeliveryWorker

    receiver = Receiver()
    real = socket.getaddrinfo
    calls = 0

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        nonlocal calls
        if host == "hooks.example":
            calls += 1
            target = "127.0.0.1" if calls == 1 else "169.254.169.254"
            return real(target, port, *args, **kw)
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    finished: dict[str, Any] = {}

    class Store:
        async def finish_delivery(self, delivery_id: int, **kw: Any) -> None:
            finished.update(kw)

    worker = DeliveryWorker(Store(), allow_private=True, retry_base_s=1)  # type: ignore[arg-type]
    job = DeliveryJob(
        1,
        "wh_x",
        f"http://hooks.example:{receiver.port}/hook",
        "whsec_x",
        '{"a":1}',
        0,
        time.time(),
    )
    try:
        await asyncio.wait_for(worker._deliver(job), 20)
    finally:
        await worker.stop()
        receiver.close()
    assert finished["delivered"] is True, finished
    ((headers, body),) = receiver.delivered()
    assert headers["Host"] == f"hooks.example:{receiver.port}"
    assert body == b'{"a":1}'


@pytest.mark.anyio
async def test_a_trickling_receiver_cannot_stall_deliveries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import socket as socketlib

    from sessionmood_server import webhooks
    from sessionmood_server.storage import DeliveryJob
    from sessionmood_server.webhooks import DeliveryWorker

    monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT_S", 1.0)
    server = socketlib.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.2):  # one header byte at a time, forever
            try:
                conn.sendall(b"X")
            except OSError:
                return
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    finished: dict[str, Any] = {}

    class Store:
        async def finish_delivery(self, delivery_id: int, **kw: Any) -> None:
            finished.update(kw)

    worker = DeliveryWorker(Store(), allow_private=True, retry_base_s=1)  # type: ignore[arg-type]
    job = DeliveryJob(1, "wh_x", f"http://127.0.0.1:{port}/h", "whsec_x", "{}", 0, time.time())
    try:
        await asyncio.wait_for(worker._deliver(job), 10)
    finally:
        stop.set()
        server.close()
        await worker.stop()
    assert finished["delivered"] is False
    assert "no answer within" in finished["error"]
    assert finished["next_attempt_at"] is not None
