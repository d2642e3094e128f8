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
import functools
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any


# Every batch needs its session's key: a hash each time was 1.5 % of a
# replica's CPU. As many as the session cache holds (cached.CACHE_SESSIONS),
# the sessions sending now; batch ids' keys pass through and age out.
@functools.lru_cache(maxsize=20_000)
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

    Every batch passes through here, almost always with nobody else waiting,
    so an uncontended ``hold`` is a dictionary insert and delete: no
    ``asyncio.Lock``, no generator-based context manager (together 4 % of a
    replica's CPU). A key present in ``_queues`` is held; its deque lists the
    waiters, and the holder hands the lock straight to the first of them.
    """

    def __init__(self) -> None:
        self._queues: dict[int, deque[asyncio.Future[None]]] = {}

    def hold(self, key: int) -> _Held:
        return _Held(self._queues, key)

    def __len__(self) -> int:
        """Keys held or waited for."""
        return len(self._queues)


class _Held:
    __slots__ = ("_key", "_queues")

    def __init__(self, queues: dict[int, deque[asyncio.Future[None]]], key: int) -> None:
        self._queues = queues
        self._key = key

    async def __aenter__(self) -> None:
        waiters = self._queues.get(self._key)
        if waiters is None:
            self._queues[self._key] = deque()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release()  # handed the lock, then cancelled: pass it on
            elif fut in waiters:  # a release may have dropped it already
                waiters.remove(fut)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._queues[self._key]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        del self._queues[self._key]
