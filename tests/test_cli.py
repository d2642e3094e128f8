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


def test_access_log_never_shows_keys() -> None:
    import logging

    from sessionmood_server.cli import RedactKeys

    secret = "sm_" + "a" * 48
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', (
            "127.0.0.1:5", "POST", f"/v1/sessions/x/events?v=1&key={secret}&z=2", "1.1", 401
        ), None,
    )  # fmt: skip
    assert RedactKeys().filter(record)
    line = record.getMessage()
    assert secret not in line and "key=[redacted]&z=2" in line


def test_access_log_redaction_in_a_real_server(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, free_port

    port = free_port()
    log = tmp_path / "access.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sessionmood_server",
             "--database-url", f"sqlite:///{tmp_path / 'a.db'}",
             "serve", "--port", str(port), "--access-log", "--no-demo"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        secret = "sm_" + "b" * 48
        r = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/sessions/x/events?key={secret}",
                    json={"events": [{"type": "click"}]},
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r is not None and r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text()
    assert "/v1/sessions/x/events?key=[redacted]" in text
    assert secret not in text
