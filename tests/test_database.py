"""How the PostgreSQL tests find their database (``tests/database.py``): the
variable wins, a throwaway cluster starts and goes away, and without any
database the skip says why in one line (or the tests fail, as in CI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import database
from tests.conftest import ROOT, free_port


def no_tools(tmp_path: Path) -> str:
    """A place to look for initdb and pg_ctl that holds none."""
    return str(tmp_path / "none" / "*" / "bin")


def no_server() -> tuple[str, int]:
    """An address nothing answers on."""
    return ("127.0.0.1", free_port())


def test_the_variable_wins(tmp_path: Path) -> None:
    cleanups: list[Callable[[], None]] = []
    url = "postgresql://someone@db.example:5433/x"
    found = database.find({database.URL_VAR: url}, cleanups)
    assert found == database.Found(url, database.URL_VAR) and cleanups == []


def test_without_a_database_the_reason_is_one_line(tmp_path: Path) -> None:
    cleanups: list[Callable[[], None]] = []
    found = database.find(
        {"PATH": str(tmp_path)}, cleanups, bindirs=no_tools(tmp_path), server=no_server()
    )
    assert found.url is None and cleanups == []
    assert "\n" not in found.how
    assert "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin" in found.how
    assert "nothing answers on 127.0.0.1:" in found.how
    assert found.how.endswith(f"set {database.URL_VAR}=postgresql://user@host:port/db")


def test_a_throwaway_cluster_starts_and_is_removed() -> None:
    path = os.environ.get("PATH", "")
    if database._tools(path, database.DEBIAN_BINDIRS) is None:
        pytest.skip("no initdb/pg_ctl here")
    cleanups: list[Callable[[], None]] = []
    found = database.find({"PATH": path}, cleanups, server=no_server())
    assert found.url is not None, found.how
    assert "throwaway cluster" in found.how
    import asyncpg  # type: ignore[import-untyped]

    async def version() -> str:
        conn = await asyncpg.connect(found.url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    assert asyncio.run(version())
    (remove,) = cleanups
    cluster = getattr(remove, "__self__", None)  # the bound Cluster.remove
    assert isinstance(cluster, database.Cluster) and cluster.data.is_dir()
    remove()
    assert not cluster.dir.exists()
    with pytest.raises(OSError):  # nothing listens there any more
        asyncio.run(version())


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_the_skips_are_one_line_of_the_summary() -> None:
    done = _pytest("tests/test_postgres.py", "tests/test_storage.py", "-q",
                   **{database.URL_VAR: "off", database.REQUIRE_VAR: "0"})  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    # Two files' worth of PostgreSQL tests, one line.
    assert len(skipped) == 1, skipped
    assert f"PostgreSQL tests skipped: {database.URL_VAR}=off" in skipped[0]


def test_required_postgres_fails_instead_of_skipping() -> None:
    done = _pytest(
        "tests/test_postgres.py", "-q", **{database.URL_VAR: "off", database.REQUIRE_VAR: "1"}
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert "SKIPPED" not in done.stdout
    assert f"{database.REQUIRE_VAR}=1 but there is no PostgreSQL" in done.stdout
