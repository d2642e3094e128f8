"""PostgreSQL schema: versioned migrations (``migrations/NNN.sql``, see ``PostgresStorage``).

Applied in order under an advisory lock, so replicas starting together apply
each exactly once; each runs whole (one simple-protocol ``execute``: its
statements may hold ``;``, as a function's body does) inside the migration
transaction. Never edit a released migration: add a new one. Every
tenant-scoped table has tenant_id first in its primary key, so a sharded
PostgreSQL (Citus) can distribute by tenant. Times are Unix seconds as double
precision, like SQLite's REAL; JSON stays TEXT (not jsonb) so exports return
fields exactly as they were sent.
"""

from __future__ import annotations

import logging

import asyncpg  # type: ignore[import-untyped]

from sessionmood_server.storage.postgres.locks import lock_key
from sessionmood_server.storage.shared import load_migrations

log = logging.getLogger("sessionmood.storage")

MIGRATIONS: list[tuple[int, str]] = load_migrations(__package__)


async def migrate(dsn: str, schema: str, migrations: list[tuple[int, str]] | None = None) -> None:
    """Apply what ``schema`` lacks of ``migrations`` (default: ours), creating it if need be."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "sessionmood"})
    try:
        async with conn.transaction():
            # One migrator per schema at a time, database-wide; the others
            # wait here and then find every version already applied.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("migrate", schema))
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            for version, sql in MIGRATIONS if migrations is None else migrations:
                if version in done:
                    continue
                await conn.execute(sql)  # the whole script: no arguments, simple protocol
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, extract(epoch from now()))",
                    version,
                )
                log.info("applied schema migration %d to %s", version, schema)
    finally:
        await conn.close()
