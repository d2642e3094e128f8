"""The embedded SQLite backend: see ``storage.py`` for how its parts fit."""

from sessionmood_server.storage.sqlite.storage import SQLiteStorage, parse_sqlite_url

__all__ = ["SQLiteStorage", "parse_sqlite_url"]
