"""Embedded SQLite backend (the default).

Concurrency model (details at "group commit" below): every write runs on the
event loop thread and all writes requested in one loop iteration are committed
together in one transaction (a failing job makes the others re-run one by
one). Writes never interleave, so batches for one session cannot lose updates
and quota checks are exact; a caller is answered only after the COMMIT that
holds its job. Point reads run inline; reads that may scan many rows (export,
analytics) run on reader threads with their own connections, which WAL mode
lets proceed during commits.

What a batch writes: its events as one row appended to ``event_batches``, and
everything else it decides (idempotency record, quota, page moods, mood
change, webhook outbox) in the same transaction. An open session's row in
``sessions`` is a cache of that log and may lag it by ``ROW_LAG_S``; the
current verdict and engine state are in memory, and a crash replays the log.

Durability: ``synchronous=NORMAL`` in WAL mode survives a process crash
(SIGKILL) without losing a committed batch; only an OS crash or power loss can
drop the last commits. Use ``?synchronous=full`` in the URL for full fsync per
commit.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

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
from sessionmood_server.scoring import AppliedBatch, apply_batch
from sessionmood_server.storage.protocols import ChangeListener
from sessionmood_server.storage.shared import DEMO_CUSTOMER, busiest_first
from sessionmood_server.storage.sqlite_schema import MIGRATIONS

log = logging.getLogger("sessionmood.storage")
T = TypeVar("T")

# Everything stored about a session besides its row in `sessions` (erasure, purge).
_SESSION_TABLES = (
    "feedback",
    "batches",
    "page_moods",
    "mood_changes",
    "webhook_deliveries",
    # Erased too (the id may be a user id); the month's usage count is kept in
    # usage_months, so quotas stay exact.
    "session_months",
)

_KEY_COLUMNS = (
    "k.key_hash, k.prefix, k.tenant_id, k.kind, t.plan, t.customer, t.email, "
    "k.created_at, k.revoked_at, k.allowed_origins"
)


_UPDATE_SESSION_ROW = (
    "UPDATE sessions SET state=?, confidence=?, signals=?, suggested_action=?, event_count=?, "
    "updated_at=?, last_url=?, mood=?, last_batch=? WHERE tenant_id=? AND session_id=?"
)


def _hot_entry(session_id: str, b: AppliedBatch, at: float, batch: int) -> _Hot:
    """The cached session after ``b``, stored as batch ``batch`` at ``at``."""
    verdict, out = b.folded.verdict, b.folded
    record = SessionRecord(
        session_id, verdict.mood, verdict.confidence, tuple(b.signals), b.action, b.total, at,
        out.last_url,
    )  # fmt: skip
    return record, out.state, batch


def _session_row(key: tuple[int, str], entry: _Hot) -> tuple[Any, ...]:
    """Parameters of _UPDATE_SESSION_ROW bringing the row up to ``entry``."""
    rec, state, last_batch = entry
    assert state is not None, "only write-made entries carry a state"
    return (
        engine.dumps(state), rec.confidence, orjson.dumps(rec.signals).decode(),
        rec.suggested_action, rec.event_count, rec.updated_at, rec.last_url, rec.mood,
        last_batch, *key,
    )  # fmt: skip


def _delete_batches(
    c: sqlite3.Connection, tenant_id: int, session_id: str, last: int | None
) -> None:
    if last is not None:
        c.execute(
            _CHAIN + "DELETE FROM event_batches WHERE id IN chain AND tenant_id=? AND session_id=?",
            (last, tenant_id, session_id),
        )


def _moods(raw: str | None) -> tuple[MoodLabel, ...] | None:
    return None if raw is None else tuple(orjson.loads(raw))


def _key_from_row(row: tuple[Any, ...]) -> KeyRecord:
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
        allowed_origins=tuple(orjson.loads(row[9] or "[]")),
    )


def _key_by_hash(c: sqlite3.Connection, key_hash: str) -> KeyRecord | None:
    row = c.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
        "WHERE k.key_hash = ?",
        (key_hash,),
    ).fetchone()
    return None if row is None else _key_from_row(row)


def _insert_key(
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
    record = _key_by_hash(c, hash_key(raw))
    assert record is not None  # just inserted, in this transaction
    return record


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:`` -> (path, options)."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise ValueError(f"SQLite URLs look like sqlite:///path/to/file.db, got {url!r}")
    path, _, query = rest[3:].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    return unquote(path) or ":memory:", options


# How often the checkpoint thread copies the WAL back into the database file,
# or sooner once the WAL passes a size. Rarely, on purpose: after a complete
# checkpoint the next commit reuses the WAL and syncs its header (an fsync on
# the event loop), so every checkpoint costs one request-path stall.
CHECKPOINT_INTERVAL_S = 10.0
CHECKPOINT_WAL_BYTES = 64 * 1024 * 1024
# Under sustained writes the thread's checkpoint never catches up with the
# writer (a commit lands while it copies), so SQLite never starts the WAL over
# and it grows without bound: 430 MiB after 48 s of full load. Once the thread
# reports this many frames (64 MiB), the writer itself copies the few frames
# the thread has not (a few ms, with its fsyncs), right after a commit, and the
# next transaction starts the WAL from the beginning.
WAL_RESTART_FRAMES = 16_384
# Sessions whose verdict and engine state stay in memory (most recently
# written or read first out when full): a batch for one of them skips the
# SELECT and the state decode, and GET mood skips SQL altogether.
HOT_SESSIONS = 10_000
# Reads notice another process's commits (the CLI revoking a key or purging)
# after at most this long; writes notice them at once. ``PRAGMA data_version``
# costs more than the rest of a cached read, and any observer of such a commit
# (the CLI exiting, say) takes longer than this to act on it.
EXTERNAL_CHECK_S = 0.001

# A batch for an open session appends its events and leaves the session's row
# behind: the new state lives in memory (``_hot``) and the row catches up at
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

# A session's cached verdict, its engine state when a write left it (reads
# cache the verdict only), and the id of its newest row in event_batches.
_Hot = tuple[SessionRecord, "engine.State | None", int | None]

# A session's batches, newest first: each row points at the one before it, so
# appending a batch writes only the end of the table (no per-session index to
# keep), and finding a session's events walks back from sessions.last_batch.
_CHAIN = (
    "WITH RECURSIVE chain(id) AS (SELECT ? UNION ALL "
    "SELECT b.prev_id FROM event_batches b JOIN chain ON b.id = chain.id "
    "WHERE b.prev_id IS NOT NULL) "
)


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
_CLAIM_SQL = """
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


class _JobFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class SQLiteStorage:
    """SQLite storage: writes group-committed on the event loop, big reads on threads."""

    def __init__(self, url: str, *, readers: int = 2) -> None:
        self.url = url
        self.path, options = parse_sqlite_url(url)
        if self.path == ":memory:":
            # Several connections must see one database: use a named shared cache.
            self._uri = f"file:sessionmood-{id(self)}?mode=memory&cache=shared"
        else:
            self._uri = "file:" + os.path.abspath(self.path)
        sync = options.get("synchronous", "normal").upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be off, normal, full or extra, not {sync!r}")
        self._synchronous = sync
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="sessionmood-sqlite-read"
        )
        self._local = threading.local()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._wal_frames = 0  # frames in the WAL at the thread's last checkpoint
        self._key_cache: dict[str, KeyRecord] = {}
        # (tenant, session) -> _Hot. Like every cache here it is exact: entries
        # are written after COMMIT only (jobs fold into a copy of the state),
        # and a commit by any other connection drops them all.
        self._hot: dict[tuple[int, str], _Hot] = {}
        self._staged_hot: dict[tuple[int, str], _Hot | None] = {}  # None: evict
        # Sessions whose row lags their hot entry -> (monotonic time first
        # lagging, id of the oldest batch the row lacks); oldest first. Dirty
        # entries are never evicted from _hot.
        self._dirty: dict[tuple[int, str], tuple[float, int]] = {}
        self._staged_dirty: dict[tuple[int, str], int] = {}
        self._flush_all_requested = False
        self._replay_from: int | None = None  # as stored in session_replay
        self._flush_timer: asyncio.TimerHandle | None = None
        self._group_scheduled = False
        self._checked_at = -1.0
        # Tenants whose sessions changed mood in the group being committed, and
        # the signal that wakes live streams once it has committed.
        self._changed: set[int] = set()
        # (tenant, month, session) already counted against the quota, so a
        # batch for an open session skips that look-up. Filled after COMMIT only.
        self._counted_months: set[tuple[int, str, str]] = set()
        self._staged_months: set[tuple[int, str, str]] = set()
        self._change_signal = asyncio.Event()
        self._listeners: list[ChangeListener] = []
        self._closing = False
        self._cache_version = -1
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    # -- connections ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10
        )
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        # A 64 MiB page cache keeps the hot B-tree pages of a large database in
        # memory (the default is 2 MiB).
        conn.execute("PRAGMA cache_size=-65536")
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            # The file holds key hashes and webhook secrets: readable by its
            # owner only. SQLite gives the -wal and -shm files the database
            # file's permissions. An existing file keeps the ones it has.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._conn = self._connect()
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            # Checkpoints copy the WAL into the database and fsync it: run on
            # the event loop they would stall every request for milliseconds,
            # so the writer never checkpoints and a thread does it instead.
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sessionmood-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._migrate(self._conn)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._replay(self._conn)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        # SQLite serves one server process, so no other worker can hold a
        # delivery lease: whatever a crashed run had claimed is due again now.
        self._conn.execute(
            "UPDATE webhook_deliveries SET claimed_until=NULL WHERE status='pending' "
            "AND claimed_until IS NOT NULL"
        )

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        wal = os.path.abspath(self.path) + "-wal"
        last = time.monotonic()
        while not self._stop_checkpoints.wait(0.5):
            try:
                big = os.path.getsize(wal) > CHECKPOINT_WAL_BYTES
            except OSError:
                big = False
            if not big and time.monotonic() - last < CHECKPOINT_INTERVAL_S:
                continue
            last = time.monotonic()
            try:
                # PASSIVE never blocks the writer or readers; what it cannot
                # copy now is copied next time.
                row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self._wal_frames = int(row[1]) if row and row[1] > 0 else 0
            except sqlite3.Error:  # e.g. busy: the next pass catches up
                log.debug("WAL checkpoint skipped", exc_info=True)
        # A final full checkpoint leaves a compact database behind.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        if self._conn is not None and (self._dirty or self._pending):
            with contextlib.suppress(Exception):  # what stays behind is replayed at open
                await self._flush_rows()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._closing = True
        self._change_signal.set()  # live streams see _closing and end
        # Let any writes queued in this loop iteration commit before closing.
        while self._pending:
            await asyncio.sleep(0)
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._all_conns:
                conn.close()
            self._all_conns.clear()
        self._conn = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have applied it while we waited for the lock.
                if conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version=?", (version,)
                ).fetchone():
                    conn.execute("ROLLBACK")
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (version,)
                )
                conn.execute("COMMIT")
                log.info("applied schema migration %d", version)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- group commit ----------------------------------------------------------
    #
    # Writes run on the event loop thread itself, not on a writer thread: a
    # point write in WAL mode takes microseconds, while handing work to another
    # thread costs more than that in GIL hand-offs and wake-ups (measured: a
    # writer thread made POST slower, the GIL keeping it off the second core).
    # Every write requested during one loop iteration is committed together by
    # a single callback (one COMMIT for many requests); if a job fails, the
    # group rolls back and each job is re-run alone, so only that one fails.
    # Nothing else runs on the loop while a group executes, so no two writes
    # ever interleave: batches for one session cannot lose updates and quota
    # checks are exact.

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError("storage is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut))
        self._schedule_group(loop)
        return await fut

    def _schedule_group(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._group_scheduled:
            self._group_scheduled = True
            loop.call_soon(self._run_group)

    def _flush_due(self) -> None:
        """Timer: lagging rows catch up even when no batch arrives to carry them."""
        self._flush_timer = None
        if self._dirty and self._conn is not None and not self._closing:
            self._schedule_group(asyncio.get_running_loop())

    async def _flush_rows(self) -> None:
        """Bring every session row up to date (before reads that use the rows)."""
        if self._dirty or self._staged_dirty or self._pending:
            self._flush_all_requested = True
            await self._write(lambda c: None)

    def _run_group(self) -> None:
        self._group_scheduled = False
        jobs, self._pending = self._pending, []
        conn = self._conn
        if conn is None:
            for _, fut in jobs:
                if not fut.done():
                    fut.set_exception(RuntimeError("storage is closed"))
            return
        try:
            outcomes = self._commit(conn, jobs)
        except _JobFailed:
            # A job raised, so the whole group was rolled back. Failures are
            # rare (validation happens before storage), so rather than pay a
            # SAVEPOINT per job on every group, re-run each job on its own:
            # only the failing one fails.
            outcomes = []
            for job in jobs:
                try:
                    outcomes += self._commit(conn, [job])
                except _JobFailed as failed:
                    outcomes.append((job[1], None, failed.error))
                except Exception as exc:
                    log.exception("SQLite commit failed")
                    outcomes.append((job[1], None, exc))
        except Exception as exc:  # the commit itself failed: nobody's write landed
            log.exception("SQLite group commit failed")
            outcomes = [(fut, None, exc) for _, fut in jobs]
        if self._changed:
            tenants = frozenset(self._changed)
            self._changed.clear()
            signal, self._change_signal = self._change_signal, asyncio.Event()
            signal.set()
            for listener in self._listeners:
                listener.moods_changed(tenants)
        if self._dirty and self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(ROW_LAG_S, self._flush_due)
        # Answer only now, after COMMIT: a 200 means the batch is durable.
        for fut, result, error in outcomes:
            if fut.done():  # the request was cancelled (client went away)
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    def _commit(
        self,
        conn: sqlite3.Connection,
        jobs: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Run ``jobs`` in one transaction; raises _JobFailed (all rolled back) if one raises."""
        self._staged_months.clear()
        self._staged_hot.clear()
        self._staged_dirty.clear()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Holding the write lock, so no other connection can commit until
            # ours: what the caches hold now is exact for the whole group.
            while (version := self._changed_version(conn)) is not None:
                if not self._dirty:
                    self._adopt_version(version)
                    break
                # Another process wrote (the CLI purging, say) while rows lag:
                # rebuild them from the log as it is now, in a commit of their
                # own, and only then forget what memory held.
                self._replay(conn)
                conn.execute("COMMIT")
                self._dirty.clear()
                self._adopt_version(version)
                conn.execute("BEGIN IMMEDIATE")
            results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            for fn, fut in jobs:
                try:
                    results.append((fut, fn(conn), None))
                except Exception as exc:
                    raise _JobFailed(exc) from exc
            flushed, replay_from = self._catch_up_rows(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._staged_months.clear()
            self._staged_hot.clear()
            self._staged_dirty.clear()
            raise
        self._replay_from = replay_from
        if self._wal_frames > WAL_RESTART_FRAMES:
            self._wal_frames = 0
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # the thread's next pass reports the size again
                log.debug("WAL catch-up checkpoint skipped", exc_info=True)
        self._flush_all_requested = False
        dirty, now = self._dirty, time.monotonic()
        for key, batch_id in self._staged_dirty.items():
            if key not in dirty:
                dirty[key] = (now, batch_id)
        for key in flushed:
            dirty.pop(key, None)
        # Only committed facts enter the caches.
        if len(self._counted_months) > 500_000:
            self._counted_months.clear()
        self._counted_months.update(self._staged_months)
        hot = self._hot
        for key, entry in self._staged_hot.items():
            hot.pop(key, None)  # re-inserted last: the dict's order is recency
            if entry is not None:
                hot[key] = entry
        if len(hot) > HOT_SESSIONS:
            excess = len(hot) - HOT_SESSIONS * 9 // 10
            # Lagging rows stay: their entry is the only current copy in memory.
            for key in [k for k in itertools.islice(hot, excess + len(dirty)) if k not in dirty]:
                del hot[key]
        return results

    def _catch_up_rows(self, conn: sqlite3.Connection) -> tuple[list[tuple[int, str]], int | None]:
        """Write the rows that lag longest (all of them if asked), inside the
        group's transaction, and record from which batch a crash now has to
        replay. Returns (rows written, that batch id or None)."""
        everything = self._flush_all_requested
        due = time.monotonic() - ROW_LAG_S
        keys: list[tuple[int, str]] = []
        for key, (since, _) in self._dirty.items():
            if not everything and (since > due or len(keys) >= ROW_FLUSH_MAX):
                break
            keys.append(key)
        if everything:
            keys += [k for k in self._staged_dirty if k not in self._dirty]
        rows = []
        for key in keys:
            entry = self._current(key)
            if entry is not None and entry[1] is not None:  # else erased meanwhile
                rows.append(_session_row(key, entry))
        if rows:
            conn.executemany(_UPDATE_SESSION_ROW, rows)
        # The oldest batch a row still lacks once this group commits: dirty
        # entries are ordered oldest first, and this group's come after them.
        written = set(keys)
        replay_from = next(
            (b for k, (_, b) in self._dirty.items() if k not in written),
            next((b for k, b in self._staged_dirty.items() if k not in written), None),
        )
        if replay_from != self._replay_from:
            conn.execute("UPDATE session_replay SET from_batch=?", (replay_from,))
        return keys, replay_from

    def _replay(self, conn: sqlite3.Connection) -> None:
        """Bring session rows up to the event log after a crash (or after another
        process changed the database under our caches). Within a transaction."""
        row = conn.execute("SELECT from_batch FROM session_replay").fetchone()
        if row is None or row[0] is None:
            return
        # (state, event count, last url, mood) as folded so far; None: erased.
        folded: dict[tuple[int, str], tuple[engine.State, int, str | None, str] | None] = {}
        replayed: dict[tuple[int, str], _Hot] = {}
        for batch, tenant_id, session_id, first_seq, received_at, events in conn.execute(
            "SELECT id, tenant_id, session_id, first_seq, received_at, events "
            "FROM event_batches WHERE id >= ? ORDER BY id",
            (row[0],),
        ).fetchall():
            key = (tenant_id, session_id)
            if key not in folded:
                stored = conn.execute(
                    "SELECT state, event_count, last_url, mood FROM sessions "
                    "WHERE tenant_id=? AND session_id=?",
                    key,
                ).fetchone()
                folded[key] = None if stored is None else (engine.loads(stored[0]), *stored[1:])
            now = folded[key]
            if now is None or first_seq <= now[1]:
                continue  # erased since, or the row has this batch already
            b = apply_batch(session_id, now, orjson.loads(events), None)
            folded[key] = (b.folded.state, b.total, b.folded.last_url, b.folded.verdict.mood)
            replayed[key] = _hot_entry(session_id, b, received_at, batch)
        rows = [_session_row(key, entry) for key, entry in replayed.items()]
        conn.executemany(_UPDATE_SESSION_ROW, rows)
        conn.execute("UPDATE session_replay SET from_batch=NULL")
        self._replay_from = None
        if rows:
            log.info("replayed the event log into %d session row(s)", len(rows))

    def _current(self, key: tuple[int, str]) -> _Hot | None:
        """A session's cached entry as of the group running now (its own
        earlier jobs included), or as committed outside a group."""
        staged = self._staged_hot
        return staged[key] if key in staged else self._hot.get(key)

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
        self._keys_invalidated()
        # Hot entries of lagging rows are the only current copy: the next write
        # group rebuilds those rows from the log before dropping the entries.
        if not self._dirty:
            self._adopt_version(version)

    def _changed_version(self, conn: sqlite3.Connection) -> int | None:
        """PRAGMA data_version if another connection committed since we adopted one."""
        version: int = conn.execute("PRAGMA data_version").fetchone()[0]
        return None if version == self._cache_version else version

    def _adopt_version(self, version: int) -> None:
        self._keys_invalidated()
        self._hot.clear()
        self._cache_version = version

    def _keys_invalidated(self) -> None:
        """Forget cached keys (a key was written, here or by another process) and
        say so: live streams re-check theirs before sending anything more."""
        self._key_cache.clear()
        for listener in self._listeners:
            listener.keys_changed()

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A point read, inline: cheaper than a thread hop, sees every commit."""
        if self._conn is None:
            raise RuntimeError("storage is not open")
        return fn(self._conn)

    async def _read_large(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read that may scan many rows: on a reader thread, off the event loop."""

        def run() -> T:
            return fn(self._reader_conn())

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def ping(self) -> bool:
        return bool(await self._read(lambda c: c.execute("SELECT 1").fetchone()))

    # -- keys ----------------------------------------------------------------

    async def create_tenant_key(
        self, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
    ) -> KeyRecord:
        def job(c: sqlite3.Connection) -> KeyRecord:
            cur = c.execute(
                "INSERT INTO tenants (customer, email, plan, created_at) VALUES (?,?,?,?)",
                (customer, email, plan, now),
            )
            return _insert_key(c, raw_key, int(cur.lastrowid or 0), "secret", (), now)

        return await self._key_write(job)

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> KeyRecord:
        return await self._key_write(
            lambda c: _insert_key(c, raw_key, tenant_id, "publishable", allowed_origins, now)
        )

    async def _key_write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        result = await self._write(job)
        self._keys_invalidated()  # after the commit, or a racing read could re-cache
        return result

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        # Auth runs on every request, so found keys are cached. The cache
        # follows every commit: PRAGMA data_version changes whenever another
        # connection (the CLI revoking a key, another process) commits, and
        # then the cache is dropped; this process's own key writes drop it too.
        conn = self._conn
        if conn is None:
            raise RuntimeError("storage is not open")
        self._sync_external(conn)
        hit = self._key_cache.get(key_hash)
        if hit is not None:
            return hit
        record = _key_by_hash(conn, key_hash)
        if record is None:
            return None  # unknown keys are not cached: random keys cannot fill memory
        if len(self._key_cache) >= 10_000:
            self._key_cache.clear()
        self._key_cache[key_hash] = record
        return record

    async def list_keys(self) -> list[KeyRecord]:
        def run(c: sqlite3.Connection) -> list[KeyRecord]:
            rows = c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                "ORDER BY k.created_at, k.prefix"
            ).fetchall()
            return [_key_from_row(r) for r in rows]

        return await self._read_large(run)

    async def revoke_keys(self, prefix: str, now: float) -> int:
        def job(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL "
                "AND substr(prefix, 1, ?) = ?",
                (now, len(prefix), prefix),
            )
            return cur.rowcount

        return await self._key_write(job)

    # -- sessions ------------------------------------------------------------

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
        def job(c: sqlite3.Connection) -> AppendResult:
            if batch_id is not None:
                seen = c.execute(
                    "SELECT session_id, response, fingerprint FROM batches "
                    "WHERE tenant_id=? AND batch_id=?",
                    (tenant_id, batch_id),
                ).fetchone()
                if seen is not None:
                    if seen[0] != session_id:
                        return AppendResult("conflict")
                    if fingerprint and seen[2] and seen[2] != fingerprint:
                        return AppendResult("mismatch")
                    return AppendResult("replayed", orjson.loads(seen[1]))
            key = (tenant_id, session_id)
            # An earlier batch in this same group may have moved the session on.
            hot = self._current(key)
            stored: tuple[engine.State, int, str | None, str] | None
            if hot is not None and hot[1] is not None:
                rec = hot[0]
                # A copy: if this group rolls back, the cached state is still right.
                stored = (hot[1].copy(), rec.event_count, rec.last_url, rec.mood)
                prev_batch = hot[2]
            else:
                row = c.execute(
                    "SELECT state, event_count, last_url, mood, last_batch FROM sessions "
                    "WHERE tenant_id=? AND session_id=?",
                    (tenant_id, session_id),
                ).fetchone()
                stored = None if row is None else (engine.loads(row[0]), *row[1:4])
                prev_batch = None if row is None else row[4]
            if max_events and (0 if stored is None else stored[1]) + len(events) > max_events:
                return AppendResult("full")
            if stored is None and admit_new is not None and not admit_new():
                return AppendResult("limited")
            if not self._count_session_month(c, tenant_id, session_id, quota, stored is None):
                return AppendResult("quota")
            b = apply_batch(session_id, stored, events, policy)
            verdict, out = b.folded.verdict, b.folded
            batch_row = c.execute(
                "INSERT INTO event_batches (tenant_id, session_id, first_seq, received_at, "
                "events, prev_id) VALUES (?,?,?,?,?,?)",
                (
                    tenant_id,
                    session_id,
                    b.total - len(events) + 1,
                    now,
                    orjson.dumps(events).decode(),
                    prev_batch,
                ),
            ).lastrowid
            assert batch_row is not None
            if stored is None:
                c.execute(
                    "INSERT INTO sessions (tenant_id, session_id, state, mood, confidence, "
                    "signals, suggested_action, event_count, created_at, updated_at, last_url, "
                    "last_batch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        tenant_id, session_id, engine.dumps(out.state), verdict.mood,
                        verdict.confidence, orjson.dumps(b.signals).decode(), b.action, b.total,
                        now, now, out.last_url, batch_row,
                    ),
                )  # fmt: skip
            elif key not in self._dirty and key not in self._staged_dirty:
                # The row catches up later (see ROW_LAG_S); until then a crash
                # replays the log from this batch.
                self._staged_dirty[key] = batch_row
            if b.page_moods:
                c.executemany(
                    "INSERT INTO page_moods VALUES (?,?,?,?,?) ON CONFLICT "
                    "(tenant_id, session_id, url) DO UPDATE SET mood=excluded.mood, "
                    "updated_at=excluded.updated_at",
                    [(tenant_id, session_id, u, m, now) for u, m in b.page_moods.items()],
                )
            if b.changed:
                cur = c.execute(
                    "INSERT INTO mood_changes (tenant_id, session_id, previous_mood, mood, "
                    "confidence, signals, suggested_action, url, occurred_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        tenant_id,
                        session_id,
                        b.previous,
                        verdict.mood,
                        verdict.confidence,
                        orjson.dumps(b.signals).decode(),
                        b.action,
                        out.last_url,
                        now,
                    ),
                )
                self._enqueue_webhooks(
                    c, tenant_id, session_id, int(cur.lastrowid or 0), b.previous, verdict.mood,
                    verdict.confidence, b.signals, b.action, now,
                )  # fmt: skip
                self._changed.add(tenant_id)
            response = b.response
            if batch_id is not None:
                c.execute(
                    "INSERT INTO batches (tenant_id, batch_id, session_id, response, created_at, "
                    "fingerprint) VALUES (?,?,?,?,?,?)",
                    (
                        tenant_id, batch_id, session_id, orjson.dumps(response).decode(), now,
                        fingerprint,
                    ),
                )  # fmt: skip
            self._staged_hot[key] = _hot_entry(session_id, b, now, batch_row)
            return AppendResult("stored", response)

        return await self._write(job)

    def _count_session_month(
        self, c: sqlite3.Connection, tenant_id: int, session_id: str, quota: Quota, new: bool
    ) -> bool:
        """Count the session against this month's quota; False if that is refused.
        A ``new`` session under a provisional quota is only checked, not counted."""
        key = (tenant_id, quota.month, session_id)
        if key in self._counted_months:
            return True
        if c.execute(
            "SELECT 1 FROM session_months WHERE tenant_id=? AND month=? AND session_id=?",
            (tenant_id, quota.month, session_id),
        ).fetchone():
            self._staged_months.add(key)
            return True  # already counted this month: open sessions keep working
        used_row = c.execute(
            "SELECT sessions FROM usage_months WHERE tenant_id=? AND month=?",
            (tenant_id, quota.month),
        ).fetchone()
        used = used_row[0] if used_row else 0
        if quota.blocks and used >= quota.limit:
            return False
        if new and quota.provisional:
            return True  # counted by its next batch
        c.execute("INSERT INTO session_months VALUES (?,?,?)", (tenant_id, quota.month, session_id))
        c.execute(
            "INSERT INTO usage_months VALUES (?,?,1) ON CONFLICT (tenant_id, month) "
            "DO UPDATE SET sessions = sessions + 1",
            (tenant_id, quota.month),
        )
        self._staged_months.add(key)
        return True

    async def get_session(self, tenant_id: int, session_id: str) -> SessionRecord | None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("storage is not open")
        self._sync_external(conn)
        key = (tenant_id, session_id)
        hot = self._hot.get(key)
        if hot is not None:
            return hot[0]
        row = conn.execute(
            "SELECT mood, confidence, signals, suggested_action, event_count, updated_at, "
            "last_url, last_batch FROM sessions WHERE tenant_id=? AND session_id=?",
            (tenant_id, session_id),
        ).fetchone()
        if row is None:
            return None
        record = SessionRecord(
            session_id, row[0], row[1], tuple(orjson.loads(row[2])), row[3], row[4],
            row[5], row[6],
        )  # fmt: skip
        # No write is pending between this read and the insert (both run on the
        # loop, groups commit synchronously), so the entry cannot be stale.
        if len(self._hot) < HOT_SESSIONS:
            self._hot[key] = (record, None, row[7])
        return record

    async def export_events(
        self, tenant_id: int, session_id: str, after_seq: int = 0, limit: int = 0
    ) -> list[dict[str, Any]] | None:
        hot = self._hot.get((tenant_id, session_id))
        newest = None if hot is None else hot[2]  # committed, so the reader sees it

        def run(c: sqlite3.Connection) -> list[dict[str, Any]] | None:
            row = c.execute(
                "SELECT last_batch FROM sessions WHERE tenant_id=? AND session_id=?",
                (tenant_id, session_id),
            ).fetchone()
            if row is None:
                return None
            # The chain's batches (id, first seq), oldest first; then only the
            # ones this page needs are read in full.
            chain = c.execute(
                _CHAIN + "SELECT b.id, b.first_seq FROM chain "
                "JOIN event_batches b ON b.id = chain.id "
                "WHERE b.tenant_id=? AND b.session_id=? ORDER BY b.first_seq",
                (newest or row[0], tenant_id, session_id),
            ).fetchall()
            # The batch holding seq after_seq + 1 is the last one starting at or before it.
            start = max(0, bisect.bisect_right([f for _, f in chain], after_seq + 1) - 1)
            wanted: list[int] = []
            for i in range(start, len(chain)):
                if limit and wanted and chain[i][1] - 1 - after_seq >= limit:
                    break  # the batches so far already hold a full page
                wanted.append(chain[i][0])
            out: list[dict[str, Any]] = []
            for first_seq, received_at, events in c.execute(
                f"SELECT first_seq, received_at, events FROM event_batches WHERE id IN "
                f"({','.join('?' * len(wanted))}) ORDER BY first_seq",
                wanted,
            ):
                for seq, ev in enumerate(orjson.loads(events), start=first_seq):
                    if seq > after_seq:
                        out.append({"seq": seq, **ev, "received_at": received_at})
            return out[:limit] if limit else out

        return await self._read_large(run)

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
        def job(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT mood FROM sessions WHERE tenant_id=? AND session_id=?",
                (tenant_id, session_id),
            ).fetchone()
            if row is None:
                return False
            key = (tenant_id, session_id)
            hot = self._current(key)
            mood = row[0] if hot is None else hot[0].mood  # the row may lag
            c.execute(
                "INSERT INTO feedback (tenant_id, session_id, mood, action_taken, was_helpful, "
                "notes, created_at, trusted) VALUES (?,?,?,?,?,?,?,?)",
                (tenant_id, session_id, mood, action_taken, was_helpful, notes, now, trusted),
            )
            c.execute(
                "UPDATE sessions SET has_feedback = 1 WHERE tenant_id=? AND session_id=?",
                (tenant_id, session_id),
            )
            return True

        return await self._write(job)

    async def delete_session(self, tenant_id: int, session_id: str) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            key = (tenant_id, session_id)
            hot = self._current(key)
            row = c.execute(
                "DELETE FROM sessions WHERE tenant_id=? AND session_id=? RETURNING last_batch",
                key,
            ).fetchone()
            if row is not None:
                _delete_batches(c, tenant_id, session_id, hot[2] if hot else row[0])
            for table in _SESSION_TABLES:
                c.execute(
                    f"DELETE FROM {table} WHERE tenant_id=? AND session_id=?",
                    (tenant_id, session_id),
                )
            self._staged_hot[key] = None
            return row is not None

        deleted = await self._write(job)
        # The id is forgotten: if it comes back it is a new session this month.
        self._counted_months = {
            k for k in self._counted_months if k[0] != tenant_id or k[2] != session_id
        }
        return deleted

    async def mood_counts(self, tenant_id: int) -> MoodCounts:
        await self._flush_rows()

        def run(c: sqlite3.Connection) -> MoodCounts:
            by_mood = dict.fromkeys(MOODS, 0)
            total = feedback = 0
            for mood, n, fb in c.execute(
                "SELECT mood, count(*), sum(has_feedback) FROM sessions WHERE tenant_id=? "
                "GROUP BY mood",
                (tenant_id,),
            ):
                by_mood[mood] = n
                total += n
                feedback += fb or 0
            return MoodCounts(total, feedback, by_mood)

        return await self._read_large(run)

    async def month_usage(self, tenant_id: int, month: str) -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT sessions FROM usage_months WHERE tenant_id=? AND month=?",
                (tenant_id, month),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._read(run)

    async def ensure_demo_tenant(
        self, raw_secret: str, raw_publishable: str, origins: tuple[str, ...], now: float
    ) -> KeyRecord:
        def job(c: sqlite3.Connection) -> KeyRecord:
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
                tenant_id = row[0]
            # Keys are stored hashed, so last run's demo keys cannot be shown
            # again: retire them and issue fresh ones.
            c.execute(
                "UPDATE api_keys SET revoked_at=? WHERE tenant_id=? AND revoked_at IS NULL",
                (now, tenant_id),
            )
            _insert_key(c, raw_publishable, tenant_id, "publishable", origins, now)
            return _insert_key(c, raw_secret, tenant_id, "secret", (), now)

        return await self._key_write(job)

    async def page_moods(
        self, tenant_id: int, since: float | None, until: float | None, limit: int = 0
    ) -> dict[str, dict[MoodLabel, int]]:
        def run(c: sqlite3.Connection) -> dict[str, dict[MoodLabel, int]]:
            window = (tenant_id, since or 0.0, until or 1e18)
            out: dict[str, dict[MoodLabel, int]] = {}
            # Only the busiest pages are grouped by mood: SQL picks them (ties
            # by URL in code point order, as Python sorts), nothing else is read
            # into Python.
            for url, mood, n in c.execute(
                "WITH top(url) AS (SELECT url FROM page_moods WHERE tenant_id=? "
                "AND updated_at >= ? AND updated_at < ? GROUP BY url "
                "ORDER BY count(*) DESC, url LIMIT ?) "
                "SELECT p.url, p.mood, count(*) FROM page_moods p JOIN top ON top.url = p.url "
                "WHERE p.tenant_id=? AND p.updated_at >= ? AND p.updated_at < ? "
                "GROUP BY p.url, p.mood",
                (*window, limit or -1, *window),
            ):
                out.setdefault(url, {})[mood] = n
            return busiest_first(out)

        return await self._read_large(run)

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[ActionCounts]:
        def run(c: sqlite3.Connection) -> list[ActionCounts]:
            return [
                ActionCounts(mood, action, n, helpful or 0, unhelpful or 0)
                for mood, action, n, helpful, unhelpful in c.execute(
                    "SELECT mood, action_taken, count(*), sum(was_helpful = 1), "
                    "sum(was_helpful = 0) FROM feedback WHERE tenant_id=? "
                    "AND created_at >= ? AND created_at < ? AND (trusted = 1 OR ?) "
                    "GROUP BY mood, action_taken ORDER BY mood, action_taken",
                    (tenant_id, since or 0.0, until or 1e18, not trusted_only),
                )
            ]

        return await self._read_large(run)

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[MoodChangeRecord]:
        def run(c: sqlite3.Connection) -> list[MoodChangeRecord]:
            return [
                MoodChangeRecord(
                    r[0], r[1], r[2], r[3], r[4], tuple(orjson.loads(r[5])), r[6], r[7], r[8]
                )
                for r in c.execute(
                    "SELECT id, session_id, previous_mood, mood, confidence, signals, "
                    "suggested_action, url, occurred_at FROM mood_changes "
                    "WHERE tenant_id=? AND id > ? ORDER BY id LIMIT ?",
                    (tenant_id, after_id, limit),
                )
            ]

        return await self._read(run)

    async def last_mood_change_id(self, tenant_id: int) -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT max(id) FROM mood_changes WHERE tenant_id=?", (tenant_id,)
            ).fetchone()
            return int(row[0] or 0)

        return await self._read(run)

    async def wait_for_mood_change(self, timeout: float) -> bool:
        if self._closing:
            return False
        # Another process writing the same file cannot wake us: the timeout
        # doubles as the polling interval for that case.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._change_signal.wait(), timeout)
        return not self._closing

    # -- webhooks ---------------------------------------------------------------

    @staticmethod
    def _enqueue_webhooks(
        c: sqlite3.Connection,
        tenant_id: int,
        session_id: str,
        change_id: int,
        previous: str,
        mood: MoodLabel,
        confidence: float,
        signals: list[str],
        action: str,
        now: float,
    ) -> None:
        """Write the outbox rows for one mood change, in the batch's own transaction."""
        hooks = c.execute(
            "SELECT id, moods FROM webhooks WHERE tenant_id=? AND deleted_at IS NULL",
            (tenant_id,),
        ).fetchall()
        if not hooks:
            return
        payload = webhook_payload(
            change_id, session_id, previous, mood, confidence, signals, action, now
        )
        c.executemany(
            "INSERT INTO webhook_deliveries (webhook_id, tenant_id, session_id, change_id, "
            "payload, status, next_attempt_at, created_at) VALUES (?,?,?,?,?,'pending',?,?)",
            [
                (hook_id, tenant_id, session_id, change_id, payload, now, now)
                for hook_id, moods in hooks
                if moods is None or mood in orjson.loads(moods)
            ],
        )

    async def create_webhook(self, record: WebhookRecord, limit: int) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            # Jobs run one at a time on the writer: no other creation can land
            # between this count and the insert.
            (n,) = c.execute(
                "SELECT count(*) FROM webhooks WHERE tenant_id=? AND deleted_at IS NULL",
                (record.tenant_id,),
            ).fetchone()
            if n >= limit:
                return False
            c.execute(
                "INSERT INTO webhooks (id, tenant_id, url, moods, secret, created_at) "
                "VALUES (?,?,?,?,?,?)",
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

        return await self._write(job)

    async def list_webhooks(self, tenant_id: int) -> list[WebhookRecord]:
        def run(c: sqlite3.Connection) -> list[WebhookRecord]:
            return [
                WebhookRecord(r[0], r[1], r[2], _moods(r[3]), r[4], r[5])
                for r in c.execute(
                    "SELECT id, tenant_id, url, moods, secret, created_at FROM webhooks "
                    "WHERE tenant_id=? AND deleted_at IS NULL ORDER BY created_at, id",
                    (tenant_id,),
                )
            ]

        return await self._read(run)

    async def delete_webhook(self, tenant_id: int, webhook_id: str, now: float) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE webhooks SET deleted_at=? WHERE tenant_id=? AND id=? "
                "AND deleted_at IS NULL",
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

        return await self._write(job)

    async def list_deliveries(
        self, tenant_id: int, webhook_id: str, limit: int = 50
    ) -> list[DeliveryRecord] | None:
        def run(c: sqlite3.Connection) -> list[DeliveryRecord] | None:
            if not c.execute(
                "SELECT 1 FROM webhooks WHERE tenant_id=? AND id=?", (tenant_id, webhook_id)
            ).fetchone():
                return None
            return [
                DeliveryRecord(*r)
                for r in c.execute(
                    "SELECT id, webhook_id, change_id, session_id, status, attempts, "
                    "last_status_code, last_error, latency_ms, created_at, delivered_at, "
                    "next_attempt_at FROM webhook_deliveries WHERE webhook_id=? "
                    "ORDER BY id DESC LIMIT ?",
                    (webhook_id, limit),
                )
            ]

        return await self._read(run)

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[DeliveryJob]:
        cap = per_endpoint if per_endpoint is not None else 1 << 62

        def job(c: sqlite3.Connection) -> list[DeliveryJob]:
            rows = c.execute(_CLAIM_SQL, {"now": now, "cap": cap, "limit": limit}).fetchall()
            c.executemany(
                "UPDATE webhook_deliveries SET claimed_until=? WHERE id=?",
                [(now + lease_s, r[0]) for r in rows],
            )
            return [DeliveryJob(*r) for r in rows]

        return await self._write(job)

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

        def job(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE webhook_deliveries SET status=?, attempts=attempts+1, "
                "last_status_code=?, last_error=?, latency_ms=?, next_attempt_at=?, "
                "claimed_until=NULL, delivered_at=? WHERE id=?",
                (
                    status,
                    status_code,
                    error,
                    latency_ms,
                    None if delivered else next_attempt_at,
                    now if delivered else None,
                    delivery_id,
                ),
            )

        await self._write(job)

    # -- retention ----------------------------------------------------------------

    async def purge_expired(self, cutoffs: Mapping[Plan, float], limit: int = 1000) -> int:
        await self._flush_rows()  # last activity is in the rows only once they caught up

        def job(c: sqlite3.Connection) -> int:
            found: list[tuple[int, str, int | None]] = []
            for plan, cutoff in cutoffs.items():
                found += c.execute(
                    # per tenant through sessions_tenant_updated
                    "SELECT s.tenant_id, s.session_id, s.last_batch FROM tenants t "
                    "JOIN sessions s ON s.tenant_id = t.id "
                    "WHERE t.plan = ? AND s.updated_at < ? LIMIT ?",
                    (plan, cutoff, limit - len(found)),
                ).fetchall()
                if len(found) >= limit:
                    break
            for tenant_id, session_id, last in found:  # rows caught up: last_batch is current
                _delete_batches(c, tenant_id, session_id, last)
            victims = [(t, sid) for t, sid, _ in found]
            for table in ("sessions", *_SESSION_TABLES):
                c.executemany(f"DELETE FROM {table} WHERE tenant_id=? AND session_id=?", victims)
            for victim in victims:
                self._staged_hot[victim] = None
            return len(victims)

        purged = await self._write(job)
        if purged:
            self._counted_months.clear()  # rare (hourly): simpler than picking entries out
        return purged
