"""The PostgreSQL backend: see ``storage.py`` for how its parts fit."""

from sessionmood_server.storage.postgres.storage import PostgresStorage, parse_postgres_url

__all__ = ["PostgresStorage", "parse_postgres_url"]
