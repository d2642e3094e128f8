"""The PostgreSQL backend's SQL for everything but a session's events and rows
(``log.py``): keys and tenants, usage and analytics, webhooks with their
outbox and deliveries, retention.

Each statement is a named constant next to the function that runs it on a
connection and maps its rows (by column name). ``storage.py`` decides the
transaction and the locks; nothing here touches a cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server.keys import display_prefix, hash_key
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

# -- keys & tenants -------------------------------------------------------------

CREATE_TENANT_KEY_SQL = (
    "WITH t AS (INSERT INTO tenants (customer, email, plan, created_at) "
    "VALUES ($1, $2, $3, $4) RETURNING id) "
    "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, created_at) "
    "SELECT $5::text, $6::text, t.id, 'secret', $4::float8 FROM t RETURNING tenant_id"
)
CREATE_PUBLISHABLE_KEY_SQL = (
    "WITH k AS (INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, "
    "allowed_origins, created_at) VALUES ($1, $2, $3, 'publishable', $4, $5) "
    "RETURNING *) "
    f"SELECT {shared.KEY_COLUMNS} FROM k JOIN tenants t ON t.id = k.tenant_id"
)
KEY_BY_HASH_SQL = SELECT_KEYS + " WHERE k.key_hash = $1"
LIST_KEYS_SQL = SELECT_KEYS + ' ORDER BY k.created_at, k.prefix COLLATE "C"'
# Revoke keys starting with $3 (of length $2) and tell every replica ($4, $5).
REVOKE_KEYS_SQL = (
    "WITH r AS (UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL "
    "AND substr(prefix, 1, $2) = $3 RETURNING 1) "
    "SELECT (SELECT count(*) FROM r) AS revoked, pg_notify($4, $5)"
)


def key_from_row(row: Row) -> KeyRecord:
    return shared.key_record(row, row["allowed_origins"] or ())


async def create_tenant_key(
    c: Any, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
) -> KeyRecord:
    tenant_id = await c.fetchval(
        CREATE_TENANT_KEY_SQL, customer, email, plan, now, hash_key(raw_key),
        display_prefix(raw_key),
    )  # fmt: skip
    return KeyRecord(
        hash_key(raw_key), display_prefix(raw_key), tenant_id, "secret", plan, customer, email,
        now,
    )  # fmt: skip


async def create_publishable_key(
    c: Any, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
) -> KeyRecord:
    row = await c.fetchrow(
        CREATE_PUBLISHABLE_KEY_SQL, hash_key(raw_key), display_prefix(raw_key), tenant_id,
        list(allowed_origins), now,
    )  # fmt: skip
    return key_from_row(row)


async def key_by_hash(c: Any, key_hash: str) -> KeyRecord | None:
    row = await c.fetchrow(KEY_BY_HASH_SQL, key_hash)
    return None if row is None else key_from_row(row)


async def list_keys(c: Any) -> list[KeyRecord]:
    return [key_from_row(row) for row in await c.fetch(LIST_KEYS_SQL)]


async def revoke_keys(c: Any, prefix: str, now: float, notify: tuple[str, str]) -> int:
    row = await c.fetchrow(REVOKE_KEYS_SQL, now, len(prefix), prefix, *notify)
    return int(row["revoked"])


DEMO_TENANT_SQL = "SELECT id FROM tenants WHERE customer = $1 ORDER BY id LIMIT 1"
CREATE_DEMO_TENANT_SQL = (
    "INSERT INTO tenants (customer, email, plan, created_at) "
    "VALUES ($1, NULL, 'growth', $2) RETURNING id"
)
RETIRE_KEYS_SQL = "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL"
INSERT_KEY_SQL = (
    "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, allowed_origins, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6)"
)
NOTIFY_SQL = "SELECT pg_notify($1, $2)"


async def ensure_demo_tenant(
    c: Any,
    raw_secret: str,
    raw_publishable: str,
    origins: tuple[str, ...],
    now: float,
    notify: tuple[str, str],
) -> KeyRecord:
    """Under the demo lock: replicas starting together must not create two tenants."""
    tenant_id = await c.fetchval(DEMO_TENANT_SQL, DEMO_CUSTOMER)
    if tenant_id is None:
        tenant_id = await c.fetchval(CREATE_DEMO_TENANT_SQL, DEMO_CUSTOMER, now)
    # Keys are stored hashed, so last run's demo keys cannot be shown
    # again: retire them and issue fresh ones.
    await c.execute(RETIRE_KEYS_SQL, now, tenant_id)
    await c.executemany(
        INSERT_KEY_SQL,
        [
            (hash_key(raw), display_prefix(raw), tenant_id, kind, list(allowed), now)
            for raw, kind, allowed in (
                (raw_secret, "secret", ()),
                (raw_publishable, "publishable", origins),
            )
        ],
    )
    await c.execute(NOTIFY_SQL, *notify)
    record = await key_by_hash(c, hash_key(raw_secret))
    assert record is not None  # just inserted, in this transaction
    return record


# -- usage and analytics ----------------------------------------------------------

MONTH_USAGE_SQL = "SELECT sessions FROM usage_months WHERE tenant_id = $1 AND month = $2"
MOOD_COUNTS_SQL = (
    "SELECT mood, count(*) AS sessions, count(*) FILTER (WHERE has_feedback) AS with_feedback "
    "FROM sessions WHERE tenant_id = $1 GROUP BY mood"
)
# Only the busiest pages are grouped by mood (ties by URL in byte, i.e. code
# point, order, as Python sorts).
PAGE_MOODS_SQL = (
    "WITH top AS (SELECT url FROM page_moods WHERE tenant_id = $1 "
    "AND updated_at >= $2 AND updated_at < $3 GROUP BY url "
    'ORDER BY count(*) DESC, url COLLATE "C" LIMIT $4) '
    "SELECT p.url, p.mood, count(*) AS sessions FROM page_moods p JOIN top ON top.url = p.url "
    "WHERE p.tenant_id = $1 AND p.updated_at >= $2 AND p.updated_at < $3 "
    "GROUP BY p.url, p.mood"
)
ACTION_COUNTS_SQL = (
    "SELECT mood, action_taken AS action, count(*) AS taken, "
    "count(*) FILTER (WHERE was_helpful) AS helpful, "
    "count(*) FILTER (WHERE NOT was_helpful) AS not_helpful FROM feedback WHERE tenant_id = $1 "
    "AND created_at >= $2 AND created_at < $3 AND (trusted OR NOT $4) "
    "GROUP BY mood, action_taken "
    # byte order, like SQLite's default collation
    'ORDER BY mood COLLATE "C", action_taken COLLATE "C"'
)
MOOD_CHANGES_SQL = (
    "SELECT id, session_id, previous_mood, mood, confidence, signals, "
    "suggested_action, url, occurred_at, holdout FROM mood_changes "
    "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
)
LAST_MOOD_CHANGE_SQL = "SELECT max(id) FROM mood_changes WHERE tenant_id = $1"


async def month_usage(c: Any, tenant_id: int, month: str) -> int:
    return int(await c.fetchval(MONTH_USAGE_SQL, tenant_id, month) or 0)


async def mood_counts(c: Any, tenant_id: int) -> MoodCounts:
    return shared.mood_counts(await c.fetch(MOOD_COUNTS_SQL, tenant_id))


async def page_moods(
    c: Any, tenant_id: int, since: float | None, until: float | None, limit: int
) -> dict[str, dict[MoodLabel, int]]:
    rows = await c.fetch(PAGE_MOODS_SQL, tenant_id, *shared.window(since, until), limit or None)
    return shared.page_moods(rows)


async def action_counts(
    c: Any, tenant_id: int, since: float | None, until: float | None, trusted_only: bool
) -> list[ActionCounts]:
    rows = await c.fetch(ACTION_COUNTS_SQL, tenant_id, *shared.window(since, until), trusted_only)
    return [shared.record_from(ActionCounts, row) for row in rows]


HOLDOUT_SQL = "SELECT holdout_share, holdout_salt, holdout_updated_at FROM tenants WHERE id = $1"
SET_HOLDOUT_SQL = (
    "UPDATE tenants SET holdout_share = $2, holdout_salt = coalesce(holdout_salt, $3), "
    "holdout_updated_at = $4 WHERE id = $1 "
    "RETURNING holdout_share, holdout_salt, holdout_updated_at"
)


async def get_holdout(c: Any, tenant_id: int) -> HoldoutSetting:
    return shared.holdout_setting(await c.fetchrow(HOLDOUT_SQL, tenant_id))


async def set_holdout(
    c: Any, tenant_id: int, share: float, salt: str, now: float
) -> HoldoutSetting:
    return shared.holdout_setting(await c.fetchrow(SET_HOLDOUT_SQL, tenant_id, share, salt, now))


# Under the session's lock (storage.py): the session's group, how many names
# it has counted, whether this one is among them; then the insert if it may.
CONVERSION_STATE_SQL = (
    "SELECT s.holdout, (SELECT count(*) FROM conversions v WHERE v.tenant_id = $1 "
    "AND v.session_id = $2) AS names, EXISTS (SELECT 1 FROM conversions v "
    "WHERE v.tenant_id = $1 AND v.session_id = $2 AND v.name = $3) AS seen "
    "FROM sessions s WHERE s.tenant_id = $1 AND s.session_id = $2"
)
CONVERSION_SQL = "INSERT INTO conversions VALUES ($1, $2, $3, $4, $5)"


async def add_conversion(c: Any, conversion: Conversion) -> ConversionResult:
    key = (conversion.tenant_id, conversion.session_id)
    row = await c.fetchrow(CONVERSION_STATE_SQL, *key, conversion.name)
    if row is None:
        return ConversionResult(found=False)
    holdout = row["holdout"]
    if row["seen"]:
        return ConversionResult(True, False, holdout)
    if row["names"] >= shared.MAX_CONVERSION_NAMES:
        return ConversionResult(True, False, holdout, full=True)
    await c.execute(CONVERSION_SQL, *key, conversion.name, conversion.value, conversion.now)
    return ConversionResult(True, True, holdout)


CONVERSIONS_OF_SQL = (
    "SELECT name, value, created_at FROM conversions WHERE tenant_id = $1 AND session_id = $2 "
    'ORDER BY created_at, name COLLATE "C"'
)


async def conversions_of(c: Any, tenant_id: int, session_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await c.fetch(CONVERSIONS_OF_SQL, tenant_id, session_id)]


UPLIFT_SQL = shared.UPLIFT_SQL.format(p="$")


async def uplift_counts(
    c: Any, tenant_id: int, name: str | None, since: float | None, until: float | None
) -> list[UpliftCounts]:
    rows = await c.fetch(UPLIFT_SQL, tenant_id, *shared.window(since, until), name)
    return shared.uplift_counts(rows)


ELEMENT_COUNTS_SQL = shared.ELEMENT_COUNTS_SQL.format(p="$", c=' COLLATE "C"')


async def element_counts(
    c: Any, tenant_id: int, since: float | None, until: float | None, page: str | None, limit: int
) -> list[ElementCounts]:
    # One core: a parallel plan took every core of a small database host for
    # seconds (and, sharing the host, the replica's requests with it).
    async with c.transaction():
        await c.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        rows = await c.fetch(
            ELEMENT_COUNTS_SQL, tenant_id, *shared.window(since, until), page, limit
        )
    return shared.element_counts(rows)


async def journeys(
    c: Any, tenant_id: int, since: float | None, until: float | None, steps: int, limit: int
) -> list[JourneyCounts]:
    rows = await c.fetch(shared.journeys_sql(steps, "$"), tenant_id, *shared.window(since, until))
    # Thousands of rows folded into paths: on a worker thread, as SQLite's
    # reads run, so the event loop keeps answering meanwhile.
    return await asyncio.to_thread(shared.journeys, rows, steps, limit)


def _mood_change(row: Row) -> MoodChangeRecord:
    return MoodChangeRecord(
        id=row["id"],
        session_id=row["session_id"],
        previous_mood=row["previous_mood"],
        mood=row["mood"],
        confidence=row["confidence"],
        signals=tuple(row["signals"]),
        suggested_action=row["suggested_action"],
        url=row["url"],
        occurred_at=row["occurred_at"],
        holdout=row["holdout"],
    )


async def mood_changes(c: Any, tenant_id: int, after_id: int, limit: int) -> list[MoodChangeRecord]:
    return [
        _mood_change(row) for row in await c.fetch(MOOD_CHANGES_SQL, tenant_id, after_id, limit)
    ]


async def last_mood_change_id(c: Any, tenant_id: int) -> int:
    return int(await c.fetchval(LAST_MOOD_CHANGE_SQL, tenant_id) or 0)


# -- webhooks: subscriptions, the outbox, deliveries --------------------------------

# Insert unless the tenant already has $7 live webhooks (under its webhook
# lock, so the count sees every earlier insert).
CREATE_WEBHOOK_SQL = (
    "INSERT INTO webhooks (tenant_id, id, url, moods, secret, created_at) "
    "SELECT $1, $2, $3, $4, $5, $6 WHERE (SELECT count(*) FROM webhooks "
    "WHERE tenant_id = $1 AND deleted_at IS NULL) < $7 RETURNING true"
)
LIST_WEBHOOKS_SQL = (
    "SELECT id, tenant_id, url, moods, secret, created_at FROM webhooks "
    'WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id COLLATE "C"'
)
DELETE_WEBHOOK_SQL = (
    "WITH w AS (UPDATE webhooks SET deleted_at = $3 WHERE tenant_id = $1 AND id = $2 "
    "AND deleted_at IS NULL RETURNING 1), "
    # Nothing more goes to a deleted endpoint.
    "d AS (UPDATE webhook_deliveries SET status = 'failed', "
    "last_error = 'webhook deleted', next_attempt_at = NULL "
    "WHERE tenant_id = $1 AND webhook_id = $2 AND status = 'pending') "
    "SELECT count(*) FROM w"
)
WEBHOOK_EXISTS_SQL = "SELECT 1 FROM webhooks WHERE tenant_id = $1 AND id = $2"
LIST_DELIVERIES_SQL = (
    "SELECT id, webhook_id, change_id, session_id, status, attempts, "
    "last_status_code, last_error, latency_ms, created_at, delivered_at, "
    "next_attempt_at FROM webhook_deliveries WHERE tenant_id = $1 "
    "AND webhook_id = $2 ORDER BY id DESC LIMIT $3"
)
BACKLOG_SQL = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
FINISH_DELIVERY_SQL = (
    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, "
    "last_status_code = $2, last_error = $3, latency_ms = $4, next_attempt_at = $5, "
    "claimed_until = NULL, delivered_at = $6 WHERE id = $7"
)


async def create_webhook(c: Any, record: WebhookRecord, limit: int) -> bool:
    ok = await c.fetchval(
        CREATE_WEBHOOK_SQL, record.tenant_id, record.id, record.url,
        None if record.moods is None else list(record.moods), record.secret, record.created_at,
        limit,
    )  # fmt: skip
    return bool(ok)


def _webhook(row: Row) -> WebhookRecord:
    moods = row["moods"]
    return WebhookRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        moods=None if moods is None else tuple(moods),
        secret=row["secret"],
        created_at=row["created_at"],
    )


async def list_webhooks(c: Any, tenant_id: int) -> list[WebhookRecord]:
    return [_webhook(row) for row in await c.fetch(LIST_WEBHOOKS_SQL, tenant_id)]


async def delete_webhook(c: Any, tenant_id: int, webhook_id: str, now: float) -> bool:
    return bool(await c.fetchval(DELETE_WEBHOOK_SQL, tenant_id, webhook_id, now))


async def list_deliveries(
    c: Any, tenant_id: int, webhook_id: str, limit: int
) -> list[DeliveryRecord] | None:
    if not await c.fetchval(WEBHOOK_EXISTS_SQL, tenant_id, webhook_id):
        return None
    rows = await c.fetch(LIST_DELIVERIES_SQL, tenant_id, webhook_id, limit)
    return [shared.record_from(DeliveryRecord, row) for row in rows]


# Due deliveries to claim, fairly (see Storage.claim_deliveries); $1 now,
# $2 limit, $3 per-endpoint cap. busy: leased rows per webhook (only a finished
# attempt clears a lease, so they are pending or just deleted); open: live
# webhooks below the cap, so a saturated endpoint's backlog is never even
# read; due: for each open webhook, its first $3 due rows that are the oldest
# pending one of their (webhook, session), read in due order from the partial
# index until found; slot: place in the webhook's queue after its leased rows;
# turns: a tenant's rows round-robin over its webhooks, after its own leased
# rows, so the tenant with the fewest in flight goes first.
CLAIM_SQL = """
WITH busy AS (
    SELECT tenant_id, webhook_id, count(*) AS n FROM webhook_deliveries
    WHERE claimed_until IS NOT NULL AND claimed_until >= $1
    GROUP BY tenant_id, webhook_id),
tenant_busy AS (SELECT tenant_id, sum(n) AS n FROM busy GROUP BY tenant_id),
open AS (
    SELECT w.tenant_id, w.id, coalesce(b.n, 0) AS n FROM webhooks w
    LEFT JOIN busy b ON b.tenant_id = w.tenant_id AND b.webhook_id = w.id
    WHERE w.deleted_at IS NULL AND coalesce(b.n, 0) < $3),
due AS (
    SELECT d.tenant_id, d.id, o.n + row_number() OVER (
        PARTITION BY d.tenant_id, d.webhook_id ORDER BY d.next_attempt_at, d.id) AS slot
    FROM open o CROSS JOIN LATERAL (
        SELECT e.tenant_id, e.webhook_id, e.id, e.next_attempt_at FROM webhook_deliveries e
        WHERE e.tenant_id = o.tenant_id AND e.webhook_id = o.id AND e.status = 'pending'
        AND e.next_attempt_at <= $1 AND (e.claimed_until IS NULL OR e.claimed_until < $1)
        -- a sub-plan, not an anti-join, so it always looks up (webhook, session)
        AND e.id = (SELECT min(p.id) FROM webhook_deliveries p WHERE p.webhook_id = e.webhook_id
            AND p.session_id = e.session_id AND p.status = 'pending')
        ORDER BY e.next_attempt_at LIMIT $3) d),
turns AS (
    SELECT due.tenant_id, due.id, coalesce(t.n, 0)
        + row_number() OVER (PARTITION BY due.tenant_id ORDER BY due.slot, due.id) AS turn
    FROM due LEFT JOIN tenant_busy t ON t.tenant_id = due.tenant_id WHERE due.slot <= $3)
SELECT tenant_id, id FROM turns ORDER BY turn, id LIMIT $2
"""
# Leases what CLAIM_SQL picked, by primary key ($1 tenants, $2 ids, $3 now,
# $4 lease), re-checking each row: a deletion may have failed it meanwhile.
# A statement of its own: planned together with the choice, PostgreSQL
# misjudged the few rows chosen and read whole webhooks' queues to update them.
LEASE_SQL = """
UPDATE webhook_deliveries d SET claimed_until = $3 + $4
FROM unnest($1::bigint[], $2::bigint[]) AS pick(tenant_id, id), webhooks w
WHERE d.tenant_id = pick.tenant_id AND d.id = pick.id AND d.status = 'pending'
AND (d.claimed_until IS NULL OR d.claimed_until < $3)
AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id
RETURNING d.id, d.webhook_id, w.url, w.secret, d.payload, d.attempts, d.created_at,
    d.tenant_id
"""


async def claim_deliveries(
    c: Any, now: float, limit: int, lease_s: float, cap: int
) -> list[DeliveryJob]:
    """Under the claim lock (see ``PostgresStorage.claim_deliveries``)."""
    picked = await c.fetch(CLAIM_SQL, now, limit, cap)
    if not picked:
        return []
    rows = await c.fetch(
        LEASE_SQL, [r["tenant_id"] for r in picked], [r["id"] for r in picked], now, lease_s
    )
    jobs = (shared.record_from(DeliveryJob, row) for row in rows)
    return sorted(jobs, key=lambda job: job.id)


async def webhook_backlog(c: Any) -> int:
    return int(await c.fetchval(BACKLOG_SQL))


async def finish_delivery(c: Any, attempt: Attempt) -> None:
    status, next_at, delivered_at = shared.delivery_update(
        attempt.delivered, attempt.next_attempt_at, attempt.now
    )
    await c.execute(
        FINISH_DELIVERY_SQL, status, attempt.status_code, attempt.error, attempt.latency_ms,
        next_at, delivered_at, attempt.delivery_id,
    )  # fmt: skip


# -- retention ------------------------------------------------------------------------

# Up to $3 sessions past their plan's cutoff ($1 plans, $2 cutoffs).
EXPIRED_SQL = (
    "SELECT s.tenant_id, s.session_id FROM sessions s "
    "JOIN tenants t ON t.id = s.tenant_id "
    "JOIN unnest($1::text[], $2::float8[]) AS c(plan, cutoff) ON c.plan = t.plan "
    "WHERE s.updated_at < c.cutoff LIMIT $3"
)
# Which of the advisory locks $1 this transaction got (1-based places).
TRY_LOCKS_SQL = (
    "SELECT i FROM unnest($1::bigint[]) WITH ORDINALITY AS x(k, i) "
    "WHERE pg_try_advisory_xact_lock(k)"
)


def cutoff_arrays(cutoffs: Mapping[Plan, float]) -> tuple[list[str], list[float]]:
    """``cutoffs`` as the (plans, cutoffs) arrays the statements take."""
    return list(cutoffs), [float(v) for v in cutoffs.values()]


async def expired_sessions(
    c: Any, cutoffs: Mapping[Plan, float], limit: int
) -> list[tuple[int, str]]:
    """(tenant, session) of up to ``limit`` sessions past their plan's cutoff."""
    rows = await c.fetch(EXPIRED_SQL, *cutoff_arrays(cutoffs), limit)
    return [(row["tenant_id"], row["session_id"]) for row in rows]


async def try_locks(c: Any, keys: Sequence[int]) -> list[int]:
    """Take whichever of the advisory locks ``keys`` are free, never waiting;
    the places (0-based) of those taken."""
    return [row["i"] - 1 for row in await c.fetch(TRY_LOCKS_SQL, list(keys))]
