"""The PostgreSQL backend's fast path for a batch: a per-replica cache of
session states, validated at commit by the row's version.

A replica keeps the engine state of the sessions it wrote last, with the
``version`` their row had then (``migrations/009.sql``: every write draws a
new one from a sequence, so a version is never reused). A batch for a cached
session is folded here, without reading anything, and stored through the
appender (``appender.py``): one call of ``sm_append_cached`` for the batches
of every request waiting at that moment, one transaction, the same advisory
locks as the full path. If another replica has written the session since, the
call writes nothing and returns the row as it is now; the batch is folded again
on that and sent again. So any replica can still take any batch: affinity (a
load balancer hashing by session id) only raises the hit rate. Anything the
fast path does not decide (a new session, a seen batch id, a session not yet
counted this month, a mood change with its outbox rows, a refusal) goes to
the full path (``log.append``, in the transaction ``storage.py`` opens), which
refreshes the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson

from sessionmood_server import engine, records
from sessionmood_server.scoring import AppliedBatch, StoredSession, apply_batch
from sessionmood_server.storage import shared
from sessionmood_server.storage.postgres.appender import Appender, BatchRow, Folded

# Sessions whose state a replica keeps: a few KB each. Busy sites have far
# more open sessions than this; the ones sending batches now are what counts.
CACHE_SESSIONS = 20_000
# Folds against a row that keeps moving (two replicas writing one session at
# once) before the full path, which waits for the lock instead, takes over.
ATTEMPTS = 3

READ_SQL = (
    "SELECT version, state, event_count, last_url, mood, holdout FROM sessions "
    "WHERE tenant_id = $1 AND session_id = $2"
)


class Cached(NamedTuple):
    """A session as its row stood at ``version``."""

    version: int
    state: engine.State  # never folded into: folds take a copy
    event_count: int
    last_url: str | None
    mood: str
    holdout: bool = False


class SessionStates:
    """Least recently written sessions go first once ``limit`` are kept."""

    def __init__(self, limit: int = CACHE_SESSIONS) -> None:
        self._limit = limit
        self._entries: OrderedDict[tuple[int, str], Cached] = OrderedDict()

    def get(self, key: tuple[int, str]) -> Cached | None:
        return self._entries.get(key)

    def put(self, key: tuple[int, str], entry: Cached) -> None:
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        if len(entries) > self._limit:
            entries.popitem(last=False)

    def drop(self, key: tuple[int, str]) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _from_row(row: Any, holdout: bool | None = None) -> Cached:
    """From a ``READ_SQL`` row, or an ``appender.APPEND_SQL`` one (named alike,
    without the group: a session's group never changes, so it is the one
    ``holdout`` held; an erased and restarted id is a new session, which
    takes the full path)."""
    return Cached(
        row["version"], engine.loads(row["state"]), row["event_count"], row["last_url"],
        row["mood"], row["holdout"] if holdout is None else holdout,
    )  # fmt: skip


async def append_cached(
    appender: Appender,
    read: Callable[[int, str], Awaitable[Any]],
    states: SessionStates,
    batch: records.Batch,
    locks: tuple[int | None, int],
) -> records.AppendResult | None:
    """Store ``batch`` through the cache; None: the full path must take it.

    ``read`` fetches the session's row (``READ_SQL``) when this replica does
    not hold it. ``locks`` are the batch id's advisory lock (None without one)
    and the session's. Runs with the session's local lock held
    (``LocalLocks``), so batches of one session from this replica come here
    one at a time.
    """
    key = (batch.tenant_id, batch.session_id)
    entry = states.get(key)
    if entry is None:
        # Not held here: one plain read (no transaction, no lock) instead of
        # the full path's; the write checks that it is still current.
        row = await read(batch.tenant_id, batch.session_id)
        if row is None:
            return None  # a new session: the quota and admission checks
        entry = _from_row(row)
    events = batch.events
    for _ in range(ATTEMPTS):
        if shared.refuse_batch(entry.event_count, len(events), batch.max_events, None):
            break
        stored = StoredSession(
            entry.state.copy(), entry.event_count, entry.last_url, entry.mood, entry.holdout
        )
        b = apply_batch(batch.session_id, stored, events, batch.policy)
        if b.changed or b.visits:
            # The mood change, its outbox rows and NOTIFY, or a journey step
            # (its number is read in SQL): the full path.
            break
        row = await appender.append(_folded(batch, entry.version, locks, b))
        status = row["status"]
        if status == 0:
            out = b.folded
            states.put(
                key,
                Cached(
                    row["version"], out.state, b.total, out.last_url, out.verdict.mood,
                    b.holdout,
                ),
            )  # fmt: skip
            return records.AppendResult("stored", b.response)
        if status != 1:
            break
        entry = _from_row(row, entry.holdout)  # another replica wrote it: fold again on its row
    states.drop(key)
    return None


def _folded(
    batch: records.Batch, version: int, locks: tuple[int | None, int], b: AppliedBatch
) -> Folded:
    """What ``sm_append_cached`` writes for ``batch`` folded into ``b`` on the
    row at ``version``."""
    batch_lock, session_lock = locks
    out, verdict = b.folded, b.folded.verdict
    return Folded(
        BatchRow(
            tenant_id=batch.tenant_id,
            session_id=batch.session_id,
            version=version,
            batch_lock=batch_lock,
            session_lock=session_lock,
            batch_id=batch.batch_id,
            fingerprint=batch.fingerprint,
            response=orjson.dumps(b.response).decode() if batch.batch_id is not None else None,
            month=batch.quota.month,
            state=engine.dumps(out.state),
            mood=verdict.mood,
            confidence=verdict.confidence,
            action=b.action,
            total=b.total,
            last_url=out.last_url,
            now=batch.now,
        ),
        events=batch.events,
        first_seq=b.total - len(batch.events) + 1,
        pages=b.page_moods,
        signals=b.signals,
        elements=b.folded.elements,
    )
