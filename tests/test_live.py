"""The live feed behind /v1/stream/moods, against real servers on both backends:
a commit wakes only its own tenant's streams (one query per tenant, not one per
stream), stream limits are counted before the 200 without races, and revoking a
key ends its open streams at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sessionmood_server.app import create_app
from sessionmood_server.cli import main as cli
from sessionmood_server.records import MoodChangeRecord
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage
from tests.conftest import ADMIN_TOKEN, LiveServer, free_port
from tests.test_dashboard_api import FRUSTRATED, Stream
from tests.test_postgres import drop_schema, postgres_url, with_schema

SHOP = "https://shop.example"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _backends() -> list[Any]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.db'}"
        return
    base = postgres_url()
    schema = f"t_live_{int(time.time() * 1000) % 10**9}_{free_port()}"
    yield with_schema(base, schema)
    asyncio.run(drop_schema(base, schema))


class CountingStorage:
    """The real storage, counting who reads mood changes for which tenant."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.reads: Counter[int] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[MoodChangeRecord]:
        self.reads[tenant_id] += 1
        return await self._inner.mood_changes(tenant_id, after_id, limit)


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """The app on a real uvicorn (its own thread and loop) on a free port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _key(base: str, plan: str = "growth") -> str:
    r = httpx.post(
        base + "/v1/keys/generate", json={"customer_name": "t", "plan": plan}, headers=ADMIN
    )
    r.raise_for_status()
    return str(r.json()["api_key"])


def _frustrate(base: str, key: str, sid: str) -> None:
    r = httpx.post(
        f"{base}/v1/sessions/{sid}/events", json={"events": FRUSTRATED}, headers={"X-Api-Key": key}
    )
    assert r.status_code == 200 and r.json()["current_mood"] == "frustrated", r.text


def _wait(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_commit_wakes_only_its_tenants_streams_with_one_read(database_url: str) -> None:
    store = CountingStorage(open_storage(database_url))
    app = create_app(Settings(database_url=database_url, admin_token=ADMIN_TOKEN), storage=store)  # type: ignore[arg-type]
    with serve_in_thread(app) as base:
        poster, watcher = _key(base), _key(base)
        streams = [Stream(base + "/v1/stream/moods", {"X-Api-Key": poster}) for _ in range(5)]
        idle = [Stream(base + "/v1/stream/moods", {"X-Api-Key": watcher}) for _ in range(10)]
        try:
            feed = app.state.api.feed  # type: ignore[attr-defined]
            assert _wait(lambda: feed.streams() == 15)
            time.sleep(0.3)  # each stream's own first read is done
            before = Counter(store.reads)
            commits = 30
            for i in range(commits):
                _frustrate(base, poster, f"c{i}")
            assert all(len(s.wait_for(commits)) == commits for s in streams)
            # The only two tenants, numbered in the order they were created.
            poster_t, watcher_t = sorted(store.reads)
            # Without the feed each stream read after every commit: 5 x 30 and
            # 10 x 30. Now: at most one read per commit for the tenant whose mood
            # changed, and none for the idle tenant (a poll every 5 s at most).
            assert store.reads[poster_t] - before[poster_t] <= commits + 2
            assert store.reads[watcher_t] - before[watcher_t] <= 2
            assert all(s.events == [] for s in idle)
            ids = [e["id"] for e in streams[0].events]
            assert ids == sorted(ids) and len(set(ids)) == commits
        finally:
            for s in streams + idle:
                s.close()


@pytest.fixture
def limited_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        database_url=database_url,
        env={"SESSIONMOOD_LIMIT_STREAMS_PER_ADDRESS": "25", "SESSIONMOOD_SSE_HEARTBEAT_S": "1"},
        log_path=tmp_path / "limited.log",
    )
    server.start()
    yield server
    server.stop()


def _open_raw(port: int, key: str, barrier: threading.Barrier, out: list[bytes]) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    request = (
        f"GET /v1/stream/moods HTTP/1.1\r\nHost: t\r\nX-Api-Key: {key}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    barrier.wait()
    s.sendall(request)
    out.append(s.recv(12))
    return s


def test_streams_are_counted_before_the_200_without_races(limited_server: LiveServer) -> None:
    """60 simultaneous opens against a cap of 20 per tenant: exactly 20 are admitted
    (counting once the body flowed admitted 54); then one address may hold 25."""
    key = limited_server.new_key()
    n = 60
    barrier = threading.Barrier(n)
    heads: list[bytes] = []
    socks: list[socket.socket] = []
    threads = [
        threading.Thread(
            target=lambda: socks.append(_open_raw(limited_server.port, key, barrier, heads))
        )
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert len(heads) == n
        statuses = Counter(h[9:12] for h in heads)
        assert statuses == {b"200": 20, b"429": 40}
        # Per client address: other tenants fill the address's 25, then 429.
        others = [limited_server.new_key() for _ in range(6)]
        opened = [Stream(limited_server.base_url + "/v1/stream/moods", {"X-Api-Key": k})
                  for k in others[:5]]  # fmt: skip
        r = httpx.get(
            limited_server.base_url + "/v1/stream/moods", headers={"X-Api-Key": others[5]}
        )
        assert r.status_code == 429 and "address" in r.json()["message"]
        assert int(r.headers["retry-after"]) >= 1
        for s in opened:
            s.close()
    finally:
        for s in socks:
            s.close()
    # Slots come back when clients leave: the tenant can open streams again.
    assert _wait(lambda: _can_open(limited_server, key), timeout=15)


def _can_open(server: LiveServer, key: str) -> bool:
    with httpx.stream(
        "GET", server.base_url + "/v1/stream/moods", headers={"X-Api-Key": key}, timeout=5
    ) as r:
        return r.status_code == 200


@pytest.mark.parametrize("then_post", [True, False])
def test_revoking_a_key_ends_its_open_streams_at_once(
    limited_server: LiveServer, then_post: bool
) -> None:
    base = limited_server.base_url
    secret = limited_server.new_key()
    pk = httpx.post(
        base + "/v1/keys/publishable",
        json={"allowed_origins": [SHOP]},
        headers={"X-Api-Key": secret},
    ).json()["publishable_key"]
    stream = Stream(base + "/v1/stream/moods", {"X-Api-Key": secret})
    try:
        # revoked by the operator from another process: the CLI
        assert (
            cli(["--database-url", limited_server.database_url, "keys", "revoke", secret[:11]]) == 0
        )
        if then_post:
            # the site keeps sending: this change must not reach the revoked key
            r = httpx.post(
                base + "/v1/sessions/after/events",
                json={"events": FRUSTRATED},
                headers={"X-Api-Key": pk, "Origin": SHOP},
            )
            assert r.status_code == 200 and r.json()["current_mood"] == "frustrated"
        # it ends by itself, well before the next 30 s key check of old
        assert _wait(lambda: not stream._thread.is_alive(), timeout=5)
        assert stream.events == []
    finally:
        stream.close()
