"""Embedded SQLite backend (the default): ``SQLiteStorage``.

Its parts: the writer (``writer.py``: connections, group commit on the event
loop, checkpoints on a thread), the session cache (``cache.py``: verdicts and
engine states in memory, changed only by staging in a group, then commit or
rollback), the event log and session rows (``log.py``), the other queries
(``queries.py``) and the schema (``schema.py``). This module ties them
together: it runs each operation as a write job or a read, and decides around
every write group what the caches and lagging rows need.

Durability: ``synchronous=NORMAL`` in WAL mode survives a process crash
(SIGKILL) without losing a committed batch; only an OS crash or power loss can
drop the last commits. Use ``?synchronous=full`` in the URL for full fsync per
commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server import records
from sessionmood_server.storage.shared import ChangeSignal, KeyCache, Notifications
from sessionmood_server.storage.sqlite import log as session_log
from sessionmood_server.storage.sqlite import queries
from sessionmood_server.storage.sqlite.cache import SessionCache
from sessionmood_server.storage.sqlite.schema import migrate
from sessionmood_server.storage.sqlite.writer import Writer

log = logging.getLogger("sessionmood.storage")
T = TypeVar("T")

# Reads notice another process's commits (the CLI revoking a key or purging)
# after at most this long; writes notice them at once. ``PRAGMA data_version``
# costs more than the rest of a cached read, and any observer of such a commit
# (the CLI exiting, say) takes longer than this to act on it.
EXTERNAL_CHECK_S = 0.001

# A batch for an open session appends its events and leaves the session's row
# behind: the new state lives in the session cache and the row catches up at
# most this long afterwards, once for however many batches came meanwhile.
# The row is a cache of the event log; a crash before it catches up loses
# nothing, because opening the database replays the log from the oldest batch
# any row may lack (``session_replay``). Rewriting a session's row on every
# batch was the largest single cost of POST events. Five seconds, not one:
# with 100,000 sessions stored, catching up 1,000 busy sessions' rows every
# second (random pages of a table larger than the page cache) cost 15 % more
# CPU per request than with 10 sessions; every five seconds, no difference.
# Reads that use the rows (analytics, purge) make them catch up first.
ROW_LAG_S = 5.0
ROW_FLUSH_MAX = 512  # rows caught up per group commit, to keep each group short


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:`` -> (path, options)."""
    _, _, rest = url.partition(":")
    if not rest.startswith("///"):
        raise ValueError(f"SQLite URLs look like sqlite:///path/to/file.db, got {url!r}")
    path, _, query = rest[3:].partition("?")
    options = {k: values.pop() for k, values in parse_qs(query).items()}  # the last one wins
    return unquote(path) or ":memory:", options


class _GroupHooks:
    """What ``SQLiteStorage`` does around each write group (``writer.GroupHooks``)."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    def begin(self, conn: sqlite3.Connection) -> None:
        self._storage._group_begin(conn)

    def finish(self, conn: sqlite3.Connection) -> None:
        self._storage._group_finish(conn)

    def committed(self) -> None:
        self._storage._group_committed()

    def rolled_back(self) -> None:
        self._storage._sessions.rollback()

    def done(self) -> None:
        self._storage._group_done()


class SQLiteStorage(Notifications):
    """SQLite storage: writes group-committed on the event loop, big reads on threads."""

    def __init__(self, url: str, *, readers: int = 2) -> None:
        self.url = url
        self.path, options = parse_sqlite_url(url)
        sync = options.get("synchronous", "normal").upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be off, normal, full or extra, not {sync!r}")
        self._writer = Writer(self.path, sync, readers=readers)
        # Like every cache here they are exact: entries change after COMMIT
        # only, and a commit by any other connection drops them all.
        self._sessions = SessionCache()
        self._keys = KeyCache()
        self._signal = ChangeSignal()
        self._flush_all_requested = False
        self._replay_from: int | None = None  # as stored in session_replay
        self._flush_timer: asyncio.TimerHandle | None = None
        self._checked_at = -1.0
        self._cache_version = -1
        # Rows the running group writes, and the replay point once it commits.
        self._catching_up: list[tuple[int, str]] = []
        self._next_replay_from: int | None = None
        # Tenants whose sessions changed mood in the group being committed.
        self._changed: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        conn = self._writer.open(_GroupHooks(self))
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._replay(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        queries.release_leases(conn)

    async def close(self) -> None:
        if self._writer.conn is not None and (self._sessions.any_lagging or self._writer.pending):
            try:  # what stays behind is replayed at open
                await self._flush_rows()
            except Exception:
                log.debug("rows left to replay at the next open", exc_info=True)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._signal.close()  # live streams see it and end
        await self._writer.close()

    async def ping(self) -> bool:
        return bool(await self._writer.read(lambda c: c.execute("SELECT 1").fetchone()))

    # -- around every write group -----------------------------------------------------

    def _group_begin(self, conn: sqlite3.Connection) -> None:
        self._sessions.begin()
        # Holding the write lock, so no other connection can commit until
        # ours: what the caches hold now is exact for the whole group.
        while (version := self._changed_version(conn)) is not None:
            if not self._sessions.any_lagging:
                self._adopt_version(version)
                break
            # Another process wrote (the CLI purging, say) while rows lag:
            # rebuild them from the log as it is now, in a commit of their
            # own, and only then forget what memory held.
            self._replay(conn)
            conn.execute("COMMIT")
            self._sessions.rows_caught_up()
            self._adopt_version(version)
            conn.execute("BEGIN IMMEDIATE")

    def _group_finish(self, conn: sqlite3.Connection) -> None:
        """Write the rows that lag longest (all of them if asked), inside the
        group's transaction, and record from which batch a crash now has to replay."""
        cache = self._sessions
        keys = cache.rows_due(
            self._flush_all_requested, time.monotonic() - ROW_LAG_S, ROW_FLUSH_MAX
        )
        session_log.catch_up_rows(conn, cache, keys)
        replay_from = cache.replay_from(set(keys))
        if replay_from != self._replay_from:
            conn.execute("UPDATE session_replay SET from_batch=?", (replay_from,))
        self._catching_up = keys
        self._next_replay_from = replay_from

    def _group_committed(self) -> None:
        self._replay_from = self._next_replay_from
        self._flush_all_requested = False
        self._sessions.commit(self._catching_up, time.monotonic())

    def _group_done(self) -> None:
        if self._changed:
            tenants = frozenset(self._changed)
            self._changed.clear()
            self._signal.moods_changed(tenants)
        if self._sessions.any_lagging and self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(ROW_LAG_S, self._flush_due)

    def _flush_due(self) -> None:
        """Timer: lagging rows catch up even when no batch arrives to carry them."""
        self._flush_timer = None
        if (
            self._sessions.any_lagging
            and self._writer.conn is not None
            and not self._signal.closing
        ):
            self._writer.schedule()

    async def _flush_rows(self) -> None:
        """Bring every session row up to date (before reads that use the rows)."""
        if self._sessions.any_lagging or self._sessions.any_staged_lag or self._writer.pending:
            self._flush_all_requested = True
            await self._writer.write(lambda c: None)

    def _replay(self, conn: sqlite3.Connection) -> None:
        session_log.replay(conn)
        self._replay_from = None

    # -- other processes' commits ------------------------------------------------------

    def _sync_external(self, conn: sqlite3.Connection) -> None:
        """For reads: drop the caches if another connection (the CLI, another
        process) has committed since the last look, at most every EXTERNAL_CHECK_S."""
        now = time.monotonic()
        if now - self._checked_at < EXTERNAL_CHECK_S:
            return
        self._checked_at = now
        version = self._changed_version(conn)
        if version is None:
            return
        self._invalidate_keys()
        # Hot entries of lagging rows are the only current copy: the next write
        # group rebuilds those rows from the log before dropping the entries.
        if not self._sessions.any_lagging:
            self._adopt_version(version)

    def _changed_version(self, conn: sqlite3.Connection) -> int | None:
        """PRAGMA data_version if another connection committed since we adopted one."""
        version: int = conn.execute("PRAGMA data_version").fetchone()["data_version"]
        return None if version == self._cache_version else version

    def _adopt_version(self, version: int) -> None:
        self._invalidate_keys()
        self._sessions.drop_hot()
        self._cache_version = version

    # -- keys ----------------------------------------------------------------

    async def create_tenant_key(
        self, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
    ) -> records.KeyRecord:
        return await self._key_write(
            lambda c: queries.create_tenant_key(c, customer, email, plan, raw_key, now)
        )

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> records.KeyRecord:
        return await self._key_write(
            lambda c: queries.insert_key(c, raw_key, tenant_id, "publishable", allowed_origins, now)
        )

    async def _key_write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        result = await self._writer.write(job)
        self._invalidate_keys()  # after the commit, or a racing read could re-cache
        return result

    async def find_key(self, key_hash: str) -> records.KeyRecord | None:
        # Auth runs on every request, so found keys are cached. The cache
        # follows every commit: PRAGMA data_version changes whenever another
        # connection (the CLI revoking a key, another process) commits, and
        # then the cache is dropped; this process's own key writes drop it too.
        conn = self._writer.open_conn()
        self._sync_external(conn)
        hit = self._keys.get(key_hash)
        if hit is not None:
            return hit
        generation = self._keys.generation
        record = queries.key_by_hash(conn, key_hash)
        if record is not None:
            self._keys.put(key_hash, record, generation)
        return record

    async def list_keys(self) -> list[records.KeyRecord]:
        return await self._writer.read_large(queries.list_keys)

    async def revoke_keys(self, prefix: str, now: float) -> int:
        return await self._key_write(lambda c: queries.revoke_keys(c, prefix, now))

    async def ensure_demo_tenant(
        self, raw_secret: str, raw_publishable: str, origins: tuple[str, ...], now: float
    ) -> records.KeyRecord:
        return await self._key_write(
            lambda c: queries.ensure_demo_tenant(c, raw_secret, raw_publishable, origins, now)
        )

    # -- sessions ------------------------------------------------------------

    async def append_events(self, batch: records.Batch) -> records.AppendResult:
        def job(c: sqlite3.Connection) -> records.AppendResult:
            result, changed = session_log.append(c, self._sessions, batch)
            if changed:
                self._changed.add(batch.tenant_id)
            return result

        return await self._writer.write(job)

    async def get_session(self, tenant_id: int, session_id: str) -> records.SessionRecord | None:
        conn = self._writer.open_conn()
        self._sync_external(conn)
        key = (tenant_id, session_id)
        hot = self._sessions.get(key)
        if hot is not None:
            return hot.record
        entry = session_log.get_row(conn, tenant_id, session_id)
        if entry is None:
            return None
        self._sessions.remember_read(key, entry)
        return entry.record

    async def export_events(
        self, tenant_id: int, session_id: str, after_seq: int = 0, limit: int = 0
    ) -> list[dict[str, Any]] | None:
        hot = self._sessions.get((tenant_id, session_id))
        newest = None if hot is None else hot.last_batch  # committed, so the reader sees it
        return await self._writer.read_large(
            lambda c: session_log.export(c, tenant_id, session_id, newest, after_seq, limit)
        )

    async def add_feedback(self, feedback: records.Feedback) -> bool:
        return await self._writer.write(
            lambda c: session_log.add_feedback(c, self._sessions, feedback)
        )

    async def get_holdout(self, tenant_id: int) -> records.HoldoutSetting:
        return await self._writer.read(lambda c: queries.get_holdout(c, tenant_id))

    async def set_holdout(
        self, tenant_id: int, share: float, salt: str, now: float
    ) -> records.HoldoutSetting:
        return await self._writer.write(
            lambda c: queries.set_holdout(c, tenant_id, share, salt, now)
        )

    async def add_conversion(self, conversion: records.Conversion) -> records.ConversionResult:
        return await self._writer.write(lambda c: queries.add_conversion(c, conversion))

    async def conversions_of(self, tenant_id: int, session_id: str) -> list[dict[str, Any]]:
        rows = await self._writer.read(lambda c: queries.conversions_of(c, tenant_id, session_id))
        return [dict(row) for row in rows]

    async def uplift_counts(
        self, tenant_id: int, name: str | None, since: float | None, until: float | None
    ) -> list[records.UpliftCounts]:
        return await self._writer.read_large(
            lambda c: queries.uplift_counts(c, tenant_id, name, since, until)
        )

    async def delete_session(self, tenant_id: int, session_id: str) -> bool:
        deleted = await self._writer.write(
            lambda c: session_log.delete_session(c, self._sessions, tenant_id, session_id)
        )
        self._sessions.forget_session_months(tenant_id, session_id)
        return deleted

    # -- analytics and the live stream ------------------------------------------------

    async def mood_counts(self, tenant_id: int) -> records.MoodCounts:
        await self._flush_rows()
        return await self._writer.read_large(lambda c: queries.mood_counts(c, tenant_id))

    async def month_usage(self, tenant_id: int, month: str) -> int:
        return await self._writer.read(lambda c: queries.month_usage(c, tenant_id, month))

    async def page_moods(
        self, tenant_id: int, since: float | None, until: float | None, limit: int = 0
    ) -> dict[str, dict[MoodLabel, int]]:
        return await self._writer.read_large(
            lambda c: queries.page_moods(c, tenant_id, since, until, limit)
        )

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[records.ActionCounts]:
        return await self._writer.read_large(
            lambda c: queries.action_counts(c, tenant_id, since, until, trusted_only)
        )

    async def element_counts(
        self, tenant_id: int, since: float | None, until: float | None, page: str | None, limit: int
    ) -> list[records.ElementCounts]:
        return await self._writer.read_large(
            lambda c: queries.element_counts(c, tenant_id, since, until, page, limit)
        )

    async def journeys(
        self, tenant_id: int, since: float | None, until: float | None, steps: int, limit: int
    ) -> list[records.JourneyCounts]:
        return await self._writer.read_large(
            lambda c: queries.journeys(c, tenant_id, since, until, steps, limit)
        )

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[records.MoodChangeRecord]:
        return await self._writer.read(
            lambda c: queries.mood_changes(c, tenant_id, after_id, limit)
        )

    async def last_mood_change_id(self, tenant_id: int) -> int:
        return await self._writer.read(lambda c: queries.last_mood_change_id(c, tenant_id))

    # -- webhooks ---------------------------------------------------------------

    async def create_webhook(self, record: records.WebhookRecord, limit: int) -> bool:
        return await self._writer.write(lambda c: queries.create_webhook(c, record, limit))

    async def list_webhooks(self, tenant_id: int) -> list[records.WebhookRecord]:
        return await self._writer.read(lambda c: queries.list_webhooks(c, tenant_id))

    async def delete_webhook(self, tenant_id: int, webhook_id: str, now: float) -> bool:
        return await self._writer.write(
            lambda c: queries.delete_webhook(c, tenant_id, webhook_id, now)
        )

    async def list_deliveries(
        self, tenant_id: int, webhook_id: str, limit: int = 50
    ) -> list[records.DeliveryRecord] | None:
        return await self._writer.read(
            lambda c: queries.list_deliveries(c, tenant_id, webhook_id, limit)
        )

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[records.DeliveryJob]:
        cap = per_endpoint if per_endpoint is not None else 1 << 62
        return await self._writer.write(
            lambda c: queries.claim_deliveries(c, now, limit, lease_s, cap)
        )

    async def webhook_backlog(self) -> int:
        return await self._writer.read(queries.webhook_backlog)

    async def finish_delivery(self, attempt: records.Attempt) -> None:
        await self._writer.write(lambda c: queries.finish_delivery(c, attempt))

    # -- retention ----------------------------------------------------------------

    async def purge_expired(self, cutoffs: Mapping[Plan, float], limit: int = 1000) -> int:
        await self._flush_rows()  # last activity is in the rows only once they caught up

        def job(c: sqlite3.Connection) -> int:
            found = queries.expired_sessions(c, cutoffs, limit)
            return session_log.purge(c, self._sessions, found)

        purged = await self._writer.write(job)
        if purged:
            self._sessions.forget_months()  # rare (hourly): simpler than picking entries out
        return purged
