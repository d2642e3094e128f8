"""The live feed behind ``GET /v1/stream/moods``: one query per tenant per wake-up.

Storage tells the feed which tenants' moods changed (after each commit in this
process, or a NOTIFY from another PostgreSQL replica). The feed reads that
tenant's new changes once, keeps the latest few hundred in a window, and wakes
only that tenant's streams; each takes from the window what it has not sent
yet. Streams of other tenants do nothing at all, however many there are. A
stream behind the window (resumed from an old ``Last-Event-ID``, or read
slowly by its client) catches up with queries of its own until it is inside
the window again.

Keys: when storage says keys changed, every stream re-checks its key (one
look-up per distinct key, shared) before it sends anything more, and a stream
whose key was revoked ends. Once a second the feed also looks its streams'
keys up (a cache hit unless something changed), which is how a revocation
that storage cannot announce (SQLite written by the CLI while no request
arrives) still ends the streams within about a second. Once every
``poll_s`` the tenants with streams are re-read too, in case a notification
was lost (a PostgreSQL listener reconnecting).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import time
from collections.abc import Collection

from sessionmood_server.records import KeyRecord, MoodChangeRecord
from sessionmood_server.storage import Storage

log = logging.getLogger("sessionmood.live")

WINDOW = 512  # changes kept per tenant with open streams
FETCH = 256  # rows per query


class Subscription:
    """One open stream: the tenant's changes after ``last``, for as long as its key holds."""

    def __init__(self, feed: LiveFeed, key: KeyRecord, after_id: int) -> None:
        self._feed = feed
        self.tenant_id = key.tenant_id
        self.key_hash = key.key_hash
        self.last = after_id
        self.closed = False
        # The feed's key generation this stream's key was last found valid in.
        self.key_gen = feed.key_gen
        self.wake = asyncio.Event()

    async def next(self, timeout: float) -> list[MoodChangeRecord] | None:
        """The changes after ``last`` (which moves past them), ``[]`` after
        ``timeout`` seconds without any, None once the stream must end."""
        return await self._feed.next(self, timeout)

    def close(self) -> None:
        self._feed.unsubscribe(self)


class _Tenant:
    """A tenant with open streams: its subscribers and its window of recent changes."""

    def __init__(self) -> None:
        self.subs: set[Subscription] = set()
        self.window: list[MoodChangeRecord] = []  # by id
        # The window holds every change of the tenant with lo < id <= hi;
        # lo is None until the first read.
        self.lo: int | None = None
        self.hi = 0
        self.fetching: asyncio.Task[None] | None = None
        self.again = False
        # Its streams read for themselves when they open; polls start after that.
        self.fetched_at = time.monotonic()

    def after(self, last: int) -> list[MoodChangeRecord] | None:
        """The changes after ``last``, or None if the window does not reach back that far."""
        if self.lo is None or last < self.lo:
            return None
        ids = [c.id for c in self.window]
        return self.window[bisect.bisect_right(ids, last) :]

    def extend(self, after: int, rows: list[MoodChangeRecord]) -> None:
        if self.lo is None:
            self.lo = self.hi = after
        self.window += [r for r in rows if r.id > self.hi]
        if rows:
            self.hi = max(self.hi, rows[-1].id)
        if len(self.window) > WINDOW:
            cut = len(self.window) - WINDOW
            self.lo = self.window[cut - 1].id
            del self.window[:cut]


class LiveFeed:
    """Fans mood changes out to open streams (a storage ``ChangeListener``)."""

    def __init__(self, storage: Storage, *, poll_s: float = 5.0, key_check_s: float = 1.0) -> None:
        self._storage = storage
        self._poll_s = poll_s
        self._key_check_s = key_check_s
        self._tenants: dict[int, _Tenant] = {}
        # Bumped whenever keys may have changed; a stream re-checks its key
        # before sending anything once its own generation is behind.
        self.key_gen = 0
        self._key_lookups: dict[str, tuple[int, asyncio.Task[KeyRecord | None]]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._storage.add_listener(self)
        self._ticker = asyncio.create_task(self._tick(), name="sessionmood-live-feed")

    async def stop(self) -> None:
        self._stopped = True
        self._storage.remove_listener(self)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for tenant in self._tenants.values():
            for sub in tenant.subs:
                sub.closed = True
                sub.wake.set()

    def subscribe(self, key: KeyRecord, after_id: int) -> Subscription:
        sub = Subscription(self, key, after_id)
        self._tenants.setdefault(key.tenant_id, _Tenant()).subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        tenant = self._tenants.get(sub.tenant_id)
        if tenant is not None:
            tenant.subs.discard(sub)
            if not tenant.subs:
                del self._tenants[sub.tenant_id]

    def streams(self) -> int:
        return sum(len(t.subs) for t in self._tenants.values())

    # -- what storage tells us ------------------------------------------------------

    def moods_changed(self, tenant_ids: Collection[int] | None) -> None:
        targets = list(self._tenants) if tenant_ids is None else tenant_ids
        for tenant_id in targets:
            tenant = self._tenants.get(tenant_id)
            if tenant is not None:
                self._fetch_soon(tenant_id, tenant)

    def keys_changed(self) -> None:
        self.key_gen += 1
        for tenant in self._tenants.values():
            for sub in tenant.subs:
                sub.wake.set()  # an idle stream re-checks its key now

    # -- reading changes ----------------------------------------------------------------

    def _fetch_soon(self, tenant_id: int, tenant: _Tenant) -> None:
        if tenant.fetching is not None:
            tenant.again = True  # read again once the read in flight is done
        else:
            tenant.fetching = asyncio.create_task(self._fetch(tenant_id, tenant))

    async def _fetch(self, tenant_id: int, tenant: _Tenant) -> None:
        try:
            while tenant.subs and not self._stopped:
                tenant.again = False
                after = tenant.hi if tenant.lo is not None else min(s.last for s in tenant.subs)
                rows = await self._storage.mood_changes(tenant_id, after, FETCH)
                tenant.fetched_at = time.monotonic()
                tenant.extend(after, rows)
                for sub in tenant.subs:
                    sub.wake.set()
                if len(rows) < FETCH and not tenant.again:
                    return
        except Exception:  # the streams' next poll reads again
            log.exception("live feed: reading the mood changes of tenant %d failed", tenant_id)
        finally:
            tenant.fetching = None

    async def next(self, sub: Subscription, timeout: float) -> list[MoodChangeRecord] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if sub.closed or self._stopped:
                return None
            # Cleared before looking, so a wake-up that lands while we look is kept.
            sub.wake.clear()
            gen = self.key_gen
            if sub.key_gen != gen:
                if not await self._key_valid(sub.key_hash, gen):
                    self.unsubscribe(sub)
                    return None
                sub.key_gen = gen
                continue  # keys may have changed again meanwhile
            tenant = self._tenants.get(sub.tenant_id)
            if tenant is None:
                return None
            changes = tenant.after(sub.last)
            if changes is None:  # behind the window: catch up alone
                changes = await self._storage.mood_changes(sub.tenant_id, sub.last, FETCH)
                if self.key_gen != gen:
                    continue  # a key changed while we read: check ours first
            if changes:
                sub.last = changes[-1].id
                return changes
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), remaining)

    # -- keys ------------------------------------------------------------------------------

    async def _key_valid(self, key_hash: str, gen: int) -> bool:
        """Whether the key is still valid as of key generation ``gen``; one
        look-up per key and generation, shared by all of its streams."""
        hit = self._key_lookups.get(key_hash)
        if hit is None or hit[0] < gen:
            task = asyncio.ensure_future(self._storage.find_key(key_hash))
            self._key_lookups[key_hash] = hit = (gen, task)
            task.add_done_callback(functools.partial(self._forget_lookup, key_hash))
        try:
            record = await asyncio.shield(hit[1])
        except Exception:
            log.exception("live feed: checking a stream's key failed")
            return True  # the next check decides
        return record is not None and record.revoked_at is None

    def _forget_lookup(self, key_hash: str, task: asyncio.Task[KeyRecord | None]) -> None:
        hit = self._key_lookups.get(key_hash)
        if hit is not None and hit[1] is task:
            del self._key_lookups[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved: reported by _key_valid

    async def _tick(self) -> None:
        """Once a second: look the streams' keys up (ending those revoked) and
        re-read tenants not read for ``poll_s``."""
        while True:
            await asyncio.sleep(self._key_check_s)
            try:
                await self._check(time.monotonic())
            except Exception:
                log.exception("live feed: periodic check failed")

    async def _check(self, now: float) -> None:
        keys = {sub.key_hash for t in self._tenants.values() for sub in t.subs}
        for key_hash in keys:
            # On SQLite the look-up itself notices another process's commit
            # and says so (keys_changed); a cache hit otherwise.
            record = await self._storage.find_key(key_hash)
            if record is None or record.revoked_at is not None:
                for tenant in list(self._tenants.values()):
                    for sub in [s for s in tenant.subs if s.key_hash == key_hash]:
                        self.unsubscribe(sub)
                        sub.wake.set()
        for tenant_id, tenant in list(self._tenants.items()):
            if now - tenant.fetched_at >= self._poll_s:
                self._fetch_soon(tenant_id, tenant)
