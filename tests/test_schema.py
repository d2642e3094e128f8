"""Schema migrations run as whole scripts, each in one transaction, on both
backends: a statement may hold ``;`` (a trigger's or a function's body)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from sessionmood_server.storage.postgres import schema as postgres_schema
from sessionmood_server.storage.shared import load_migrations
from sessionmood_server.storage.sqlite import schema as sqlite_schema

ROOT = Path(__file__).resolve().parent.parent

# A trigger whose body holds two statements, each ending in ';', and a string
# literal holding one: a script cut at every ';' breaks on all three.
SQLITE_TRIGGER = [
    (
        1,
        """
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL,
                            edits INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '');
        CREATE TRIGGER notes_edited AFTER UPDATE OF body ON notes BEGIN
            UPDATE notes SET edits = edits + 1 WHERE id = NEW.id;
            UPDATE notes SET log = log || OLD.body || '; ' WHERE id = NEW.id;
        END;
        """,
    ),
    (2, "INSERT INTO notes (body) VALUES ('first; draft');"),
]

POSTGRES_TRIGGER = [
    (
        1,
        """
        CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL,
                            edits INTEGER NOT NULL DEFAULT 0);
        CREATE FUNCTION count_edit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.edits := OLD.edits + 1;
            RETURN NEW;
        END;
        $$;
        CREATE TRIGGER notes_edited BEFORE UPDATE OF body ON notes
            FOR EACH ROW EXECUTE FUNCTION count_edit();
        """,
    ),
    (2, "INSERT INTO notes (id, body) VALUES (1, 'first; draft');"),
]


def _versions(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_sqlite_migrations_run_whole_scripts(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    sqlite_schema.migrate(conn, SQLITE_TRIGGER)
    conn.execute("UPDATE notes SET body = 'second' WHERE id = 1")
    assert conn.execute("SELECT body, edits, log FROM notes").fetchall() == [
        ("second", 1, "first; draft; ")
    ]
    assert _versions(conn) == [1, 2]
    sqlite_schema.migrate(conn, SQLITE_TRIGGER)  # nothing applied twice
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)


def test_a_failing_sqlite_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    broken = [(1, "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1); CREATE TABLE a (y);")]
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        sqlite_schema.migrate(conn, broken)
    assert not conn.in_transaction
    assert _versions(conn) == []
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "a" not in tables


def test_the_migration_files_are_found_in_version_order() -> None:
    sqlite_versions = [v for v, _ in load_migrations("sessionmood_server.storage.sqlite")]
    postgres_versions = [v for v, _ in load_migrations("sessionmood_server.storage.postgres")]
    assert sqlite_versions == [1, 2, 3, 4, 5, 6, 8, 10, 11]  # 7 is PostgreSQL's only
    # 9: row versions, PostgreSQL only; 10: elements and journeys, both
    assert postgres_versions == [1, 4, 6, 7, 8, 9, 10, 11]
    assert sqlite_schema.MIGRATIONS[0][1].lstrip().startswith("CREATE TABLE tenants")


@pytest.mark.postgres
@pytest.mark.anyio
async def test_postgres_migrations_run_whole_scripts() -> None:
    import asyncpg  # type: ignore[import-untyped]

    from sessionmood_server.storage.postgres import parse_postgres_url
    from tests.test_postgres import fresh_schema

    async with fresh_schema() as url:
        dsn, schema, _, _ = parse_postgres_url(url)
        await postgres_schema.migrate(dsn, schema, POSTGRES_TRIGGER)
        await postgres_schema.migrate(dsn, schema, POSTGRES_TRIGGER)  # nothing applied twice
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute("UPDATE notes SET body = 'second' WHERE id = 1")
            assert [tuple(r) for r in await conn.fetch("SELECT body, edits FROM notes")] == [
                ("second", 1)
            ]
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
            assert [r[0] for r in versions] == [1, 2]
        finally:
            await conn.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_appenders_parameters_are_sm_append_cacheds_in_order_and_type() -> None:
    """``appender.BatchRow`` then ``GroupRows`` name the arrays the group call
    sends, in the order and with the types ``sm_append_cached`` declares."""
    from sessionmood_server.storage.postgres import appender

    # The newest migration that (re)creates the function is the one in force.
    migrations = sorted((ROOT / "sessionmood_server/storage/postgres/migrations").glob("*.sql"))
    sql = [
        m.read_text() for m in migrations if "CREATE FUNCTION sm_append_cached(" in m.read_text()
    ][-1]
    signature = sql[sql.index("CREATE FUNCTION sm_append_cached(") : sql.index(") RETURNS TABLE")]
    declared = re.findall(r"\bp_\w+ ([A-Z ]+?)\[\]", signature)
    assert len(declared) == len(appender.BatchRow._fields) + len(appender.GroupRows._fields)
    assert [t.lower() for t in declared] == [t for t, _ in appender._PARAMS]
    assert appender.APPEND_SQL.count("::text::") == len(declared)
