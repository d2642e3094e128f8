"""The PostgreSQL backend's LISTEN connection: how one replica hears another's commits.

Mood changes ``NOTIFY sessionmood_mood_changes`` (delivered at commit) and key
writes ``NOTIFY sessionmood_keys``; one LISTEN connection per process turns
them into calls of ``on_moods`` (which tenant, or None: any) and ``on_keys``.
Notification payloads carry the schema name: channels are per database, and
replicas of other schemas must ignore them. A supervisor pings the connection
and replaces it when it dies; whatever was notified meanwhile is lost, so a
new connection reports "keys and any tenant's moods may have changed".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

log = logging.getLogger("sessionmood.storage")

CHANGES_CHANNEL = "sessionmood_mood_changes"
KEYS_CHANNEL = "sessionmood_keys"
# The listener proves it is alive this often; a silent one is replaced.
LISTENER_PING_S = 2.0
LISTENER_STALE_S = 5.0


class Listener:
    """One supervised LISTEN connection for one schema."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        on_moods: Callable[[int | None], None],
        on_keys: Callable[[], None],
        lost_note: str = "",
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._on_moods = on_moods
        self._on_keys = on_keys
        self._lost_note = lost_note  # what the warning adds when the connection is lost
        self._conn: Any = None
        self._seen = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Listen before answering anything, so a change committed right after
        start() is heard; the supervisor then keeps the connection alive."""
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="sm-pg-listen")

    async def stop(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop()

    def listening(self) -> bool:
        """Whether notifications arrive now (the connection is up and was heard lately)."""
        conn = self._conn
        return (
            conn is not None
            and not conn.is_closed()
            and time.monotonic() - self._seen < LISTENER_STALE_S
        )

    def server_pid(self) -> int | None:
        """The LISTEN connection's backend process id (None while it is down)."""
        conn = self._conn
        return None if conn is None else int(conn.get_server_pid())

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, timeout=5, server_settings={"application_name": "sessionmood-listen"}
        )
        try:
            await conn.add_listener(CHANGES_CHANNEL, self._on_notify)
            await conn.add_listener(KEYS_CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._seen = time.monotonic()
        # Whatever was notified while we were not listening is lost: start clean.
        self._on_keys()
        self._on_moods(None)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()

    async def _supervise(self) -> None:
        """Keep one LISTEN connection alive: ping it, replace it when it dies."""
        backoff = 0.2
        while not self._closing:
            conn = self._conn
            try:
                if conn is None or conn.is_closed():
                    self._conn = None
                    await self._connect()
                    backoff = 0.2
                await asyncio.sleep(LISTENER_PING_S)
                conn = self._conn
                if conn is not None:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), 1.0)
                    self._seen = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restart, network: retry with backoff
                log.warning("PostgreSQL listener lost (%s)%s", exc, self._lost_note)
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._seen = time.monotonic()
        # "schema" or, for a mood change, "schema:tenant" (older replicas send
        # the schema alone: then any tenant may have changed).
        schema, _, tenant = payload.partition(":")
        if schema != self._schema:
            return  # another deployment sharing this database
        if channel == KEYS_CHANNEL:
            self._on_keys()
        else:
            self._on_moods(int(tenant) if tenant.isdigit() else None)
