"""PostgreSQL backend: many stateless server replicas sharing one database.

``postgresql://user@host:5432/db?schema=NAME&pool_min=2&pool_max=10`` (our own
query parameters are stripped; the rest goes to asyncpg). ``schema`` lets
several deployments or test runs share one database.

Concurrency model: every write is one transaction on a pooled connection in
READ COMMITTED, made race-free across processes by transaction-scoped locks
that PostgreSQL releases at COMMIT/ROLLBACK, taken in one fixed order so two
transactions can never wait on each other in a cycle:

1. batch id   advisory lock on (tenant, batch_id): one replica stores a batch,
              every other sees its committed answer and replays it;
2. session    advisory lock on (tenant, session): batches of one session fold
              one after another, seq numbers stay 1..N without gaps;
3. quota      the ``usage_months`` row, locked by an upsert that increments
              only below the limit: no overselling at the boundary;
4. tenant     advisory lock on the tenant, taken just before a mood change
              takes its id: change ids commit in id order per tenant, so
              ``mood_changes(after_id)`` (the SSE stream) never skips one.

Two more advisory locks are each the only lock of their transaction, so they
cannot join a cycle either: (tenant) webhooks, around a webhook's creation
(the per-tenant cap), and one claim lock, around picking and leasing webhook
deliveries (the per-endpoint cap counts every replica's leases).

Each statement after a lock starts a fresh snapshot, so it sees whatever the
previous lock holder committed. Mood changes write their webhook outbox rows
in the same transaction and ``NOTIFY sessionmood_mood_changes`` (delivered at
commit); one LISTEN connection per process wakes live streams and delivery
workers, and ``NOTIFY sessionmood_keys`` drops every replica's key cache.
Notification payloads carry the schema name: channels are per database, and
replicas of other schemas must ignore them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import orjson

from sessionmood_client.types import MOODS, MoodLabel, Plan, SuggestedAction
from sessionmood_server import engine
from sessionmood_server.keys import display_prefix, hash_key
from sessionmood_server.outbox import webhook_payload
from sessionmood_server.records import (
    ActionCounts,
    AppendResult,
    DeliveryJob,
    DeliveryRecord,
    KeyRecord,
    MoodChangeRecord,
    MoodCounts,
    Quota,
    SessionRecord,
    WebhookRecord,
)
from sessionmood_server.scoring import apply_batch, event_rows
from sessionmood_server.storage.postgres_schema import MIGRATIONS
from sessionmood_server.storage.protocols import ChangeListener
from sessionmood_server.storage.shared import DEMO_CUSTOMER, busiest_first

log = logging.getLogger("sessionmood.storage")

CHANGES_CHANNEL = "sessionmood_mood_changes"
KEYS_CHANNEL = "sessionmood_keys"
# Without a working LISTEN connection other replicas' key revocations cannot
# reach us, so cached keys expire this fast instead.
KEY_CACHE_FALLBACK_TTL_S = 0.5
# The listener proves it is alive this often; a silent one is replaced.
LISTENER_PING_S = 2.0
LISTENER_STALE_S = 5.0
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Everything stored about a session besides its row in `sessions` (erasure, purge).
_SESSION_TABLES = (
    "events",
    "feedback",
    "batches",
    "page_moods",
    "mood_changes",
    "webhook_deliveries",
    # Erased too (the id may be a user id); the month's usage count is kept in
    # usage_months, so quotas stay exact.
    "session_months",
)

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
        for t in _SESSION_TABLES
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
_CLAIM_SQL = """
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
# Leases what _CLAIM_SQL picked, by primary key ($1 tenants, $2 ids, $3 now,
# $4 lease), re-checking each row: a deletion may have failed it meanwhile.
# A statement of its own: planned together with the choice, PostgreSQL
# misjudged the few rows chosen and read whole webhooks' queues to update them.
_LEASE_SQL = """
UPDATE webhook_deliveries d SET claimed_until = $3 + $4
FROM unnest($1::bigint[], $2::bigint[]) AS pick(tenant_id, id), webhooks w
WHERE d.tenant_id = pick.tenant_id AND d.id = pick.id AND d.status = 'pending'
AND (d.claimed_until IS NULL OR d.claimed_until < $3)
AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id
RETURNING d.id, d.webhook_id, w.url, w.secret, d.payload, d.attempts, d.created_at,
    d.tenant_id
"""

_KEY_COLUMNS = (
    "k.key_hash, k.prefix, k.tenant_id, k.kind, t.plan, t.customer, t.email, "
    "k.created_at, k.revoked_at, k.allowed_origins"
)

_SESSION_COLUMNS = "mood, confidence, signals, suggested_action, event_count, updated_at, last_url"


def _key_from_row(row: Any) -> KeyRecord:
    return KeyRecord(
        key_hash=row[0],
        prefix=row[1],
        tenant_id=row[2],
        kind=row[3],
        plan=row[4],
        customer=row[5],
        email=row[6],
        created_at=row[7],
        revoked_at=row[8],
        allowed_origins=tuple(row[9] or ()),
    )


def parse_postgres_url(url: str) -> tuple[str, str, int, int]:
    """``postgresql://...?schema=s&pool_min=2&pool_max=10`` -> (asyncpg DSN, schema, min, max).

    Our parameters are removed from the DSN (asyncpg would send unknown ones to
    the server as settings); everything else is passed through untouched.
    """
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in {"schema", "pool_min", "pool_max"}:
            ours[k] = v
        else:
            rest.append((k, v))
    schema = ours.get("schema") or "public"
    if not _SCHEMA_RE.match(schema):
        raise ValueError(
            f"schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got {schema!r}"
        )
    try:
        pool_min = int(ours.get("pool_min") or 2)
        pool_max = int(ours.get("pool_max") or 10)
    except ValueError:
        raise ValueError("pool_min and pool_max must be integers") from None
    if not 0 <= pool_min <= pool_max or pool_max < 1:
        raise ValueError(f"need 0 <= pool_min <= pool_max and pool_max >= 1 ({url!r})")
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    return dsn, schema, pool_min, pool_max


def lock_key(*parts: object) -> int:
    """A signed 64-bit advisory lock key for ``parts`` (namespace first).

    Computed here rather than in SQL so a transaction can BEGIN and take its
    locks in a single round trip. Keys include the schema: advisory locks are
    per database, and deployments in other schemas must not contend.
    """
    raw = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True, slots=True)
class _Checks:
    """What ``append_events`` checks beyond the quota (see ``Storage.append_events``)."""

    fingerprint: str | None
    max_events: int
    admit_new: Callable[[], bool] | None


class _Rollback(Exception):
    """Raised inside a transaction to undo it and still return ``result``."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


class _LocalLocks:
    """Per-process FIFO locks by key, created on demand and dropped when idle.

    Batches for one hot session queue here instead of each holding a pooled
    connection while waiting on the database lock: the pool stays free for
    everything else, and the database sees one waiter per replica.
    """

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


class PostgresStorage:
    """PostgreSQL storage for one or many server processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._dsn, self._schema, self._pool_min, self._pool_max = parse_postgres_url(url)
        self._pool: Any = None
        self._listener: Any = None
        self._listener_seen = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._change_signal = asyncio.Event()
        self._listeners: list[ChangeListener] = []
        # key_hash -> (record, monotonic time fetched); _key_gen counts
        # invalidations so a lookup racing one never re-caches a stale record.
        self._key_cache: dict[str, tuple[KeyRecord, float]] = {}
        self._key_gen = 0
        self._session_locks = _LocalLocks()

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        await self._migrate()
        settings = {"application_name": "sessionmood"}
        if self._schema != "public":
            settings["search_path"] = self._schema
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._pool_min,
            max_size=self._pool_max,
            server_settings=settings,
        )
        # Listen before answering anything, so a change committed right after
        # open() wakes us; the supervisor then keeps the listener alive.
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            await self._connect_listener()
        self._supervisor = asyncio.create_task(self._supervise_listener(), name="sm-pg-listen")
        # Unlike SQLite, delivery leases are NOT reset here: other replicas may
        # hold them right now. A crashed replica's leases simply expire.

    async def close(self) -> None:
        self._closing = True
        self._change_signal.set()  # live streams see _closing and end
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop_listener()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    async def _migrate(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "sessionmood"})
        try:
            async with conn.transaction():
                # One migrator per schema at a time, database-wide; the others
                # wait here and then find every version already applied.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1)", lock_key("migrate", self._schema)
                )
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{self._schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                )
                done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, sql in MIGRATIONS:
                    if version in done:
                        continue
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, extract(epoch from now()))",
                        version,
                    )
                    log.info("applied schema migration %d to %s", version, self._schema)
        finally:
            await conn.close()

    # -- notifications -----------------------------------------------------------

    async def _connect_listener(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, timeout=5, server_settings={"application_name": "sessionmood-listen"}
        )
        try:
            await conn.add_listener(CHANGES_CHANNEL, self._on_notify)
            await conn.add_listener(KEYS_CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn
        self._listener_seen = time.monotonic()
        # Whatever was notified while we were not listening is lost: start clean.
        self._invalidate_keys()
        self._wake(None)

    async def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()

    async def _supervise_listener(self) -> None:
        """Keep one LISTEN connection alive: ping it, replace it when it dies."""
        backoff = 0.2
        while not self._closing:
            conn = self._listener
            try:
                if conn is None or conn.is_closed():
                    self._listener = None
                    await self._connect_listener()
                    backoff = 0.2
                await asyncio.sleep(LISTENER_PING_S)
                conn = self._listener
                if conn is not None:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), 1.0)
                    self._listener_seen = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restart, network: retry with backoff
                log.warning("PostgreSQL listener lost (%s); keys cached %.1fs meanwhile",
                            exc, KEY_CACHE_FALLBACK_TTL_S)  # fmt: skip
                await self._drop_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _listening(self) -> bool:
        conn = self._listener
        return (
            conn is not None
            and not conn.is_closed()
            and time.monotonic() - self._listener_seen < LISTENER_STALE_S
        )

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._listener_seen = time.monotonic()
        # "schema" or, for a mood change, "schema:tenant" (older replicas send
        # the schema alone: then any tenant may have changed).
        schema, _, tenant = payload.partition(":")
        if schema != self._schema:
            return  # another deployment sharing this database
        if channel == KEYS_CHANNEL:
            self._invalidate_keys()
        else:
            self._wake(int(tenant) if tenant.isdigit() else None)

    def _wake_local(self, tenant_id: int) -> None:
        """After our own commit of a mood change: the delivery worker need not
        wait for our NOTIFY. Live streams do, while the listener works: it
        brings key revocations and mood changes in commit order, and hearing
        of one change twice would read it twice."""
        if self._listening():
            signal, self._change_signal = self._change_signal, asyncio.Event()
            signal.set()
        else:
            self._wake(tenant_id)

    def _wake(self, tenant_id: int | None) -> None:
        signal, self._change_signal = self._change_signal, asyncio.Event()
        signal.set()
        tenants = None if tenant_id is None else (tenant_id,)
        for listener in self._listeners:
            listener.moods_changed(tenants)

    def _invalidate_keys(self) -> None:
        self._key_gen += 1
        self._key_cache.clear()
        for listener in self._listeners:
            listener.keys_changed()

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- transactions ------------------------------------------------------------

    def _conn(self) -> Any:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool.acquire()

    @contextlib.asynccontextmanager
    async def _tx(self, *locks: int) -> AsyncIterator[Any]:
        """A transaction holding the advisory locks ``locks`` (in that order).

        BEGIN and the locks go in one simple-protocol round trip (the keys are
        integers we computed, safe to inline). COMMIT on normal exit; ROLLBACK
        on any exception, and a connection that cannot even roll back is
        terminated rather than returned to the pool mid-transaction.
        """
        async with self._conn() as conn:
            sql = "BEGIN" + "".join(f"; SELECT pg_advisory_xact_lock({int(k)})" for k in locks)
            await conn.execute(sql)
            try:
                yield conn
            except BaseException:
                try:
                    await asyncio.shield(conn.execute("ROLLBACK"))
                except BaseException:
                    conn.terminate()
                raise
            await conn.execute("COMMIT")

    def _session_lock(self, tenant_id: int, session_id: str) -> int:
        return lock_key("session", self._schema, tenant_id, session_id)

    async def ping(self) -> bool:
        # Bounded: a health check must answer (503) even when the database
        # hangs instead of refusing, so the load balancer can route around us.
        async with asyncio.timeout(3.0), self._conn() as conn:
            return bool(await conn.fetchval("SELECT 1"))

    # -- keys ----------------------------------------------------------------------

    async def create_tenant_key(
        self, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
    ) -> KeyRecord:
        async with self._conn() as conn:
            tenant_id = await conn.fetchval(
                "WITH t AS (INSERT INTO tenants (customer, email, plan, created_at) "
                "VALUES ($1, $2, $3, $4) RETURNING id) "
                "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, created_at) "
                "SELECT $5::text, $6::text, t.id, 'secret', $4::float8 FROM t RETURNING tenant_id",
                customer, email, plan, now, hash_key(raw_key), display_prefix(raw_key),
            )  # fmt: skip
        # Unknown keys are never cached, so nobody needs to hear about a new one.
        return KeyRecord(
            hash_key(raw_key), display_prefix(raw_key), tenant_id, "secret", plan,
            customer, email, now,
        )  # fmt: skip

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> KeyRecord:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "WITH k AS (INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, "
                "allowed_origins, created_at) VALUES ($1, $2, $3, 'publishable', $4, $5) "
                "RETURNING *) "
                f"SELECT {_KEY_COLUMNS} FROM k JOIN tenants t ON t.id = k.tenant_id",
                hash_key(raw_key), display_prefix(raw_key), tenant_id, list(allowed_origins), now,
            )  # fmt: skip
        return _key_from_row(row)

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        # Auth runs on every request, so found keys are cached. Every key write
        # NOTIFYs sessionmood_keys, which drops the cache in every replica; if
        # our LISTEN connection is down, entries live only a fraction of a second.
        hit = self._key_cache.get(key_hash)
        if hit is not None:
            record, fetched = hit
            if self._listening() or time.monotonic() - fetched < KEY_CACHE_FALLBACK_TTL_S:
                return record
        gen = self._key_gen
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                "WHERE k.key_hash = $1",
                key_hash,
            )
        if row is None:
            return None  # unknown keys are not cached: random keys cannot fill memory
        record = _key_from_row(row)
        if gen == self._key_gen:  # no invalidation raced our read
            if len(self._key_cache) >= 10_000:
                self._key_cache.clear()
            self._key_cache[key_hash] = (record, time.monotonic())
        return record

    async def list_keys(self) -> list[KeyRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                'ORDER BY k.created_at, k.prefix COLLATE "C"'
            )
        return [_key_from_row(r) for r in rows]

    async def revoke_keys(self, prefix: str, now: float) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "WITH r AS (UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL "
                "AND substr(prefix, 1, $2) = $3 RETURNING 1) "
                "SELECT (SELECT count(*) FROM r), pg_notify($4, $5)",
                now, len(prefix), prefix, KEYS_CHANNEL, self._schema,
            )  # fmt: skip
        self._invalidate_keys()  # after the commit, or a racing read could re-cache
        return int(n)

    # -- sessions ------------------------------------------------------------------

    async def append_events(
        self,
        tenant_id: int,
        session_id: str,
        events: list[dict[str, Any]],
        batch_id: str | None,
        quota: Quota,
        now: float,
        policy: Mapping[MoodLabel, SuggestedAction] | None = None,
        *,
        fingerprint: str | None = None,
        max_events: int = 0,
        admit_new: Callable[[], bool] | None = None,
    ) -> AppendResult:
        session_key = self._session_lock(tenant_id, session_id)
        locks = [session_key]
        if batch_id is not None:
            locks.insert(0, lock_key("batch", self._schema, tenant_id, batch_id))
        try:
            async with self._session_locks.hold(session_key):
                result, changed = await self._append(
                    locks, tenant_id, session_id, events, batch_id, quota, now, policy,
                    _Checks(fingerprint, max_events, admit_new),
                )  # fmt: skip
        except _Rollback as refused:
            return refused.result
        if changed:
            self._wake_local(tenant_id)
        return result

    async def _append(
        self,
        locks: list[int],
        tenant_id: int,
        session_id: str,
        events: list[dict[str, Any]],
        batch_id: str | None,
        quota: Quota,
        now: float,
        policy: Mapping[MoodLabel, SuggestedAction] | None,
        checks: _Checks,
    ) -> tuple[AppendResult, bool]:
        async with self._tx(*locks) as c:
            row = await c.fetchrow(
                "SELECT b.session_id, b.response, s.state, s.event_count, s.last_url, s.mood, "
                "EXISTS (SELECT 1 FROM session_months m WHERE m.tenant_id = $1 "
                "AND m.month = $3 AND m.session_id = $2), b.fingerprint, "
                "(SELECT u.sessions FROM usage_months u WHERE u.tenant_id = $1 AND u.month = $3) "
                "FROM (SELECT 1) one "
                "LEFT JOIN batches b ON b.tenant_id = $1 AND b.batch_id = $4 "
                "LEFT JOIN sessions s ON s.tenant_id = $1 AND s.session_id = $2",
                tenant_id, session_id, quota.month, batch_id,
            )  # fmt: skip
            if row[0] is not None:
                if row[0] != session_id:
                    return AppendResult("conflict"), False
                if checks.fingerprint and row[7] and row[7] != checks.fingerprint:
                    return AppendResult("mismatch"), False
                return AppendResult("replayed", orjson.loads(row[1])), False
            new = row[2] is None
            if checks.max_events and (row[3] or 0) + len(events) > checks.max_events:
                return AppendResult("full"), False
            if new and checks.admit_new is not None and not checks.admit_new():
                return AppendResult("limited"), False
            counted = bool(row[6])
            provisional = new and quota.provisional
            # A provisional session is counted by its next batch; until then it
            # is only refused when the month is already used up.
            used = (row[8] or 0) if provisional else 0
            if not counted and quota.blocks and quota.limit <= used:
                return AppendResult("quota"), False
            stored = None if new else (engine.loads(row[2]), row[3], row[4], row[5])
            b = apply_batch(session_id, stored, events, policy)
            verdict, out, response = b.folded.verdict, b.folded, b.response
            rows = event_rows(events, b.total - len(events) + 1)
            # Events, session, pages and the idempotency record: one round trip.
            await c.execute(
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
                "suggested_action, event_count, created_at, updated_at, last_url) "
                "VALUES ($1, $2, $12, $13, $14, $15, $16, $17, $3, $3, $18) "
                "ON CONFLICT (tenant_id, session_id) DO UPDATE SET state = excluded.state, "
                "mood = excluded.mood, confidence = excluded.confidence, "
                "signals = excluded.signals, suggested_action = excluded.suggested_action, "
                "event_count = excluded.event_count, updated_at = excluded.updated_at, "
                "last_url = excluded.last_url",
                tenant_id,
                session_id,
                now,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [float(r[2]) for r in rows],
                [r[3] for r in rows],
                list(b.page_moods),
                list(b.page_moods.values()),
                batch_id,
                orjson.dumps(response).decode() if batch_id is not None else None,
                engine.dumps(out.state),
                verdict.mood,
                verdict.confidence,
                b.signals,
                b.action,
                b.total,
                out.last_url,
                checks.fingerprint,
            )
            if (
                not counted
                and not provisional
                and not await self._count_session_month(c, tenant_id, session_id, quota)
            ):
                raise _Rollback(AppendResult("quota"))
            if b.changed:
                await self._record_change(
                    c, tenant_id, session_id, b.previous, verdict.mood, verdict.confidence,
                    b.signals, b.action, out.last_url, now,
                )  # fmt: skip
            return AppendResult("stored", response), b.changed

    @staticmethod
    async def _count_session_month(c: Any, tenant_id: int, session_id: str, quota: Quota) -> bool:
        """Count a session new this month; False if the plan's limit refuses it.

        The upsert locks the (tenant, month) row until COMMIT and increments
        only below the limit, judged on the latest committed count: replicas
        racing for the last free session are served one at a time, exactly.
        Runs last among the batch's writes, so the lock is held briefly.
        """
        ok = await c.fetchval(
            "WITH u AS (INSERT INTO usage_months AS m (tenant_id, month, sessions) "
            "VALUES ($1, $2, 1) ON CONFLICT (tenant_id, month) DO UPDATE "
            "SET sessions = m.sessions + 1 WHERE NOT $3 OR m.sessions < $4 RETURNING 1) "
            "INSERT INTO session_months (tenant_id, month, session_id) "
            "SELECT $1::bigint, $2::text, $5::text FROM u RETURNING 1",
            tenant_id, quota.month, quota.blocks, quota.limit, session_id,
        )  # fmt: skip
        return bool(ok)

    async def _record_change(
        self,
        c: Any,
        tenant_id: int,
        session_id: str,
        previous: str,
        mood: MoodLabel,
        confidence: float,
        signals: list[str],
        action: str,
        url: str | None,
        now: float,
    ) -> None:
        """The mood change, its webhook outbox rows and the NOTIFY, in the batch's transaction.

        The tenant lock is taken (in the same statement, before the id is drawn)
        and held to COMMIT, so one tenant's change ids become visible in id
        order: a stream that has read id N can never later find a smaller one.
        """
        row = await c.fetchrow(
            "INSERT INTO mood_changes (tenant_id, session_id, previous_mood, mood, confidence, "
            "signals, suggested_action, url, occurred_at) "
            "SELECT $1::bigint, $2::text, $3::text, $4::text, $5::float8, $6::text[], $7::text, "
            "$8::text, $9::float8 "
            "FROM (SELECT pg_advisory_xact_lock($10)) l, (SELECT pg_notify($11, $12)) n "
            "RETURNING id, (SELECT array_agg(w.id) FROM webhooks w WHERE w.tenant_id = $1 "
            "AND w.deleted_at IS NULL AND (w.moods IS NULL OR $4 = ANY(w.moods)))",
            tenant_id, session_id, previous, mood, confidence, signals, action, url, now,
            lock_key("tenant", self._schema, tenant_id), CHANGES_CHANNEL,
            f"{self._schema}:{tenant_id}",
        )  # fmt: skip
        change_id, hooks = row[0], row[1]
        if not hooks:
            return
        payload = webhook_payload(
            change_id, session_id, previous, mood, confidence, signals, action, now
        )
        await c.execute(
            "INSERT INTO webhook_deliveries (tenant_id, webhook_id, session_id, change_id, "
            "payload, status, next_attempt_at, created_at) "
            "SELECT $1::bigint, h, $2::text, $3::bigint, $4::text, 'pending', $5::float8, "
            "$5::float8 FROM unnest($6::text[]) h",
            tenant_id, session_id, change_id, payload, now, sorted(hooks),
        )  # fmt: skip

    async def get_session(self, tenant_id: int, session_id: str) -> SessionRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND session_id = $2",
                tenant_id,
                session_id,
            )
        if row is None:
            return None
        return SessionRecord(
            session_id, row[0], row[1], tuple(row[2]), row[3], row[4], row[5], row[6]
        )

    async def export_events(
        self, tenant_id: int, session_id: str, after_seq: int = 0, limit: int = 0
    ) -> list[dict[str, Any]] | None:
        async with self._conn() as conn, conn.transaction(readonly=True):
            # One snapshot for the existence check and the events.
            if not await conn.fetchval(
                "SELECT 1 FROM sessions WHERE tenant_id = $1 AND session_id = $2",
                tenant_id,
                session_id,
            ):
                return None
            rows = await conn.fetch(
                "SELECT seq, type, ts, received_at, fields FROM events "
                "WHERE tenant_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                tenant_id,
                session_id,
                after_seq,
                limit or None,
            )
        out = []
        for seq, type_, ts, received_at, fields in rows:
            ev: dict[str, Any] = {"seq": seq, "type": type_, "ts": ts}
            if fields:
                ev.update(orjson.loads(fields))
            ev["received_at"] = received_at
            out.append(ev)
        return out

    async def add_feedback(
        self,
        tenant_id: int,
        session_id: str,
        action_taken: str,
        was_helpful: bool | None,
        notes: str | None,
        now: float,
        trusted: bool = True,
    ) -> bool:
        # Under the session lock, so an erasure running now cannot miss this row.
        async with self._tx(self._session_lock(tenant_id, session_id)) as c:
            ok = await c.fetchval(
                "WITH s AS (UPDATE sessions SET has_feedback = true WHERE tenant_id = $1 "
                "AND session_id = $2 RETURNING mood) "
                "INSERT INTO feedback (tenant_id, session_id, mood, action_taken, was_helpful, "
                "notes, created_at, trusted) SELECT $1::bigint, $2::text, s.mood, $3::text, "
                "$4::boolean, $5::text, $6::float8, $7::boolean FROM s RETURNING 1",
                tenant_id, session_id, action_taken, was_helpful, notes, now, trusted,
            )  # fmt: skip
        return bool(ok)

    async def delete_session(self, tenant_id: int, session_id: str) -> bool:
        async with self._tx(self._session_lock(tenant_id, session_id)) as c:
            n = await c.fetchval(_ERASE_SQL.format(extra=""), [tenant_id], [session_id])
        return bool(n)

    async def mood_counts(self, tenant_id: int) -> MoodCounts:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT mood, count(*), count(*) FILTER (WHERE has_feedback) FROM sessions "
                "WHERE tenant_id = $1 GROUP BY mood",
                tenant_id,
            )
        by_mood = dict.fromkeys(MOODS, 0)
        total = feedback = 0
        for mood, n, fb in rows:
            by_mood[mood] = n
            total += n
            feedback += fb
        return MoodCounts(total, feedback, by_mood)

    async def month_usage(self, tenant_id: int, month: str) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "SELECT sessions FROM usage_months WHERE tenant_id = $1 AND month = $2",
                tenant_id,
                month,
            )
        return int(n or 0)

    async def ensure_demo_tenant(
        self, raw_secret: str, raw_publishable: str, origins: tuple[str, ...], now: float
    ) -> KeyRecord:
        # Locked: replicas starting together must not create two demo tenants.
        async with self._tx(lock_key("demo", self._schema)) as c:
            tenant_id = await c.fetchval(
                "SELECT id FROM tenants WHERE customer = $1 ORDER BY id LIMIT 1", DEMO_CUSTOMER
            )
            if tenant_id is None:
                tenant_id = await c.fetchval(
                    "INSERT INTO tenants (customer, email, plan, created_at) "
                    "VALUES ($1, NULL, 'growth', $2) RETURNING id",
                    DEMO_CUSTOMER,
                    now,
                )
            # Keys are stored hashed, so last run's demo keys cannot be shown
            # again: retire them and issue fresh ones.
            await c.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
                now,
                tenant_id,
            )
            await c.executemany(
                "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, allowed_origins, "
                "created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (hash_key(raw), display_prefix(raw), tenant_id, kind, list(allowed), now)
                    for raw, kind, allowed in (
                        (raw_secret, "secret", ()),
                        (raw_publishable, "publishable", origins),
                    )
                ],
            )
            await c.execute("SELECT pg_notify($1, $2)", KEYS_CHANNEL, self._schema)
            row = await c.fetchrow(
                f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                "WHERE k.key_hash = $1",
                hash_key(raw_secret),
            )
        self._invalidate_keys()
        return _key_from_row(row)

    # -- dashboard analytics and the live stream --------------------------------------

    async def page_moods(
        self, tenant_id: int, since: float | None, until: float | None, limit: int = 0
    ) -> dict[str, dict[MoodLabel, int]]:
        async with self._conn() as conn:
            # Only the busiest pages are grouped by mood (ties by URL in byte,
            # i.e. code point, order, as Python sorts).
            rows = await conn.fetch(
                "WITH top AS (SELECT url FROM page_moods WHERE tenant_id = $1 "
                "AND updated_at >= $2 AND updated_at < $3 GROUP BY url "
                'ORDER BY count(*) DESC, url COLLATE "C" LIMIT $4) '
                "SELECT p.url, p.mood, count(*) FROM page_moods p JOIN top ON top.url = p.url "
                "WHERE p.tenant_id = $1 AND p.updated_at >= $2 AND p.updated_at < $3 "
                "GROUP BY p.url, p.mood",
                tenant_id,
                since or 0.0,
                until or 1e18,
                limit or None,
            )
        out: dict[str, dict[MoodLabel, int]] = {}
        for url, mood, n in rows:
            out.setdefault(url, {})[mood] = n
        return busiest_first(out)

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[ActionCounts]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT mood, action_taken, count(*), count(*) FILTER (WHERE was_helpful), "
                "count(*) FILTER (WHERE NOT was_helpful) FROM feedback WHERE tenant_id = $1 "
                "AND created_at >= $2 AND created_at < $3 AND (trusted OR NOT $4) "
                "GROUP BY mood, action_taken "
                # byte order, like SQLite's default collation
                'ORDER BY mood COLLATE "C", action_taken COLLATE "C"',
                tenant_id,
                since or 0.0,
                until or 1e18,
                trusted_only,
            )
        return [ActionCounts(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[MoodChangeRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, session_id, previous_mood, mood, confidence, signals, "
                "suggested_action, url, occurred_at FROM mood_changes "
                "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                tenant_id,
                after_id,
                limit,
            )
        return [
            MoodChangeRecord(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6], r[7], r[8])
            for r in rows
        ]

    async def last_mood_change_id(self, tenant_id: int) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "SELECT max(id) FROM mood_changes WHERE tenant_id = $1", tenant_id
            )
        return int(n or 0)

    async def wait_for_mood_change(self, timeout: float) -> bool:
        if self._closing:
            return False
        # Woken by NOTIFY from any replica (or our own commits); if the
        # listener is down, the timeout doubles as the polling interval.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._change_signal.wait(), timeout)
        return not self._closing

    # -- webhooks ------------------------------------------------------------------

    async def create_webhook(self, record: WebhookRecord, limit: int) -> bool:
        # The tenant's webhook lock serialises creations across replicas, and
        # the count runs after it is granted, so it sees every earlier insert.
        async with self._tx(lock_key("webhooks", self._schema, record.tenant_id)) as c:
            ok = await c.fetchval(
                "INSERT INTO webhooks (tenant_id, id, url, moods, secret, created_at) "
                "SELECT $1, $2, $3, $4, $5, $6 WHERE (SELECT count(*) FROM webhooks "
                "WHERE tenant_id = $1 AND deleted_at IS NULL) < $7 RETURNING true",
                record.tenant_id,
                record.id,
                record.url,
                None if record.moods is None else list(record.moods),
                record.secret,
                record.created_at,
                limit,
            )
        return bool(ok)

    async def list_webhooks(self, tenant_id: int) -> list[WebhookRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, tenant_id, url, moods, secret, created_at FROM webhooks "
                'WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id COLLATE "C"',
                tenant_id,
            )
        return [
            WebhookRecord(r[0], r[1], r[2], None if r[3] is None else tuple(r[3]), r[4], r[5])
            for r in rows
        ]

    async def delete_webhook(self, tenant_id: int, webhook_id: str, now: float) -> bool:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "WITH w AS (UPDATE webhooks SET deleted_at = $3 WHERE tenant_id = $1 AND id = $2 "
                "AND deleted_at IS NULL RETURNING 1), "
                # Nothing more goes to a deleted endpoint.
                "d AS (UPDATE webhook_deliveries SET status = 'failed', "
                "last_error = 'webhook deleted', next_attempt_at = NULL "
                "WHERE tenant_id = $1 AND webhook_id = $2 AND status = 'pending') "
                "SELECT count(*) FROM w",
                tenant_id,
                webhook_id,
                now,
            )
        return bool(n)

    async def list_deliveries(
        self, tenant_id: int, webhook_id: str, limit: int = 50
    ) -> list[DeliveryRecord] | None:
        async with self._conn() as conn:
            if not await conn.fetchval(
                "SELECT 1 FROM webhooks WHERE tenant_id = $1 AND id = $2", tenant_id, webhook_id
            ):
                return None
            rows = await conn.fetch(
                "SELECT id, webhook_id, change_id, session_id, status, attempts, "
                "last_status_code, last_error, latency_ms, created_at, delivered_at, "
                "next_attempt_at FROM webhook_deliveries WHERE tenant_id = $1 "
                "AND webhook_id = $2 ORDER BY id DESC LIMIT $3",
                tenant_id,
                webhook_id,
                limit,
            )
        return [DeliveryRecord(*r) for r in rows]

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[DeliveryJob]:
        # One claimer at a time, database-wide (a claim is one short statement):
        # the leases it counts for the per-endpoint cap are then exact across
        # replicas, and no two replicas can lease the same row. The UPDATE
        # re-checks each row, which a deletion may have failed meanwhile.
        cap = per_endpoint if per_endpoint is not None else 1 << 62
        async with self._tx(lock_key("claim", self._schema)) as c:
            picked = await c.fetch(_CLAIM_SQL, now, limit, cap)
            if not picked:
                return []
            rows = await c.fetch(
                _LEASE_SQL, [r[0] for r in picked], [r[1] for r in picked], now, lease_s
            )
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        latency_ms: float,
        next_attempt_at: float | None,
        now: float,
    ) -> None:
        status = "delivered" if delivered else "pending" if next_attempt_at else "failed"
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, "
                "last_status_code = $2, last_error = $3, latency_ms = $4, next_attempt_at = $5, "
                "claimed_until = NULL, delivered_at = $6 WHERE id = $7",
                status,
                status_code,
                error,
                latency_ms,
                None if delivered else next_attempt_at,
                now if delivered else None,
                delivery_id,
            )

    # -- retention -------------------------------------------------------------------

    async def purge_expired(self, cutoffs: Mapping[Plan, float], limit: int = 1000) -> int:
        plans, limits = list(cutoffs), [float(v) for v in cutoffs.values()]
        async with self._tx() as c:
            victims = await c.fetch(
                "SELECT s.tenant_id, s.session_id FROM sessions s "
                "JOIN tenants t ON t.id = s.tenant_id "
                "JOIN unnest($1::text[], $2::float8[]) AS c(plan, cutoff) ON c.plan = t.plan "
                "WHERE s.updated_at < c.cutoff LIMIT $3",
                plans,
                limits,
                limit,
            )
            if not victims:
                return 0
            # Try-locks: a session another replica is purging (or a batch is
            # updating) right now is skipped, never waited for, so replicas
            # purging at once split the work and cannot deadlock.
            keys = [self._session_lock(t, s) for t, s in victims]
            got = await c.fetch(
                "SELECT i FROM unnest($1::bigint[]) WITH ORDINALITY AS x(k, i) "
                "WHERE pg_try_advisory_xact_lock(k)",
                keys,
            )
            mine = [victims[r[0] - 1] for r in got]
            if not mine:
                return 0
            # Re-checked under the locks: a batch may have just revived a session.
            n = await c.fetchval(
                _ERASE_SQL.format(
                    extra="AND s.updated_at < (SELECT c.cutoff FROM tenants t "
                    "JOIN unnest($3::text[], $4::float8[]) AS c(plan, cutoff) "
                    "ON c.plan = t.plan WHERE t.id = s.tenant_id)"
                ),
                [t for t, _ in mine],
                [s for _, s in mine],
                plans,
                limits,
            )
        return int(n)
