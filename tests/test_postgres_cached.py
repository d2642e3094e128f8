"""The PostgreSQL fast path: cached session states, validated by row version.

Two storages on one schema stand for two replicas. Whatever each one has
cached, a batch must be folded into the session as stored, never into a state
another replica has moved on from or a session erased meanwhile.
"""

from __future__ import annotations

from typing import Any

import pytest

from sessionmood_server import engine
from sessionmood_server.records import Batch
from sessionmood_server.storage.postgres.cached import Cached, SessionStates
from tests.test_postgres import MONTH, NOW, _fetch, _tenant, fresh_schema, storages

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

CALM = [{"type": "click", "ts": NOW}, {"type": "scroll", "ts": NOW + 1}]
ANGRY = [
    {"type": "rage_click", "ts": NOW + 2},
    {"type": "error", "ts": NOW + 3},
    {"type": "error", "ts": NOW + 4},
    {"type": "rage_click", "ts": NOW + 5},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _replayed(exported: list[dict[str, Any]]) -> engine.Verdict:
    state = engine.new_state()
    for ev in exported:
        engine.fold(state, {k: v for k, v in ev.items() if k not in {"seq", "received_at"}})
    return engine.verdict(state)


async def _version(url: str, tenant: int, session: str) -> int:
    rows = await _fetch(
        url,
        "SELECT version FROM sessions WHERE tenant_id = $1 AND session_id = $2",
        tenant,
        session,
    )
    return int(rows[0][0])


async def test_two_replicas_writing_one_session_in_turn_lose_nothing() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        t = await _tenant(a)
        sent: list[dict[str, Any]] = []
        for i in range(12):
            # Alternating replicas: each one's cached state is one batch behind
            # every time, so every batch meets a moved row and folds again.
            events = [{**ev, "ts": ev["ts"] + i * 10} for ev in (ANGRY if i % 3 == 2 else CALM)]
            sent += events
            r = await (a, b)[i % 2].append_events(Batch(t, "shared", events, None, MONTH, NOW))
            assert r.status == "stored" and r.response is not None
            assert r.response["total_events"] == len(sent)
        exported = await a.export_events(t, "shared")
        assert exported is not None
        assert [e["seq"] for e in exported] == list(range(1, len(sent) + 1))
        assert [e["type"] for e in exported] == [e["type"] for e in sent]
        want = _replayed(exported)
        for store in (a, b):
            rec = await store.get_session(t, "shared")
            assert rec is not None
            assert (rec.mood, rec.confidence, rec.event_count) == (
                want.mood,
                want.confidence,
                len(sent),
            )
        # Both hold the session now, and only the one that wrote last is current.
        version = await _version(url, t, "shared")
        held = [s._states.get((t, "shared")) for s in (a, b)]
        assert all(h is not None for h in held)
        assert [h.version == version for h in held if h is not None] == [False, True]


async def test_a_cached_session_takes_one_statement_per_batch() -> None:
    async with fresh_schema() as url, storages(url, 1) as (a,):
        t = await _tenant(a)
        await a.append_events(Batch(t, "s", CALM, None, MONTH, NOW))
        before = await _version(url, t, "s")
        r = await a.append_events(
            Batch(t, "s", [{"type": "click", "ts": NOW + 9}], "batch-2", MONTH, NOW)
        )
        assert r.status == "stored"
        after = await _version(url, t, "s")
        assert after > before
        held = a._states.get((t, "s"))
        assert held is not None and held.version == after and held.event_count == 3
        # The idempotency record was written by the fast path: a retry replays it.
        again = await a.append_events(
            Batch(t, "s", [{"type": "click", "ts": NOW + 9}], "batch-2", MONTH, NOW)
        )
        assert again.status == "replayed" and again.response == r.response


async def test_a_session_erased_and_started_again_elsewhere_is_not_folded_on_the_old_state() -> (
    None
):
    async with fresh_schema() as url, storages(url) as (a, b):
        t = await _tenant(a)
        for i in range(3):
            await a.append_events(Batch(t, "gone", ANGRY, None, MONTH, NOW + i))
        assert a._states.get((t, "gone")) is not None
        assert await b.delete_session(t, "gone")
        # b starts it again and brings it to as many writes as a has seen.
        for _ in range(3):
            await b.append_events(Batch(t, "gone", CALM, None, MONTH, NOW))
        r = await a.append_events(Batch(t, "gone", CALM, None, MONTH, NOW))
        assert r.status == "stored" and r.response is not None
        assert r.response["total_events"] == 4 * len(CALM)
        exported = await a.export_events(t, "gone")
        assert exported is not None and len(exported) == 4 * len(CALM)
        assert r.response["current_mood"] == _replayed(exported).mood


async def test_a_mood_change_through_a_stale_cache_writes_one_change() -> None:
    async with fresh_schema() as url, storages(url) as (a, b):
        t = await _tenant(a)
        await a.append_events(Batch(t, "m", CALM, None, MONTH, NOW))
        await b.append_events(Batch(t, "m", ANGRY, None, MONTH, NOW))
        # a still holds the calm state; the row already holds b's frustration.
        r = await a.append_events(Batch(t, "m", ANGRY, None, MONTH, NOW))
        assert r.status == "stored"
        changes = await a.mood_changes(t, 0)
        moods = [(c.previous_mood, c.mood) for c in changes]
        assert len(moods) == len(set(moods))  # no change recorded twice
        rec = await a.get_session(t, "m")
        exported = await a.export_events(t, "m")
        assert rec is not None and exported is not None
        assert rec.mood == _replayed(exported).mood


def test_the_cache_keeps_the_most_recently_written_sessions() -> None:
    states = SessionStates(limit=2)
    entry = Cached(1, engine.new_state(), 0, None, "neutral")
    states.put((1, "a"), entry)
    states.put((1, "b"), entry)
    states.put((1, "a"), entry._replace(version=2))  # written again: now the newest
    states.put((1, "c"), entry)
    assert states.get((1, "b")) is None
    assert states.get((1, "a")) is not None and states.get((1, "c")) is not None
    assert len(states) == 2
    states.drop((1, "a"))
    assert states.get((1, "a")) is None
