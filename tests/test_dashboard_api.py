"""The dashboard's API: per-page moods, action effectiveness and the live stream."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import LiveServer

FRUSTRATED = [
    {"type": "rage_click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment failed"},
    {"type": "error", "message": "Payment failed"},
    {"type": "rage_click", "x": 2, "y": 2},
]


def _send(client: Any, auth: dict[str, str], sid: str, events: list[dict[str, Any]]) -> Any:
    r = client.post(f"/v1/sessions/{sid}/events", json={"events": events}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_pages_heatmap_counts_the_mood_each_page_was_left_in(
    client: TestClient, auth: dict[str, str]
) -> None:
    t = 1_700_000_000
    # s1 browses calmly, then fails to pay on /checkout
    calm = [
        {"type": "page_view", "url": "/products", "ts": t},
        {"type": "click", "x": 1, "y": 1, "ts": t + 1},
        {"type": "scroll", "speed": 300, "direction": "down", "ts": t + 2},
    ]
    _send(client, auth, "s1", calm)
    checkout = [{"type": "page_view", "url": "/checkout", "ts": t + 10}]
    checkout += [{**e, "ts": t + 11 + i} for i, e in enumerate(FRUSTRATED)]
    assert _send(client, auth, "s1", checkout)["current_mood"] == "frustrated"
    # s2 only looks at /products
    _send(client, auth, "s2", [{**e, "ts": t + e["ts"] - t} for e in calm])
    body = client.get("/v1/analytics/pages", headers=auth).json()
    pages = {p["url"]: p for p in body["pages"]}
    assert set(pages) == {"/products", "/checkout"}
    assert pages["/products"]["sessions"] == 2
    assert pages["/checkout"]["sessions"] == 1
    assert pages["/checkout"]["frustration_rate"] == 1.0
    assert pages["/products"]["frustration_rate"] == 0.0
    dist = {d["mood"]: d["count"] for d in pages["/checkout"]["mood_distribution"]}
    assert dist["frustrated"] == 1 and len(dist) == 7
    assert body["pages"][0]["url"] == "/products"  # busiest first


def test_pages_since_until(client: TestClient, auth: dict[str, str]) -> None:
    _send(client, auth, "s", [{"type": "page_view", "url": "/a"}])
    future = time.time() + 3600
    assert client.get(f"/v1/analytics/pages?since={future}", headers=auth).json()["pages"] == []
    iso = "2000-01-01T00:00:00Z"
    assert len(client.get(f"/v1/analytics/pages?since={iso}", headers=auth).json()["pages"]) == 1
    assert client.get(f"/v1/analytics/pages?until={iso}", headers=auth).json()["pages"] == []
    for junk in ("yesterday", "nan", "inf", "1e20", "-1e13", "99999-01-01"):
        bad = client.get(f"/v1/analytics/pages?since={junk}", headers=auth)
        assert bad.status_code == 400 and bad.json()["field"] == "since", junk
        bad = client.get(f"/v1/analytics/actions?until={junk}", headers=auth)
        assert bad.status_code == 400 and bad.json()["field"] == "until", junk


def test_actions_effectiveness(client: TestClient, auth: dict[str, str]) -> None:
    _send(client, auth, "f", FRUSTRATED)
    for helpful in (True, True, False, None):
        client.post(
            "/v1/sessions/f/feedback",
            json={"action_taken": "show_live_chat", "was_helpful": helpful},
            headers=auth,
        )
    actions = client.get("/v1/analytics/actions", headers=auth).json()["actions"]
    assert actions == [
        {
            "mood": "frustrated",
            "action": "show_live_chat",
            "taken": 4,
            "helpful": 2,
            "not_helpful": 1,
            "helpful_rate": 0.6667,
        }
    ]


def test_dashboard_endpoints_need_a_secret_key(client: TestClient, auth: dict[str, str]) -> None:
    pk = client.post(
        "/v1/keys/publishable", json={"allowed_origins": ["https://a.b"]}, headers=auth
    ).json()["publishable_key"]
    for path in (
        "/v1/analytics/pages",
        "/v1/analytics/elements",
        "/v1/analytics/journeys",
        "/v1/analytics/actions",
        "/v1/stream/moods",
    ):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-Api-Key": pk}).status_code == 403


class Stream:
    """Reads an SSE stream on a thread so the test can act meanwhile."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.ready = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.ready.wait(10), "stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            self.ready.set()
            current: dict[str, Any] = {}
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif line == "" and current:
                    self.events.append(current)
                    current = {}

    def wait_for(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events

    def close(self) -> None:
        self._stop = True


@pytest.fixture
def sse_server(tmp_path: Any) -> Any:
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'sse.db'}",
        env={"SESSIONMOOD_SSE_HEARTBEAT_S": "0.3"},
        log_path=tmp_path / "sse.log",
    )
    server.start()
    yield server
    server.stop()


def test_stream_pushes_mood_changes_and_resumes(sse_server: LiveServer) -> None:
    base = sse_server.base_url
    key = sse_server.new_key()
    h = {"X-Api-Key": key}
    stream = Stream(base + "/v1/stream/moods", h)
    t0 = time.monotonic()
    httpx.post(
        base + "/v1/sessions/live1/events",
        json={"events": [{"type": "page_view", "url": "/checkout"}, *FRUSTRATED]},
        headers=h,
    )
    events = stream.wait_for(1)
    assert events, "no mood change arrived"
    assert time.monotonic() - t0 < 5
    first = events[0]["data"]
    assert first["session_id"] == "live1"
    assert first["previous_mood"] == "neutral" and first["mood"] == "frustrated"
    assert first["url"] == "/checkout" and first["signals"]
    assert first["suggested_action"] == "show_live_chat"
    # heartbeats keep an idle stream alive
    deadline = time.monotonic() + 5
    while stream.comments == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream.comments > 0
    stream.close()
    # a change made while nobody listens is replayed after Last-Event-ID
    calm = [{"type": "idle", "duration_ms": 60_000, "ts": time.time() + 600 + i} for i in range(4)]
    httpx.post(base + "/v1/sessions/live1/events", json={"events": calm}, headers=h)
    resumed = Stream(base + "/v1/stream/moods", {**h, "Last-Event-ID": str(events[0]["id"])})
    replay = resumed.wait_for(1)
    resumed.close()
    assert replay and replay[0]["id"] > events[0]["id"]
    assert replay[0]["data"]["previous_mood"] == "frustrated"
    # other tenants see nothing of it
    other = Stream(
        base + "/v1/stream/moods", {"X-Api-Key": sse_server.new_key(), "Last-Event-ID": "0"}
    )
    time.sleep(0.5)
    other.close()
    assert other.events == []


@pytest.mark.parametrize("raw", ["abc", "-1", "1" * 19, "1.5"])
def test_stream_rejects_bad_last_event_id(
    client: TestClient, auth: dict[str, str], raw: str
) -> None:
    r = client.get("/v1/stream/moods", headers={**auth, "Last-Event-ID": raw})
    assert r.status_code == 400
    r = client.get("/v1/stream/moods?last_event_id=%C2%B2", headers=auth)  # "²".isdigit()
    assert r.status_code == 400


def test_streams_per_tenant_are_capped(
    sse_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = sse_server.base_url
    key = sse_server.new_key()
    h = {"X-Api-Key": key}
    streams = [Stream(base + "/v1/stream/moods", h) for _ in range(20)]
    try:
        r = httpx.get(base + "/v1/stream/moods", headers=h, timeout=5)
        assert r.status_code == 429 and r.json()["error"] == "Too many streams"
        # another tenant is not affected
        other = Stream(base + "/v1/stream/moods", {"X-Api-Key": sse_server.new_key()})
        other.close()
    finally:
        for s in streams:
            s.close()


def test_a_stream_ends_when_its_key_is_revoked(client: TestClient, key: str) -> None:
    store = client.app.state.api.storage  # type: ignore[attr-defined]
    with client.stream("GET", "/v1/stream/moods", headers={"X-Api-Key": key}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("retry:")
        client.portal.call(store.revoke_keys, key[:11], time.time())  # type: ignore[union-attr]
        # the stream closes by itself instead of running forever
        rest = list(lines)
    assert not any(line.startswith("data:") for line in rest)
