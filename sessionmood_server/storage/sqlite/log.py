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
from sessionmood_server.records import (
    AppendResult,
    Batch,
    Feedback,
    MoodChangeRecord,
    Quota,
    SessionRecord,
)
from sessionmood_server.scoring import STORED_STEPS, AppliedBatch, StoredSession, apply_batch
from sessionmood_server.storage import shared
from sessionmood_server.storage.shared import Row
from sessionmood_server.storage.sqlite.cache import HotEntry, SessionCache, SessionKey
from sessionmood_server.storage.sqlite.queries import ExpiredSession, enqueue_webhooks

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
        out.last_url, b.holdout,
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
    if batch.batch_id is not None:
        seen = _seen(c, batch, batch.batch_id)
        if seen is not None:
            return seen, False
    key = (batch.tenant_id, batch.session_id)
    # An earlier batch in this same group may have moved the session on.
    hot = cache.current(key)
    stored: StoredSession | None
    if hot is not None and hot.state is not None:
        rec = hot.record
        # A copy: if this group rolls back, the cached state is still right.
        stored = StoredSession(
            hot.state.copy(), rec.event_count, rec.last_url, rec.mood, rec.holdout
        )
        prev_batch = hot.last_batch
    else:
        stored, prev_batch = _stored(c, key)
    refused = shared.refuse_batch(
        None if stored is None else stored.event_count, len(batch.events), batch.max_events,
        batch.admission,
    )  # fmt: skip
    if refused is not None:
        return refused, False
    if not count_session_month(
        c, cache, batch.tenant_id, batch.session_id, batch.quota, stored is None
    ):
        return AppendResult("quota"), False
    held = stored is None and batch.opens_held_out()
    b = apply_batch(batch.session_id, stored, batch.events, batch.policy, held)
    batch_row = _insert_events(c, batch, b, prev_batch)
    if stored is None:
        _insert_session(c, batch, b, batch_row)
    else:
        # The row catches up later (see ROW_LAG_S); until then a crash
        # replays the log from this batch.
        cache.stage_lag(key, batch_row)
    if b.page_moods:
        _record_pages(c, batch, b)
    if b.folded.elements:
        _record_elements(c, batch, b)
    if b.visits:
        _record_journey(c, batch, b)
    if b.struggled_since is not None:
        c.execute(STRUGGLED_SQL, (batch.tenant_id, batch.session_id, b.struggled_since))
    if b.exposure is not None:
        c.execute(
            "INSERT INTO exposures VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (batch.tenant_id, batch.session_id, *b.exposure, int(b.holdout), batch.now),
        )
    if b.changed:
        _record_change(c, batch, b)
    if batch.batch_id is not None:
        _record_batch_id(c, batch, batch.batch_id, b)
    cache.stage(key, hot_entry(batch.session_id, b, batch.now, batch_row))
    return AppendResult("stored", b.response, b.changed), b.changed


def _seen(c: sqlite3.Connection, batch: Batch, batch_id: str) -> AppendResult | None:
    """What the batch id means if it was seen before (None: it was not)."""
    seen = c.execute(
        "SELECT session_id, response, fingerprint FROM batches WHERE tenant_id=? AND batch_id=?",
        (batch.tenant_id, batch_id),
    ).fetchone()
    if seen is None:
        return None
    return shared.seen_batch(
        batch.session_id, batch.fingerprint, seen["session_id"], seen["response"],
        seen["fingerprint"], orjson.loads,
    )  # fmt: skip


def _stored(c: sqlite3.Connection, key: SessionKey) -> tuple[StoredSession | None, int | None]:
    """The session as its row holds it and its newest batch; (None, None): a new one."""
    row = c.execute(
        "SELECT state, event_count, last_url, mood, holdout, last_batch FROM sessions "
        "WHERE tenant_id=? AND session_id=?",
        key,
    ).fetchone()
    if row is None:
        return None, None
    return _stored_session(row), row["last_batch"]


def _stored_session(row: Row) -> StoredSession:
    return StoredSession(
        engine.loads(row["state"]), row["event_count"], row["last_url"], row["mood"],
        bool(row["holdout"]),
    )  # fmt: skip


def _insert_events(
    c: sqlite3.Connection, batch: Batch, b: AppliedBatch, prev_batch: int | None
) -> int:
    """Append the batch's events to the log, after the session's ``prev_batch``."""
    events = batch.events
    batch_row = c.execute(
        "INSERT INTO event_batches (tenant_id, session_id, first_seq, received_at, "
        "events, prev_id) VALUES (?,?,?,?,?,?)",
        (
            batch.tenant_id, batch.session_id, b.total - len(events) + 1, batch.now,
            orjson.dumps(events).decode(), prev_batch,
        ),
    ).lastrowid  # fmt: skip
    assert batch_row is not None
    return batch_row


def _insert_session(c: sqlite3.Connection, batch: Batch, b: AppliedBatch, batch_row: int) -> None:
    verdict, out, now = b.folded.verdict, b.folded, batch.now
    c.execute(
        "INSERT INTO sessions (tenant_id, session_id, state, mood, confidence, "
        "signals, suggested_action, event_count, created_at, updated_at, last_url, "
        "last_batch, holdout) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            batch.tenant_id, batch.session_id, engine.dumps(out.state), verdict.mood,
            verdict.confidence, orjson.dumps(b.signals).decode(), b.action, b.total,
            now, now, out.last_url, batch_row, int(b.holdout),
        ),
    )  # fmt: skip


def _record_pages(c: sqlite3.Connection, batch: Batch, b: AppliedBatch) -> None:
    c.executemany(
        "INSERT INTO page_moods VALUES (?,?,?,?,?) ON CONFLICT "
        "(tenant_id, session_id, url) DO UPDATE SET mood=excluded.mood, "
        "updated_at=excluded.updated_at",
        [
            (batch.tenant_id, batch.session_id, url, mood, batch.now)
            for url, mood in b.page_moods.items()
        ],
    )


# What a batch did to each element adds to the session's row for it.
ELEMENTS_SQL = (
    "INSERT INTO element_sessions VALUES (?,?,?,?,?,?,?,?,?,0,?,?) ON CONFLICT "
    "(tenant_id, page, target, session_id) DO UPDATE SET clicks=clicks+excluded.clicks, "
    "rage_clicks=rage_clicks+excluded.rage_clicks, dead_clicks=dead_clicks+excluded.dead_clicks, "
    "error_clicks=error_clicks+excluded.error_clicks, "
    "hesitations=hesitations+excluded.hesitations, last_ts=max(last_ts, excluded.last_ts), "
    "updated_at=excluded.updated_at"
)
# The session turned frustrated or confused: the elements it acted on since ? struggled.
STRUGGLED_SQL = (
    "UPDATE element_sessions SET frustrated=1 WHERE tenant_id=? AND session_id=? "
    "AND last_ts >= ? AND frustrated=0"
)


def _record_elements(c: sqlite3.Connection, batch: Batch, b: AppliedBatch) -> None:
    t, sid, now = batch.tenant_id, batch.session_id, batch.now
    c.executemany(
        ELEMENTS_SQL,
        [
            (t, sid, page, target, e.clicks, e.rage_clicks, e.dead_clicks, e.error_clicks,
             e.hesitations, e.last_ts, now)
            for (page, target), e in b.folded.elements.items()
        ],
    )  # fmt: skip


def _record_journey(c: sqlite3.Connection, batch: Batch, b: AppliedBatch) -> None:
    """The batch's pages as steps: the page it was on before is its latest step
    (updated); every other one is the next step, up to ``STORED_STEPS``."""
    t, sid, now = batch.tenant_id, batch.session_id, batch.now
    for visit in b.visits:
        args = (visit.url, visit.mood, int(visit.frustrated), now, t, sid)
        if visit.continued and c.execute(shared.JOURNEY_CONTINUE_SQL.format(p="?"), args).rowcount:
            continue
        c.execute(shared.JOURNEY_STEP_SQL.format(p="?"), (*args, STORED_STEPS))


def _record_change(c: sqlite3.Connection, batch: Batch, b: AppliedBatch) -> None:
    """The mood change and its webhook outbox rows."""
    verdict, out = b.folded.verdict, b.folded
    signals = orjson.dumps(b.signals).decode()
    cur = c.execute(
        "INSERT INTO mood_changes (tenant_id, session_id, previous_mood, mood, "
        "confidence, signals, suggested_action, url, occurred_at, holdout) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            batch.tenant_id, batch.session_id, b.previous, verdict.mood, verdict.confidence,
            signals, b.action, out.last_url, batch.now, int(b.holdout),
        ),
    )  # fmt: skip
    change = MoodChangeRecord(
        id=int(cur.lastrowid or 0),
        session_id=batch.session_id,
        previous_mood=b.previous,  # type: ignore[arg-type]  # a mood, stored as text
        mood=verdict.mood,
        confidence=verdict.confidence,
        signals=tuple(b.signals),
        suggested_action=b.action,
        url=out.last_url,
        occurred_at=batch.now,
        holdout=b.holdout,
    )
    enqueue_webhooks(c, change, batch.tenant_id, batch.now)


def _record_batch_id(c: sqlite3.Connection, batch: Batch, batch_id: str, b: AppliedBatch) -> None:
    """The idempotency record: a retry of this batch id gets this answer again."""
    c.execute(
        "INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, "
        "fingerprint) VALUES (?,?,?,?,?,?)",
        (
            batch.tenant_id, batch_id, batch.session_id, orjson.dumps(b.response).decode(),
            batch.now, batch.fingerprint,
        ),
    )  # fmt: skip


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
    used = c.execute(
        "SELECT sessions FROM usage_months WHERE tenant_id=? AND month=?",
        (tenant_id, quota.month),
    ).fetchone()
    if shared.month_full(quota, used["sessions"] if used else 0):
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
    mood = row["mood"] if hot is None else hot.record.mood  # the row may lag
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
        delete_batches(c, tenant_id, session_id, hot.last_batch if hot else row["last_batch"])
    for table in shared.SESSION_TABLES:
        c.execute(f"DELETE FROM {table} WHERE tenant_id=? AND session_id=?", key)
    cache.stage_evict(key)
    return row is not None


def purge(c: sqlite3.Connection, cache: SessionCache, found: list[ExpiredSession]) -> int:
    """Erase the sessions ``found``, all they hold."""
    for expired in found:
        delete_batches(c, expired.tenant_id, expired.session_id, expired.last_batch)
    victims = [(expired.tenant_id, expired.session_id) for expired in found]
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
        (newest or row["last_batch"], tenant_id, session_id),
    ).fetchall()
    ids = [link["id"] for link in chain]
    firsts = [link["first_seq"] for link in chain]
    # The batch holding seq after_seq + 1 is the last one starting at or before it.
    start = max(0, bisect.bisect_right(firsts, after_seq + 1) - 1)
    wanted: list[int] = []
    for i in range(start, len(chain)):
        if limit and wanted and firsts[i] - 1 - after_seq >= limit:
            break  # the batches so far already hold a full page
        wanted.append(ids[i])
    out: list[dict[str, Any]] = []
    for stored in c.execute(
        f"SELECT first_seq, received_at, events FROM event_batches WHERE id IN "
        f"({','.join('?' * len(wanted))}) ORDER BY first_seq",
        wanted,
    ):
        received_at = stored["received_at"]
        for seq, ev in enumerate(orjson.loads(stored["events"]), start=stored["first_seq"]):
            if seq > after_seq:
                out.append({"seq": seq, **ev, "received_at": received_at})
    return out[:limit] if limit else out


def get_row(c: sqlite3.Connection, tenant_id: int, session_id: str) -> HotEntry | None:
    """A session's verdict as its row holds it (a read: no engine state)."""
    row = c.execute(
        "SELECT mood, confidence, signals, suggested_action, event_count, updated_at, "
        "last_url, last_batch, holdout FROM sessions WHERE tenant_id=? AND session_id=?",
        (tenant_id, session_id),
    ).fetchone()
    if row is None:
        return None
    record = SessionRecord(
        session_id=session_id,
        mood=row["mood"],
        confidence=row["confidence"],
        signals=tuple(orjson.loads(row["signals"])),
        suggested_action=row["suggested_action"],
        event_count=row["event_count"],
        updated_at=row["updated_at"],
        last_url=row["last_url"],
        holdout=bool(row["holdout"]),
    )
    return HotEntry(record, None, row["last_batch"])


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
    if row is None or row["from_batch"] is None:
        return
    # Each session as folded so far; None: erased.
    folded: dict[SessionKey, StoredSession | None] = {}
    replayed: dict[SessionKey, HotEntry] = {}
    for logged in c.execute(
        "SELECT id, tenant_id, session_id, first_seq, received_at, events "
        "FROM event_batches WHERE id >= ? ORDER BY id",
        (row["from_batch"],),
    ).fetchall():
        session_id = logged["session_id"]
        key = (logged["tenant_id"], session_id)
        if key not in folded:
            folded[key], _ = _stored(c, key)
        now = folded[key]
        if now is None or logged["first_seq"] <= now.event_count:
            continue  # erased since, or the row has this batch already
        b = apply_batch(session_id, now, orjson.loads(logged["events"]), None)
        folded[key] = StoredSession(
            b.folded.state, b.total, b.folded.last_url, b.folded.verdict.mood, b.holdout
        )
        replayed[key] = hot_entry(session_id, b, logged["received_at"], logged["id"])
    rows = [session_row(key, entry) for key, entry in replayed.items()]
    c.executemany(UPDATE_SESSION_ROW, rows)
    c.execute("UPDATE session_replay SET from_batch=NULL")
    if rows:
        log.info("replayed the event log into %d session row(s)", len(rows))
