"""The SQLite backend's writer: connections, group commit and checkpoints.

Writes run on the event loop thread itself, not on a writer thread: a point
write in WAL mode takes microseconds, while handing work to another thread
costs more than that in GIL hand-offs and wake-ups (measured: a writer thread
made POST slower, the GIL keeping it off the second core). Every write
requested during one loop iteration is committed together by a single
callback (one COMMIT for many requests); if a job fails, the group rolls back
and each job is re-run alone, so only that one fails. Nothing else runs on the
loop while a group executes, so no two writes ever interleave: batches for one
session cannot lose updates and quota checks are exact. A caller is answered
only after the COMMIT that holds its job.

Point reads run inline; reads that may scan many rows (export, analytics) run
on reader threads with their own connections, which WAL mode lets proceed
during commits. WAL checkpoints run on a thread of their own.

What a group does besides its jobs is the storage's business, told through
``GroupHooks``: the writer knows nothing of sessions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

log = logging.getLogger("sessionmood.storage")
T = TypeVar("T")

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

Job = Callable[[sqlite3.Connection], Any]


class GroupHooks(Protocol):
    """What the storage does around each group's jobs, on the loop thread."""

    def begin(self, conn: sqlite3.Connection) -> None:
        """In the group's transaction (the write lock held), before its jobs."""
        ...

    def finish(self, conn: sqlite3.Connection) -> None:
        """In the group's transaction, after its jobs, before COMMIT."""
        ...

    def committed(self) -> None:
        """The group's COMMIT succeeded."""
        ...

    def rolled_back(self) -> None:
        """The group's transaction was rolled back (a job or the COMMIT failed)."""
        ...

    def done(self) -> None:
        """After every attempt of the group, before its callers are answered."""
        ...


class JobFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Writer:
    """One database file's connections: the writer's, readers' and the checkpointer's."""

    def __init__(self, path: str, synchronous: str, *, readers: int = 2) -> None:
        self.path = path
        if path == ":memory:":
            # Several connections must see one database: use a named shared cache.
            self._uri = f"file:sessionmood-{id(self)}?mode=memory&cache=shared"
        else:
            self._uri = "file:" + os.path.abspath(path)
        self._synchronous = synchronous
        self.conn: sqlite3.Connection | None = None
        self._hooks: GroupHooks | None = None
        self._pending: list[tuple[Job, asyncio.Future[Any]]] = []
        self._group_scheduled = False
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="sessionmood-sqlite-read"
        )
        self._local = threading.local()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._wal_frames = 0  # frames in the WAL at the thread's last checkpoint
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Writes are queued for the next group."""
        return bool(self._pending)

    # -- connections -----------------------------------------------------------

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
        # Rows are read by column name. Measured: a row costs 0.1 us more to
        # build than a tuple, and a POST for an open session reads none (its
        # state is in the session cache), so the hot path does not notice.
        conn.row_factory = sqlite3.Row
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def open(self, hooks: GroupHooks) -> sqlite3.Connection:
        """Open the writer's connection (WAL mode, checkpoints on a thread)."""
        self._hooks = hooks
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            # The file holds key hashes and webhook secrets: readable by its
            # owner only. SQLite gives the -wal and -shm files the database
            # file's permissions. An existing file keeps the ones it has.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.conn = conn = self._connect()
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            # Checkpoints copy the WAL into the database and fsync it: run on
            # the event loop they would stall every request for milliseconds,
            # so the writer never checkpoints and a thread does it instead.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sessionmood-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        return conn

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
                self._wal_frames = int(row["log"]) if row and row["log"] > 0 else 0
            except sqlite3.Error:  # e.g. busy: the next pass catches up
                log.debug("WAL checkpoint skipped", exc_info=True)
        # A final full checkpoint leaves a compact database behind.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
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
        self.conn = None

    # -- reads -------------------------------------------------------------------

    def open_conn(self) -> sqlite3.Connection:
        """The writer's connection, for point reads inline on the loop."""
        if self.conn is None:
            raise RuntimeError("storage is not open")
        return self.conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A point read, inline: cheaper than a thread hop, sees every commit."""
        return fn(self.open_conn())

    async def read_large(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read that may scan many rows: on a reader thread, off the event loop."""

        def run() -> T:
            return fn(self._reader_conn())

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    # -- group commit ------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next group's transaction; its result once committed."""
        if self.conn is None:
            raise RuntimeError("storage is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut))
        self.schedule()
        return await fut

    def schedule(self) -> None:
        """Run a group soon (with no jobs, it does only what the hooks do)."""
        if not self._group_scheduled:
            self._group_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_group)

    def _run_group(self) -> None:
        self._group_scheduled = False
        jobs, self._pending = self._pending, []
        conn, hooks = self.conn, self._hooks
        if conn is None or hooks is None:
            for _, fut in jobs:
                if not fut.done():
                    fut.set_exception(RuntimeError("storage is closed"))
            return
        try:
            outcomes = self._commit(conn, hooks, jobs)
        except JobFailed:
            # A job raised, so the whole group was rolled back. Failures are
            # rare (validation happens before storage), so rather than pay a
            # SAVEPOINT per job on every group, re-run each job on its own:
            # only the failing one fails.
            outcomes = []
            for job in jobs:
                _, fut = job
                try:
                    outcomes += self._commit(conn, hooks, [job])
                except JobFailed as failed:
                    outcomes.append((fut, None, failed.error))
                except Exception as exc:
                    log.exception("SQLite commit failed")
                    outcomes.append((fut, None, exc))
        except Exception as exc:  # the commit itself failed: nobody's write landed
            log.exception("SQLite group commit failed")
            outcomes = [(fut, None, exc) for _, fut in jobs]
        hooks.done()
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
        hooks: GroupHooks,
        jobs: list[tuple[Job, asyncio.Future[Any]]],
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Run ``jobs`` in one transaction; raises JobFailed (all rolled back) if one raises."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            hooks.begin(conn)
            results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            for fn, fut in jobs:
                try:
                    results.append((fut, fn(conn), None))
                except Exception as exc:
                    raise JobFailed(exc) from exc
            hooks.finish(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            hooks.rolled_back()
            raise
        if self._wal_frames > WAL_RESTART_FRAMES:
            self._wal_frames = 0
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # the thread's next pass reports the size again
                log.debug("WAL catch-up checkpoint skipped", exc_info=True)
        hooks.committed()
        return results
