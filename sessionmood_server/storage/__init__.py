"""Storage: one small async interface, one package per backend, chosen by URL scheme.

``sqlite:///path`` (the default) is embedded; ``postgresql://...`` is for
several replicas. Drivers are imported lazily so the Postgres driver stays an
optional extra. The interface is in ``protocols``; what both backends decide
alike is in ``shared``.
"""

from __future__ import annotations

from sessionmood_server.storage.protocols import ChangeListener, Storage

__all__ = ["ChangeListener", "Storage", "StorageURLError", "open_storage"]


class StorageURLError(ValueError):
    """The database URL names no backend we have."""


def open_storage(url: str) -> Storage:
    """A backend for ``url`` (not yet opened: call ``await storage.open()``)."""
    scheme, _, _ = url.partition(":")
    scheme = scheme.lower()
    if scheme == "sqlite":
        from sessionmood_server.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url)
    if scheme in {"postgres", "postgresql"}:
        try:
            from sessionmood_server.storage.postgres import PostgresStorage
        except ImportError as exc:  # asyncpg is the optional "postgres" extra
            raise StorageURLError(
                f"PostgreSQL needs the postgres extra: pip install 'sessionmood[postgres]' ({exc})"
            ) from None
        return PostgresStorage(url)
    raise StorageURLError(
        f"unsupported SESSIONMOOD_DATABASE_URL scheme {scheme!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/db"
    )
