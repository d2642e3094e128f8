"""The PostgreSQL backend's locks: advisory lock keys, transactions that take
them, and the per-process queue in front of them.

Every write is one transaction on a pooled connection in READ COMMITTED, made
race-free across processes by transaction-scoped locks that PostgreSQL
releases at COMMIT/ROLLBACK, taken in one fixed order so two transactions can
never wait on each other in a cycle:

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
previous lock holder committed. Keys include the schema: advisory locks are
per database, and deployments in other schemas must not contend.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any


def lock_key(*parts: object) -> int:
    """A signed 64-bit advisory lock key for ``parts`` (namespace first).

    Computed here rather than in SQL so a transaction can BEGIN and take its
    locks in a single round trip.
    """
    raw = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


@contextlib.asynccontextmanager
async def locked_transaction(conn: Any, locks: tuple[int, ...]) -> AsyncIterator[Any]:
    """A transaction on ``conn`` holding the advisory locks ``locks`` (in that order).

    BEGIN and the locks go in one simple-protocol round trip (the keys are
    integers we computed, safe to inline). COMMIT on normal exit; ROLLBACK on
    any exception, and a connection that cannot even roll back is terminated
    rather than returned to the pool mid-transaction.
    """
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


class LocalLocks:
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
