"""Group commit on PostgreSQL: concurrent cached batches share one call, and a
group that fails is sent again batch by batch, so only a bad batch fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from sessionmood_server.records import Batch
from sessionmood_server.scoring import ElementTally
from sessionmood_server.storage.postgres.appender import (
    GROUP_SHARE,
    IN_FLIGHT,
    Appender,
    BatchRow,
    Folded,
)
from sessionmood_server.storage.postgres.locks import lock_key
from tests.test_postgres import MONTH, NOW, _fetch, _tenant, fresh_schema, storages

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

CLICK = [{"type": "click", "ts": NOW}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_concurrent_batches_of_many_sessions_share_calls_and_all_land() -> None:
    async with fresh_schema() as url, storages(url, 1) as (store,):
        t = await _tenant(store, "pro")
        sessions = [f"s{i}" for i in range(40)]
        for sid in sessions:  # open them (the full path), so the next ones are cached
            await store.append_events(Batch(t, sid, CLICK, None, MONTH, NOW))
        calls = 0
        acquire = store._conn

        def counting() -> Any:
            nonlocal calls
            calls += 1
            return acquire()

        store._appender._acquire = counting
        results = await asyncio.gather(
            *(
                store.append_events(Batch(t, sid, CLICK * 2, f"b-{sid}", MONTH, NOW))
                for sid in sessions
            )
        )
        assert all(r.status == "stored" for r in results)
        assert all(r.response is not None and r.response["total_events"] == 3 for r in results)
        # One call per group, not per batch: groups formed while others were out.
        assert 1 <= calls < len(sessions) // 2
        rows = await _fetch(url, "SELECT count(*), count(DISTINCT session_id) FROM events")
        assert tuple(rows[0]) == (3 * len(sessions), len(sessions))
        stored_ids = await _fetch(url, "SELECT count(*) FROM batches")
        assert stored_ids[0][0] == len(sessions)


async def test_a_queue_goes_out_in_shares_that_overlap_not_in_one_convoy() -> None:
    """64 batches queued at once (wrk's 64 connections): the first group must not
    take them all, or the replica idles while the database folds one long group
    and then the other way round. Each group is a share, several are at the
    database at the same time, and every batch lands."""
    async with fresh_schema() as url, storages(url, 1) as (store,):
        t = await _tenant(store, "pro")
        sessions = [f"q{i}" for i in range(4 * GROUP_SHARE)]
        for sid in sessions:
            await store.append_events(Batch(t, sid, CLICK, None, MONTH, NOW))
        sizes: list[int] = []
        at_once = most_at_once = 0
        acquire = store._conn

        @contextlib.asynccontextmanager
        async def watching() -> AsyncIterator[Any]:
            nonlocal at_once, most_at_once
            async with acquire() as conn:

                class Watched:  # the appender only calls fetch
                    async def fetch(self, sql: str, *args: Any) -> Any:
                        nonlocal at_once, most_at_once
                        # p_tenant, one number per batch: {7,7,7}
                        sizes.append(len(args[0].strip("{}").split(",")))
                        at_once += 1
                        most_at_once = max(most_at_once, at_once)
                        try:
                            return await conn.fetch(sql, *args)
                        finally:
                            at_once -= 1

                yield Watched()

        store._appender._acquire = watching
        results = await asyncio.gather(
            *(store.append_events(Batch(t, sid, CLICK, None, MONTH, NOW)) for sid in sessions)
        )
        assert [r.status for r in results] == ["stored"] * len(sessions), sizes
        assert sum(sizes) == len(sessions)
        assert max(sizes) <= GROUP_SHARE
        assert len(sizes) >= len(sessions) // GROUP_SHARE
        assert 2 <= most_at_once <= IN_FLIGHT
        rows = await _fetch(url, "SELECT count(*) FROM events")
        assert rows[0][0] == 2 * len(sessions)


def _row(tenant: int, sid: str, version: int, *, state: str, total: int, last_url: str) -> BatchRow:
    """A batch without an id, folded to a neutral mood."""
    return BatchRow(
        tenant_id=tenant,
        session_id=sid,
        version=version,
        batch_lock=None,
        session_lock=lock_key("session", "x", tenant, sid),
        batch_id=None,
        fingerprint=None,
        response=None,
        month=MONTH.month,
        state=state,
        mood="neutral",
        confidence=0.25,
        action="none",
        total=total,
        last_url=last_url,
        now=NOW,
    )


AWKWARD = ['"quoted"', "back\\slash\\", "{braces,commas}", "NULL", " spaced ", "é€😀", ""]


async def test_text_with_quotes_backslashes_braces_and_null_lands_unchanged() -> None:
    """The arrays go as text literals: every character a value may hold must
    come out as it went in, and the string "NULL" must stay a string."""
    async with fresh_schema() as url, storages(url, 1) as (store,):
        t = await _tenant(store, "pro")
        await store.append_events(Batch(t, "odd", CLICK, None, MONTH, NOW))
        version = (await _fetch(url, "SELECT version FROM sessions"))[0][0]
        state = '{"v": 2, "odd": ' + orjson.dumps(AWKWARD).decode() + "}"
        page = "/p?" + "".join(AWKWARD)
        row = await store._appender.append(
            Folded(
                _row(t, "odd", version, state=state, total=1 + len(AWKWARD), last_url=page),
                events=[
                    {"type": "error", "ts": NOW + i, "message": v} for i, v in enumerate(AWKWARD)
                ],
                first_seq=2,
                pages={page: "neutral"},
                signals=["insufficient_data"],
                elements={(page, v): ElementTally(clicks=1, last_ts=NOW) for v in AWKWARD},
            )
        )
        assert row[1] == 0
        stored = await _fetch(url, "SELECT state, last_url FROM sessions")
        assert tuple(stored[0]) == (state, page)
        events = await _fetch(url, "SELECT fields FROM events WHERE seq >= 2 ORDER BY seq")
        assert [orjson.loads(r[0]) for r in events] == [{"message": v} for v in AWKWARD]
        pages = await _fetch(url, "SELECT url FROM page_moods ORDER BY updated_at DESC")
        assert pages[0][0] == page
        elements = await _fetch(url, "SELECT page, target, clicks FROM element_sessions")
        assert sorted(tuple(r) for r in elements) == sorted((page, v, 1) for v in AWKWARD)


async def test_a_failing_group_is_sent_again_batch_by_batch() -> None:
    async with fresh_schema() as url, storages(url, 1) as (store,):
        t = await _tenant(store, "pro")
        for sid in ("good", "bad"):
            await store.append_events(Batch(t, sid, CLICK, None, MONTH, NOW))
        versions = dict(
            (r[0], r[1]) for r in await _fetch(url, "SELECT session_id, version FROM sessions")
        )
        held = store._states.get((t, "good"))
        assert held is not None

        def folded(sid: str, url_: str) -> Folded:
            return Folded(
                _row(t, sid, versions[sid], state='{"v": 2}', total=2, last_url=url_),
                events=[{"type": "page_view", "ts": NOW + 1}],
                first_seq=2,
                pages={url_: "neutral"},
                signals=["insufficient_data"],
                elements={},
            )

        sent: list[int] = []

        @contextlib.asynccontextmanager
        async def acquire() -> AsyncIterator[Any]:
            async with store._conn() as conn:
                sent.append(1)
                yield conn

        appender = Appender(acquire)
        # PostgreSQL refuses a NUL in text: that batch's group fails as a whole.
        good, bad = await asyncio.gather(
            appender.append(folded("good", "/ok")),
            appender.append(folded("bad", "/bad\x00")),
            return_exceptions=True,
        )
        assert len(sent) == 3  # the group, then each batch alone
        assert not isinstance(good, BaseException) and good[1] == 0
        assert isinstance(bad, Exception)
        rows = await _fetch(
            url, "SELECT session_id, count(*) FROM events GROUP BY session_id ORDER BY 1"
        )
        assert [tuple(r) for r in rows] == [("bad", 1), ("good", 2)]
