"""SQLite schema: versioned migrations (``migrations/NNN.sql``), applied in order at open.

Each migration runs whole (``executescript``: its statements may hold ``;``,
as a trigger's body does) in a transaction of its own, which also records its
version. Never edit a released migration: add a new one. Version 7 is
PostgreSQL's only.
"""

from __future__ import annotations

import logging
import sqlite3

from sessionmood_server.storage.shared import load_migrations

log = logging.getLogger("sessionmood.storage")

MIGRATIONS: list[tuple[int, str]] = load_migrations(__package__)


def migrate(conn: sqlite3.Connection, migrations: list[tuple[int, str]] | None = None) -> None:
    """Apply what ``conn``'s database lacks of ``migrations`` (default: ours).

    Several processes may open one file at once: the version row is written
    first in each migration's transaction, so a process that lost the race
    fails on its primary key before applying anything, and moves on.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    # Any connection: one of ours reads sqlite3.Rows, a caller's may read tuples.
    versions = conn.cursor()
    versions.row_factory = sqlite3.Row
    done = {row["version"] for row in versions.execute("SELECT version FROM schema_migrations")}
    for version, sql in MIGRATIONS if migrations is None else migrations:
        if version in done:
            continue
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;\n"
                f"INSERT INTO schema_migrations VALUES ({int(version)}, strftime('%s','now'));\n"
                f"{sql}\n;\nCOMMIT;"
            )
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Another process may have applied it while we waited for the lock.
            if (
                not isinstance(exc, sqlite3.IntegrityError)
                or not conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version=?", (version,)
                ).fetchone()
            ):
                raise
            continue
        log.info("applied schema migration %d", version)
