"""The SQLite backend's SQL: statements and the functions that run them on a
connection, for everything but a session's event log (``log.py``).

Each function takes the connection it runs on: the writer's inside a group's
transaction for writes, a reader's for reads. None of them touches the caches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server.keys import display_prefix, hash_key
from sessionmood_server.outbox import webhook_payload
from sessionmood_server.records import (
    ActionCounts,
    Attempt,
    Conversion,
    ConversionResult,
    DeliveryJob,
    DeliveryRecord,
    ElementCounts,
    HoldoutSetting,
    JourneyCounts,
    KeyRecord,
    MoodChangeRecord,
    MoodCounts,
    UpliftCounts,
    WebhookRecord,
)
from sessionmood_server.storage import shared
from sessionmood_server.storage.shared import DEMO_CUSTOMER, SELECT_KEYS, Row

# Due deliveries to claim, fairly (see Storage.claim_deliveries). busy: leased
# rows per webhook (only a finished attempt clears a lease, so they are pending
# or just deleted); open: live webhooks below the cap, so a saturated
# endpoint's backlog is never even read; due: for each open webhook, its first
# `cap` due rows that are the oldest pending one of their (webhook, session),
# read in due order from the partial index until found (a webhook with 40,000
# rows waiting costs a few index steps, not a scan); slot: place in the
# webhook's queue after its leased rows; turns: a tenant's rows round-robin
# over its webhooks, after its own leased rows, so the tenant with the fewest
# in flight goes first. The index hints keep SQLite from reading every pending
# row instead, as it chose to without them.
CLAIM_SQL = """
WITH busy AS (
    SELECT webhook_id, tenant_id, count(*) AS n
    FROM webhook_deliveries INDEXED BY deliveries_leased
    WHERE claimed_until IS NOT NULL AND claimed_until >= :now
    GROUP BY webhook_id, tenant_id),
tenant_busy AS (SELECT tenant_id, sum(n) AS n FROM busy GROUP BY tenant_id),
open AS (
    SELECT w.id, coalesce(b.n, 0) AS n FROM webhooks w LEFT JOIN busy b ON b.webhook_id = w.id
    WHERE w.deleted_at IS NULL AND coalesce(b.n, 0) < :cap),
due AS (
    SELECT d.id, d.tenant_id, o.n + row_number() OVER (
        PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS slot
    FROM open o CROSS JOIN webhook_deliveries d ON d.id IN (
        SELECT e.id FROM webhook_deliveries e INDEXED BY deliveries_hook_due
        WHERE e.webhook_id = o.id AND e.status = 'pending' AND e.next_attempt_at <= :now
        AND (e.claimed_until IS NULL OR e.claimed_until < :now)
        AND e.id = (SELECT min(p.id) FROM webhook_deliveries p WHERE p.webhook_id = e.webhook_id
            AND p.session_id = e.session_id AND p.status = 'pending')
        ORDER BY e.next_attempt_at, e.id LIMIT :cap)),
turns AS (
    SELECT due.id, coalesce(t.n, 0)
        + row_number() OVER (PARTITION BY due.tenant_id ORDER BY due.slot, due.id) AS turn
    FROM due LEFT JOIN tenant_busy t ON t.tenant_id = due.tenant_id WHERE due.slot <= :cap)
SELECT d.id, d.webhook_id, w.url, w.secret, d.payload, d.attempts, d.created_at,
    d.tenant_id
FROM turns JOIN webhook_deliveries d ON d.id = turns.id JOIN webhooks w ON w.id = d.webhook_id
ORDER BY turns.turn, d.id LIMIT :limit
"""


# -- keys & tenants -------------------------------------------------------------


def key_from_row(row: Row) -> KeyRecord:
    return shared.key_record(row, orjson.loads(row["allowed_origins"] or "[]"))


def key_by_hash(c: sqlite3.Connection, key_hash: str) -> KeyRecord | None:
    row = c.execute(SELECT_KEYS + " WHERE k.key_hash = ?", (key_hash,)).fetchone()
    return None if row is None else key_from_row(row)


def insert_key(
    c: sqlite3.Connection,
    raw: str,
    tenant_id: int,
    kind: str,
    origins: tuple[str, ...],
    now: float,
) -> KeyRecord:
    c.execute(
        "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, allowed_origins, created_at) "
        "VALUES (?,?,?,?,?,?)",
        (
            hash_key(raw),
            display_prefix(raw),
            tenant_id,
            kind,
            orjson.dumps(list(origins)).decode(),
            now,
        ),
    )
    record = key_by_hash(c, hash_key(raw))
    assert record is not None  # just inserted, in this transaction
    return record


def create_tenant_key(
    c: sqlite3.Connection, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
) -> KeyRecord:
    cur = c.execute(
        "INSERT INTO tenants (customer, email, plan, created_at) VALUES (?,?,?,?)",
        (customer, email, plan, now),
    )
    return insert_key(c, raw_key, int(cur.lastrowid or 0), "secret", (), now)


def list_keys(c: sqlite3.Connection) -> list[KeyRecord]:
    rows = c.execute(SELECT_KEYS + " ORDER BY k.created_at, k.prefix").fetchall()
    return [key_from_row(r) for r in rows]


def revoke_keys(c: sqlite3.Connection, prefix: str, now: float) -> int:
    cur = c.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND substr(prefix, 1, ?) = ?",
        (now, len(prefix), prefix),
    )
    return cur.rowcount


def ensure_demo_tenant(
    c: sqlite3.Connection,
    raw_secret: str,
    raw_publishable: str,
    origins: tuple[str, ...],
    now: float,
) -> KeyRecord:
    row = c.execute(
        "SELECT id FROM tenants WHERE customer = ? ORDER BY id LIMIT 1", (DEMO_CUSTOMER,)
    ).fetchone()
    if row is None:
        tenant_id = int(
            c.execute(
                "INSERT INTO tenants (customer, email, plan, created_at) "
                "VALUES (?, NULL, 'growth', ?)",
                (DEMO_CUSTOMER, now),
            ).lastrowid
            or 0
        )
    else:
        tenant_id = row["id"]
    # Keys are stored hashed, so last run's demo keys cannot be shown
    # again: retire them and issue fresh ones.
    c.execute(
        "UPDATE api_keys SET revoked_at=? WHERE tenant_id=? AND revoked_at IS NULL",
        (now, tenant_id),
    )
    insert_key(c, raw_publishable, tenant_id, "publishable", origins, now)
    return insert_key(c, raw_secret, tenant_id, "secret", (), now)


# -- usage and analytics ----------------------------------------------------------


def month_usage(c: sqlite3.Connection, tenant_id: int, month: str) -> int:
    row = c.execute(
        "SELECT sessions FROM usage_months WHERE tenant_id=? AND month=?",
        (tenant_id, month),
    ).fetchone()
    return int(row["sessions"]) if row else 0


def mood_counts(c: sqlite3.Connection, tenant_id: int) -> MoodCounts:
    return shared.mood_counts(
        c.execute(
            "SELECT mood, count(*) AS sessions, sum(has_feedback) AS with_feedback "
            "FROM sessions WHERE tenant_id=? GROUP BY mood",
            (tenant_id,),
        )
    )


def page_moods(
    c: sqlite3.Connection, tenant_id: int, since: float | None, until: float | None, limit: int
) -> dict[str, dict[MoodLabel, int]]:
    window = (tenant_id, *shared.window(since, until))
    # Only the busiest pages are grouped by mood: SQL picks them (ties by URL
    # in code point order, as Python sorts), nothing else is read into Python.
    return shared.page_moods(
        c.execute(
            "WITH top(url) AS (SELECT url FROM page_moods WHERE tenant_id=? "
            "AND updated_at >= ? AND updated_at < ? GROUP BY url "
            "ORDER BY count(*) DESC, url LIMIT ?) "
            "SELECT p.url, p.mood, count(*) AS sessions FROM page_moods p "
            "JOIN top ON top.url = p.url "
            "WHERE p.tenant_id=? AND p.updated_at >= ? AND p.updated_at < ? "
            "GROUP BY p.url, p.mood",
            (*window, limit or -1, *window),
        )
    )


def element_counts(
    c: sqlite3.Connection,
    tenant_id: int,
    since: float | None,
    until: float | None,
    page: str | None,
    limit: int,
) -> list[ElementCounts]:
    sql = shared.ELEMENT_COUNTS_SQL.format(p="?", c="")
    return shared.element_counts(
        c.execute(sql, (tenant_id, *shared.window(since, until), page, limit))
    )


def journeys(
    c: sqlite3.Connection,
    tenant_id: int,
    since: float | None,
    until: float | None,
    steps: int,
    limit: int,
) -> list[JourneyCounts]:
    rows = c.execute(shared.journeys_sql(steps, "?"), (tenant_id, *shared.window(since, until)))
    return shared.journeys(rows, steps, limit)


def get_holdout(c: sqlite3.Connection, tenant_id: int) -> HoldoutSetting:
    row = c.execute(
        "SELECT holdout_share, holdout_salt, holdout_updated_at FROM tenants WHERE id=?",
        (tenant_id,),
    ).fetchone()
    return shared.holdout_setting(row)


def set_holdout(
    c: sqlite3.Connection, tenant_id: int, share: float, salt: str, now: float
) -> HoldoutSetting:
    """Set the share; the salt is drawn once, at the first setting, and kept."""
    c.execute(
        "UPDATE tenants SET holdout_share=?, holdout_salt=coalesce(holdout_salt, ?), "
        "holdout_updated_at=? WHERE id=?",
        (share, salt, now, tenant_id),
    )
    return get_holdout(c, tenant_id)


def add_conversion(c: sqlite3.Connection, conversion: Conversion) -> ConversionResult:
    key = (conversion.tenant_id, conversion.session_id)
    row = c.execute(
        "SELECT holdout, (SELECT count(*) FROM conversions v WHERE v.tenant_id=s.tenant_id "
        "AND v.session_id=s.session_id) AS names, EXISTS (SELECT 1 FROM conversions v "
        "WHERE v.tenant_id=s.tenant_id AND v.session_id=s.session_id AND v.name=?) AS seen "
        "FROM sessions s WHERE tenant_id=? AND session_id=?",
        (conversion.name, *key),
    ).fetchone()
    if row is None:
        return ConversionResult(found=False)
    holdout = bool(row["holdout"])
    if row["seen"]:
        return ConversionResult(True, False, holdout)
    if row["names"] >= shared.MAX_CONVERSION_NAMES:
        return ConversionResult(True, False, holdout, full=True)
    c.execute(
        "INSERT INTO conversions VALUES (?,?,?,?,?)",
        (*key, conversion.name, conversion.value, conversion.now),
    )
    return ConversionResult(True, True, holdout)


def conversions_of(c: sqlite3.Connection, tenant_id: int, session_id: str) -> list[Row]:
    return c.execute(
        "SELECT name, value, created_at FROM conversions WHERE tenant_id=? AND session_id=? "
        "ORDER BY created_at, name",
        (tenant_id, session_id),
    ).fetchall()


def uplift_counts(
    c: sqlite3.Connection,
    tenant_id: int,
    name: str | None,
    since: float | None,
    until: float | None,
) -> list[UpliftCounts]:
    sql = shared.UPLIFT_SQL.format(p="?")
    return shared.uplift_counts(c.execute(sql, (tenant_id, *shared.window(since, until), name)))


def action_counts(
    c: sqlite3.Connection,
    tenant_id: int,
    since: float | None,
    until: float | None,
    trusted_only: bool,
) -> list[ActionCounts]:
    rows = c.execute(
        "SELECT mood, action_taken, count(*) AS taken, sum(was_helpful = 1) AS helpful, "
        "sum(was_helpful = 0) AS not_helpful FROM feedback WHERE tenant_id=? "
        "AND created_at >= ? AND created_at < ? AND (trusted = 1 OR ?) "
        "GROUP BY mood, action_taken ORDER BY mood, action_taken",
        (tenant_id, *shared.window(since, until), not trusted_only),
    )
    return [
        ActionCounts(
            mood=row["mood"],
            action=row["action_taken"],
            taken=row["taken"],
            helpful=row["helpful"] or 0,
            not_helpful=row["not_helpful"] or 0,
        )
        for row in rows
    ]


def mood_changes(
    c: sqlite3.Connection, tenant_id: int, after_id: int, limit: int
) -> list[MoodChangeRecord]:
    rows = c.execute(
        "SELECT id, session_id, previous_mood, mood, confidence, signals, "
        "suggested_action, url, occurred_at, holdout FROM mood_changes "
        "WHERE tenant_id=? AND id > ? ORDER BY id LIMIT ?",
        (tenant_id, after_id, limit),
    )
    return [
        MoodChangeRecord(
            id=row["id"],
            session_id=row["session_id"],
            previous_mood=row["previous_mood"],
            mood=row["mood"],
            confidence=row["confidence"],
            signals=tuple(orjson.loads(row["signals"])),
            suggested_action=row["suggested_action"],
            url=row["url"],
            occurred_at=row["occurred_at"],
            holdout=bool(row["holdout"]),
        )
        for row in rows
    ]


def last_mood_change_id(c: sqlite3.Connection, tenant_id: int) -> int:
    row = c.execute(
        "SELECT max(id) AS last_id FROM mood_changes WHERE tenant_id=?", (tenant_id,)
    ).fetchone()
    return int(row["last_id"] or 0)


# -- webhooks: subscriptions, the outbox, deliveries --------------------------------


def enqueue_webhooks(
    c: sqlite3.Connection, change: MoodChangeRecord, tenant_id: int, now: float
) -> None:
    """Write the outbox rows for one mood change, in the batch's own transaction."""
    hooks = c.execute(
        "SELECT id, moods FROM webhooks WHERE tenant_id=? AND deleted_at IS NULL",
        (tenant_id,),
    ).fetchall()
    if not hooks:
        return
    payload = webhook_payload(
        change.id, change.session_id, change.previous_mood, change.mood, change.confidence,
        list(change.signals), change.suggested_action, now, change.holdout,
    )  # fmt: skip
    c.executemany(
        "INSERT INTO webhook_deliveries (webhook_id, tenant_id, session_id, change_id, "
        "payload, status, next_attempt_at, created_at) VALUES (?,?,?,?,?,'pending',?,?)",
        [
            (hook["id"], tenant_id, change.session_id, change.id, payload, now, now)
            for hook in hooks
            if hook["moods"] is None or change.mood in orjson.loads(hook["moods"])
        ],
    )


def create_webhook(c: sqlite3.Connection, record: WebhookRecord, limit: int) -> bool:
    # Jobs run one at a time on the writer: no other creation can land
    # between this count and the insert.
    live = c.execute(
        "SELECT count(*) AS n FROM webhooks WHERE tenant_id=? AND deleted_at IS NULL",
        (record.tenant_id,),
    ).fetchone()
    if live["n"] >= limit:
        return False
    c.execute(
        "INSERT INTO webhooks (id, tenant_id, url, moods, secret, created_at) VALUES (?,?,?,?,?,?)",
        (
            record.id,
            record.tenant_id,
            record.url,
            None if record.moods is None else orjson.dumps(list(record.moods)).decode(),
            record.secret,
            record.created_at,
        ),
    )
    return True


def list_webhooks(c: sqlite3.Connection, tenant_id: int) -> list[WebhookRecord]:
    rows = c.execute(
        "SELECT id, tenant_id, url, moods, secret, created_at FROM webhooks "
        "WHERE tenant_id=? AND deleted_at IS NULL ORDER BY created_at, id",
        (tenant_id,),
    )
    return [
        WebhookRecord(
            id=row["id"],
            tenant_id=row["tenant_id"],
            url=row["url"],
            moods=None if row["moods"] is None else tuple(orjson.loads(row["moods"])),
            secret=row["secret"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


def delete_webhook(c: sqlite3.Connection, tenant_id: int, webhook_id: str, now: float) -> bool:
    cur = c.execute(
        "UPDATE webhooks SET deleted_at=? WHERE tenant_id=? AND id=? AND deleted_at IS NULL",
        (now, tenant_id, webhook_id),
    )
    # Nothing more goes to a deleted endpoint.
    if cur.rowcount == 0:
        return False
    c.execute(
        "UPDATE webhook_deliveries SET status='failed', last_error='webhook deleted', "
        "next_attempt_at=NULL WHERE tenant_id=? AND webhook_id=? AND status='pending'",
        (tenant_id, webhook_id),
    )
    return True


def list_deliveries(
    c: sqlite3.Connection, tenant_id: int, webhook_id: str, limit: int
) -> list[DeliveryRecord] | None:
    if not c.execute(
        "SELECT 1 FROM webhooks WHERE tenant_id=? AND id=?", (tenant_id, webhook_id)
    ).fetchone():
        return None
    rows = c.execute(
        "SELECT id, webhook_id, change_id, session_id, status, attempts, "
        "last_status_code, last_error, latency_ms, created_at, delivered_at, "
        "next_attempt_at FROM webhook_deliveries WHERE webhook_id=? "
        "ORDER BY id DESC LIMIT ?",
        (webhook_id, limit),
    )
    return [shared.record_from(DeliveryRecord, row) for row in rows]


def claim_deliveries(
    c: sqlite3.Connection, now: float, limit: int, lease_s: float, cap: int
) -> list[DeliveryJob]:
    rows = c.execute(CLAIM_SQL, {"now": now, "cap": cap, "limit": limit}).fetchall()
    c.executemany(
        "UPDATE webhook_deliveries SET claimed_until=? WHERE id=?",
        [(now + lease_s, row["id"]) for row in rows],
    )
    return [shared.record_from(DeliveryJob, row) for row in rows]


def webhook_backlog(c: sqlite3.Connection) -> int:
    # deliveries_pending (status, next_attempt_at) covers it
    row = c.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE status='pending'")
    return int(row.fetchone()["n"])


def finish_delivery(c: sqlite3.Connection, attempt: Attempt) -> None:
    status, next_at, delivered_at = shared.delivery_update(
        attempt.delivered, attempt.next_attempt_at, attempt.now
    )
    c.execute(
        "UPDATE webhook_deliveries SET status=?, attempts=attempts+1, "
        "last_status_code=?, last_error=?, latency_ms=?, next_attempt_at=?, "
        "claimed_until=NULL, delivered_at=? WHERE id=?",
        (
            status, attempt.status_code, attempt.error, attempt.latency_ms, next_at,
            delivered_at, attempt.delivery_id,
        ),
    )  # fmt: skip


def release_leases(c: sqlite3.Connection) -> None:
    """SQLite serves one server process, so no other worker can hold a delivery
    lease: whatever a crashed run had claimed is due again now."""
    c.execute(
        "UPDATE webhook_deliveries SET claimed_until=NULL WHERE status='pending' "
        "AND claimed_until IS NOT NULL"
    )


# -- retention ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiredSession:
    """A session past its plan's retention window, to purge."""

    tenant_id: int
    session_id: str
    last_batch: int | None  # its newest row in event_batches


def expired_sessions(
    c: sqlite3.Connection, cutoffs: Mapping[Plan, float], limit: int
) -> list[ExpiredSession]:
    """Up to ``limit`` sessions past their cutoff (rows caught up: ``last_batch``
    is current)."""
    found: list[ExpiredSession] = []
    for plan, cutoff in cutoffs.items():
        rows = c.execute(
            # per tenant through sessions_tenant_updated
            "SELECT s.tenant_id, s.session_id, s.last_batch FROM tenants t "
            "JOIN sessions s ON s.tenant_id = t.id "
            "WHERE t.plan = ? AND s.updated_at < ? LIMIT ?",
            (plan, cutoff, limit - len(found)),
        )
        found += [shared.record_from(ExpiredSession, row) for row in rows]
        if len(found) >= limit:
            break
    return found
