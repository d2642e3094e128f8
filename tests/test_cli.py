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
    secrets = ["sm_" + c * 48 for c in "bcdef"] + ["pk_" + "a" * 48]
    try:
        base = f"http://127.0.0.1:{port}"
        r = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"{base}/v1/sessions/x/events?key={secrets[0]}",
                    json={"events": [{"type": "click"}]},
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r is not None and r.status_code == 401
        # Other spellings of the same parameter, and keys anywhere in the line.
        for target in (
            f"/v1/sessions/x/events?%6Bey={secrets[1]}",  # "key", percent-encoded
            f"/v1/usage?KEY={secrets[2]}",
            f"/v1/sessions/{secrets[3]}/mood",
            f"/v1/usage?q=%73m_{secrets[4][3:]}",  # the key's own "s" encoded
            f"/v1/usage?key={secrets[5]}&page=2",
        ):
            httpx.get(base + target)
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text()
    assert "/v1/sessions/x/events?key=[redacted]" in text
    assert "?%6Bey=[redacted]" in text and "?KEY=[redacted]" in text
    assert "/v1/sessions/[redacted]/mood" in text and "?key=[redacted]&page=2" in text
    for secret in secrets:
        assert secret not in text and secret[3:] not in text


@pytest.mark.parametrize(
    ("target", "want"),
    [
        ("/health", "/health"),
        ("/a?x=1&y", "/a?x=1&y"),
        ("/a?Api_Key=abc&b=2", "/a?Api_Key=[redacted]&b=2"),
        ("/a?k%65y=abc", "/a?k%65y=[redacted]"),
        ("/a?token=t+1", "/a?token=[redacted]"),
        ("/a?x=SM_" + "A" * 48, "/a?x=[redacted]"),
        ("/v1/sessions/pk_" + "0" * 48 + "/events", "/v1/sessions/[redacted]/events"),
    ],
)
def test_redact_target(target: str, want: str) -> None:
    from sessionmood_server.cli import redact_target

    assert redact_target(target) == want


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("shop.example", False)],
)  # fmt: skip
def test_only_loopback_counts_as_local(host: str, local: bool) -> None:
    from sessionmood_server.cli import is_loopback

    assert is_loopback(host) is local


def test_serve_by_default_has_no_demo_no_secret_and_no_banner(fresh_server: LiveServer) -> None:
    r = httpx.get(fresh_server.base_url + "/health")
    assert "server" not in r.headers  # no "uvicorn" banner for scanners
    assert httpx.get(fresh_server.base_url + "/demo/").status_code == 404
    assert httpx.get(fresh_server.base_url + "/").status_code == 404
    assert fresh_server.log_path is not None
    out = fresh_server.log_path.read_text()
    assert "sm_" not in out and "pk_" not in out and "Demo shop" not in out


def test_serve_demo_prints_the_local_demo_key(tmp_path: Path) -> None:
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        args=["--demo"],
        log_path=tmp_path / "demo.log",
    )
    server.start()
    try:
        out = (tmp_path / "demo.log").read_text()
        assert "#key=sm_" in out and "/demo/" in out
        assert httpx.get(server.base_url + "/demo/").status_code == 200
    finally:
        server.stop()


def test_bare_command_prints_help_with_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sessionmood")
    for command in ("serve", "purge", "keys"):
        assert f"    {command} " in out, out
    assert "sessionmood serve --demo" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sessionmood_client import __version__

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"sessionmood {__version__}"


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1", "eighty"])
def test_ports_out_of_range_are_refused(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Before, 99999 was announced as 99999 and bound as 99999 - 65536.
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--port", port])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port:" in err
    assert "ports are 1-65535" in err or "is not a port number" in err


def test_the_suggested_port_is_free() -> None:
    import socket

    from sessionmood_server.cli import free_port_near

    # A busy port whose next one is busy too: the suggestion skips it.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with socket.socket() as next_busy:
            try:
                next_busy.bind(("127.0.0.1", port + 1))
                next_busy.listen()
            except OSError:
                pass  # taken by someone else already: busy all the same
            suggested = free_port_near("127.0.0.1", port)
            assert suggested is not None and suggested not in (port, port + 1)
            with socket.socket() as check:  # and it can be bound
                check.bind(("127.0.0.1", suggested))
