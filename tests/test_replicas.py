"""Two real ``sessionmood serve`` processes on one PostgreSQL schema behave as one server.

Load goes through both replicas at once (httpx, bounded concurrency, loopback
only); every assertion is about the shared database: exact event counts, the
same moods a single-process replay gives, exact quotas, one webhook delivery
per mood change, and live streams fed by the other replica.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionmood_server import engine
from sessionmood_server.keys import hash_key
from tests.conftest import LiveServer
from tests.test_postgres import fresh_schema_sync
from tests.test_webhooks import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.anyio]

T0 = 1_795_000_000.0
KINDS = ["click", "scroll", "rage_click", "error", "input_pause", "page_view", "idle", "hover"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    with fresh_schema_sync() as url:
        env = {
            "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1",
            "SESSIONMOOD_WEBHOOK_RETRY_BASE_S": "0.2",
        }
        servers = [
            LiveServer(database_url=url, env=env, log_path=tmp_path / f"replica-{n}.log")
            for n in "ab"
        ]
        try:
            for s in servers:
                s.start()
            yield servers[0], servers[1]
        finally:
            for s in servers:
                s.stop()


async def _sql(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg  # type: ignore[import-untyped]

    from sessionmood_server.storage.postgres import parse_postgres_url

    dsn, schema, _, _ = parse_postgres_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _event(rng: random.Random, ts: float) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    ev: dict[str, Any] = {"type": kind, "ts": ts}
    if kind == "page_view":
        ev["url"] = rng.choice(["/", "/cart", "/checkout"])
    elif kind == "error":
        ev["message"] = "boom"
    elif kind in {"click", "rage_click"}:
        ev["x"], ev["y"] = rng.randint(0, 500), rng.randint(0, 500)
    return ev


async def _post(
    client: httpx.AsyncClient, server: LiveServer, key: str, sid: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"{server.base_url}/v1/sessions/{sid}/events", json=body, headers={"X-Api-Key": key}
    )


async def test_hammering_one_session_set_through_both_replicas(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    key = a.new_key("growth")
    rng = random.Random(8)
    sessions = [f"user-{i}" for i in range(12)]
    # 12 sessions x 20 batches of 1-5 events; each batch is sent twice with the
    # same batch_id (once per replica, concurrently): a client retry racing itself.
    batches: list[tuple[str, dict[str, Any]]] = []
    sent: dict[str, int] = dict.fromkeys(sessions, 0)
    for n in range(20):
        for sid in sessions:
            events = [_event(rng, T0 + n * 7 + i) for i in range(rng.randint(1, 5))]
            sent[sid] += len(events)
            batches.append((sid, {"events": events, "batch_id": f"{sid}-{n}"}))
    gate = asyncio.Semaphore(32)
    answers: dict[str, list[dict[str, Any]]] = {}

    async def send(client: httpx.AsyncClient, server: LiveServer, sid: str, body: Any) -> None:
        async with gate:
            r = await _post(client, server, key, sid, body)
        assert r.status_code == 200, r.text
        answers.setdefault(body["batch_id"], []).append(r.json())

    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.monotonic()
        await asyncio.gather(
            *(send(client, server, sid, body) for sid, body in batches for server in (a, b))
        )
        assert time.monotonic() - t0 < 40
        # both copies of every batch got the same answer
        assert all(x == y for x, y in answers.values())
        for i, sid in enumerate(sessions):
            reader = (a, b)[i % 2]
            exported = (
                await client.get(
                    f"{reader.base_url}/v1/sessions/{sid}/events", headers={"X-Api-Key": key}
                )
            ).json()["events"]
            assert len(exported) == sent[sid]
            assert [e["seq"] for e in exported] == list(range(1, sent[sid] + 1))
            # a single process replaying the stored order reaches the same verdict
            state = engine.new_state()
            for ev in exported:
                engine.fold(state, {k: v for k, v in ev.items() if k not in {"seq", "received_at"}})
            want = engine.verdict(state)
            mood = (
                await client.get(
                    f"{(b, a)[i % 2].base_url}/v1/sessions/{sid}/mood",
                    headers={"X-Api-Key": key},
                )
            ).json()
            assert (mood["mood"], mood["confidence"]) == (want.mood, want.confidence)
            assert mood["event_count"] == sent[sid]


async def test_last_free_session_goes_to_exactly_one_replica(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    month = time.strftime("%Y-%m", time.gmtime())
    async with httpx.AsyncClient(timeout=30) as client:
        for round_ in range(5):
            key = a.new_key("starter")  # 5,000 sessions a month
            rows = await _sql(
                a.database_url, "SELECT tenant_id FROM api_keys WHERE key_hash = $1", hash_key(key)
            )
            await _sql(
                a.database_url,
                "INSERT INTO usage_months VALUES ($1, $2, 4999)",
                rows[0][0],
                month,
            )
            body = {"events": [{"type": "click"}]}
            r1, r2 = await asyncio.gather(
                _post(client, a, key, f"new-a-{round_}", body),
                _post(client, b, key, f"new-b-{round_}", body),
            )
            assert sorted([r1.status_code, r2.status_code]) == [200, 429], (r1.text, r2.text)
            usage = (await client.get(f"{b.base_url}/v1/usage", headers={"X-Api-Key": key})).json()
            assert usage["sessions_used"] == 5000, usage


async def test_one_delivery_per_mood_change_with_two_delivery_workers(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    receiver = Receiver(fail_first=3)  # a few retries in the mix
    try:
        key = a.new_key("growth")
        r = httpx.post(
            f"{a.base_url}/v1/webhooks", json={"url": receiver.url}, headers={"X-Api-Key": key}
        )
        assert r.status_code == 201, r.text
        frustrating = [
            {"type": "rage_click", "ts": T0},
            {"type": "error", "message": "x", "ts": T0 + 1},
            {"type": "error", "message": "x", "ts": T0 + 2},
            {"type": "rage_click", "ts": T0 + 3},
        ]
        later = [{"type": "page_view", "url": "/", "ts": T0 + 3600}]  # calm again
        gate = asyncio.Semaphore(16)

        async def drive(client: httpx.AsyncClient, i: int) -> None:
            for n, events in enumerate((frustrating, later)):
                async with gate:
                    r = await _post(client, (a, b)[(i + n) % 2], key, f"s{i}", {"events": events})
                assert r.status_code == 200, r.text

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(drive(client, i) for i in range(25)))
        rows = await _sql(a.database_url, "SELECT id, session_id FROM mood_changes ORDER BY id")
        assert len(rows) == 50
        deadline = time.monotonic() + 30
        while len(receiver.delivered()) < len(rows) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # anything delivered twice would arrive now
        got = [json.loads(body)["data"] for _, body in receiver.delivered()]
        assert sorted(e["id"] for e in got) == [r[0] for r in rows]  # each exactly once
        # and each session's changes arrived in order
        per_session: dict[str, list[int]] = {}
        for e in got:
            per_session.setdefault(e["session_id"], []).append(e["id"])
        assert all(ids == sorted(ids) for ids in per_session.values())
    finally:
        receiver.close()


async def test_stream_on_one_replica_sees_changes_made_through_the_other(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    key = a.new_key("growth")
    headers = {"X-Api-Key": key}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{a.base_url}/v1/stream/moods", headers=headers) as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        events = [
            {"type": "rage_click", "ts": T0},
            {"type": "error", "message": "x", "ts": T0 + 1},
            {"type": "error", "message": "x", "ts": T0 + 2},
            {"type": "rage_click", "ts": T0 + 3},
        ]
        r = await _post(client, b, key, "seen-from-a", {"events": events})
        assert r.json()["current_mood"] == "frustrated"
        t0 = time.monotonic()

        async def next_change() -> dict[str, Any]:
            async for line in lines:
                if line.startswith("data: "):
                    return dict(json.loads(line[6:]))
            raise AssertionError("stream ended")

        change = await asyncio.wait_for(next_change(), 10)
        assert change["session_id"] == "seen-from-a" and change["mood"] == "frustrated"
        assert time.monotonic() - t0 < 5


async def test_two_replicas_put_every_session_in_the_same_group(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    """Without SESSIONMOOD_HOLDOUT_KEY the tenant's stored salt keys the group
    hash: whichever replica sees a session's first batch, the group is the one
    the salt gives, and the other replica answers it the same afterwards."""
    from sessionmood_server.holdout import held_out

    a, b = replicas
    key = a.new_key("pro")
    h = {"X-Api-Key": key}
    async with httpx.AsyncClient(headers=h, timeout=30) as c:
        r = await c.put(b.base_url + "/v1/holdout", json={"share": 0.3})
        assert r.status_code == 200
        rows = await _sql(
            a.database_url,
            "SELECT t.id, t.holdout_salt FROM tenants t JOIN api_keys k ON k.tenant_id = t.id "
            "WHERE k.key_hash = $1",
            hash_key(key),
        )
        [(tenant, salt)] = [(r["id"], r["holdout_salt"]) for r in rows]
        # (Replica a has not read this tenant's setting yet: nothing cached to age.)
        seen: dict[str, bool] = {}
        for i in range(400):
            first, other = (a, b) if i % 2 else (b, a)
            sid = f"visitor-{i}"
            ev = {"events": [{"type": "click", "x": 1, "y": 1, "ts": T0 + i}]}
            one = (await c.post(f"{first.base_url}/v1/sessions/{sid}/events", json=ev)).json()
            two = (await c.post(f"{other.base_url}/v1/sessions/{sid}/events", json=ev)).json()
            assert one["holdout"] == two["holdout"], sid
            seen[sid] = one["holdout"]
    expected = {sid: held_out(salt.encode(), tenant, sid, 0.3) for sid in seen}
    assert seen == expected
    assert 0.2 < sum(seen.values()) / len(seen) < 0.4
    stored = await _sql(
        a.database_url, "SELECT session_id, holdout FROM sessions WHERE tenant_id = $1", tenant
    )
    assert {r["session_id"]: r["holdout"] for r in stored} == expected
