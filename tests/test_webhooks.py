"""Webhooks: management API, SSRF rules, signed delivery through a durable outbox."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import socket
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
from sessionmood_server.outbox import backoff_s, sign
from sessionmood_server.records import Attempt
from sessionmood_server.services.ssrf import (
    ADDRESS_REFUSED,
    WebhookURLError,
    check_webhook_url,
    embedded_ipv4,
)
from sessionmood_server.settings import Settings
from tests.conftest import ADMIN_TOKEN, BACKENDS, LiveServer, backend_servers, free_port, make_key

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
        self.times: list[float] = []  # time.monotonic() of each call
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = 500 if len(receiver.calls) < receiver.fail_first else 200
                    receiver.calls.append((status, dict(self.headers), body))
                    receiver.times.append(time.monotonic())
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


# Refused for what the URL says, whatever it resolves to: specific messages.
MALFORMED = [
    ("ftp://example.com/x", "http"),
    ("http://user:pw@127.0.0.1/x", "credentials"),
    ("http://[::1/x", "not a valid URL"),
    ("http://127.0.0.1:99999/x", "not a valid URL"),
    ("http:///x", "no host"),
]


@pytest.mark.parametrize(("url", "why"), MALFORMED)
def test_malformed_urls_are_refused(
    client: TestClient, growth: dict[str, str], url: str, why: str
) -> None:
    r = client.post("/v1/webhooks", json={"url": url}, headers=growth)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "Webhook URL refused" and r.json()["field"] == "url"
    assert why in r.json()["message"]


# Hosts that are, or resolve to, addresses no webhook may reach even with
# SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS=1: link-local and cloud metadata, "this
# network", multicast, broadcast, reserved, and IPv6 forms embedding any of them.
NEVER = [
    "0.0.0.0",
    "0",
    "0.0.0.1",
    "0.1.2.3",
    "169.254.169.254",
    "0xa9fea9fe",  # 169.254.169.254 in hex
    "2852039166",  # ... in decimal
    "0251.0376.0251.0376",  # ... in octal
    "169.254.0.1",
    "100.100.100.200",  # Alibaba Cloud metadata
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "[::]",
    "[fe80::1]",
    "[fe80::a9fe:a9fe]",
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "[fec0::1]",
    "[ff02::1]",
    "[100::1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:255.255.255.255]",
    "[::ffff:0.0.0.0]",
    # IPv4 embedded in IPv6: judged by the IPv4 address
    "[64:ff9b::169.254.169.254]",  # NAT64
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::255.255.255.255]",
    "[64:ff9b::224.0.0.1]",
    "[64:ff9b:1::a9fe:a9fe]",  # local-use NAT64
    "[64:ff9b:1:a9fe:a9:fe00::]",  # ... with a /48 prefix
    "[2002:a9fe:a9fe::1]",  # 6to4
    "[2002:ffff:ffff::]",
    "[::169.254.169.254]",  # IPv4-compatible
    "[::a9fe:a9fe]",
    "[::0.0.0.2]",
    "[::ffff:0:169.254.169.254]",  # IPv4-translated
    "[::ffff:0:a9fe:a9fe]",
    "[2001:0:a9fe:a9fe::1]",  # Teredo, server part
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, client part (169.254.169.254 ^ ~0)
]

# Private, loopback or otherwise internal: refused unless the setting allows
# internal receivers.
PRIVATE = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0x7f.1",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "017700000001",
    "127.255.255.254",
    "localhost",
    "10.0.0.1",
    "10.255.255.255",
    "012.0.0.1",  # 10.0.0.1 in octal
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "0xc0a80101",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:10.0.0.1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[2001:db8::1]",
    # IPv4 embedded in IPv6
    "[64:ff9b::127.0.0.1]",  # NAT64
    "[64:ff9b::7f00:1]",
    "[64:ff9b::10.0.0.1]",
    "[64:ff9b::c0a8:101]",
    "[2002:7f00:1::]",  # 6to4
    "[2002:a00:1::1]",
    "[2002:c0a8:101::1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[::7f00:1]",
    "[::10.0.0.1]",
    "[::ffff:0:127.0.0.1]",  # IPv4-translated
    "[::ffff:0:7f00:1]",
    "[::ffff:0:a00:1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    "[2001:0:a00:1::f5ff:fffd]",  # Teredo, server 10.0.0.1, client 10.0.0.2
]
NOT_PUBLIC = ["100.64.0.1", "[64:ff9b::100.64.0.1]"]  # shared (CGNAT): never a receiver here


@pytest.mark.parametrize("host", NEVER + PRIVATE + NOT_PUBLIC)
def test_internal_addresses_are_refused_with_a_generic_message(
    client: TestClient, growth: dict[str, str], host: str
) -> None:
    r = client.post("/v1/webhooks", json={"url": f"http://{host}:8080/x"}, headers=growth)
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["error"], body["field"]) == ("Webhook URL refused", "url")
    # The same words whatever the address: nothing about what the host is.
    assert body["message"] == ADDRESS_REFUSED


@pytest.mark.parametrize("host", NEVER + NOT_PUBLIC)
@pytest.mark.anyio
async def test_never_allowed_even_with_private_webhooks_on(host: str) -> None:
    with pytest.raises(WebhookURLError) as refused:
        await check_webhook_url(f"http://{host}/x", allow_private=True)
    assert str(refused.value) == ADDRESS_REFUSED


@pytest.mark.parametrize("host", PRIVATE)
@pytest.mark.anyio
async def test_internal_addresses_allowed_by_the_setting(host: str) -> None:
    assert await check_webhook_url(f"http://{host}:9/x", allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "[2606:4700:4700::1111]",
        "[::ffff:8.8.8.8]",
        "[64:ff9b::8.8.8.8]",
        "[2002:808:808::1]",
        "[::ffff:0:8.8.8.8]",
        "[2001:0:808:808:8000:63bf:f7f7:f7f7]",  # Teredo: server and client 8.8.8.8
    ],
)
@pytest.mark.anyio
async def test_public_addresses_embedded_in_ipv6_are_public(host: str) -> None:
    assert await check_webhook_url(f"https://{host}/x", allow_private=False)


def test_embedded_ipv4_addresses_are_found() -> None:
    def found(ip: str) -> list[str]:
        return [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(ip))]

    assert found("64:ff9b::7f00:1") == ["127.0.0.1"]
    assert found("::ffff:0:a9fe:a9fe") == ["169.254.169.254"]
    assert found("::ffff:10.1.2.3") == ["10.1.2.3"]
    assert found("::10.1.2.3") == ["10.1.2.3"]
    assert found("2002:c0a8:101::1") == ["192.168.1.1"]
    assert found("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    # RFC 6052 examples of 192.0.2.33 under 2001:db8:122::/48, /56, /64, as they
    # would look under the local-use prefix; every reading is judged.
    assert "192.0.2.33" in found("64:ff9b:1:c000:2:2100::")  # /48
    assert "192.0.2.33" in found("64:ff9b:1:c0:0:221::")  # /56
    assert "192.0.2.33" in found("64:ff9b:1:0:c0:2:2100::")  # /64
    assert "192.0.2.33" in found("64:ff9b:1::c000:221")  # /96
    assert found("::1") == found("::") == found("2606:4700::1111") == []


@pytest.mark.anyio
async def test_names_are_refused_without_saying_what_they_resolve_to() -> None:
    messages = set()
    for url in ("http://localhost:9/x", "http://no-such-host.invalid/x", "http://[::1]/x"):
        with pytest.raises(WebhookURLError) as refused:
            await check_webhook_url(url, allow_private=False)
        messages.add(str(refused.value))
    assert messages == {ADDRESS_REFUSED}
    assert "127.0.0.1" not in ADDRESS_REFUSED and "::1" not in ADDRESS_REFUSED


@pytest.mark.anyio
async def test_private_allowed_with_setting_but_never_link_local() -> None:
    assert await check_webhook_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(WebhookURLError):
        await check_webhook_url("http://169.254.169.254/x", allow_private=True)


@pytest.mark.parametrize(
    ("host", "allow_private"),
    [("[::ffff:0:7f00:1]", False), ("[64:ff9b::7f00:1]", False), ("[2002:a9fe:a9fe::]", True)],
)
@pytest.mark.anyio
async def test_delivery_refuses_embedded_forms_too(host: str, allow_private: bool) -> None:
    """Checked again at every delivery, not only when the webhook was created."""
    from sessionmood_server.records import DeliveryJob
    from sessionmood_server.services.webhooks import DeliveryWorker

    finished: dict[str, Any] = {}

    class Store:
        async def finish_delivery(self, attempt: Attempt) -> None:
            finished.update(dataclasses.asdict(attempt))

    worker = DeliveryWorker(Store(), allow_private=allow_private, retry_base_s=1)  # type: ignore[arg-type]
    job = DeliveryJob(1, "wh_x", f"http://{host}:9/h", "whsec_x", "{}", 0, time.time())
    try:
        await worker._deliver(job)
    finally:
        await worker.stop()
    assert finished["delivered"] is False and finished["status_code"] is None
    assert finished["error"] == f"refused: {ADDRESS_REFUSED}"


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
    with pytest.raises(WebhookURLError):
        await check_webhook_url(f"http://{host}/x", allow_private=True)


@pytest.mark.anyio
async def test_shared_address_space_is_not_public() -> None:
    with pytest.raises(WebhookURLError):
        await check_webhook_url("http://100.64.1.2/x", allow_private=False)


@pytest.mark.anyio
async def test_delivery_connects_to_the_vetted_address_not_a_rebound_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS answers loopback (allowed here) when vetted, then a forbidden address
    for any later look-up: the request must still go to the vetted address."""
    import socket

    from sessionmood_server.records import DeliveryJob
    from sessionmood_server.services.webhooks import DeliveryWorker

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
        async def finish_delivery(self, attempt: Attempt) -> None:
            finished.update(dataclasses.asdict(attempt))

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
async def test_a_trickling_receiver_cannot_stall_deliveries() -> None:
    import socket as socketlib

    from sessionmood_server.records import DeliveryJob
    from sessionmood_server.services.webhooks import DeliveryWorker

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
        async def finish_delivery(self, attempt: Attempt) -> None:
            finished.update(dataclasses.asdict(attempt))

    worker = DeliveryWorker(Store(), allow_private=True, retry_base_s=1, timeout_s=1.0)  # type: ignore[arg-type]
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


# -- the per-tenant cap ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_webhook_cap_holds_under_concurrent_creations(backend: str, tmp_path: Path) -> None:
    """40 creations at once for one tenant: exactly 20 stored, on every backend
    (checked in the insert's own transaction, not by a count read before it)."""
    env = {"SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1"}
    with backend_servers(backend, tmp_path, "cap", **env) as (server,):
        key = server.new_key("growth")
        h = {"X-Api-Key": key}
        url = server.base_url + "/v1/webhooks"

        async def create(n: int) -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as c:
                return await asyncio.gather(
                    *(
                        c.post(url, json={"url": f"http://127.0.0.1:9/{i}"}, headers=h)
                        for i in range(n)
                    )
                )

        created = asyncio.run(create(40))
        assert sorted(r.status_code for r in created) == [201] * 20 + [400] * 20
        refused = next(r.json() for r in created if r.status_code == 400)
        assert refused["error"] == "At most 20 webhooks per tenant"
        listed = httpx.get(url, headers=h).json()["webhooks"]
        assert len(listed) == 20
        # A deleted webhook frees its place, and only one.
        assert httpx.delete(f"{url}/{listed[0]['id']}", headers=h).status_code == 200
        assert sorted(r.status_code for r in asyncio.run(create(5))) == [201] + [400] * 4


# -- slow receivers: one tenant's tarpit never delays another tenant -----------------


class Tarpit:
    """A real receiver on loopback that accepts each connection, reads the
    request head and never answers. Counts attempts per path, how many were
    open at once, and how many the sender gave up on (closed)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.accept_times: list[float] = []  # time.monotonic() of each attempt's arrival
        self.closed = 0
        self.open: collections.Counter[str] = collections.Counter()
        self.most_open: collections.Counter[str] = collections.Counter()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{i}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode()
            with self.lock:
                self.accepted += 1
                self.accept_times.append(time.monotonic())
                self.open[path] += 1
                self.most_open[path] = max(self.most_open[path], self.open[path])
            while conn.recv(65536):  # never answer; wait for the sender to hang up
                pass
            with self.lock:
                self.open[path] -= 1
                self.closed += 1

    def wait_accepted(self, n: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.accepted < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.accepted

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


PER_ENDPOINT = Settings().webhook_concurrency
TARPIT_CASES = [
    pytest.param("sqlite", 1, id="sqlite"),
    pytest.param("postgres", 1, marks=pytest.mark.postgres, id="postgres"),
    pytest.param("postgres", 2, marks=pytest.mark.postgres, id="postgres-2-replicas"),
]


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    yield pit
    pit.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.mark.parametrize(("backend", "replicas"), TARPIT_CASES)
def test_a_tenants_hanging_receiver_never_delays_another_tenants_delivery(
    backend: str, replicas: int, tmp_path: Path, tarpit: Tarpit, receiver: Receiver
) -> None:
    """Tenant A's 20 webhooks point at a receiver that never answers; tenant B's
    delivery still arrives while every one of A's attempts hangs (before the
    fix, B waited for the worker's whole claimed batch to time out, 15 s at a
    time). Each of A's endpoints has exactly its share of attempts in flight,
    across replicas too."""
    # A deadline longer than the test: any attempt of A's that ends was ended early.
    env = {"SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1", "SESSIONMOOD_WEBHOOK_TIMEOUT_S": "120"}
    with backend_servers(backend, tmp_path, "tarpit", replicas, **env) as servers:
        key_a = servers[0].new_key("growth", customer="A")
        key_b = servers[-1].new_key("growth", customer="B")
        for i in range(20):
            _subscribe(servers[i % replicas], key_a, tarpit.url(i))
        _subscribe(servers[-1], key_b, receiver.url)
        for i in range(PER_ENDPOINT + 1):  # one more change per endpoint than may be in flight
            _frustrate(servers[i % replicas], key_a, f"a-{i}")
        assert tarpit.wait_accepted(20 * PER_ENDPOINT) == 20 * PER_ENDPOINT
        _frustrate(servers[-1], key_b, "b")
        got = receiver.wait_delivered(1, timeout=30)
        assert len(got) == 1 and json.loads(got[0][1])["session_id"] == "b"
        time.sleep(0.5)  # an attempt of A's past its endpoint's share would arrive now
        with tarpit.lock:
            assert tarpit.closed == 0, "B's delivery waited for A's attempts to end"
            assert tarpit.accepted == 20 * PER_ENDPOINT
            assert sorted(tarpit.most_open.values()) == [PER_ENDPOINT] * 20


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_attempt_without_answer_ends_at_the_deadline_and_is_retried(
    backend: str, tmp_path: Path, tarpit: Tarpit
) -> None:
    env = {
        "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1",
        "SESSIONMOOD_WEBHOOK_TIMEOUT_S": "1",
        "SESSIONMOOD_WEBHOOK_RETRY_BASE_S": "0.2",
    }
    with backend_servers(backend, tmp_path, "deadline", **env) as (server,):
        key = server.new_key("growth")
        hook = _subscribe(server, key, tarpit.url(0))
        _frustrate(server, key, "s")
        url = f"{server.base_url}/v1/webhooks/{hook['id']}/deliveries"
        deadline = time.monotonic() + 20
        while True:
            (row,) = httpx.get(url, headers={"X-Api-Key": key}).json()["deliveries"]
            if row["attempts"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert row["attempts"] >= 2, row
    assert row["status"] == "pending" and row["next_attempt_at"] is not None
    assert row["last_error"] == "no answer within 1 s" and row["last_status_code"] is None
    assert row["latency_ms"] >= 1000
    with tarpit.lock:
        assert tarpit.closed >= 1  # the worker hung up; it did not wait for an answer
        assert tarpit.most_open == {"/hook/0": 1}  # one session: one attempt at a time


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_free_slot_goes_to_the_tenant_with_fewest_attempts_in_flight(
    backend: str, tmp_path: Path, tarpit: Tarpit, receiver: Receiver
) -> None:
    """With the process at its limit of attempts in flight (all A's, hanging),
    B's delivery takes the first slot that frees up, ahead of A's backlog of
    100 deliveries."""
    env = {
        "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1",
        "SESSIONMOOD_WEBHOOK_TIMEOUT_S": "2",
        "SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT": "8",
    }
    with backend_servers(backend, tmp_path, "fair", **env) as (server,):
        key_a = server.new_key("growth", customer="A")
        key_b = server.new_key("growth", customer="B")
        for i in range(20):
            _subscribe(server, key_a, tarpit.url(i))
        _subscribe(server, key_b, receiver.url)
        for i in range(5):
            _frustrate(server, key_a, f"a-{i}")
        assert tarpit.wait_accepted(8) >= 8
        _frustrate(server, key_b, "b")
        got = receiver.wait_delivered(1, timeout=30)
        assert len(got) == 1
        with tarpit.lock:
            before_b = sum(t < receiver.times[0] for t in tarpit.accept_times)
        # The 8 hanging attempts end together; the first freed slot is B's and
        # the other 7 may start A's next attempts meanwhile, but no more (B's
        # own slot frees only once B has arrived).
        assert 8 <= before_b <= 8 + 7, before_b


@pytest.mark.anyio
async def test_a_tenants_silent_name_servers_do_not_stall_another_tenants_lookups(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """A look-up holds a thread until the name server answers, whatever the
    delivery's deadline. Tenant A's 40 hosts have name servers that never
    answer (within this test); tenant B's host name still resolves at once and
    its delivery is made. At most 2 of A's look-ups ever hold a thread."""
    from sessionmood_server.records import DeliveryJob
    from sessionmood_server.services.webhooks import DeliveryWorker

    real = socket.getaddrinfo
    answer = threading.Event()
    lock = threading.Lock()
    running = most = 0

    def resolver(host: str, port: Any, *args: Any, **kw: Any) -> Any:
        nonlocal running, most
        if host.endswith(".silent.example"):
            with lock:
                running += 1
                most = max(most, running)
            answer.wait(30)
            with lock:
                running -= 1
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real("127.0.0.1" if host == "b.example" else host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    finished: dict[int, dict[str, Any]] = {}

    class Store:
        async def finish_delivery(self, attempt: Attempt) -> None:
            finished[attempt.delivery_id] = dataclasses.asdict(attempt)

    worker = DeliveryWorker(Store(), allow_private=True, retry_base_s=1, timeout_s=1)  # type: ignore[arg-type]
    now = time.time()
    jobs = [
        DeliveryJob(i, f"wh_{i}", f"http://h{i}.silent.example/x", "s", "{}", 0, now, tenant_id=1)
        for i in range(40)
    ]
    b = DeliveryJob(99, "wh_b", f"http://b.example:{receiver.port}/h", "s", "{}", 0, now, 2)
    try:
        stuck = [asyncio.create_task(worker._deliver(job)) for job in jobs]
        for _ in range(200):  # until A's look-ups hold what they can
            if most:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(worker._deliver(b), 10)
        assert finished[99]["delivered"] is True, finished[99]
        await asyncio.gather(*stuck)
        assert {finished[i]["error"] for i in range(40)} == {"no answer within 1 s"}
    finally:
        answer.set()
        await worker.stop()
    assert most == 2
