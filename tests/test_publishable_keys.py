"""Publishable (browser) keys: what they may do, from where, and CORS."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sessionmood_server.http.keys import normalise_origin

SHOP = "https://shop.example"
EVENTS = {"events": [{"type": "click", "x": 1, "y": 2}]}


def _pk(client: TestClient, auth: dict[str, str], origins: list[str] | None = None) -> str:
    r = client.post(
        "/v1/keys/publishable", json={"allowed_origins": origins or [SHOP]}, headers=auth
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["publishable_key"].startswith("pk_") and len(body["publishable_key"]) == 51
    return str(body["publishable_key"])


def test_publishable_key_sends_events_and_learns_the_mood_from_the_answer(
    client: TestClient, auth: dict[str, str]
) -> None:
    pk = {"X-Api-Key": _pk(client, auth), "Origin": SHOP}
    r = client.post("/v1/sessions/b1/events", json=EVENTS, headers=pk)
    assert r.status_code == 200
    # what tracker.js hands to onMood: the mood after this batch
    assert r.json()["current_mood"] == "neutral" and "suggested_action" in r.json()
    # same tenant: the secret key sees what the browser sent
    assert client.get("/v1/sessions/b1/events", headers=auth).json()["event_count"] == 1
    assert client.get("/v1/sessions/b1/mood", headers=auth).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # Write-only: session ids may be user ids, and the key is public.
        ("GET", "/v1/sessions/b1/mood"),
        ("GET", "/v1/stream/moods"),
        ("GET", "/v1/analytics/pages"),
        ("GET", "/v1/analytics/elements"),
        ("GET", "/v1/analytics/journeys"),
        ("GET", "/v1/analytics/moods"),
        ("GET", "/v1/usage"),
        ("GET", "/v1/sessions/b1/events"),
        ("DELETE", "/v1/sessions/b1"),
        ("POST", "/v1/keys/publishable"),
    ],
)
def test_publishable_key_may_do_nothing_else(
    client: TestClient, auth: dict[str, str], method: str, path: str
) -> None:
    pk = {"X-Api-Key": _pk(client, auth), "Origin": SHOP}
    client.post("/v1/sessions/b1/events", json=EVENTS, headers=pk)
    r = client.request(method, path, headers=pk, json={"action_taken": "x"})
    assert r.status_code == 403
    assert r.json()["error"] == "Forbidden"


def test_publishable_key_reports_intervention_feedback(
    client: TestClient, auth: dict[str, str]
) -> None:
    pk = {"X-Api-Key": _pk(client, auth), "Origin": SHOP}
    client.post("/v1/sessions/fb/events", json=EVENTS, headers=pk)
    r = client.post(
        "/v1/sessions/fb/feedback",
        json={"action_taken": "show_live_chat", "was_helpful": True},
        headers=pk,
    )
    assert r.status_code == 200
    assert client.get("/v1/analytics/moods", headers=auth).json()["feedback_count"] == 1


def test_other_origin_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    pk = _pk(client, auth)
    r = client.post(
        "/v1/sessions/x/events",
        json=EVENTS,
        headers={"X-Api-Key": pk, "Origin": "https://evil.test"},
    )
    assert r.status_code == 403
    assert "https://evil.test" in r.json()["message"]
    assert client.get("/v1/sessions/x/mood", headers=auth).status_code == 404


def test_key_in_query_only_for_publishable(client: TestClient, auth: dict[str, str]) -> None:
    pk = _pk(client, auth)
    ok = client.post(
        f"/v1/sessions/q/events?key={pk}",
        content=b'{"events":[{"type":"click"}]}',
        headers={"Content-Type": "text/plain", "Origin": SHOP},
    )
    assert ok.status_code == 200
    secret = auth["X-Api-Key"]
    r = client.post(f"/v1/sessions/q/events?key={secret}", json=EVENTS)
    assert r.status_code == 401
    assert "URL" in r.json()["message"]


@pytest.mark.parametrize(
    ("key", "says"),
    [
        # Secret keys, well-formed or not (the reference's own sm_live_… examples).
        ("sm_" + "0" * 48, "secret keys must not be sent in URLs"),
        ("sm_live_xxxxxxxxxxxx", "secret keys must not be sent in URLs"),
        ("SM_bad", "secret keys must not be sent in URLs"),
        # A publishable key cut short, mistyped or in capitals is not a secret.
        ("pk_bad", "invalid publishable key"),
        ("pk_" + "0" * 47, "invalid publishable key"),
        ("PK_" + "0" * 48, "invalid publishable key"),
        ("whatever", "?key= takes a publishable key"),
    ],
)
def test_a_malformed_key_in_the_query_says_what_is_wrong(
    client: TestClient, key: str, says: str
) -> None:
    r = client.post("/v1/sessions/q/events", params={"key": key}, json=EVENTS)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "Unauthorized" and says in r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_preflight_and_cors_headers(client: TestClient) -> None:
    r = client.options(
        "/v1/sessions/x/events",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    allowed = r.headers["access-control-allow-headers"].lower()
    for h in ("x-api-key", "authorization", "content-type"):
        assert h in allowed
    simple = client.get("/health", headers={"Origin": SHOP})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "idempotent-replayed" in simple.headers["access-control-expose-headers"].lower()
    # server-to-server calls carry no Origin and get no CORS headers
    assert "access-control-allow-origin" not in client.get("/health").headers


@pytest.mark.parametrize(
    "origins", [[], ["not a url"], ["https://shop.example/path"], ["ftp://x"], "https://x"]
)
def test_bad_origin_lists(client: TestClient, auth: dict[str, str], origins: object) -> None:
    r = client.post("/v1/keys/publishable", json={"allowed_origins": origins}, headers=auth)
    assert r.status_code == 400
    assert r.json()["field"].startswith("allowed_origins")


def test_missing_origin_list(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/keys/publishable", json={}, headers=auth)
    assert r.status_code == 400 and r.json()["field"] == "allowed_origins"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://a.b:443", "https://a.b"),  # browsers omit the default port
        ("http://a.b:8443", "http://a.b:8443"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::1", None),
        ("https://x.com:abc", None),
        ("http://a.com:99999", None),
        ("https://a.b/x", None),
        ("javascript:alert(1)", None),
        ("https://user@a.b", None),
    ],
)
def test_normalise_origin(raw: str, want: str | None) -> None:
    assert normalise_origin(raw) == want


def test_drive_by_sessions_cannot_burn_the_month(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public key is in the page: anyone can send one batch per made-up
    session id without an Origin. Such sessions never count; visitors who come
    back for a second batch do, and the site keeps working for them."""
    from sessionmood_server.keys import PLAN_INFO, PlanInfo

    monkeypatch.setitem(PLAN_INFO, "starter", PlanInfo("starter", 5, True, 7))
    pk = _pk(client, auth)
    for i in range(25):  # five times the month
        r = client.post(f"/v1/sessions/made-up-{i}/events?key={pk}", json=EVENTS)
        assert r.status_code == 200
    assert client.get("/v1/usage", headers=auth).json()["sessions_used"] == 0
    visitor = {"X-Api-Key": pk, "Origin": SHOP}
    for _ in range(2):
        assert client.post("/v1/sessions/v1/events", json=EVENTS, headers=visitor).is_success
    assert client.get("/v1/usage", headers=auth).json()["sessions_used"] == 1
    # the backend's own sessions count at once, as before
    assert client.post("/v1/sessions/b1/events", json=EVENTS, headers=auth).is_success
    assert client.get("/v1/usage", headers=auth).json()["sessions_used"] == 2
