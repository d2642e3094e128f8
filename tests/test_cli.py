"""``sessionmood`` CLI: key management against a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sessionmood_server.cli import main
from tests.conftest import LiveServer


def _create(db: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["--database-url", db, "keys", "create", "--customer", "Acme", *extra]) == 0
    return capsys.readouterr().out.strip()


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    key = _create(db, capsys, "--plan", "pro")
    assert key.startswith("sm_") and len(key) == 51
    assert main(["--database-url", db, "keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key[:11] in listing and key not in listing  # only the prefix is ever shown
    assert "pro" in listing and "active" in listing
    assert main(["--database-url", db, "keys", "revoke", key[:11]]) == 0
    assert "revoked 1" in capsys.readouterr().out
    main(["--database-url", db, "keys", "list"])
    assert "revoked" in capsys.readouterr().out
    assert main(["--database-url", db, "keys", "revoke", key[:11]]) == 1


def test_revoke_needs_a_real_prefix(tmp_path: Path) -> None:
    assert main(["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "keys", "revoke", "sm"]) == 2


def test_bad_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", "oracle://x", "keys", "list"]) == 2
    assert "SESSIONMOOD_DATABASE_URL" in capsys.readouterr().err


def test_revoked_key_is_refused_by_running_server(
    fresh_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _create(fresh_server.database_url, capsys)
    h = {"X-Api-Key": key}
    url = fresh_server.base_url + "/v1/analytics/moods"
    assert httpx.get(url, headers=h).status_code == 200
    assert main(["--database-url", fresh_server.database_url, "keys", "revoke", key[:11]]) == 0
    r = httpx.get(url, headers=h)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
