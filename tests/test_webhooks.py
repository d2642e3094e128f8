"""Webhooks: management API, and signed delivery through a durable outbox by the
delivery worker (SSRF rules: tests/test_ssrf.py; signatures: tests/test_outbox.py)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
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
from sessionmood_server.records import Attempt
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

    event = verify_webhook(body, headers, secret)
    return event.model_dump(mode="json")["data"]


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
        assert json.loads(body)["type"] == "mood.changed"
        event = _verify(headers, body, hook["secret"])
        assert event["session_id"] == "buyer-1"
        assert (event["previous_mood"], event["mood"]) == ("neutral", "frustrated")
        assert event["suggested_action"] == "show_live_chat"
        assert event["signals"] and 0 < event["confidence"] <= 1
        # a wrong secret is refused by the same verifier
        from sessionmood_client import WebhookVerificationError, verify_webhook

        with pytest.raises(WebhookVerificationError):
            verify_webhook(body, headers, "whsec_" + "0" * 48)
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
        # every attempt carried the same change, under the same webhook-id
        assert len({body for _, _, body in receiver.calls}) == 1
        assert len({headers["webhook-id"] for _, headers, _ in receiver.calls}) == 1
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
        moods = [json.loads(body)["data"]["mood"] for _, body in got]
        assert moods[0] == "frustrated" and len(moods) == 2
        ids = [json.loads(body)["data"]["id"] for _, body in got]
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


# -- management API (in-process) ----------------------------------------------------


def test_webhooks_need_a_paid_plan(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=auth)
    assert r.status_code == 403
    assert "growth and pro" in r.json()["message"]
    assert client.get("/v1/webhooks", headers=auth).status_code == 403


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


# -- review findings: rebinding, slow receivers -------------------------------------


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
        "whsec_" + "00" * 24,
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
    job = DeliveryJob(
        1, "wh_x", f"http://127.0.0.1:{port}/h", "whsec_" + "00" * 24, "{}", 0, time.time()
    )
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
        assert len(got) == 1 and json.loads(got[0][1])["data"]["session_id"] == "b"
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
        DeliveryJob(
            i,
            f"wh_{i}",
            f"http://h{i}.silent.example/x",
            "whsec_" + "00" * 24,
            "{}",
            0,
            now,
            tenant_id=1,
        )
        for i in range(40)
    ]
    b = DeliveryJob(
        99, "wh_b", f"http://b.example:{receiver.port}/h", "whsec_" + "00" * 24, "{}", 0, now, 2
    )
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
