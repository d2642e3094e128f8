"""The PostgreSQL backend's larger statements (the rest are inline in ``storage.py``)."""

from __future__ import annotations

from sessionmood_server.storage import shared

# Everything stored about a session besides its row in `sessions` (erasure, purge).
SESSION_TABLES = ("events", *shared.SESSION_TABLES)

SESSION_COLUMNS = "mood, confidence, signals, suggested_action, event_count, updated_at, last_url"

# Erase sessions listed in $1 (tenant ids) / $2 (session ids), plus everything
# stored about them, in one statement. `gone` filters again on what still
# exists (and, for purges, is still expired) now that the sessions are locked.
ERASE_SQL = (
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
