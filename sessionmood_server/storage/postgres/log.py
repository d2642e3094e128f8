"""The PostgreSQL backend's sessions: their events, rows and batch ids, the
statement that stores a batch, and the functions that run them on a
connection.

Each function takes the connection it runs on, inside the transaction
``storage.py`` opened (holding the advisory locks ``locks.py`` orders), and
reads rows by column name. The fast path for sessions this replica holds is
``cached.py``; what it does not decide comes here (``append``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from sessionmood_server import engine
from sessionmood_server.outbox import webhook_payload
from sessionmood_server.records import AppendResult, Batch, Feedback, Quota, SessionRecord
from sessionmood_server.scoring import (
    STORED_STEPS,
    AppliedBatch,
    EventColumns,
    StoredSession,
    apply_batch,
    event_columns,
)
from sessionmood_server.storage import shared
from sessionmood_server.storage.postgres.cached import Cached
from sessionmood_server.storage.postgres.listener import CHANGES_CHANNEL
from sessionmood_server.storage.postgres.locks import lock_key
from sessionmood_server.storage.shared import Row

# Everything stored about a session besides its row in `sessions` (erasure, purge).
SESSION_TABLES = ("events", *shared.SESSION_TABLES)


class Rollback(Exception):
    """Raised inside a transaction to undo it and still return ``result``."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


# -- a batch: what it finds -----------------------------------------------------------

# Everything the full path decides on, in one read: the batch id seen before
# ($4), the session ($2) as stored, whether it is counted in month $3 yet, and
# the month's count so far.
READ_BATCH_SQL = (
    "SELECT b.session_id AS seen_session, b.response AS seen_response, "
    "b.fingerprint AS seen_fingerprint, s.state, s.event_count, s.last_url, s.mood, s.holdout, "
    "EXISTS (SELECT 1 FROM session_months m WHERE m.tenant_id = $1 "
    "AND m.month = $3 AND m.session_id = $2) AS counted, "
    "(SELECT u.sessions FROM usage_months u WHERE u.tenant_id = $1 AND u.month = $3) AS used "
    "FROM (SELECT 1) one "
    "LEFT JOIN batches b ON b.tenant_id = $1 AND b.batch_id = $4 "
    "LEFT JOIN sessions s ON s.tenant_id = $1 AND s.session_id = $2"
)


def _refusal(found: Row, batch: Batch) -> AppendResult | None:
    """What ``READ_BATCH_SQL``'s row decides before anything is written: a
    batch id seen before, a refusal (the session's cap, the new-session
    limits, a month used up), or None: store it."""
    if found["seen_session"] is not None:
        return shared.seen_batch(
            batch.session_id,
            batch.fingerprint,
            found["seen_session"],
            found["seen_response"],
            found["seen_fingerprint"],
            orjson.loads,
        )
    new = found["state"] is None
    refused = shared.refuse_batch(
        None if new else found["event_count"], len(batch.events), batch.max_events, batch.admission
    )
    if refused is not None:
        return refused
    # A provisional session is counted by its next batch; until then it is
    # only refused when the month is already used up.
    used = (found["used"] or 0) if new and batch.quota.provisional else 0
    if not found["counted"] and shared.month_full(batch.quota, used):
        return AppendResult("quota")
    return None


# -- a batch: what it writes ------------------------------------------------------------

# Events, session, pages and the idempotency record: one round trip. Its
# parameters come from ``append_arguments``.
APPEND_SQL = (
    "WITH ev AS (INSERT INTO events (tenant_id, session_id, seq, type, ts, "
    "received_at, fields) SELECT $1::bigint, $2::text, x.seq, x.type, x.ts, "
    "$3::float8, x.fields "
    "FROM unnest($4::bigint[], $5::text[], $6::float8[], $7::text[]) "
    "AS x(seq, type, ts, fields)), "
    "pm AS (INSERT INTO page_moods (tenant_id, session_id, url, url_key, mood, "
    "updated_at) SELECT $1::bigint, $2::text, p.url, "
    "sha256(convert_to(p.url, 'UTF8')), p.mood, $3::float8 "
    "FROM unnest($8::text[], $9::text[]) "
    "AS p(url, mood) ON CONFLICT (tenant_id, session_id, url_key) DO UPDATE "
    "SET mood = excluded.mood, updated_at = excluded.updated_at), "
    "bt AS (INSERT INTO batches (tenant_id, batch_id, session_id, response, "
    "created_at, fingerprint) SELECT $1::bigint, $10::text, $2::text, $11::text, "
    "$3::float8, $19::text WHERE $10::text IS NOT NULL) "
    "INSERT INTO sessions (tenant_id, session_id, state, mood, confidence, signals, "
    "suggested_action, event_count, created_at, updated_at, last_url, holdout) "
    "VALUES ($1, $2, $12, $13, $14, $15, $16, $17, $3, $3, $18, $20) "
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET state = excluded.state, "
    "mood = excluded.mood, confidence = excluded.confidence, "
    "signals = excluded.signals, suggested_action = excluded.suggested_action, "
    "event_count = excluded.event_count, updated_at = excluded.updated_at, "
    "last_url = excluded.last_url, version = nextval('session_versions') "
    "RETURNING version"
)


class BatchColumns(NamedTuple):
    """What ``APPEND_SQL`` writes for one folded batch."""

    tenant_id: int
    session_id: str
    now: float
    events: EventColumns
    page_moods: Mapping[str, str]  # url -> mood
    batch_id: str | None
    response: str | None  # stored for replays when the batch has an id
    fingerprint: str | None
    state: str
    mood: str
    confidence: float
    signals: list[str]
    action: str
    event_count: int
    last_url: str | None
    holdout: bool  # a new session's group (an existing row keeps its own)


def batch_columns(batch: Batch, b: AppliedBatch) -> BatchColumns:
    """The columns of ``batch`` folded into ``b``."""
    verdict, out = b.folded.verdict, b.folded
    return BatchColumns(
        tenant_id=batch.tenant_id,
        session_id=batch.session_id,
        now=batch.now,
        events=event_columns(batch.events, b.total - len(batch.events) + 1),
        page_moods=b.page_moods,
        batch_id=batch.batch_id,
        response=orjson.dumps(b.response).decode() if batch.batch_id is not None else None,
        fingerprint=batch.fingerprint,
        state=engine.dumps(out.state),
        mood=verdict.mood,
        confidence=verdict.confidence,
        signals=b.signals,
        action=b.action,
        event_count=b.total,
        last_url=out.last_url,
        holdout=b.holdout,
    )


def append_arguments(cols: BatchColumns) -> tuple[Any, ...]:
    """``APPEND_SQL``'s parameters, $1 to $20 in order."""
    events = cols.events
    return (
        cols.tenant_id,
        cols.session_id,
        cols.now,
        events.seqs,
        events.types,
        [float(ts) for ts in events.ts],
        events.fields,
        list(cols.page_moods),
        list(cols.page_moods.values()),
        cols.batch_id,
        cols.response,
        cols.state,
        cols.mood,
        cols.confidence,
        cols.signals,
        cols.action,
        cols.event_count,
        cols.last_url,
        cols.fingerprint,
        cols.holdout,
    )


async def append(c: Any, batch: Batch, schema: str) -> tuple[AppendResult, Cached | None]:
    """Store ``batch`` on the full path (see ``Storage.append_events``), in ``c``'s
    transaction holding its batch id's and session's locks.

    Returns the result, and the session as now stored (None unless stored),
    for the replica's cache. A refusal found only after writing (the month's
    last session went to another replica meanwhile) raises ``Rollback``.
    ``schema`` names the deployment in lock keys and notifications.
    """
    found = await c.fetchrow(
        READ_BATCH_SQL, batch.tenant_id, batch.session_id, batch.quota.month, batch.batch_id
    )
    refused = _refusal(found, batch)
    if refused is not None:
        return refused, None
    new = found["state"] is None
    stored = None if new else _stored_session(found)
    held = stored is None and batch.opens_held_out()
    b = apply_batch(batch.session_id, stored, batch.events, batch.policy, held)
    version = await c.fetchval(APPEND_SQL, *append_arguments(batch_columns(batch, b)))
    if (
        not found["counted"]
        and not (new and batch.quota.provisional)
        and not await count_session_month(c, batch.tenant_id, batch.session_id, batch.quota)
    ):
        raise Rollback(AppendResult("quota"))
    await record_struggle(c, batch, b)
    if b.changed:
        await record_change(c, batch, b, schema)
    out = b.folded
    entry = Cached(version, out.state, b.total, out.last_url, out.verdict.mood, b.holdout)
    return AppendResult("stored", b.response, b.changed), entry


def _stored_session(row: Row) -> StoredSession:
    return StoredSession(
        engine.loads(row["state"]), row["event_count"], row["last_url"], row["mood"],
        row["holdout"],
    )  # fmt: skip


# What a batch did to each element adds to the session's row for it (the fast
# path's sm_append_cached, migration 10, does the same).
ELEMENTS_SQL = (
    "INSERT INTO element_sessions AS e (tenant_id, session_id, page_key, page, target, "
    "clicks, rage_clicks, dead_clicks, error_clicks, hesitations, last_ts, updated_at) "
    "SELECT $1::bigint, $2::text, sha256(convert_to(x.page, 'UTF8')), x.page, x.target, "
    "x.clicks, x.rage, x.dead, x.error, x.hes, x.ts, $3::float8 "
    "FROM unnest($4::text[], $5::text[], $6::int[], $7::int[], $8::int[], $9::int[], "
    "$10::int[], $11::float8[]) AS x(page, target, clicks, rage, dead, error, hes, ts) "
    "ON CONFLICT (tenant_id, session_id, page_key, target) DO UPDATE "
    "SET clicks = e.clicks + excluded.clicks, rage_clicks = e.rage_clicks + excluded.rage_clicks, "
    "dead_clicks = e.dead_clicks + excluded.dead_clicks, "
    "error_clicks = e.error_clicks + excluded.error_clicks, "
    "hesitations = e.hesitations + excluded.hesitations, "
    "last_ts = GREATEST(e.last_ts, excluded.last_ts), updated_at = excluded.updated_at"
)
# The session turned frustrated or confused: the elements it acted on since $3 struggled.
STRUGGLED_SQL = (
    "UPDATE element_sessions SET frustrated = 1 WHERE tenant_id = $1 AND session_id = $2 "
    "AND last_ts >= $3 AND frustrated = 0"
)
JOURNEY_CONTINUE_SQL = shared.JOURNEY_CONTINUE_SQL.format(p="$")
EXPOSURE_SQL = "INSERT INTO exposures VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
JOURNEY_STEP_SQL = shared.JOURNEY_STEP_SQL.format(p="$")


async def record_struggle(c: Any, batch: Batch, b: AppliedBatch) -> None:
    """Elements, journey steps, struggle marks and the exposure of a batch on
    the full path."""
    t, sid, now = batch.tenant_id, batch.session_id, batch.now
    elements = b.folded.elements
    if elements:
        tallies = elements.values()
        await c.execute(
            ELEMENTS_SQL, t, sid, now, [page for page, _ in elements],
            [target for _, target in elements], [e.clicks for e in tallies],
            [e.rage_clicks for e in tallies], [e.dead_clicks for e in tallies],
            [e.error_clicks for e in tallies], [e.hesitations for e in tallies],
            [e.last_ts for e in tallies],
        )  # fmt: skip
    for visit in b.visits:
        args = (visit.url, visit.mood, int(visit.frustrated), now, t, sid)
        if visit.continued and await c.fetchval(JOURNEY_CONTINUE_SQL + " RETURNING 1", *args):
            continue
        await c.execute(JOURNEY_STEP_SQL, *args, STORED_STEPS)
    if b.struggled_since is not None:
        await c.execute(STRUGGLED_SQL, t, sid, b.struggled_since)
    if b.exposure is not None:
        await c.execute(EXPOSURE_SQL, t, sid, *b.exposure, b.holdout, now)


# Count session $5 in month $2 unless the plan ($3 blocks, $4 limit) refuses it.
COUNT_MONTH_SQL = (
    "WITH u AS (INSERT INTO usage_months AS m (tenant_id, month, sessions) "
    "VALUES ($1, $2, 1) ON CONFLICT (tenant_id, month) DO UPDATE "
    "SET sessions = m.sessions + 1 WHERE NOT $3 OR m.sessions < $4 RETURNING 1) "
    "INSERT INTO session_months (tenant_id, month, session_id) "
    "SELECT $1::bigint, $2::text, $5::text FROM u RETURNING 1"
)


async def count_session_month(c: Any, tenant_id: int, session_id: str, quota: Quota) -> bool:
    """Count a session new this month; False if the plan's limit refuses it.

    The upsert locks the (tenant, month) row until COMMIT and increments
    only below the limit, judged on the latest committed count: replicas
    racing for the last free session are served one at a time, exactly.
    Runs last among the batch's writes, so the lock is held briefly.
    """
    ok = await c.fetchval(
        COUNT_MONTH_SQL, tenant_id, quota.month, quota.blocks, quota.limit, session_id
    )
    return bool(ok)


# The mood change, after the tenant lock ($10) and with the NOTIFY ($11, $12);
# returns its id and the webhooks that want it.
RECORD_CHANGE_SQL = (
    "INSERT INTO mood_changes (tenant_id, session_id, previous_mood, mood, confidence, "
    "signals, suggested_action, url, occurred_at, holdout) "
    "SELECT $1::bigint, $2::text, $3::text, $4::text, $5::float8, $6::text[], $7::text, "
    "$8::text, $9::float8, $13::boolean "
    "FROM (SELECT pg_advisory_xact_lock($10)) l, (SELECT pg_notify($11, $12)) n "
    "RETURNING id, (SELECT array_agg(w.id) FROM webhooks w WHERE w.tenant_id = $1 "
    "AND w.deleted_at IS NULL AND (w.moods IS NULL OR $4 = ANY(w.moods))) AS hooks"
)
ENQUEUE_SQL = (
    "INSERT INTO webhook_deliveries (tenant_id, webhook_id, session_id, change_id, "
    "payload, status, next_attempt_at, created_at) "
    "SELECT $1::bigint, h, $2::text, $3::bigint, $4::text, 'pending', $5::float8, "
    "$5::float8 FROM unnest($6::text[]) h"
)


async def record_change(c: Any, batch: Batch, b: AppliedBatch, schema: str) -> None:
    """The mood change, its webhook outbox rows and the NOTIFY, in the batch's transaction.

    The tenant lock is taken (in the same statement, before the id is drawn)
    and held to COMMIT, so one tenant's change ids become visible in id
    order: a stream that has read id N can never later find a smaller one.
    """
    verdict, now = b.folded.verdict, batch.now
    row = await c.fetchrow(
        RECORD_CHANGE_SQL, batch.tenant_id, batch.session_id, b.previous, verdict.mood,
        verdict.confidence, b.signals, b.action, b.folded.last_url, now,
        lock_key("tenant", schema, batch.tenant_id), CHANGES_CHANNEL,
        f"{schema}:{batch.tenant_id}", b.holdout,
    )  # fmt: skip
    if not row["hooks"]:
        return
    payload = webhook_payload(
        row["id"], batch.session_id, b.previous, verdict.mood, verdict.confidence, b.signals,
        b.action, now, b.holdout,
    )  # fmt: skip
    await c.execute(
        ENQUEUE_SQL, batch.tenant_id, batch.session_id, row["id"], payload, now,
        sorted(row["hooks"]),
    )  # fmt: skip


# -- reads ---------------------------------------------------------------------------------

GET_SESSION_SQL = (
    "SELECT mood, confidence, signals, suggested_action, event_count, updated_at, last_url, "
    "holdout "
    "FROM sessions WHERE tenant_id = $1 AND session_id = $2"
)


async def get_session(c: Any, tenant_id: int, session_id: str) -> SessionRecord | None:
    row = await c.fetchrow(GET_SESSION_SQL, tenant_id, session_id)
    if row is None:
        return None
    return SessionRecord(
        session_id=session_id,
        mood=row["mood"],
        confidence=row["confidence"],
        signals=tuple(row["signals"]),
        suggested_action=row["suggested_action"],
        event_count=row["event_count"],
        updated_at=row["updated_at"],
        last_url=row["last_url"],
        holdout=row["holdout"],
    )


SESSION_EXISTS_SQL = "SELECT 1 FROM sessions WHERE tenant_id = $1 AND session_id = $2"
EXPORT_SQL = (
    "SELECT seq, type, ts, received_at, fields FROM events "
    "WHERE tenant_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
)


async def export(
    c: Any, tenant_id: int, session_id: str, after_seq: int, limit: int
) -> list[dict[str, Any]] | None:
    """The session's events after ``after_seq`` (at most ``limit``; 0: all); None if
    there is no such session. In one read-only transaction: one snapshot for both."""
    if not await c.fetchval(SESSION_EXISTS_SQL, tenant_id, session_id):
        return None
    out = []
    for row in await c.fetch(EXPORT_SQL, tenant_id, session_id, after_seq, limit or None):
        ev: dict[str, Any] = {"seq": row["seq"], "type": row["type"], "ts": row["ts"]}
        if row["fields"]:
            ev.update(orjson.loads(row["fields"]))
        ev["received_at"] = row["received_at"]
        out.append(ev)
    return out


# -- other session writes ----------------------------------------------------------------

FEEDBACK_SQL = (
    "WITH s AS (UPDATE sessions SET has_feedback = true WHERE tenant_id = $1 "
    "AND session_id = $2 RETURNING mood) "
    "INSERT INTO feedback (tenant_id, session_id, mood, action_taken, was_helpful, "
    "notes, created_at, trusted) SELECT $1::bigint, $2::text, s.mood, $3::text, "
    "$4::boolean, $5::text, $6::float8, $7::boolean FROM s RETURNING 1"
)


async def add_feedback(c: Any, feedback: Feedback) -> bool:
    """Under the session lock, so an erasure running now cannot miss this row."""
    ok = await c.fetchval(
        FEEDBACK_SQL, feedback.tenant_id, feedback.session_id, feedback.action_taken,
        feedback.was_helpful, feedback.notes, feedback.now, feedback.trusted,
    )  # fmt: skip
    return bool(ok)


# Erase sessions listed in $1 (tenant ids) / $2 (session ids), plus everything
# stored about them, in one statement. `gone` filters again on what still
# exists (and, for purges, is still expired) now that the sessions are locked.
_ERASE_SQL = (
    "WITH gone AS (DELETE FROM sessions s USING unnest($1::bigint[], $2::text[]) v(tid, sid) "
    "WHERE s.tenant_id = v.tid AND s.session_id = v.sid {extra} "
    "RETURNING s.tenant_id, s.session_id)"
    + "".join(
        f", d_{t} AS (DELETE FROM {t} x USING gone g "
        "WHERE x.tenant_id = g.tenant_id AND x.session_id = g.session_id)"
        for t in SESSION_TABLES
    )
    + " SELECT count(*) FROM gone"
)
ERASE_SQL = _ERASE_SQL.format(extra="")
# A purge re-checks each session's last activity against its plan's cutoff
# ($3 plans, $4 cutoffs): a batch may have just revived it.
PURGE_SQL = _ERASE_SQL.format(
    extra="AND s.updated_at < (SELECT c.cutoff FROM tenants t "
    "JOIN unnest($3::text[], $4::float8[]) AS c(plan, cutoff) "
    "ON c.plan = t.plan WHERE t.id = s.tenant_id)"
)


async def delete_session(c: Any, tenant_id: int, session_id: str) -> bool:
    return bool(await c.fetchval(ERASE_SQL, [tenant_id], [session_id]))


async def purge(
    c: Any, victims: Sequence[tuple[int, str]], plans: list[str], cutoffs: list[float]
) -> int:
    """Erase the sessions ``victims`` (tenant, session) that are still past their
    plan's cutoff, with everything stored about them; how many were."""
    n = await c.fetchval(
        PURGE_SQL, [t for t, _ in victims], [s for _, s in victims], plans, cutoffs
    )
    return int(n)
