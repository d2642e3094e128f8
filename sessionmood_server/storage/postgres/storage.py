"""PostgreSQL backend: many stateless server replicas sharing one database.

``postgresql://user@host:5432/db?schema=NAME&pool_min=2&pool_max=10`` (our own
query parameters are stripped; the rest goes to asyncpg). ``schema`` lets
several deployments or test runs share one database.

Its parts: the locks that make every write race-free across replicas
(``locks.py``, where their order is explained), the LISTEN connection through
which replicas hear each other's commits (``listener.py``), the events and
session rows (``log.py``), the other statements (``queries.py``), the fast
path for sessions this replica holds (``cached.py``, ``appender.py``) and the
schema (``schema.py``). This module ties them together: it runs each
operation as a transaction (or one statement) and calls those. Mood changes
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

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server import records
from sessionmood_server.storage.postgres import log as session_log
from sessionmood_server.storage.postgres import queries
from sessionmood_server.storage.postgres.appender import Appender
from sessionmood_server.storage.postgres.cached import READ_SQL, SessionStates, append_cached
from sessionmood_server.storage.postgres.listener import KEYS_CHANNEL, Listener
from sessionmood_server.storage.postgres.locks import LocalLocks, lock_key, locked_transaction
from sessionmood_server.storage.postgres.schema import migrate
from sessionmood_server.storage.shared import ChangeSignal, KeyCache, Notifications

log = logging.getLogger("sessionmood.storage")

# Without a working LISTEN connection other replicas' key revocations cannot
# reach us, so cached keys expire this fast instead.
KEY_CACHE_FALLBACK_TTL_S = 0.5
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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

    @property
    def _keys_notice(self) -> tuple[str, str]:
        """The NOTIFY that drops every replica's key cache (channel, payload)."""
        return KEYS_CHANNEL, self._schema

    async def create_tenant_key(
        self, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
    ) -> records.KeyRecord:
        async with self._conn() as conn:
            # Unknown keys are never cached, so nobody needs to hear about a new one.
            return await queries.create_tenant_key(conn, customer, email, plan, raw_key, now)

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> records.KeyRecord:
        async with self._conn() as conn:
            return await queries.create_publishable_key(
                conn, tenant_id, raw_key, allowed_origins, now
            )

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
            record = await queries.key_by_hash(conn, key_hash)
        if record is None:
            return None  # unknown keys are not cached: random keys cannot fill memory
        self._keys.put(key_hash, record, generation)  # unless an invalidation raced us
        return record

    async def list_keys(self) -> list[records.KeyRecord]:
        async with self._conn() as conn:
            return await queries.list_keys(conn)

    async def revoke_keys(self, prefix: str, now: float) -> int:
        async with self._conn() as conn:
            n = await queries.revoke_keys(conn, prefix, now, self._keys_notice)
        self._invalidate_keys()  # after the commit, or a racing read could re-cache
        return n

    async def ensure_demo_tenant(
        self, raw_secret: str, raw_publishable: str, origins: tuple[str, ...], now: float
    ) -> records.KeyRecord:
        # Locked: replicas starting together must not create two demo tenants.
        async with self._tx(lock_key("demo", self._schema)) as c:
            record = await queries.ensure_demo_tenant(
                c, raw_secret, raw_publishable, origins, now, self._keys_notice
            )
        self._invalidate_keys()
        return record

    # -- sessions ------------------------------------------------------------------

    async def append_events(self, batch: records.Batch) -> records.AppendResult:
        session_key = self._session_lock(batch.tenant_id, batch.session_id)
        batch_key = (
            None
            if batch.batch_id is None
            else lock_key("batch", self._schema, batch.tenant_id, batch.batch_id)
        )
        try:
            async with self._session_locks.hold(session_key):
                fast = await append_cached(
                    self._appender, self._read_session, self._states, batch,
                    (batch_key, session_key),
                )  # fmt: skip
                if fast is not None:
                    return fast
                locks = (session_key,) if batch_key is None else (batch_key, session_key)
                async with self._tx(*locks) as c:
                    result, entry = await session_log.append(c, batch, self._schema)
                if entry is not None:  # committed: later batches can take the fast path
                    self._states.put((batch.tenant_id, batch.session_id), entry)
        except session_log.Rollback as refused:
            return refused.result
        if result.mood_changed:
            self._wake_local(batch.tenant_id)
        return result

    async def _read_session(self, tenant_id: int, session_id: str) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(READ_SQL, tenant_id, session_id)

    async def get_session(self, tenant_id: int, session_id: str) -> records.SessionRecord | None:
        async with self._conn() as conn:
            return await session_log.get_session(conn, tenant_id, session_id)

    async def export_events(
        self, tenant_id: int, session_id: str, after_seq: int = 0, limit: int = 0
    ) -> list[dict[str, Any]] | None:
        async with self._conn() as conn, conn.transaction(readonly=True):
            return await session_log.export(conn, tenant_id, session_id, after_seq, limit)

    async def add_feedback(self, feedback: records.Feedback) -> bool:
        # Under the session lock, so an erasure running now cannot miss this row.
        async with self._tx(self._session_lock(feedback.tenant_id, feedback.session_id)) as c:
            return await session_log.add_feedback(c, feedback)

    async def get_holdout(self, tenant_id: int) -> records.HoldoutSetting:
        async with self._conn() as conn:
            return await queries.get_holdout(conn, tenant_id)

    async def set_holdout(
        self, tenant_id: int, share: float, salt: str, now: float
    ) -> records.HoldoutSetting:
        async with self._conn() as conn:
            return await queries.set_holdout(conn, tenant_id, share, salt, now)

    async def add_conversion(self, conversion: records.Conversion) -> records.ConversionResult:
        # Under the session lock: an erasure running now cannot miss this row,
        # and two replicas counting one name at once count it once.
        lock = self._session_lock(conversion.tenant_id, conversion.session_id)
        async with self._tx(lock) as c:
            return await queries.add_conversion(c, conversion)

    async def conversions_of(self, tenant_id: int, session_id: str) -> list[dict[str, Any]]:
        async with self._conn() as conn:
            return await queries.conversions_of(conn, tenant_id, session_id)

    async def uplift_counts(
        self, tenant_id: int, name: str | None, since: float | None, until: float | None
    ) -> list[records.UpliftCounts]:
        async with self._conn() as conn:
            return await queries.uplift_counts(conn, tenant_id, name, since, until)

    async def delete_session(self, tenant_id: int, session_id: str) -> bool:
        async with self._tx(self._session_lock(tenant_id, session_id)) as c:
            deleted = await session_log.delete_session(c, tenant_id, session_id)
        self._states.drop((tenant_id, session_id))
        return deleted

    async def mood_counts(self, tenant_id: int) -> records.MoodCounts:
        async with self._conn() as conn:
            return await queries.mood_counts(conn, tenant_id)

    async def month_usage(self, tenant_id: int, month: str) -> int:
        async with self._conn() as conn:
            return await queries.month_usage(conn, tenant_id, month)

    # -- dashboard analytics and the live stream --------------------------------------

    async def page_moods(
        self, tenant_id: int, since: float | None, until: float | None, limit: int = 0
    ) -> dict[str, dict[MoodLabel, int]]:
        async with self._conn() as conn:
            return await queries.page_moods(conn, tenant_id, since, until, limit)

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[records.ActionCounts]:
        async with self._conn() as conn:
            return await queries.action_counts(conn, tenant_id, since, until, trusted_only)

    async def element_counts(
        self, tenant_id: int, since: float | None, until: float | None, page: str | None, limit: int
    ) -> list[records.ElementCounts]:
        async with self._conn() as conn:
            return await queries.element_counts(conn, tenant_id, since, until, page, limit)

    async def journeys(
        self, tenant_id: int, since: float | None, until: float | None, steps: int, limit: int
    ) -> list[records.JourneyCounts]:
        async with self._conn() as conn:
            return await queries.journeys(conn, tenant_id, since, until, steps, limit)

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[records.MoodChangeRecord]:
        async with self._conn() as conn:
            return await queries.mood_changes(conn, tenant_id, after_id, limit)

    async def last_mood_change_id(self, tenant_id: int) -> int:
        async with self._conn() as conn:
            return await queries.last_mood_change_id(conn, tenant_id)

    # -- webhooks ------------------------------------------------------------------

    async def create_webhook(self, record: records.WebhookRecord, limit: int) -> bool:
        # The tenant's webhook lock serialises creations across replicas, and
        # the count runs after it is granted, so it sees every earlier insert.
        async with self._tx(lock_key("webhooks", self._schema, record.tenant_id)) as c:
            return await queries.create_webhook(c, record, limit)

    async def list_webhooks(self, tenant_id: int) -> list[records.WebhookRecord]:
        async with self._conn() as conn:
            return await queries.list_webhooks(conn, tenant_id)

    async def delete_webhook(self, tenant_id: int, webhook_id: str, now: float) -> bool:
        async with self._conn() as conn:
            return await queries.delete_webhook(conn, tenant_id, webhook_id, now)

    async def list_deliveries(
        self, tenant_id: int, webhook_id: str, limit: int = 50
    ) -> list[records.DeliveryRecord] | None:
        async with self._conn() as conn:
            return await queries.list_deliveries(conn, tenant_id, webhook_id, limit)

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[records.DeliveryJob]:
        # One claimer at a time, database-wide (a claim is one short statement):
        # the leases it counts for the per-endpoint cap are then exact across
        # replicas, and no two replicas can lease the same row. The UPDATE
        # re-checks each row, which a deletion may have failed meanwhile.
        cap = per_endpoint if per_endpoint is not None else 1 << 62
        async with self._tx(lock_key("claim", self._schema)) as c:
            return await queries.claim_deliveries(c, now, limit, lease_s, cap)

    async def webhook_backlog(self) -> int:
        async with self._conn() as conn:
            return await queries.webhook_backlog(conn)

    async def finish_delivery(self, attempt: records.Attempt) -> None:
        async with self._conn() as conn:
            await queries.finish_delivery(conn, attempt)

    # -- retention -------------------------------------------------------------------

    async def purge_expired(self, cutoffs: Mapping[Plan, float], limit: int = 1000) -> int:
        async with self._tx() as c:
            victims = await queries.expired_sessions(c, cutoffs, limit)
            if not victims:
                return 0
            # Try-locks: a session another replica is purging (or a batch is
            # updating) right now is skipped, never waited for, so replicas
            # purging at once split the work and cannot deadlock.
            got = await queries.try_locks(c, [self._session_lock(t, s) for t, s in victims])
            mine = [victims[i] for i in got]
            if not mine:
                return 0
            for victim in mine:
                self._states.drop(victim)
            # Re-checked under the locks: a batch may have just revived a session.
            return await session_log.purge(c, mine, *queries.cutoff_arrays(cutoffs))
