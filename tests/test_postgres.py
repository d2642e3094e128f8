"""PostgreSQL backend specifics: what the contract suite cannot see from one process.

The database is ``SESSIONMOOD_TEST_DATABASE_URL``, else one the suite finds or
starts itself (``tests/database.py``); each test works in a schema of its own
and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sessionmood_server.keys import hash_key, new_key
from sessionmood_server.records import Attempt, Batch, Quota, WebhookRecord
from tests.database import REQUIRE_VAR, SKIP_PREFIX, database


def postgres_url() -> str:
    """The test database, or skip (fail when SESSIONMOOD_REQUIRE_POSTGRES=1, as in CI)."""
    found = database()
    if found.url is not None:
        return found.url
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{REQUIRE_VAR}=1 but there is no PostgreSQL: {found.how}")
    pytest.skip(SKIP_PREFIX + found.how)


def with_schema(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + f"schema={schema}"


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from sessionmood_server.storage.postgres import parse_postgres_url

    conn = await asyncpg.connect(parse_postgres_url(url)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A database URL naming a schema nobody else uses; dropped afterwards."""
    base = postgres_url()
    schema = "t_" + secrets.token_hex(6)
    try:
        yield with_schema(base, schema)
    finally:
        await drop_schema(base, schema)


@contextlib.contextmanager
def fresh_schema_sync() -> Iterator[str]:
    """``fresh_schema`` for tests that drive real server processes synchronously."""
    base = postgres_url()
    schema = "t_" + secrets.token_hex(6)
    try:
        yield with_schema(base, schema)
    finally:
        asyncio.run(drop_schema(base, schema))


# -- the tests ----------------------------------------------------------------------

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

MONTH = Quota("2026-11", 1000, True)
NOW = 1_795_000_000.0
FRUSTRATING = [
    {"type": "rage_click", "ts": NOW},
    {"type": "error", "ts": NOW + 1},
    {"type": "error", "ts": NOW + 2},
    {"type": "rage_click", "ts": NOW + 3},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def storages(url: str, n: int = 2) -> AsyncIterator[list[Any]]:
    """``n`` independent storages on one schema: what ``n`` replicas see."""
    from sessionmood_server.storage.postgres import PostgresStorage

    opened = [PostgresStorage(url) for _ in range(n)]
    try:
        await asyncio.gather(*(s.open() for s in opened))
        yield opened
    finally:
        for s in opened:
            await s.close()


async def _tenant(store: Any, plan: str = "starter") -> int:
    rec = await store.create_tenant_key("T", None, plan, new_key(), NOW)
    return int(rec.tenant_id)


async def _fetch(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    from sessionmood_server.storage.postgres import parse_postgres_url

    dsn, schema, _, _ = parse_postgres_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def test_url_parsing_strips_our_parameters() -> None:
    from sessionmood_server.storage.postgres import parse_postgres_url

    dsn, schema, lo, hi = parse_postgres_url(
        "postgresql://u@h:5432/db?schema=s1&pool_min=1&pool_max=3&sslmode=disable"
    )
    assert (dsn, schema, lo, hi) == ("postgresql://u@h:5432/db?sslmode=disable", "s1", 1, 3)
    assert parse_postgres_url("postgres://u@h/db") == ("postgres://u@h/db", "public", 2, 10)
    for bad in ("schema=Robert%27;drop", "pool_min=5&pool_max=2", "pool_max=x"):
        with pytest.raises(ValueError):
            parse_postgres_url("postgresql://u@h/db?" + bad)


async def test_concurrent_opens_migrate_once() -> None:
    async with fresh_schema() as url, storages(url, 4) as opened:
        rows = await _fetch(url, "SELECT version FROM schema_migrations ORDER BY version")
        from sessionmood_server.storage.postgres.schema import MIGRATIONS

        assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS]
        t = await _tenant(opened[0])
        assert (
            await opened[3].append_events(Batch(t, "s", FRUSTRATING, None, MONTH, NOW))
        ).status == ("stored")


async def test_schemas_are_isolated() -> None:
    async with (
        fresh_schema() as url_a,
        fresh_schema() as url_b,
        storages(url_a, 1) as (a,),
        storages(url_b, 1) as (b,),
    ):
        raw = new_key()
        rec = await a.create_tenant_key("A", None, "starter", raw, NOW)
        await a.append_events(Batch(rec.tenant_id, "s", FRUSTRATING, None, MONTH, NOW))
        assert await b.find_key(hash_key(raw)) is None
        assert await b.get_session(rec.tenant_id, "s") is None
        assert await b.list_keys() == []
        # a change in schema A wakes nobody waiting in schema B
        waiter = asyncio.create_task(b.wait_for_mood_change(1.0))
        await asyncio.sleep(0.05)
        await a.append_events(Batch(rec.tenant_id, "s2", FRUSTRATING, None, MONTH, NOW))
        t0 = asyncio.get_running_loop().time()
        assert await waiter is True
        assert asyncio.get_running_loop().time() - t0 > 0.5


async def test_listen_wakes_another_instance() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        t = await _tenant(a)
        waiter = asyncio.create_task(b.wait_for_mood_change(10.0))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await a.append_events(Batch(t, "w", FRUSTRATING, None, MONTH, NOW))
        assert await asyncio.wait_for(waiter, 10.0) is True
        assert loop.time() - t0 < 1.0
        changes = await b.mood_changes(t, 0)
        assert [c.session_id for c in changes] == ["w"]


async def test_revocation_reaches_another_instance_within_a_second() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        raw = new_key()
        await a.create_tenant_key("K", None, "starter", raw, NOW)
        cached = await b.find_key(hash_key(raw))  # now in b's cache
        assert cached is not None and cached.revoked_at is None
        assert await a.revoke_keys(raw[:11], NOW + 5) == 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while True:
            seen = await b.find_key(hash_key(raw))
            if seen is not None and seen.revoked_at is not None:
                break
            assert loop.time() < deadline, "revocation not seen by the other instance in 1 s"
            await asyncio.sleep(0.02)


async def test_key_cache_falls_back_when_the_listener_dies() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        raw = new_key()
        await a.create_tenant_key("K", None, "starter", raw, NOW)
        assert await b.find_key(hash_key(raw)) is not None
        # Kill b's LISTEN connection from the server side, as a failover would.
        await _fetch(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'sessionmood-listen' AND pid = $1",
            b._listener.server_pid(),
        )
        await a.revoke_keys(raw[:11], NOW + 5)  # its NOTIFY cannot reach b
        await asyncio.sleep(0.7)  # past the fallback TTL
        seen = await b.find_key(hash_key(raw))
        assert seen is not None and seen.revoked_at is not None
        # ...and the listener comes back: wake-ups work again.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not b._listener.listening():
            assert loop.time() < deadline, "listener did not reconnect"
            await asyncio.sleep(0.05)
        t = await _tenant(a)
        waiter = asyncio.create_task(b.wait_for_mood_change(10.0))
        await asyncio.sleep(0.05)
        t0 = loop.time()
        await a.append_events(Batch(t, "w", FRUSTRATING, None, MONTH, NOW))
        assert await waiter is True and loop.time() - t0 < 1.0


async def test_two_instances_share_one_session_quota_and_batch_ids() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        t = await _tenant(a)
        ev = [{"type": "click", "ts": NOW}]
        # one session hammered through both: nothing lost, seq 1..N
        await asyncio.gather(
            *(
                (a, b)[i % 2].append_events(Batch(t, "hot", ev * 3, None, MONTH, NOW))
                for i in range(40)
            )
        )
        exported = await b.export_events(t, "hot")
        assert exported is not None and [e["seq"] for e in exported] == list(range(1, 121))
        # the quota is exact across instances
        quota = Quota("2026-12", 7, True)
        results = await asyncio.gather(
            *(
                (a, b)[i % 2].append_events(Batch(t, f"q{i}", ev, None, quota, NOW))
                for i in range(20)
            )
        )
        assert sum(r.status == "stored" for r in results) == 7
        assert await a.month_usage(t, "2026-12") == 7
        # one batch id sent 10 times through both: stored once, same answer
        same = await asyncio.gather(
            *(
                (a, b)[i % 2].append_events(Batch(t, "idem", ev * 2, "b-1", MONTH, NOW))
                for i in range(10)
            )
        )
        assert sum(r.status == "stored" for r in same) == 1
        assert all(r.response == same[0].response for r in same)
        rec = await a.get_session(t, "idem")
        assert rec is not None and rec.event_count == 2


async def test_skip_locked_claims_never_overlap_and_keep_session_order() -> None:
    async with fresh_schema() as url, storages(url, 3) as (a, b, c):
        t = await _tenant(a, "growth")
        assert await a.create_webhook(
            WebhookRecord("wh_1", t, "http://127.0.0.1:9/h", None, "s", NOW), 20
        )
        calm = [{"type": "page_view", "url": "/x", "ts": NOW + 3600}]  # an hour later
        # 30 sessions, each changing mood twice: 60 outbox rows, 2 per session
        for i in range(30):
            await a.append_events(Batch(t, f"s{i}", FRUSTRATING, None, MONTH, NOW))
            await b.append_events(Batch(t, f"s{i}", calm, None, MONTH, NOW + 1))
        rows = await _fetch(url, "SELECT count(*) FROM webhook_deliveries")
        assert rows[0][0] == 60
        claims = await asyncio.gather(
            *((a, b, c)[i % 3].claim_deliveries(NOW + 10, 7, 60.0) for i in range(12))
        )
        ids = [j.id for batch in claims for j in batch]
        assert len(ids) == len(set(ids)) == 30  # the oldest row of each session, once
        # leased rows are not claimed again, however many instances ask
        again = await asyncio.gather(a.claim_deliveries(NOW + 11, 100, 60.0), b.claim_deliveries(
            NOW + 11, 100, 60.0))  # fmt: skip
        assert again == [[], []]
        # a new instance opening does not reset other replicas' leases
        async with storages(url, 1) as (d,):
            assert await d.claim_deliveries(NOW + 12, 100, 60.0) == []
        # finishing the first rows releases each session's second row, to one claimer
        for batch in claims:
            for job in batch:
                await b.finish_delivery(Attempt(
                    job.id, delivered=True, status_code=200, error=None, latency_ms=1.0,
                    next_attempt_at=None, now=NOW + 13,
                ))  # fmt: skip
        second = await asyncio.gather(*(s.claim_deliveries(NOW + 14, 100, 60.0) for s in (a, b, c)))
        ids2 = [j.id for batch in second for j in batch]
        assert len(ids2) == len(set(ids2)) == 30 and not set(ids2) & set(ids)
        assert min(ids2) > 0 and all(i2 not in ids for i2 in ids2)
        # an expired lease makes the row claimable again
        assert len(await c.claim_deliveries(NOW + 14 + 61, 100, 60.0)) == 30


async def test_purge_on_every_instance_at_once_erases_each_session_once() -> None:
    async with fresh_schema() as url, storages(url, 3) as opened:
        t = await _tenant(opened[0])
        for i in range(50):
            await opened[i % 3].append_events(Batch(t, f"old{i}", FRUSTRATING, None, MONTH, NOW))
        await opened[0].append_events(Batch(t, "fresh", FRUSTRATING, None, MONTH, NOW + 10 * 86400))
        cut = {"starter": NOW + 5 * 86400, "growth": 0.0, "pro": 0.0}
        totals = await asyncio.gather(*(s.purge_expired(cut, 20) for s in opened * 2))
        rest = 0
        while n := await opened[1].purge_expired(cut, 20):
            rest += n
        assert sum(totals) + rest == 50
        assert (await opened[2].mood_counts(t)).total_sessions == 1
        assert await _fetch(url, "SELECT 1 FROM events WHERE session_id <> 'fresh'") == []


async def test_page_urls_are_keyed_by_digest_after_the_migration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows written before migration 7 keep their page, the next batch for the
    same URL updates them, and URLs whose index entry was once too large fit."""
    from sessionmood_server.storage.postgres import schema

    page = [{"type": "page_view", "url": "/checkout", "ts": NOW}]
    cjk = "/" + "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(2047))
    async with fresh_schema() as url:
        full = schema.MIGRATIONS
        monkeypatch.setattr(schema, "MIGRATIONS", [m for m in full if m[0] < 7])
        async with storages(url, 1) as (old,):
            t = await _tenant(old)
        # as the previous release wrote it (keyed by the URL itself)
        await _fetch(
            url,
            "INSERT INTO page_moods (tenant_id, session_id, url, mood, updated_at) "
            "VALUES ($1, 's', '/checkout', 'frustrated', $2)",
            t,
            NOW,
        )
        monkeypatch.setattr(schema, "MIGRATIONS", full)
        async with storages(url, 1) as (new,):
            assert await new.page_moods(t, None, None) == {"/checkout": {"frustrated": 1}}
            more = [*page, {"type": "page_view", "url": cjk, "ts": NOW + 1}]
            assert (
                await new.append_events(Batch(t, "s", more, None, MONTH, NOW + 1))
            ).status == "stored"
            pages = await new.page_moods(t, None, None)
        assert set(pages) == {"/checkout", cjk}
        rows = await _fetch(
            url,
            "SELECT count(*), bool_and(url_key = sha256(convert_to(url, 'UTF8'))) FROM page_moods",
        )
        assert tuple(rows[0]) == (2, True)
