"""The API once through a real uvicorn process on a free port (not in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_postgres import fresh_schema_sync


def test_full_flow_over_real_http(live_server: LiveServer, api_key: str) -> None:
    base, h = live_server.base_url, {"X-Api-Key": api_key}
    assert httpx.get(base + "/health").json()["status"] == "ok"
    sid = "%41 real/slash ☃"
    path = f"{base}/v1/sessions/{quote(sid, safe='')}"
    events = [
        {"type": "page_view", "url": "/checkout", "ts": 1714900200},
        {"type": "rage_click", "x": 340, "y": 210, "ts": 1714900201},
        {"type": "error", "message": "Payment failed", "ts": 1714900202},
        {"type": "error", "message": "Payment failed", "ts": 1714900203},
    ]
    r = httpx.post(path + "/events", json={"events": events}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == sid and r.json()["current_mood"] == "frustrated"
    mood = httpx.get(path + "/mood", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert mood["mood"] == "frustrated" and mood["suggested_action"] == "show_live_chat"
    assert httpx.get(path + "/events", headers=h).json()["event_count"] == 4
    fb = httpx.post(path + "/feedback", json={"action_taken": "show_live_chat"}, headers=h)
    assert fb.json() == {"session_id": sid, "feedback_recorded": True}
    analytics = httpx.get(base + "/v1/analytics/moods", headers=h).json()
    assert analytics["total_sessions"] == 1 and analytics["feedback_count"] == 1
    assert httpx.get(base + "/v1/usage", headers=h).json()["sessions_used"] == 1
    assert httpx.delete(path, headers=h).json()["deleted"] is True
    assert httpx.get(path + "/mood", headers=h).status_code == 404


def test_errors_are_json_over_real_http(live_server: LiveServer, api_key: str) -> None:
    base, h = live_server.base_url, {"X-Api-Key": api_key}
    cases = [
        httpx.get(base + "/nope"),
        httpx.put(base + "/health"),
        httpx.get(base + "/v1/analytics/moods"),
        httpx.post(
            base + "/v1/sessions/s/events",
            content=b"{broken",
            headers={**h, "Content-Type": "application/json"},
        ),
        httpx.post(base + "/v1/sessions/s/events", json={"events": [{"type": "x"}]}, headers=h),
    ]
    assert [r.status_code for r in cases] == [404, 405, 401, 400, 400]
    for r in cases:
        assert r.headers["content-type"] == "application/json"
        assert "error" in r.json()


def test_static_tracker_is_served_with_etag(live_server: LiveServer) -> None:
    r = httpx.get(live_server.base_url + "/static/tracker.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    again = httpx.get(live_server.base_url + "/static/tracker.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_tracker_travels_gzipped(live_server: LiveServer) -> None:
    import gzip
    from pathlib import Path

    raw = (Path(__file__).resolve().parent.parent / "static" / "tracker.js").read_bytes()
    r = httpx.get(live_server.base_url + "/static/tracker.js", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == raw  # httpx decodes; the bytes are the shipped file
    assert int(r.headers["content-length"]) == len(gzip.compress(raw, 9, mtime=0)) <= 5120
    again = httpx.get(
        live_server.base_url + "/static/tracker.js",
        headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304


def test_database_passwords_never_reach_the_log() -> None:
    from sessionmood_server.app import _redact

    assert (
        _redact("postgresql://u:s3cret@db:5432/x?schema=a")
        == "postgresql://u:***@db:5432/x?schema=a"
    )
    assert "y0" not in _redact("postgresql://db/x?password=y0&schema=a")
    assert _redact("sqlite:///./sessionmood.db") == "sqlite:///./sessionmood.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_backend_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A real server of the test's own on each storage backend."""
    if request.param == "sqlite":
        server = LiveServer(database_url=f"sqlite:///{tmp_path / 'live.db'}")
        server.start()
        yield server
        server.stop()
        return
    with fresh_schema_sync() as url:
        server = LiveServer(database_url=url, log_path=tmp_path / "pg.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()


def test_dead_clicks_are_stored_and_exported_on_every_backend(
    any_backend_server: LiveServer,
) -> None:
    base = any_backend_server.base_url
    h = {"X-Api-Key": any_backend_server.new_key()}
    path = f"{base}/v1/sessions/dead-clicks"
    t = 1_795_000_000.0
    events = [
        {"type": "page_view", "url": "/checkout", "ts": t},
        {"type": "click", "x": 10, "y": 20, "dead": True, "ts": t + 1},
        {"type": "click", "x": 10, "y": 20, "dead": False, "ts": t + 2},
        {"type": "click", "x": 10, "y": 20, "ts": t + 3},
    ]
    r = httpx.post(path + "/events", json={"events": events}, headers=h)
    assert r.status_code == 200, r.text
    # A bad dead refuses its whole batch and stores none of it.
    bad = [{"type": "click", "ts": t + 4}, {"type": "scroll", "dead": True, "ts": t + 5}]
    r = httpx.post(path + "/events", json={"events": bad}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "events[1].dead"
    exported = httpx.get(path + "/events", headers=h).json()
    assert exported["event_count"] == 4
    assert [e.get("dead") for e in exported["events"]] == [None, True, False, None]
    assert "dead" not in exported["events"][0] and "dead" not in exported["events"][3]
    # A second dead click on the same control: the visitor is stuck, and the mood says so.
    more = [{"type": "click", "x": 10, "y": 20, "dead": True, "ts": t + 6}]
    r = httpx.post(path + "/events", json={"events": more}, headers=h)
    assert r.json()["current_mood"] == "frustrated"
    mood = httpx.get(path + "/mood", headers=h).json()
    assert mood["signals"][:2] == ["repeated_dead_click", "dead_click_detected"]
    assert mood["event_count"] == 5
