"""PostgreSQL backend: many stateless server replicas sharing one database.

``postgresql://user@host:5432/db?schema=NAME&pool_min=2&pool_max=10`` (our own
query parameters are stripped; the rest goes to asyncpg). ``schema`` lets
several deployments or test runs share one database.

Its parts: the locks that make every write race-free across replicas
(``locks.py``, where their order is explained), the LISTEN connection through
which replicas hear each other's commits (``listener.py``), the larger
statements (``queries.py``) and the schema (``schema.py``). Mood changes
write their webhook outbox rows in the same transaction and ``NOTIFY
sessionmood_mood_changes`` (delivered at commit), which wakes live streams and
delivery workers everywhere; ``NOTIFY sessionmood_keys`` drops every
replica's key cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import orjson

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server import engine, records
from sessionmood_server.keys import display_prefix, hash_key
from sessionmood_server.outbox import webhook_payload
from sessionmood_server.scoring import StoredSession, apply_batch, event_rows
from sessionmood_server.storage import shared
from sessionmood_server.storage.postgres.appender import Appender
from sessionmood_server.storage.postgres.cached import (
    READ_SQL,
    Cached,
    SessionStates,
    append_cached,
)
from sessionmood_server.storage.postgres.listener import CHANGES_CHANNEL, KEYS_CHANNEL, Listener
from sessionmood_server.storage.postgres.locks import LocalLocks, lock_key, locked_transaction
from sessionmood_server.storage.postgres.queries import (
    CLAIM_SQL,
    ERASE_SQL,
    LEASE_SQL,
    SESSION_COLUMNS,
)
from sessionmood_server.storage.postgres.schema import migrate
from sessionmood_server.storage.shared import (
    DEMO_CUSTOMER,
    SELECT_KEYS,
    ChangeSignal,
    KeyCache,
    Notifications,
)

log = logging.getLogger("sessionmood.storage")

# Without a working LISTEN connection other replicas' key revocations cannot
# reach us, so cached keys expire this fast instead.
KEY_CACHE_FALLBACK_TTL_S = 0.5
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _key_from_row(row: Any) -> records.KeyRecord:
    return shared.key_record(row, row[9] or ())


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


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own rollback of an
    open transaction. The default (``RESET ALL; UNLISTEN *; CLOSE ALL;
    pg_advisory_unlock_all()``) is one more round trip and transaction for every
    use of a connection, i.e. for every batch (half the database's transactions
    under POST load, by bench/replicas.py). Nothing here leaves session state
    behind: settings are fixed at connect, advisory locks are transaction-scoped,
    LISTEN has its own connection and no cursor outlives its statement."""


class _Rollback(Exception):
    """Raised inside a transaction to undo it and still return ``result``."""

    def __init__(self, result: records.AppendResult) -> None:
        self.result = result


class PostgresStorage(Notifications):
    """PostgreSQL storage for one or many server processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._dsn, self._schema, self._pool_min, self._pool_max = parse_postgres_url(url)
        self._pool: Any = None
        self._signal = ChangeSignal()
        self._keys = KeyCache()
        self._listener = Listener(
            self._dsn,
            self._schema,
            on_moods=self._wake,
            on_keys=self._invalidate_keys,
            lost_note=f"; keys cached {KEY_CACHE_FALLBACK_TTL_S:.1f}s meanwhile",
        )
        self._session_locks = LocalLocks()
        self._states = SessionStates()
        self._appender = Appender(self._conn)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        await migrate(self._dsn, self._schema)
        settings = {"application_name": "sessionmood"}
        if self._schema != "public":
            settings["search_path"] = self._schema
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._pool_min,
            max_size=self._pool_max,
            server_settings=settings,
            reset=_keep_session,
        )
        await self._listener.start()
        # Unlike SQLite, delivery leases are NOT reset here: other replicas may
        # hold them right now. A crashed replica's leases simply expire.

    async def close(self) -> None:
        self._signal.close()  # live streams see it and end
        await self._listener.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    # -- notifications -----------------------------------------------------------

    def _wake_local(self, tenant_id: int) -> None:
        """After our own commit of a mood change: the delivery worker need not
        wait for our NOTIFY. Live streams do, while the listener works: it
        brings key revocations and mood changes in commit order, and hearing
        of one change twice would read it twice."""
        if self._listener.listening():
            self._signal.wake_waiters()
        else:
            self._wake(tenant_id)

    def _wake(self, tenant_id: int | None) -> None:
        self._signal.moods_changed(None if tenant_id is None else (tenant_id,))

    # -- transactions ------------------------------------------------------------

    def _conn(self) -> Any:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool.acquire()

    @contextlib.asynccontextmanager
    async def _tx(self, *locks: int) -> AsyncIterator[Any]:
        """A transaction holding the advisory locks ``locks`` (see ``locks.py``)."""
        async with self._conn() as conn, locked_transaction(conn, locks) as c:
            yield c

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
    ) -> records.KeyRecord:
        async with self._conn() as conn:
            tenant_id = await conn.fetchval(
                "WITH t AS (INSERT INTO tenants (customer, email, plan, created_at) "
                "VALUES ($1, $2, $3, $4) RETURNING id) "
                "INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, created_at) "
                "SELECT $5::text, $6::text, t.id, 'secret', $4::float8 FROM t RETURNING tenant_id",
                customer, email, plan, now, hash_key(raw_key), display_prefix(raw_key),
            )  # fmt: skip
        # Unknown keys are never cached, so nobody needs to hear about a new one.
        return records.KeyRecord(
            hash_key(raw_key), display_prefix(raw_key), tenant_id, "secret", plan,
            customer, email, now,
        )  # fmt: skip

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> records.KeyRecord:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "WITH k AS (INSERT INTO api_keys (key_hash, prefix, tenant_id, kind, "
                "allowed_origins, created_at) VALUES ($1, $2, $3, 'publishable', $4, $5) "
                "RETURNING *) "
                f"SELECT {shared.KEY_COLUMNS} FROM k JOIN tenants t ON t.id = k.tenant_id",
                hash_key(raw_key), display_prefix(raw_key), tenant_id, list(allowed_origins), now,
            )  # fmt: skip
        return _key_from_row(row)

    async def find_key(self, key_hash: str) -> records.KeyRecord | None:
        # Auth runs on every request, so found keys are cached. Every key write
        # NOTIFYs sessionmood_keys, which drops the cache in every replica; if
        # our LISTEN connection is down, entries live only a fraction of a second.
        max_age = None if self._listener.listening() else KEY_CACHE_FALLBACK_TTL_S
        hit = self._keys.get(key_hash, max_age)
        if hit is not None:
            return hit
        generation = self._keys.generation
        async with self._conn() as conn:
            row = await conn.fetchrow(SELECT_KEYS + " WHERE k.key_hash = $1", key_hash)
        if row is None:
            return None  # unknown keys are not cached: random keys cannot fill memory
        record = _key_from_row(row)
        self._keys.put(key_hash, record, generation)  # unless an invalidation raced us
        return record

    async def list_keys(self) -> list[records.KeyRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(SELECT_KEYS + ' ORDER BY k.created_at, k.prefix COLLATE "C"')
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

    async def append_events(self, batch: records.Batch) -> records.AppendResult:
        session_key = self._session_lock(batch.tenant_id, batch.session_id)
        locks = [session_key]
        if batch.batch_id is not None:
            locks.insert(0, lock_key("batch", self._schema, batch.tenant_id, batch.batch_id))
        try:
            async with self._session_locks.hold(session_key):
                fast = await append_cached(
                    self._appender,
                    self._read_session,
                    self._states,
                    batch,
                    (locks[0] if len(locks) > 1 else None, session_key),
                )
                if fast is not None:
                    return fast
                result, changed, entry = await self._append(locks, batch)
                if entry is not None:  # committed: later batches can take the fast path
                    self._states.put((batch.tenant_id, batch.session_id), entry)
        except _Rollback as refused:
            return refused.result
        if changed:
            self._wake_local(batch.tenant_id)
        return result

    async def _read_session(self, tenant_id: int, session_id: str) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(READ_SQL, tenant_id, session_id)

    async def _append(
        self, locks: list[int], batch: records.Batch
    ) -> tuple[records.AppendResult, bool, Cached | None]:
        tenant_id, session_id, events, batch_id = (
            batch.tenant_id, batch.session_id, batch.events, batch.batch_id,
        )  # fmt: skip
        quota, now = batch.quota, batch.now
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
                seen = shared.seen_batch(
                    session_id, batch.fingerprint, row[0], row[1], row[7], orjson.loads
                )
                return seen, False, None
            new = row[2] is None
            refused = shared.refuse_batch(
                None if new else row[3], len(events), batch.max_events, batch.admission
            )
            if refused is not None:
                return refused, False, None
            counted = bool(row[6])
            provisional = new and quota.provisional
            # A provisional session is counted by its next batch; until then it
            # is only refused when the month is already used up.
            used = (row[8] or 0) if provisional else 0
            if not counted and shared.month_full(quota, used):
                return records.AppendResult("quota"), False, None
            stored = None if new else StoredSession(engine.loads(row[2]), row[3], row[4], row[5])
            b = apply_batch(session_id, stored, events, batch.policy)
            verdict, out, response = b.folded.verdict, b.folded, b.response
            rows = event_rows(events, b.total - len(events) + 1)
            # Events, session, pages and the idempotency record: one round trip.
            version = await c.fetchval(
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
                "last_url = excluded.last_url, version = nextval('session_versions') "
                "RETURNING version",
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
                batch.fingerprint,
            )
            if (
                not counted
                and not provisional
                and not await self._count_session_month(c, tenant_id, session_id, quota)
            ):
                raise _Rollback(records.AppendResult("quota"))
            if b.changed:
                await self._record_change(
                    c, tenant_id, session_id, b.previous, verdict.mood, verdict.confidence,
                    b.signals, b.action, out.last_url, now,
                )  # fmt: skip
            entry = Cached(version, out.state, b.total, out.last_url, verdict.mood)
            return records.AppendResult("stored", response, b.changed), b.changed, entry

    @staticmethod
    async def _count_session_month(
        c: Any, tenant_id: int, session_id: str, quota: records.Quota
    ) -> bool:
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

    async def get_session(self, tenant_id: int, session_id: str) -> records.SessionRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND session_id = $2",
                tenant_id,
                session_id,
            )
        if row is None:
            return None
        return records.SessionRecord(
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

    async def add_feedback(self, feedback: records.Feedback) -> bool:
        tenant_id, session_id = feedback.tenant_id, feedback.session_id
        # Under the session lock, so an erasure running now cannot miss this row.
        async with self._tx(self._session_lock(tenant_id, session_id)) as c:
            ok = await c.fetchval(
                "WITH s AS (UPDATE sessions SET has_feedback = true WHERE tenant_id = $1 "
                "AND session_id = $2 RETURNING mood) "
                "INSERT INTO feedback (tenant_id, session_id, mood, action_taken, was_helpful, "
                "notes, created_at, trusted) SELECT $1::bigint, $2::text, s.mood, $3::text, "
                "$4::boolean, $5::text, $6::float8, $7::boolean FROM s RETURNING 1",
                tenant_id, session_id, feedback.action_taken, feedback.was_helpful,
                feedback.notes, feedback.now, feedback.trusted,
            )  # fmt: skip
        return bool(ok)

    async def delete_session(self, tenant_id: int, session_id: str) -> bool:
        async with self._tx(self._session_lock(tenant_id, session_id)) as c:
            n = await c.fetchval(ERASE_SQL.format(extra=""), [tenant_id], [session_id])
        self._states.drop((tenant_id, session_id))
        return bool(n)

    async def mood_counts(self, tenant_id: int) -> records.MoodCounts:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT mood, count(*), count(*) FILTER (WHERE has_feedback) FROM sessions "
                "WHERE tenant_id = $1 GROUP BY mood",
                tenant_id,
            )
        return shared.mood_counts(rows)

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
    ) -> records.KeyRecord:
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
            row = await c.fetchrow(SELECT_KEYS + " WHERE k.key_hash = $1", hash_key(raw_secret))
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
                *shared.window(since, until),
                limit or None,
            )
        return shared.page_moods(rows)

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[records.ActionCounts]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT mood, action_taken, count(*), count(*) FILTER (WHERE was_helpful), "
                "count(*) FILTER (WHERE NOT was_helpful) FROM feedback WHERE tenant_id = $1 "
                "AND created_at >= $2 AND created_at < $3 AND (trusted OR NOT $4) "
                "GROUP BY mood, action_taken "
                # byte order, like SQLite's default collation
                'ORDER BY mood COLLATE "C", action_taken COLLATE "C"',
                tenant_id,
                *shared.window(since, until),
                trusted_only,
            )
        return [records.ActionCounts(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[records.MoodChangeRecord]:
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
            records.MoodChangeRecord(r[0], r[1], r[2], r[3], r[4], tuple(r[5]), r[6], r[7], r[8])
            for r in rows
        ]

    async def last_mood_change_id(self, tenant_id: int) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "SELECT max(id) FROM mood_changes WHERE tenant_id = $1", tenant_id
            )
        return int(n or 0)

    # -- webhooks ------------------------------------------------------------------

    async def create_webhook(self, record: records.WebhookRecord, limit: int) -> bool:
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

    async def list_webhooks(self, tenant_id: int) -> list[records.WebhookRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, tenant_id, url, moods, secret, created_at FROM webhooks "
                'WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id COLLATE "C"',
                tenant_id,
            )
        return [
            records.WebhookRecord(
                r[0], r[1], r[2], None if r[3] is None else tuple(r[3]), r[4], r[5]
            )
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
    ) -> list[records.DeliveryRecord] | None:
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
        return [records.DeliveryRecord(*r) for r in rows]

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[records.DeliveryJob]:
        # One claimer at a time, database-wide (a claim is one short statement):
        # the leases it counts for the per-endpoint cap are then exact across
        # replicas, and no two replicas can lease the same row. The UPDATE
        # re-checks each row, which a deletion may have failed meanwhile.
        cap = per_endpoint if per_endpoint is not None else 1 << 62
        async with self._tx(lock_key("claim", self._schema)) as c:
            picked = await c.fetch(CLAIM_SQL, now, limit, cap)
            if not picked:
                return []
            rows = await c.fetch(
                LEASE_SQL, [r[0] for r in picked], [r[1] for r in picked], now, lease_s
            )
        return sorted((records.DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    async def webhook_backlog(self) -> int:
        async with self._conn() as conn:
            n = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            )
        return int(n)

    async def finish_delivery(self, attempt: records.Attempt) -> None:
        status, next_at, delivered_at = shared.delivery_update(
            attempt.delivered, attempt.next_attempt_at, attempt.now
        )
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, "
                "last_status_code = $2, last_error = $3, latency_ms = $4, next_attempt_at = $5, "
                "claimed_until = NULL, delivered_at = $6 WHERE id = $7",
                status,
                attempt.status_code,
                attempt.error,
                attempt.latency_ms,
                next_at,
                delivered_at,
                attempt.delivery_id,
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
            for victim in mine:
                self._states.drop((victim[0], victim[1]))
            # Re-checked under the locks: a batch may have just revived a session.
            n = await c.fetchval(
                ERASE_SQL.format(
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
