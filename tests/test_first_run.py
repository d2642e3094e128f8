"""A first run that never breaks: the port is bound before any data changes;
the public URL drives printed links and the demo's allowed origin; JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sessionmood_server.cli import _public_url
from tests.conftest import ROOT, LiveServer, free_port


def _demo_key(log: Path) -> str:
    m = re.search(r"Dashboard:\s+\S+#key=(sm_\w+)", log.read_text())
    assert m is not None, log.read_text()
    return m.group(1)


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessionmood_server", "serve", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_a_second_demo_on_a_busy_port_changes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    first = LiveServer(database_url=db, args=["--demo"], log_path=tmp_path / "first.log")
    first.start()
    try:
        key = _demo_key(tmp_path / "first.log")
        # The next port is busy too: the hint must name one that is free.
        with socket.socket() as next_busy:
            with contextlib.suppress(OSError):  # already taken: busy all the same
                next_busy.bind(("127.0.0.1", first.port + 1))
                next_busy.listen()
            second = _serve(
                "--demo", "--port", str(first.port), env={"SESSIONMOOD_DATABASE_URL": db}
            )
            assert second.returncode == 2
            assert f"port {first.port}" in second.stderr and "already in use" in second.stderr
            m = re.search(
                r"Port (\d+) is free: make run PORT=(\d+)  or  .*--port (\d+)", second.stderr
            )
            assert m is not None, second.stderr
            assert len(set(m.groups())) == 1
            suggested = int(m.group(1))
            assert suggested not in (first.port, first.port + 1)
            with socket.socket() as check:
                check.bind(("127.0.0.1", suggested))
        # Nothing claimed to listen, no demo banner, and the first demo's key still works.
        assert "listening on" not in second.stdout and "Dashboard" not in second.stdout
        r = httpx.get(first.base_url + "/v1/usage", headers={"X-Api-Key": key})
        assert r.status_code == 200, r.text
    finally:
        first.stop()


def test_listening_is_printed_once_the_port_is_bound(tmp_path: Path) -> None:
    server = LiveServer(database_url=f"sqlite:///{tmp_path / 'a.db'}", log_path=tmp_path / "a.log")
    server.start()
    try:
        lines = (tmp_path / "a.log").read_text().splitlines()
        assert f"SessionMood listening on http://127.0.0.1:{server.port}" in lines
    finally:
        server.stop()


def test_the_public_url_drives_links_and_the_demo_origin(tmp_path: Path) -> None:
    port = free_port()
    public = f"http://192.0.2.10:{port}"  # where another machine reaches it
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        port=port,
        args=["--demo", "--host", "0.0.0.0"],
        env={"SESSIONMOOD_PUBLIC_URL": public + "/"},
        log_path=tmp_path / "p.log",
    )
    server.start()
    try:
        out = (tmp_path / "p.log").read_text()
        assert f"Demo shop:  {public}/demo/" in out
        assert f"Dashboard:  {public}/dashboard/" in out
        assert "#key=" not in out  # not a loopback address: the secret is not printed
        page = httpx.get(server.base_url + "/demo/").text
        pk = re.search(r"pk_[0-9a-f]{48}", page)
        assert pk is not None
        url = server.base_url + "/v1/sessions/remote-visitor/events"
        body = {"events": [{"type": "page_view", "url": "/"}]}
        ok = httpx.post(url, json=body, headers={"X-Api-Key": pk.group(), "Origin": public})
        assert ok.status_code == 200, ok.text
        other = {"X-Api-Key": pk.group(), "Origin": "http://198.51.100.7"}
        assert httpx.post(url, json=body, headers=other).status_code == 403
    finally:
        server.stop()


def test_public_url_values() -> None:
    assert _public_url(None, "127.0.0.1", 8000) == ("http://127.0.0.1:8000",) * 2
    assert _public_url(None, "0.0.0.0", 9000) == ("http://127.0.0.1:9000",) * 2
    assert _public_url(None, "::1", 9000) == ("http://[::1]:9000",) * 2
    assert _public_url("https://Mood.Example.com/sm/", "0.0.0.0", 8000) == (
        "https://Mood.Example.com/sm",
        "https://mood.example.com",
    )
    for bad in ("mood.example.com", "ftp://x", "http://"):
        with pytest.raises(ValueError, match="public URL"):
            _public_url(bad, "0.0.0.0", 8000)


def test_a_bad_public_url_stops_before_anything(tmp_path: Path) -> None:
    done = _serve(
        "--public-url",
        "example.com",
        "--port",
        str(free_port()),
        env={"SESSIONMOOD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
    )
    assert done.returncode == 2 and "public URL" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_json_logs_carry_the_request_id(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'j.db'}",
        args=["--access-log"],
        env={"SESSIONMOOD_LOG_FORMAT": "json"},
        log_path=log,
    )
    server.start()
    try:
        r = httpx.get(server.base_url + "/v1/usage", headers={"X-Request-Id": "trace-123"})
        assert r.status_code == 401
        httpx.get(server.base_url + "/health")
        deadline = time.monotonic() + 10
        while "trace-123" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        server.stop()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    traced = next(r for r in access if r.get("request_id") == "trace-123")
    assert (traced["method"], traced["path"], traced["status"]) == ("GET", "/v1/usage", 401)
    # Every request gets an id, made up when the client sent none.
    health = next(r for r in access if r["path"] == "/health")
    assert health["request_id"].startswith("req_")
    assert {"time", "level", "message"} <= traced.keys()
    # Only the human banner lines are not JSON.
    others = [line for line in log.read_text().splitlines() if not line.startswith("{")]
    assert all(line.startswith(("SessionMood listening", "  ")) or not line for line in others)


def test_log_format_flag_wins_over_the_environment() -> None:
    from sessionmood_server.cli import _parser

    args = _parser().parse_args(["serve", "--log-format", "json"])
    assert args.log_format == "json"
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--log-format", "xml"])
