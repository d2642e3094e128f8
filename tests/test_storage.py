"""The storage contract: every backend must pass these (see ``storage_url``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sessionmood_server.keys import hash_key, new_key
from sessionmood_server.limits import Admission, Rate, RateLimiter
from sessionmood_server.records import Attempt, Batch, Feedback, Quota, WebhookRecord
from sessionmood_server.storage import Storage, StorageURLError, open_storage
from sessionmood_server.storage.sqlite import parse_sqlite_url
from tests.test_postgres import fresh_schema

MONTH = Quota("2026-11", 1000, True)
NOW = 1_795_000_000.0


def _backends() -> list[Any]:
    # Always listed: without a database (tests/database.py) the postgres runs
    # skip and say why (or fail, with SESSIONMOOD_REQUIRE_POSTGRES=1).
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=_backends())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        s = open_storage(f"sqlite:///{tmp_path / 'contract.db'}")
        await s.open()
        try:
            yield s
        finally:
            await s.close()
        return
    # Every postgres test gets a schema of its own, dropped afterwards.
    async with fresh_schema() as url:
        s = open_storage(url)
        await s.open()
        try:
            yield s
        finally:
            await s.close()


async def _tenant(store: Storage, plan: str = "starter") -> int:
    rec = await store.create_tenant_key("T", None, plan, new_key(), NOW)  # type: ignore[arg-type]
    return rec.tenant_id


def _ev(t: str = "click", ts: float = NOW, **f: Any) -> dict[str, Any]:
    return {"type": t, "ts": ts, **f}


pytestmark = pytest.mark.anyio


async def test_keys_create_find_list_revoke(store: Storage) -> None:
    raw = new_key()
    rec = await store.create_tenant_key("Acme", "a@b.c", "growth", raw, NOW)
    found = await store.find_key(hash_key(raw))
    assert found == rec
    assert found is not None and found.plan == "growth" and found.kind == "secret"
    assert await store.find_key(hash_key(new_key())) is None
    pk = new_key("publishable")
    prec = await store.create_publishable_key(rec.tenant_id, pk, ("https://shop.test",), NOW)
    assert prec.kind == "publishable" and prec.allowed_origins == ("https://shop.test",)
    assert prec.tenant_id == rec.tenant_id and prec.plan == "growth"
    assert {k.prefix for k in await store.list_keys()} >= {raw[:11], pk[:11]}
    assert await store.revoke_keys(raw[:11], NOW + 1) == 1
    again = await store.find_key(hash_key(raw))
    assert again is not None and again.revoked_at == NOW + 1
    assert await store.revoke_keys(raw[:11], NOW + 2) == 0


async def test_append_then_read(store: Storage) -> None:
    t = await _tenant(store)
    res = await store.append_events(
        Batch(t, "s", [_ev("page_view", url="/a"), _ev("error", message="x")], None, MONTH, NOW)
    )
    assert res.status == "stored"
    assert res.response["events_stored"] == 2 and res.response["total_events"] == 2
    rec = await store.get_session(t, "s")
    assert rec is not None
    assert rec.event_count == 2 and rec.last_url == "/a" and rec.updated_at == NOW
    assert rec.mood == res.response["current_mood"]
    exported = await store.export_events(t, "s")
    assert exported is not None
    assert [e["type"] for e in exported] == ["page_view", "error"]
    assert exported[0]["url"] == "/a" and exported[1]["message"] == "x"
    assert await store.get_session(t, "other") is None
    assert await store.export_events(t, "other") is None


@pytest.mark.parametrize("seen_before", [False, True])
async def test_concurrent_batches_on_one_session_lose_nothing(
    store: Storage, seen_before: bool
) -> None:
    t = await _tenant(store)
    first = 0
    if seen_before:  # the session's state is then cached from an earlier commit
        await store.append_events(Batch(t, "hot", [_ev(ts=NOW)] * 3, None, MONTH, NOW))
        first = 3
    await asyncio.gather(
        *(
            store.append_events(Batch(t, "hot", [_ev(ts=NOW + i)] * 3, None, MONTH, NOW))
            for i in range(40)
        )
    )
    rec = await store.get_session(t, "hot")
    assert rec is not None and rec.event_count == first + 120
    exported = await store.export_events(t, "hot")
    assert exported is not None and [e["seq"] for e in exported] == list(range(1, first + 121))


async def test_quota_is_exact_under_concurrency(store: Storage) -> None:
    t = await _tenant(store)
    quota = Quota("2026-11", 10, True)
    results = await asyncio.gather(
        *(store.append_events(Batch(t, f"s{i}", [_ev()], None, quota, NOW)) for i in range(30))
    )
    assert sum(r.status == "stored" for r in results) == 10
    assert sum(r.status == "quota" for r in results) == 20
    assert await store.month_usage(t, "2026-11") == 10
    # an open session keeps working at the limit; a new month starts afresh
    opened = next(i for i, r in enumerate(results) if r.status == "stored")
    assert (
        await store.append_events(Batch(t, f"s{opened}", [_ev()], None, quota, NOW))
    ).status == ("stored")
    nxt = Quota("2026-12", 10, True)
    assert (await store.append_events(Batch(t, "new", [_ev()], None, nxt, NOW))).status == "stored"


async def test_unblocked_quota_counts_overage(store: Storage) -> None:
    t = await _tenant(store, "pro")
    quota = Quota("2026-11", 2, False)
    for i in range(4):
        assert (await store.append_events(Batch(t, f"s{i}", [_ev()], None, quota, NOW))).status == (
            "stored"
        )
    assert await store.month_usage(t, "2026-11") == 4


async def test_idempotent_batches_under_concurrency(store: Storage) -> None:
    t = await _tenant(store)
    results = await asyncio.gather(
        *(
            store.append_events(Batch(t, "s", [_ev(), _ev()], "batch-1", MONTH, NOW))
            for _ in range(10)
        )
    )
    assert sum(r.status == "stored" for r in results) == 1
    assert all(r.response == results[0].response for r in results)
    rec = await store.get_session(t, "s")
    assert rec is not None and rec.event_count == 2
    other = await store.append_events(Batch(t, "s2", [_ev()], "batch-1", MONTH, NOW))
    assert other.status == "conflict"


async def test_tenants_do_not_see_each_other(store: Storage) -> None:
    a, b = await _tenant(store), await _tenant(store)
    await store.append_events(Batch(a, "same", [_ev()], "bid", MONTH, NOW))
    assert await store.get_session(b, "same") is None
    res = await store.append_events(Batch(b, "same", [_ev(), _ev()], "bid", MONTH, NOW))
    assert res.status == "stored" and res.response["total_events"] == 2
    assert (await store.mood_counts(a)).total_sessions == 1
    assert not await store.delete_session(b, "nope")


async def test_webhook_cap_is_exact_under_concurrency(store: Storage) -> None:
    a, b = await _tenant(store, "growth"), await _tenant(store, "growth")

    def hook(tenant: int, i: int) -> WebhookRecord:
        return WebhookRecord(f"wh_{tenant}_{i}", tenant, "http://127.0.0.1:9/h", None, "s", NOW)

    made = await asyncio.gather(*(store.create_webhook(hook(a, i), 5) for i in range(12)))
    assert sum(made) == 5 and len(await store.list_webhooks(a)) == 5
    # Another tenant's webhooks do not count; a deleted one frees its place.
    assert await store.create_webhook(hook(b, 0), 5)
    assert await store.delete_webhook(a, (await store.list_webhooks(a))[0].id, NOW)
    again = await asyncio.gather(*(store.create_webhook(hook(a, 100 + i), 5) for i in range(3)))
    assert sorted(again) == [False, False, True]


async def test_claims_cap_each_endpoint_and_serve_the_least_busy_tenant_first(
    store: Storage,
) -> None:
    frustrating = [_ev(k, NOW + i) for i, k in enumerate(["rage_click", "error", "error"])]
    a, b = await _tenant(store, "growth"), await _tenant(store, "growth")
    for i in range(3):
        assert await store.create_webhook(WebhookRecord(f"wh_a{i}", a, "u", None, "s", NOW), 20)
    assert await store.create_webhook(WebhookRecord("wh_b", b, "u", None, "s", NOW), 20)
    for i in range(6):  # 6 deliveries per webhook of A's, one per session
        await store.append_events(Batch(a, f"a{i}", frustrating, None, MONTH, NOW))
    await store.append_events(Batch(b, "b", frustrating, None, MONTH, NOW))
    # Two free slots: A's oldest delivery and B's, not two of A's (older) ones.
    first = await store.claim_deliveries(NOW + 10, 2, 60.0, per_endpoint=2)
    assert sorted(j.webhook_id for j in first) == ["wh_a0", "wh_b"]
    # Then round-robin over A's webhooks, each up to 2 in flight, and no more.
    rest = await store.claim_deliveries(NOW + 10, 100, 60.0, per_endpoint=2)
    assert sorted(j.webhook_id for j in rest) == ["wh_a0", "wh_a1", "wh_a1", "wh_a2", "wh_a2"]
    assert await store.claim_deliveries(NOW + 11, 100, 60.0, per_endpoint=2) == []
    # A finished attempt frees its endpoint's slot, for that endpoint only.
    done = next(j for j in rest if j.webhook_id == "wh_a1")
    await store.finish_delivery(Attempt(
        done.id, delivered=True, status_code=200, error=None, latency_ms=1.0,
        next_attempt_at=None, now=NOW + 12,
    ))  # fmt: skip
    again = await store.claim_deliveries(NOW + 13, 100, 60.0, per_endpoint=2)
    assert [j.webhook_id for j in again] == ["wh_a1"]
    # An expired lease no longer counts (its worker died) and its row is due
    # again; wh_a1's lease from NOW + 13 still holds one of its two slots.
    later = await store.claim_deliveries(NOW + 10 + 61, 100, 60.0, per_endpoint=2)
    assert sorted(j.webhook_id for j in later) == [
        "wh_a0", "wh_a0", "wh_a1", "wh_a2", "wh_a2", "wh_b"
    ]  # fmt: skip


async def test_backlog_counts_pending_deliveries_and_a_batch_says_if_the_mood_changed(
    store: Storage,
) -> None:
    frustrating = [_ev(k, NOW + i) for i, k in enumerate(["rage_click", "error", "error"])]
    t = await _tenant(store, "growth")
    assert await store.webhook_backlog() == 0
    assert await store.create_webhook(WebhookRecord("wh_q", t, "u", None, "s", NOW), 20)
    changed = await store.append_events(Batch(t, "q1", frustrating, None, MONTH, NOW))
    assert changed.mood_changed and changed.response["current_mood"] == "frustrated"
    same = await store.append_events(Batch(t, "q1", [_ev("error", NOW + 5)], None, MONTH, NOW))
    assert same.status == "stored" and not same.mood_changed
    await store.append_events(Batch(t, "q2", frustrating, None, MONTH, NOW))
    assert await store.webhook_backlog() == 2
    (job,) = await store.claim_deliveries(NOW + 10, 1, 60.0)
    await store.finish_delivery(Attempt(
        job.id, delivered=True, status_code=200, error=None, latency_ms=1.0,
        next_attempt_at=None, now=NOW + 11,
    ))  # fmt: skip
    assert await store.webhook_backlog() == 1


async def test_feedback_and_counts(store: Storage) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "a", [_ev()], None, MONTH, NOW))
    await store.append_events(Batch(t, "b", [_ev()], None, MONTH, NOW))
    assert await store.add_feedback(Feedback(t, "a", "show_live_chat", True, "n", NOW))
    assert await store.add_feedback(Feedback(t, "a", "no_action", None, None, NOW))
    assert not await store.add_feedback(Feedback(t, "missing", "x", None, None, NOW))
    counts = await store.mood_counts(t)
    assert counts.total_sessions == 2 and counts.feedback_count == 1
    assert sum(counts.by_mood.values()) == 2


async def test_delete_erases_session(store: Storage) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "d", [_ev()], "b1", MONTH, NOW))
    await store.add_feedback(Feedback(t, "d", "x", True, None, NOW))
    assert await store.delete_session(t, "d")
    assert await store.get_session(t, "d") is None
    assert await store.export_events(t, "d") is None
    assert (await store.mood_counts(t)).feedback_count == 0
    assert not await store.delete_session(t, "d")
    # usage is history: deleting a session does not refund the month
    assert await store.month_usage(t, "2026-11") == 1


async def test_failed_job_stores_nothing_and_others_commit(store: Storage) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "ok1", [_ev()], None, MONTH, NOW))  # an open session
    bad = [_ev(), {"type": "click"}]  # second event has no ts: the engine cannot fold it
    results = await asyncio.gather(
        store.append_events(Batch(t, "ok1", [_ev()], None, MONTH, NOW)),
        store.append_events(Batch(t, "bad", bad, None, MONTH, NOW)),
        store.append_events(Batch(t, "ok2", [_ev()], None, MONTH, NOW)),
        store.append_events(Batch(t, "ok1", bad, None, MONTH, NOW)),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception) and isinstance(results[3], Exception)
    assert await store.get_session(t, "bad") is None
    assert await store.month_usage(t, "2026-11") == 2
    ok1 = await store.get_session(t, "ok1")
    assert ok1 is not None and ok1.event_count == 2
    assert await store.get_session(t, "ok2") is not None
    # The failed batch left no trace in the session: the next one follows on.
    res = await store.append_events(Batch(t, "ok1", [_ev()], None, MONTH, NOW))
    assert res.response["total_events"] == 3
    exported = await store.export_events(t, "ok1")
    assert exported is not None and [e["seq"] for e in exported] == [1, 2, 3]


async def test_reopen_keeps_data_and_migrations_are_idempotent(
    store: Storage, tmp_path: Path
) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "kept", [_ev()], None, MONTH, NOW))
    again = open_storage(store.url)
    await again.open()
    try:
        assert await again.get_session(t, "kept") is not None
    finally:
        await again.close()


async def test_ping(store: Storage) -> None:
    assert await store.ping()


def test_unknown_scheme() -> None:
    with pytest.raises(StorageURLError, match="SESSIONMOOD_DATABASE_URL"):
        open_storage("mongodb://x")


@pytest.mark.parametrize(
    ("url", "path", "opts"),
    [
        ("sqlite:///./x.db", "./x.db", {}),
        ("sqlite:////abs/x.db", "/abs/x.db", {}),
        ("sqlite:///:memory:", ":memory:", {}),
        ("sqlite:///x.db?synchronous=full", "x.db", {"synchronous": "full"}),
    ],
)
def test_parse_sqlite_url(url: str, path: str, opts: dict[str, str]) -> None:
    assert parse_sqlite_url(url) == (path, opts)


async def test_page_moods_and_mood_changes(store: Storage) -> None:
    t = await _tenant(store)
    calm = [_ev("page_view", NOW, url="/a"), _ev(ts=NOW + 1), _ev(ts=NOW + 2)]
    await store.append_events(Batch(t, "s", calm, None, MONTH, NOW))
    bad = [_ev("page_view", NOW + 10, url="/pay")]
    bad += [_ev(k, NOW + 11 + i) for i, k in enumerate(["rage_click", "error", "error"])]
    res = await store.append_events(Batch(t, "s", bad, None, MONTH, NOW + 20))
    assert res.response["current_mood"] == "frustrated"
    pages = await store.page_moods(t, None, None)
    assert set(pages) == {"/a", "/pay"}
    assert pages["/pay"] == {"frustrated": 1}
    assert await store.page_moods(t, NOW + 100, None) == {}
    # the range filters on when a page's mood was last recorded: both pages
    # were last recorded by the second batch (left /a, now on /pay)
    assert await store.page_moods(t, None, NOW + 10) == {}
    assert set(await store.page_moods(t, NOW + 10, NOW + 30)) == {"/a", "/pay"}
    changes = await store.mood_changes(t, 0)
    assert changes and changes[-1].mood == "frustrated" and changes[-1].url == "/pay"
    assert changes[-1].session_id == "s" and changes[-1].suggested_action == "show_live_chat"
    assert [c.id for c in changes] == sorted(c.id for c in changes)
    assert await store.last_mood_change_id(t) == changes[-1].id
    assert await store.mood_changes(t, changes[-1].id) == []
    other = await _tenant(store)
    assert await store.mood_changes(other, 0) == []
    assert await store.last_mood_change_id(other) == 0
    # erasure takes the page and change history with it
    await store.delete_session(t, "s")
    assert await store.page_moods(t, None, None) == {}
    assert await store.mood_changes(t, 0) == []


async def test_wait_for_mood_change_wakes_on_commit(store: Storage) -> None:
    t = await _tenant(store)
    waiter = asyncio.create_task(store.wait_for_mood_change(5.0))
    await asyncio.sleep(0.05)
    bad = [_ev("rage_click"), _ev("error"), _ev("error"), _ev("rage_click")]
    t0 = asyncio.get_running_loop().time()
    await store.append_events(Batch(t, "w", bad, None, MONTH, NOW))
    assert await asyncio.wait_for(waiter, 5.0) is True
    assert asyncio.get_running_loop().time() - t0 < 2.0


async def test_action_counts(store: Storage) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "s", [_ev()], None, MONTH, NOW))
    for helpful in (True, False, None, True):
        await store.add_feedback(Feedback(t, "s", "show_tooltip", helpful, None, NOW))
    await store.add_feedback(Feedback(t, "s", "no_action", None, None, NOW + 50))
    counts = {(c.mood, c.action): c for c in await store.action_counts(t, None, None)}
    tip = counts[("neutral", "show_tooltip")]
    assert (tip.taken, tip.helpful, tip.not_helpful) == (4, 2, 1)
    assert [c.action for c in await store.action_counts(t, NOW + 10, None)] == ["no_action"]


async def test_demo_tenant_is_reused_and_keys_rotated(store: Storage) -> None:
    sm1, pk1 = new_key(), new_key("publishable")
    first = await store.ensure_demo_tenant(sm1, pk1, ("http://127.0.0.1:8000",), NOW)
    await store.append_events(Batch(first.tenant_id, "kept", [_ev()], None, MONTH, NOW))
    sm2, pk2 = new_key(), new_key("publishable")
    second = await store.ensure_demo_tenant(sm2, pk2, ("http://127.0.0.1:8000",), NOW + 1)
    assert second.tenant_id == first.tenant_id and second.kind == "secret"
    old = await store.find_key(hash_key(sm1))
    assert old is not None and old.revoked_at is not None
    new_pk = await store.find_key(hash_key(pk2))
    assert new_pk is not None and new_pk.revoked_at is None
    assert new_pk.allowed_origins == ("http://127.0.0.1:8000",)
    assert await store.get_session(second.tenant_id, "kept") is not None


async def test_erasure_forgets_the_session_id_everywhere(store: Storage) -> None:
    t = await _tenant(store)
    await store.append_events(Batch(t, "user-42", [_ev()], "b", MONTH, NOW))
    assert await store.delete_session(t, "user-42")
    # the month's usage stays counted (quota history), but the id is gone: a
    # returning visitor with the same id is counted afresh.
    assert await store.month_usage(t, "2026-11") == 1
    again = await store.append_events(Batch(t, "user-42", [_ev()], None, MONTH, NOW))
    assert again.status == "stored" and again.response["total_events"] == 1
    assert await store.month_usage(t, "2026-11") == 2


async def test_sqlite_events_of_an_older_schema_move_to_batches(tmp_path: Path) -> None:
    """Migration 5: a database written with one row per event exports the same
    events (seq, fields, receipt times) after the upgrade, and keeps growing."""
    import sqlite3

    from sessionmood_server.storage.sqlite.schema import MIGRATIONS

    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, sql in MIGRATIONS[:4]:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO tenants VALUES (1, 'Old', NULL, 'pro', 0)")
    conn.execute(
        "INSERT INTO sessions (tenant_id, session_id, state, mood, confidence, signals, "
        "suggested_action, event_count, created_at, updated_at, last_url) "
        "VALUES (1, 's', ?, 'neutral', 0.1, '[]', 'no_action', 3, ?, ?, '/a')",
        ('{"v":1,"n":3,"t":0,"r":0,"a":[],"g":[]}', NOW, NOW),
    )
    conn.executemany(
        "INSERT INTO events VALUES (1, 's', ?, ?, ?, ?, ?)",
        [
            (1, "page_view", NOW, NOW + 1, '{"url":"/a"}'),
            (2, "click", NOW + 1.5, NOW + 2, '{"x":1.0,"y":2.5}'),
            (3, "backtrack", NOW + 2, NOW + 2, None),
        ],
    )
    conn.close()
    store = open_storage(f"sqlite:///{path}")
    await store.open()
    try:
        assert await store.export_events(1, "s") == [
            {"seq": 1, "type": "page_view", "ts": NOW, "url": "/a", "received_at": NOW + 1},
            {
                "seq": 2,
                "type": "click",
                "ts": NOW + 1.5,
                "x": 1.0,
                "y": 2.5,
                "received_at": NOW + 2,
            },
            {"seq": 3, "type": "backtrack", "ts": NOW + 2, "received_at": NOW + 2},
        ]
        quota = Quota("2026-11", 10, True)
        res = await store.append_events(Batch(1, "s", [_ev("blur")], None, quota, NOW + 3))
        assert res.response["total_events"] == 4
        exported = await store.export_events(1, "s")
        assert exported is not None and [e["seq"] for e in exported] == [1, 2, 3, 4]
        assert await store.delete_session(1, "s")
        assert await store.export_events(1, "s") is None
    finally:
        await store.close()


async def test_sqlite_rows_lagging_in_memory_survive_another_process(tmp_path: Path) -> None:
    """Open sessions' rows lag in memory; another process (the CLI) opening the
    file, erasing one session and committing must leave this one consistent:
    the erased session stays erased, the others keep every event and mood."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = open_storage(url)
    await a.open()
    try:
        t = await _tenant(a, "pro")
        for sid in ("keep", "erase"):
            for i in range(4):  # the first batch writes the row, the others lag
                await a.append_events(
                    Batch(t, sid, [_ev("rage_click", NOW + i)] * 2, None, MONTH, NOW)
                )
        before = await a.get_session(t, "keep")
        assert before is not None and before.event_count == 8
        b = open_storage(url)  # e.g. `sessionmood purge` in another process
        await b.open()
        try:
            assert await b.delete_session(t, "erase")
            # b replayed the log when it opened: it sees what a acknowledged
            seen = await b.get_session(t, "keep")
            assert seen is not None and (seen.event_count, seen.mood) == (8, before.mood)
        finally:
            await b.close()
        res = await a.append_events(Batch(t, "keep", [_ev("click", NOW + 9)], None, MONTH, NOW))
        assert res.response["total_events"] == 9
        assert await a.get_session(t, "erase") is None
        exported = await a.export_events(t, "keep")
        assert exported is not None and [e["seq"] for e in exported] == list(range(1, 10))
        res = await a.append_events(Batch(t, "erase", [_ev("click", NOW + 9)], None, MONTH, NOW))
        assert res.response["total_events"] == 1  # a new session under the old id
    finally:
        await a.close()


async def test_sqlite_wal_is_reused_under_sustained_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes that never pause must not grow the WAL without bound: the
    checkpoint thread alone never catches up with them, so SQLite would never
    start the WAL over. Thresholds scaled down: 64 frames instead of 16,384."""
    import itertools
    import os
    import time

    from sessionmood_server.storage.sqlite import writer

    monkeypatch.setattr(writer, "CHECKPOINT_WAL_BYTES", 256 * 1024)
    monkeypatch.setattr(writer, "WAL_RESTART_FRAMES", 64)
    unlimited = Quota("2026-11", 10**9, False)
    store = open_storage(f"sqlite:///{tmp_path / 'busy.db'}")
    await store.open()
    wal = tmp_path / "busy.db-wal"
    try:
        t = await _tenant(store, "pro")
        deadline = time.monotonic() + 4
        sessions, sizes = 0, []
        while time.monotonic() < deadline:
            results = await asyncio.gather(
                *(
                    store.append_events(
                        Batch(t, f"s{sessions + j}", [_ev()] * 50, None, unlimited, NOW)
                    )
                    for j in range(20)
                )
            )
            assert {r.status for r in results} == {"stored"}
            sessions += 20
            sizes.append(os.path.getsize(wal))
        # A WAL that is never started over grows with every commit; one that is
        # reuses its file from the start, which then stops growing for a while.
        grew = sum(b > a for a, b in itertools.pairwise(sizes))
        assert grew < len(sizes) / 2, (grew, len(sizes))
    finally:
        await store.close()


# -- abuse: what the API's limits rely on (both backends) -------------------------------


async def test_publishable_sessions_count_from_their_second_batch(store: Storage) -> None:
    """A made-up session id sent once (all anyone holding a public key needs to
    do) never uses the month up; a session that comes back counts once."""
    t = await _tenant(store)
    public = Quota("2026-11", 3, True, provisional=True)
    for i in range(10):
        res = await store.append_events(Batch(t, f"drive-by{i}", [_ev()], None, public, NOW))
        assert res.status == "stored"
    assert await store.month_usage(t, "2026-11") == 0
    for _ in range(3):  # its second and later batches: counted once
        assert (await store.append_events(Batch(t, "real", [_ev()], None, public, NOW))).status == (
            "stored"
        )
    assert await store.month_usage(t, "2026-11") == 1
    for sid in ("drive-by0", "drive-by1"):
        await store.append_events(Batch(t, sid, [_ev()], None, public, NOW))
    assert await store.month_usage(t, "2026-11") == 3
    # the month is used up: no new session opens, and an uncounted one cannot
    # start counting; counted ones keep working
    assert (
        await store.append_events(Batch(t, "late", [_ev()], None, public, NOW))
    ).status == "quota"
    assert await store.get_session(t, "late") is None
    assert (
        await store.append_events(Batch(t, "drive-by5", [_ev()], None, public, NOW))
    ).status == ("quota")
    assert (
        await store.append_events(Batch(t, "real", [_ev()], None, public, NOW))
    ).status == "stored"
    assert await store.month_usage(t, "2026-11") == 3


async def test_a_batch_id_with_other_events_is_a_mismatch(store: Storage) -> None:
    t = await _tenant(store)
    first = await store.append_events(Batch(t, "s", [_ev()], "b-1", MONTH, NOW, fingerprint="f1"))
    assert first.status == "stored"
    again = await store.append_events(
        Batch(t, "s", [_ev()], "b-1", MONTH, NOW + 5, fingerprint="f1")
    )
    assert again.status == "replayed" and again.response == first.response
    other = await store.append_events(
        Batch(t, "s", [_ev(), _ev("error")], "b-1", MONTH, NOW, fingerprint="f2")
    )
    assert other.status == "mismatch"
    rec = await store.get_session(t, "s")
    assert rec is not None and rec.event_count == 1  # the new events were not stored
    # another session is still the older answer: conflict
    assert (
        await store.append_events(Batch(t, "x", [_ev()], "b-1", MONTH, NOW))
    ).status == "conflict"


async def test_a_session_holds_at_most_max_events(store: Storage) -> None:
    t = await _tenant(store)
    ok = await store.append_events(Batch(t, "s", [_ev()] * 4, None, MONTH, NOW, max_events=5))
    assert ok.status == "stored"
    full = await store.append_events(Batch(t, "s", [_ev()] * 2, None, MONTH, NOW, max_events=5))
    assert full.status == "full"
    last = await store.append_events(Batch(t, "s", [_ev()], None, MONTH, NOW, max_events=5))
    assert last.status == "stored" and last.response["total_events"] == 5
    # a new session larger than the cap is refused whole
    big = await store.append_events(Batch(t, "big", [_ev()] * 6, None, MONTH, NOW, max_events=5))
    assert big.status == "full" and await store.get_session(t, "big") is None


async def test_admission_is_asked_only_for_new_sessions(store: Storage) -> None:
    t = await _tenant(store)
    asked: list[float] = []

    def clock() -> float:  # read once per question asked
        asked.append(NOW)
        return 0.0

    spent = RateLimiter(Rate(1, 3600))
    spent.take("k", 0.0)
    no = Admission(((spent, "k"),), clock)

    await store.append_events(Batch(t, "open", [_ev()], None, MONTH, NOW))
    res = await store.append_events(Batch(t, "open", [_ev()], None, MONTH, NOW, admission=no))
    assert res.status == "stored" and asked == []
    res = await store.append_events(Batch(t, "new", [_ev()], "b-new", MONTH, NOW, admission=no))
    assert res.status == "limited" and asked == [NOW] and res.retry_after == 3600
    assert await store.get_session(t, "new") is None
    assert await store.month_usage(t, "2026-11") == 1
    # refused batches leave no idempotency record: a retry may succeed later
    yes = Admission(((RateLimiter(Rate(1, 3600)), "k"),), clock)
    res = await store.append_events(Batch(t, "new", [_ev()], "b-new", MONTH, NOW, admission=yes))
    assert res.status == "stored" and res.retry_after == 0 and len(asked) == 2


async def test_export_in_pages(store: Storage) -> None:
    t = await _tenant(store)
    for i in range(5):  # batches of 3: seq 1..15
        await store.append_events(Batch(t, "s", [_ev(ts=NOW + i)] * 3, None, MONTH, NOW))
    whole = await store.export_events(t, "s")
    assert whole is not None and [e["seq"] for e in whole] == list(range(1, 16))
    pages = []
    after = 0
    while True:
        page = await store.export_events(t, "s", after, 4)
        assert page is not None and len(page) <= 4
        if not page:
            break
        pages.append([e["seq"] for e in page])
        after = page[-1]["seq"]
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15]]
    assert await store.export_events(t, "s", 13, 0) == whole[13:]
    assert await store.export_events(t, "nope", 0, 4) is None


async def test_page_moods_top_n(store: Storage) -> None:
    t = await _tenant(store)
    views = [_ev("page_view", NOW + i, url=f"/u{i:02d}") for i in range(12)]
    await store.append_events(Batch(t, "many", views, None, MONTH, NOW))
    await store.append_events(
        Batch(t, "two", [_ev("page_view", NOW, url="/u07")], None, MONTH, NOW)
    )
    await store.append_events(
        Batch(t, "three", [_ev("page_view", NOW, url="/u07")], None, MONTH, NOW)
    )
    await store.append_events(
        Batch(t, "four", [_ev("page_view", NOW, url="/u11")], None, MONTH, NOW)
    )
    top = await store.page_moods(t, None, None, 4)
    # busiest first, then by URL
    assert list(top) == ["/u07", "/u11", "/u00", "/u01"]
    assert sum(top["/u07"].values()) == 3
    assert len(await store.page_moods(t, None, None)) == 12


async def test_listeners_hear_which_tenant_changed_mood_and_key_writes(store: Storage) -> None:
    heard: list[object] = []

    class Listener:
        def moods_changed(self, tenant_ids: Any) -> None:
            heard.append(("moods", None if tenant_ids is None else sorted(tenant_ids)))

        def keys_changed(self) -> None:
            heard.append("keys")

    listener = Listener()
    store.add_listener(listener)
    try:
        t = await _tenant(store)
        heard.clear()
        bad = [_ev("rage_click"), _ev("error"), _ev("error"), _ev("rage_click")]
        await store.append_events(Batch(t, "w", bad, None, MONTH, NOW))
        # PostgreSQL also relays its own NOTIFY, for this tenant
        await asyncio.sleep(0.2)
        assert ("moods", [t]) in heard
        assert all(h in (("moods", [t]), ("moods", None)) for h in heard)
        heard.clear()
        await store.append_events(Batch(t, "w", [_ev("rage_click")], None, MONTH, NOW))  # no change
        assert not any(isinstance(h, tuple) and h[1] == [t] for h in heard)
        raw = new_key()
        rec = await store.create_tenant_key("K", None, "starter", raw, NOW)
        await store.find_key(hash_key(raw))
        heard.clear()
        assert await store.revoke_keys(rec.prefix, NOW) == 1
        await asyncio.sleep(0.2)
        assert "keys" in heard
    finally:
        store.remove_listener(listener)


async def test_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    import stat

    store = open_storage(f"sqlite:///{tmp_path / 'private.db'}")
    await store.open()
    try:
        t = await _tenant(store)
        await store.append_events(Batch(t, "s", [_ev()], None, MONTH, NOW))
        files = sorted(tmp_path.glob("private.db*"))
        assert {f.name for f in files} >= {"private.db", "private.db-wal", "private.db-shm"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        await store.close()
