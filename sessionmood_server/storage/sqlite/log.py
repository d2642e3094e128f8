"""The SQLite backend's sessions: their event log, their rows, and the jobs
that change them through the session cache.

What a batch writes: its events as one row appended to ``event_batches``, and
everything else it decides (idempotency record, quota, page moods, mood
change, webhook outbox) in the same transaction. An open session's row in
``sessions`` is a cache of that log and may lag it (see ``ROW_LAG_S`` in
``storage.py``); the current verdict and engine state are in the session
cache, and a crash replays the log (``replay``).

Jobs here run inside a write group's transaction and change the cache only
by staging (see ``cache.py``).
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from typing import Any

import orjson

from sessionmood_server import engine
from sessionmood_server.records import AppendResult, Batch, Feedback, Quota, SessionRecord
from sessionmood_server.scoring import AppliedBatch, StoredSession, apply_batch
from sessionmood_server.storage import shared
from sessionmood_server.storage.sqlite.cache import HotEntry, SessionCache, SessionKey
from sessionmood_server.storage.sqlite.queries import enqueue_webhooks

log = logging.getLogger("sessionmood.storage")

UPDATE_SESSION_ROW = (
    "UPDATE sessions SET state=?, confidence=?, signals=?, suggested_action=?, event_count=?, "
    "updated_at=?, last_url=?, mood=?, last_batch=? WHERE tenant_id=? AND session_id=?"
)

# A session's batches, newest first: each row points at the one before it, so
# appending a batch writes only the end of the table (no per-session index to
# keep), and finding a session's events walks back from sessions.last_batch.
CHAIN = (
    "WITH RECURSIVE chain(id) AS (SELECT ? UNION ALL "
    "SELECT b.prev_id FROM event_batches b JOIN chain ON b.id = chain.id "
    "WHERE b.prev_id IS NOT NULL) "
)


def hot_entry(session_id: str, b: AppliedBatch, at: float, batch: int) -> HotEntry:
    """The cached session after ``b``, stored as batch ``batch`` at ``at``."""
    verdict, out = b.folded.verdict, b.folded
    record = SessionRecord(
        session_id, verdict.mood, verdict.confidence, tuple(b.signals), b.action, b.total, at,
        out.last_url,
    )  # fmt: skip
    return HotEntry(record, out.state, batch)


def session_row(key: SessionKey, entry: HotEntry) -> tuple[Any, ...]:
    """Parameters of UPDATE_SESSION_ROW bringing the row up to ``entry``."""
    rec, state = entry.record, entry.state
    assert state is not None, "only write-made entries carry a state"
    return (
        engine.dumps(state), rec.confidence, orjson.dumps(rec.signals).decode(),
        rec.suggested_action, rec.event_count, rec.updated_at, rec.last_url, rec.mood,
        entry.last_batch, *key,
    )  # fmt: skip


def delete_batches(
    c: sqlite3.Connection, tenant_id: int, session_id: str, last: int | None
) -> None:
    if last is not None:
        c.execute(
            CHAIN + "DELETE FROM event_batches WHERE id IN chain AND tenant_id=? AND session_id=?",
            (last, tenant_id, session_id),
        )


# -- a batch ------------------------------------------------------------------------


def append(c: sqlite3.Connection, cache: SessionCache, batch: Batch) -> tuple[AppendResult, bool]:
    """Store one batch (see ``Storage.append_events``); also whether the session's
    mood changed."""
    tenant_id, session_id, events, batch_id = (
        batch.tenant_id, batch.session_id, batch.events, batch.batch_id,
    )  # fmt: skip
    fingerprint, quota, now = batch.fingerprint, batch.quota, batch.now
    if batch_id is not None:
        seen = c.execute(
            "SELECT session_id, response, fingerprint FROM batches "
            "WHERE tenant_id=? AND batch_id=?",
            (tenant_id, batch_id),
        ).fetchone()
        if seen is not None:
            return shared.seen_batch(
                session_id, fingerprint, seen[0], seen[1], seen[2], orjson.loads
            ), False
    key = (tenant_id, session_id)
    # An earlier batch in this same group may have moved the session on.
    hot = cache.current(key)
    stored: StoredSession | None
    if hot is not None and hot.state is not None:
        rec = hot.record
        # A copy: if this group rolls back, the cached state is still right.
        stored = StoredSession(hot.state.copy(), rec.event_count, rec.last_url, rec.mood)
        prev_batch = hot.last_batch
    else:
        row = c.execute(
            "SELECT state, event_count, last_url, mood, last_batch FROM sessions "
            "WHERE tenant_id=? AND session_id=?",
            (tenant_id, session_id),
        ).fetchone()
        stored = None if row is None else StoredSession(engine.loads(row[0]), *row[1:4])
        prev_batch = None if row is None else row[4]
    refused = shared.refuse_batch(
        None if stored is None else stored.event_count, len(events), batch.max_events,
        batch.admission,
    )  # fmt: skip
    if refused is not None:
        return refused, False
    if not count_session_month(c, cache, tenant_id, session_id, quota, stored is None):
        return AppendResult("quota"), False
    b = apply_batch(session_id, stored, events, batch.policy)
    verdict, out = b.folded.verdict, b.folded
    batch_row = c.execute(
        "INSERT INTO event_batches (tenant_id, session_id, first_seq, received_at, "
        "events, prev_id) VALUES (?,?,?,?,?,?)",
        (
            tenant_id,
            session_id,
            b.total - len(events) + 1,
            now,
            orjson.dumps(events).decode(),
            prev_batch,
        ),
    ).lastrowid
    assert batch_row is not None
    if stored is None:
        c.execute(
            "INSERT INTO sessions (tenant_id, session_id, state, mood, confidence, "
            "signals, suggested_action, event_count, created_at, updated_at, last_url, "
            "last_batch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                tenant_id, session_id, engine.dumps(out.state), verdict.mood,
                verdict.confidence, orjson.dumps(b.signals).decode(), b.action, b.total,
                now, now, out.last_url, batch_row,
            ),
        )  # fmt: skip
    else:
        # The row catches up later (see ROW_LAG_S); until then a crash
        # replays the log from this batch.
        cache.stage_lag(key, batch_row)
    if b.page_moods:
        c.executemany(
            "INSERT INTO page_moods VALUES (?,?,?,?,?) ON CONFLICT "
            "(tenant_id, session_id, url) DO UPDATE SET mood=excluded.mood, "
            "updated_at=excluded.updated_at",
            [(tenant_id, session_id, u, m, now) for u, m in b.page_moods.items()],
        )
    if b.changed:
        cur = c.execute(
            "INSERT INTO mood_changes (tenant_id, session_id, previous_mood, mood, "
            "confidence, signals, suggested_action, url, occurred_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                tenant_id,
                session_id,
                b.previous,
                verdict.mood,
                verdict.confidence,
                orjson.dumps(b.signals).decode(),
                b.action,
                out.last_url,
                now,
            ),
        )
        enqueue_webhooks(
            c, tenant_id, session_id, int(cur.lastrowid or 0), b.previous, verdict.mood,
            verdict.confidence, b.signals, b.action, now,
        )  # fmt: skip
    response = b.response
    if batch_id is not None:
        c.execute(
            "INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, "
            "fingerprint) VALUES (?,?,?,?,?,?)",
            (
                tenant_id, batch_id, session_id, orjson.dumps(response).decode(), now,
                fingerprint,
            ),
        )  # fmt: skip
    cache.stage(key, hot_entry(session_id, b, now, batch_row))
    return AppendResult("stored", response, b.changed), b.changed


def count_session_month(
    c: sqlite3.Connection,
    cache: SessionCache,
    tenant_id: int,
    session_id: str,
    quota: Quota,
    new: bool,
) -> bool:
    """Count the session against this month's quota; False if that is refused.
    A ``new`` session under a provisional quota is only checked, not counted."""
    key = (tenant_id, quota.month, session_id)
    if cache.counted(key):
        return True
    if c.execute(
        "SELECT 1 FROM session_months WHERE tenant_id=? AND month=? AND session_id=?",
        (tenant_id, quota.month, session_id),
    ).fetchone():
        cache.stage_counted(key)
        return True  # already counted this month: open sessions keep working
    used_row = c.execute(
        "SELECT sessions FROM usage_months WHERE tenant_id=? AND month=?",
        (tenant_id, quota.month),
    ).fetchone()
    if shared.month_full(quota, used_row[0] if used_row else 0):
        return False
    if new and quota.provisional:
        return True  # counted by its next batch
    c.execute("INSERT INTO session_months VALUES (?,?,?)", (tenant_id, quota.month, session_id))
    c.execute(
        "INSERT INTO usage_months VALUES (?,?,1) ON CONFLICT (tenant_id, month) "
        "DO UPDATE SET sessions = sessions + 1",
        (tenant_id, quota.month),
    )
    cache.stage_counted(key)
    return True


# -- other session jobs ------------------------------------------------------------------


def add_feedback(c: sqlite3.Connection, cache: SessionCache, feedback: Feedback) -> bool:
    key = (feedback.tenant_id, feedback.session_id)
    row = c.execute("SELECT mood FROM sessions WHERE tenant_id=? AND session_id=?", key).fetchone()
    if row is None:
        return False
    hot = cache.current(key)
    mood = row[0] if hot is None else hot.record.mood  # the row may lag
    c.execute(
        "INSERT INTO feedback (tenant_id, session_id, mood, action_taken, was_helpful, "
        "notes, created_at, trusted) VALUES (?,?,?,?,?,?,?,?)",
        (
            *key, mood, feedback.action_taken, feedback.was_helpful, feedback.notes,
            feedback.now, feedback.trusted,
        ),
    )  # fmt: skip
    c.execute("UPDATE sessions SET has_feedback = 1 WHERE tenant_id=? AND session_id=?", key)
    return True


def delete_session(
    c: sqlite3.Connection, cache: SessionCache, tenant_id: int, session_id: str
) -> bool:
    key = (tenant_id, session_id)
    hot = cache.current(key)
    row = c.execute(
        "DELETE FROM sessions WHERE tenant_id=? AND session_id=? RETURNING last_batch",
        key,
    ).fetchone()
    if row is not None:
        delete_batches(c, tenant_id, session_id, hot.last_batch if hot else row[0])
    for table in shared.SESSION_TABLES:
        c.execute(f"DELETE FROM {table} WHERE tenant_id=? AND session_id=?", key)
    cache.stage_evict(key)
    return row is not None


def purge(
    c: sqlite3.Connection, cache: SessionCache, found: list[tuple[int, str, int | None]]
) -> int:
    """Erase the sessions ``found`` (tenant, session, newest batch), all they hold."""
    for tenant_id, session_id, last in found:
        delete_batches(c, tenant_id, session_id, last)
    victims = [(t, sid) for t, sid, _ in found]
    for table in ("sessions", *shared.SESSION_TABLES):
        c.executemany(f"DELETE FROM {table} WHERE tenant_id=? AND session_id=?", victims)
    for victim in victims:
        cache.stage_evict(victim)
    return len(victims)


def export(
    c: sqlite3.Connection,
    tenant_id: int,
    session_id: str,
    newest: int | None,
    after_seq: int,
    limit: int,
) -> list[dict[str, Any]] | None:
    """The session's events after ``after_seq`` (at most ``limit``; 0: all), walking
    its chain from ``newest`` (None: from its row); None if there is no session."""
    row = c.execute(
        "SELECT last_batch FROM sessions WHERE tenant_id=? AND session_id=?",
        (tenant_id, session_id),
    ).fetchone()
    if row is None:
        return None
    # The chain's batches (id, first seq), oldest first; then only the
    # ones this page needs are read in full.
    chain = c.execute(
        CHAIN + "SELECT b.id, b.first_seq FROM chain "
        "JOIN event_batches b ON b.id = chain.id "
        "WHERE b.tenant_id=? AND b.session_id=? ORDER BY b.first_seq",
        (newest or row[0], tenant_id, session_id),
    ).fetchall()
    # The batch holding seq after_seq + 1 is the last one starting at or before it.
    start = max(0, bisect.bisect_right([f for _, f in chain], after_seq + 1) - 1)
    wanted: list[int] = []
    for i in range(start, len(chain)):
        if limit and wanted and chain[i][1] - 1 - after_seq >= limit:
            break  # the batches so far already hold a full page
        wanted.append(chain[i][0])
    out: list[dict[str, Any]] = []
    for first_seq, received_at, events in c.execute(
        f"SELECT first_seq, received_at, events FROM event_batches WHERE id IN "
        f"({','.join('?' * len(wanted))}) ORDER BY first_seq",
        wanted,
    ):
        for seq, ev in enumerate(orjson.loads(events), start=first_seq):
            if seq > after_seq:
                out.append({"seq": seq, **ev, "received_at": received_at})
    return out[:limit] if limit else out


def get_row(c: sqlite3.Connection, tenant_id: int, session_id: str) -> HotEntry | None:
    """A session's verdict as its row holds it (a read: no engine state)."""
    row = c.execute(
        "SELECT mood, confidence, signals, suggested_action, event_count, updated_at, "
        "last_url, last_batch FROM sessions WHERE tenant_id=? AND session_id=?",
        (tenant_id, session_id),
    ).fetchone()
    if row is None:
        return None
    record = SessionRecord(
        session_id, row[0], row[1], tuple(orjson.loads(row[2])), row[3], row[4],
        row[5], row[6],
    )  # fmt: skip
    return HotEntry(record, None, row[7])


# -- rows that lag the log --------------------------------------------------------------


def catch_up_rows(c: sqlite3.Connection, cache: SessionCache, keys: list[SessionKey]) -> None:
    """Bring the rows of ``keys`` up to their cached entries."""
    rows = []
    for key in keys:
        entry = cache.current(key)
        if entry is not None and entry.state is not None:  # else erased meanwhile
            rows.append(session_row(key, entry))
    if rows:
        c.executemany(UPDATE_SESSION_ROW, rows)


def replay(c: sqlite3.Connection) -> None:
    """Bring session rows up to the event log after a crash (or after another
    process changed the database under our caches). Within a transaction."""
    row = c.execute("SELECT from_batch FROM session_replay").fetchone()
    if row is None or row[0] is None:
        return
    # Each session as folded so far; None: erased.
    folded: dict[SessionKey, StoredSession | None] = {}
    replayed: dict[SessionKey, HotEntry] = {}
    for batch, tenant_id, session_id, first_seq, received_at, events in c.execute(
        "SELECT id, tenant_id, session_id, first_seq, received_at, events "
        "FROM event_batches WHERE id >= ? ORDER BY id",
        (row[0],),
    ).fetchall():
        key = (tenant_id, session_id)
        if key not in folded:
            stored = c.execute(
                "SELECT state, event_count, last_url, mood FROM sessions "
                "WHERE tenant_id=? AND session_id=?",
                key,
            ).fetchone()
            folded[key] = (
                None if stored is None else StoredSession(engine.loads(stored[0]), *stored[1:])
            )
        now = folded[key]
        if now is None or first_seq <= now.event_count:
            continue  # erased since, or the row has this batch already
        b = apply_batch(session_id, now, orjson.loads(events), None)
        folded[key] = StoredSession(
            b.folded.state, b.total, b.folded.last_url, b.folded.verdict.mood
        )
        replayed[key] = hot_entry(session_id, b, received_at, batch)
    rows = [session_row(key, entry) for key, entry in replayed.items()]
    c.executemany(UPDATE_SESSION_ROW, rows)
    c.execute("UPDATE session_replay SET from_batch=NULL")
    if rows:
        log.info("replayed the event log into %d session row(s)", len(rows))
