"""Every endpoint and every documented error, in-process (Starlette TestClient)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from sessionmood_client.types import EVENT_TYPES, MOODS, MoodResponse
from tests.conftest import ADMIN_TOKEN, make_key

RAGE = [
    {"type": "rage_click", "x": 240, "y": 580, "ts": 1746352800},
    {"type": "error", "message": "Payment failed", "ts": 1746352802},
    {"type": "error", "message": "Payment failed", "ts": 1746352804},
    {"type": "rage_click", "x": 241, "y": 581, "ts": 1746352805},
]


def post_events(
    client: TestClient, auth: dict[str, str], sid: str, events: list[Any], **extra: Any
) -> Any:
    return client.post(
        f"/v1/sessions/{quote(sid, safe='')}/events", json={"events": events, **extra}, headers=auth
    )


# -- health, openapi, unknown routes ------------------------------------------


def test_health_needs_no_auth(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "1.0.0"}


def test_unknown_route_is_json_404(client: TestClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "Not Found"


def test_wrong_method_is_json_405(client: TestClient) -> None:
    r = client.put("/health")
    assert r.status_code == 405
    assert r.json()["error"] == "Method Not Allowed"
    assert "GET" in r.headers["allow"]


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert set(paths["/v1/sessions/{session_id}/events"]) == {"post", "get"}
    for p in ("/health", "/v1/keys/generate", "/v1/analytics/moods", "/v1/usage"):
        assert p in paths
    assert "MoodResponse" in doc["components"]["schemas"]


# -- keys ---------------------------------------------------------------------


def test_generate_key_starter(client: TestClient) -> None:
    r = client.post(
        "/v1/keys/generate", json={"customer_name": "Acme Inc", "email": "dev@acme.com"}
    )
    assert r.status_code == 201
    body = r.json()
    assert body["api_key"].startswith("sm_") and len(body["api_key"]) == 51
    assert body == {
        "api_key": body["api_key"],
        "customer": "Acme Inc",
        "email": "dev@acme.com",
        "plan": "starter",
        "limits": "5,000 sessions/month",
        "message": "Store this key safely - it won't be shown again.",
    }


def test_generate_key_requires_customer_name(client: TestClient) -> None:
    r = client.post("/v1/keys/generate", json={"email": "a@b.c"})
    assert r.status_code == 400
    assert r.json() == {"error": "customer_name is required"}


def test_generate_key_invalid_plan(client: TestClient) -> None:
    r = client.post("/v1/keys/generate", json={"customer_name": "x", "plan": "gold"})
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid plan", "valid_plans": ["starter", "growth", "pro"]}


@pytest.mark.parametrize("plan", ["growth", "pro"])
def test_paid_plans_need_admin_token(client: TestClient, plan: str) -> None:
    r = client.post("/v1/keys/generate", json={"customer_name": "x", "plan": plan})
    assert r.status_code == 403
    assert "SESSIONMOOD_ADMIN_TOKEN" in r.json()["message"]
    bad = client.post(
        "/v1/keys/generate",
        json={"customer_name": "x", "plan": plan},
        headers={"Authorization": "Bearer wrong"},
    )
    assert bad.status_code == 403
    ok = client.post(
        "/v1/keys/generate",
        json={"customer_name": "x", "plan": plan},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert ok.status_code == 201 and ok.json()["plan"] == plan


def test_non_ascii_admin_token_attempt_is_403_not_500(client: TestClient) -> None:
    r = client.post(
        "/v1/keys/generate",
        json={"customer_name": "x", "plan": "pro"},
        headers={"Authorization": "Bearer é".encode("latin-1")},  # type: ignore[dict-item]
    )
    assert r.status_code == 403


def test_generate_key_rejects_bad_email(client: TestClient) -> None:
    r = client.post("/v1/keys/generate", json={"customer_name": "x", "email": "nope"})
    assert r.status_code == 400
    assert r.json()["field"] == "email"


# -- auth -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Api-Key": "sm_" + "0" * 48},  # well-formed, unknown
        {"X-Api-Key": "not-a-key"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sm_short"},
    ],
)
def test_bad_or_missing_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    r = client.get("/v1/analytics/moods", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized"
    assert r.json()["message"]


def test_bearer_and_header_are_equivalent(client: TestClient, key: str) -> None:
    assert post_events(client, {"Authorization": f"Bearer {key}"}, "s1", RAGE).status_code == 200
    assert client.get("/v1/sessions/s1/mood", headers={"X-Api-Key": key}).status_code == 200


def test_tenants_are_isolated(client: TestClient, auth: dict[str, str]) -> None:
    assert post_events(client, auth, "mine", RAGE).status_code == 200
    other = {"X-Api-Key": make_key(client)}
    for method, path in [
        ("GET", "/v1/sessions/mine/mood"),
        ("GET", "/v1/sessions/mine/events"),
        ("DELETE", "/v1/sessions/mine"),
    ]:
        r = client.request(method, path, headers=other)
        assert r.status_code == 404, (method, path)
    r = client.post("/v1/sessions/mine/feedback", json={"action_taken": "x"}, headers=other)
    assert r.status_code == 404
    assert client.get("/v1/analytics/moods", headers=other).json()["total_sessions"] == 0
    # ...and the owner still has it, untouched
    assert client.get("/v1/sessions/mine/mood", headers=auth).json()["event_count"] == 4


# -- events -----------------------------------------------------------------------


def test_post_events_returns_mood_after_batch(client: TestClient, auth: dict[str, str]) -> None:
    r = post_events(client, auth, "user_abc", RAGE[:3])
    assert r.status_code == 200
    body = r.json()
    assert body["session_id"] == "user_abc"
    assert body["events_stored"] == 3 and body["total_events"] == 3
    assert body["current_mood"] in MOODS
    r2 = post_events(client, auth, "user_abc", RAGE[3:])
    assert r2.json()["total_events"] == 4
    assert r2.json()["current_mood"] == "frustrated"


def test_all_event_types_accepted_and_exported_in_order(
    client: TestClient, auth: dict[str, str]
) -> None:
    fields: dict[str, dict[str, Any]] = {
        "click": {"x": 1, "y": 2},
        "rage_click": {"x": 3.5, "y": 4},
        "scroll": {"speed": 1200, "direction": "down"},
        "input_pause": {"duration_ms": 3000},
        "page_view": {"url": "/checkout"},
        "error": {"message": "boom"},
        "idle": {"duration_ms": 12000},
        "hover": {"duration_ms": 1500},
    }
    events = [{"type": t, "ts": 1000 + i, **fields.get(t, {})} for i, t in enumerate(EVENT_TYPES)]
    assert post_events(client, auth, "all", events).status_code == 200
    exported = client.get("/v1/sessions/all/events", headers=auth).json()
    assert exported["event_count"] == 12
    assert [e["type"] for e in exported["events"]] == list(EVENT_TYPES)
    assert [e["seq"] for e in exported["events"]] == list(range(1, 13))
    for sent, got in zip(events, exported["events"], strict=True):
        for k, v in sent.items():
            assert got[k] == v
        assert got["received_at"] > 0


def test_missing_ts_is_receipt_time(client: TestClient, auth: dict[str, str]) -> None:
    before = datetime.now(UTC).timestamp()
    post_events(client, auth, "nots", [{"type": "click"}])
    ev = client.get("/v1/sessions/nots/events", headers=auth).json()["events"][0]
    assert before - 1 <= ev["ts"] <= datetime.now(UTC).timestamp() + 1


def test_invalid_event_type(client: TestClient, auth: dict[str, str]) -> None:
    r = post_events(client, auth, "s", [{"type": "click"}, {"type": "page_visit"}, {"type": 5}])
    assert r.status_code == 400
    assert r.json() == {
        "error": "Invalid event type(s)",
        "invalid": ["page_visit", "5"],
        "valid_types": list(EVENT_TYPES),
    }


def _assert_nothing_stored(client: TestClient, auth: dict[str, str], sid: str) -> None:
    assert client.get(f"/v1/sessions/{sid}/mood", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "events"),
        ({"events": None}, "events"),
        ({"events": "click"}, "events"),
        ({"events": []}, "events"),
        ({"events": [1]}, "events[0]"),
        ({"events": [{"x": 1}]}, "events[0].type"),
        ({"events": [{"type": "click", "x": "12"}]}, "events[0].x"),
        ({"events": [{"type": "click", "x": True}]}, "events[0].x"),
        ({"events": [{"type": "idle", "duration_ms": -5}]}, "events[0].duration_ms"),
        ({"events": [{"type": "hover", "duration_ms": -1}]}, "events[0].duration_ms"),
        ({"events": [{"type": "scroll", "direction": "left"}]}, "events[0].direction"),
        ({"events": [{"type": "scroll", "speed": -3}]}, "events[0].speed"),
        ({"events": [{"type": "error", "message": "x" * 513}]}, "events[0].message"),
        ({"events": [{"type": "error", "message": 5}]}, "events[0].message"),
        ({"events": [{"type": "click", "ts": "yesterday"}]}, "events[0].ts"),
        ({"events": [{"type": "click", "ts": -1}]}, "events[0].ts"),
        ({"events": [{"type": "click"}, {"type": "click", "y": []}]}, "events[1].y"),
        ({"events": [{"type": "click"}], "batch_id": 7}, "batch_id"),
        ({"events": [{"type": "error", "message": "a\x00b"}]}, "events[0].message"),
    ],
)
def test_bad_batches_get_400_and_store_nothing(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/sessions/bad/events", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert r.json()["error"] in {"Missing required field", "Invalid field"}
    _assert_nothing_stored(client, auth, "bad")


def test_message_of_512_chars_is_fine(client: TestClient, auth: dict[str, str]) -> None:
    assert (
        post_events(client, auth, "m", [{"type": "error", "message": "é" * 512}]).status_code == 200
    )


def test_one_bad_event_stores_nothing(client: TestClient, auth: dict[str, str]) -> None:
    events = [{"type": "click"}] * 5 + [{"type": "idle", "duration_ms": -1}]
    assert post_events(client, auth, "atomic", events).status_code == 400
    _assert_nothing_stored(client, auth, "atomic")


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"events": [NaN]}', b'{"events":[{"type":"click","x":Infinity}]}']
)
def test_malformed_json(client: TestClient, auth: dict[str, str], raw: bytes) -> None:
    r = client.post(
        "/v1/sessions/s/events", content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "Invalid JSON"


def test_non_object_body(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/sessions/s/events", json=[{"type": "click"}], headers=auth)
    assert r.status_code == 400
    assert r.json()["error"] == "Request body must be a JSON object"


def test_empty_body(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(
        "/v1/sessions/s/events", content=b"", headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_text_plain_body_is_accepted(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(
        "/v1/sessions/tp/events",
        content=json.dumps({"events": [{"type": "click"}]}),
        headers={**auth, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert r.status_code == 200


def test_form_content_type_is_415(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/sessions/s/events", data={"events": "x"}, headers=auth)
    assert r.status_code == 415
    assert "application/json" in r.json()["message"]


def test_body_over_1mib_is_413(client: TestClient, auth: dict[str, str]) -> None:
    big = json.dumps({"events": [{"type": "click"}], "pad": "x" * (1024 * 1024)})
    r = client.post(
        "/v1/sessions/big/events",
        content=big,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "Payload too large"
    _assert_nothing_stored(client, auth, "big")


def test_more_than_1000_events_is_413(client: TestClient, auth: dict[str, str]) -> None:
    r = post_events(client, auth, "many", [{"type": "click"}] * 1001)
    assert r.status_code == 413
    assert r.json()["limit"] == 1000
    assert post_events(client, auth, "many", [{"type": "click"}] * 1000).status_code == 200


@pytest.mark.parametrize(
    "sid", ["a/b", "with space", "ünïcödé-☃", "?#&=", "x" * 256, "a/mood", "a/events"]
)
def test_session_ids_round_trip(client: TestClient, auth: dict[str, str], sid: str) -> None:
    r = post_events(client, auth, sid, [{"type": "click"}])
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == sid
    enc = quote(sid, safe="")
    mood = client.get(f"/v1/sessions/{enc}/mood", headers=auth)
    assert mood.status_code == 200 and mood.json()["session_id"] == sid
    exported = client.get(f"/v1/sessions/{enc}/events", headers=auth).json()
    assert exported["session_id"] == sid and exported["event_count"] == 1
    assert client.delete(f"/v1/sessions/{enc}", headers=auth).status_code == 200


def test_session_id_too_long(client: TestClient, auth: dict[str, str]) -> None:
    r = post_events(client, auth, "x" * 257, [{"type": "click"}])
    assert r.status_code == 400
    assert r.json()["field"] == "session_id"


# -- idempotency ---------------------------------------------------------------


def test_batch_id_replays_first_answer(client: TestClient, auth: dict[str, str]) -> None:
    first = post_events(client, auth, "idem", RAGE, batch_id="b-1")
    again = post_events(client, auth, "idem", RAGE, batch_id="b-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert client.get("/v1/sessions/idem/mood", headers=auth).json()["event_count"] == 4


def test_idempotency_key_header(client: TestClient, auth: dict[str, str]) -> None:
    h = {**auth, "Idempotency-Key": "hdr-1"}
    post_events(client, h, "idem2", RAGE)
    post_events(client, h, "idem2", RAGE)
    assert client.get("/v1/sessions/idem2/mood", headers=auth).json()["event_count"] == 4


def test_batch_id_reused_for_other_session_is_409(client: TestClient, auth: dict[str, str]) -> None:
    post_events(client, auth, "one", RAGE, batch_id="shared")
    r = post_events(client, auth, "two", RAGE, batch_id="shared")
    assert r.status_code == 409
    assert r.json()["field"] == "batch_id"
    _assert_nothing_stored(client, auth, "two")


@pytest.mark.parametrize("how", ["batch_id", "Idempotency-Key"])
def test_same_batch_id_with_other_events_is_409(
    client: TestClient, auth: dict[str, str], how: str
) -> None:
    """Like Stripe: a key reused with another payload is an error, never a silent drop."""
    h, extra = (auth, {"batch_id": "b-7"}) if how == "batch_id" else ({**auth, how: "b-7"}, {})
    assert post_events(client, h, "pay", RAGE[:2], **extra).status_code == 200
    r = post_events(client, h, "pay", RAGE[2:], **extra)
    assert r.status_code == 409
    assert r.json()["field"] == "batch_id" and "other events" in r.json()["message"]
    assert r.headers["x-should-retry"] == "false"
    assert client.get("/v1/sessions/pay/mood", headers=auth).json()["event_count"] == 2
    # the same events again replay the first answer
    again = post_events(client, h, "pay", RAGE[:2], **extra)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"


def test_a_retry_without_timestamps_is_the_same_batch(
    client: TestClient, auth: dict[str, str]
) -> None:
    """Missing ``ts`` become the receipt time, which differs on a retry: the
    batch is still the same one."""
    events = [{"type": "click", "x": 1, "y": 2}, {"type": "scroll", "speed": 3.5}]
    first = post_events(client, auth, "retry", events, batch_id="r-1")
    again = post_events(client, auth, "retry", list(reversed(events))[::-1], batch_id="r-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # a value that differs is another batch
    other = [{"type": "click", "x": 1, "y": 3}, events[1]]
    assert post_events(client, auth, "retry", other, batch_id="r-1").status_code == 409


def test_batch_ids_are_per_tenant(client: TestClient, auth: dict[str, str]) -> None:
    other = {"X-Api-Key": make_key(client)}
    post_events(client, auth, "s", RAGE, batch_id="same")
    r = post_events(client, other, "s", RAGE, batch_id="same")
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


# -- mood -------------------------------------------------------------------------


def test_get_mood_shape(client: TestClient, auth: dict[str, str]) -> None:
    post_events(client, auth, "user_abc", RAGE)
    r = client.get("/v1/sessions/user_abc/mood", headers=auth)
    assert r.status_code == 200
    body = r.json()
    MoodResponse.model_validate(body)
    assert set(body) == {
        "session_id",
        "mood",
        "confidence",
        "signals",
        "suggested_action",
        "holdout",
        "held_out_action",
        "event_count",
        "updated_at",
    }
    assert body["mood"] == "frustrated"
    assert body["suggested_action"] == "show_live_chat"
    # No holdout set: treated, nothing held back (issue 27).
    assert (body["holdout"], body["held_out_action"]) == (False, None)
    assert body["signals"] and all(isinstance(s, str) for s in body["signals"])
    assert body["updated_at"].endswith("Z")
    assert 0 <= body["confidence"] <= 1


def test_get_mood_unknown_session(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/sessions/user_abc/mood", headers=auth)
    assert r.status_code == 404
    assert r.json() == {"error": "Session not found", "session_id": "user_abc"}


# -- feedback -----------------------------------------------------------------------


def test_feedback_recorded_and_counted(client: TestClient, auth: dict[str, str]) -> None:
    post_events(client, auth, "fb", RAGE)
    r = client.post(
        "/v1/sessions/fb/feedback",
        json={"action_taken": "show_live_chat", "was_helpful": True, "notes": "chatted"},
        headers=auth,
    )
    assert r.status_code == 200
    assert r.json() == {"session_id": "fb", "feedback_recorded": True}
    client.post("/v1/sessions/fb/feedback", json={"action_taken": "no_action"}, headers=auth)
    assert client.get("/v1/analytics/moods", headers=auth).json()["feedback_count"] == 1


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({}, "Missing required field", "action_taken"),
        ({"action_taken": ""}, "Invalid field", "action_taken"),
        ({"action_taken": "x" * 129}, "Invalid field", "action_taken"),
        ({"action_taken": "x", "notes": "n" * 513}, "Invalid field", "notes"),
        ({"action_taken": "x", "was_helpful": "yes"}, "Invalid field", "was_helpful"),
    ],
)
def test_feedback_validation(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], error: str, field: str
) -> None:
    post_events(client, auth, "fbv", RAGE)
    r = client.post("/v1/sessions/fbv/feedback", json=body, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["field"] == field


def test_feedback_for_unknown_session(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/sessions/nobody/feedback", json={"action_taken": "x"}, headers=auth)
    assert r.status_code == 404


# -- analytics, delete, usage --------------------------------------------------------


def test_analytics_distribution(client: TestClient, auth: dict[str, str]) -> None:
    empty = client.get("/v1/analytics/moods", headers=auth).json()
    assert empty["total_sessions"] == 0
    assert {d["mood"] for d in empty["mood_distribution"]} == set(MOODS)
    assert all(d["percentage"] == 0.0 for d in empty["mood_distribution"])
    post_events(client, auth, "f1", RAGE)
    post_events(client, auth, "f2", RAGE)
    post_events(client, auth, "n1", [{"type": "click"}])
    body = client.get("/v1/analytics/moods", headers=auth).json()
    assert body["total_sessions"] == 3
    dist = body["mood_distribution"]
    assert len(dist) == 7
    assert [d["count"] for d in dist] == sorted((d["count"] for d in dist), reverse=True)
    assert dist[0] == {"mood": "frustrated", "count": 2, "percentage": 66.7}
    assert dist[1] == {"mood": "neutral", "count": 1, "percentage": 33.3}


def test_delete_erases_everything(client: TestClient, auth: dict[str, str]) -> None:
    post_events(client, auth, "gone", RAGE, batch_id="g1")
    client.post("/v1/sessions/gone/feedback", json={"action_taken": "x"}, headers=auth)
    r = client.delete("/v1/sessions/gone", headers=auth)
    assert r.status_code == 200
    assert r.json() == {
        "session_id": "gone",
        "deleted": True,
        "message": "Session data permanently erased.",
    }
    assert client.get("/v1/sessions/gone/mood", headers=auth).status_code == 404
    assert client.get("/v1/sessions/gone/events", headers=auth).status_code == 404
    assert client.delete("/v1/sessions/gone", headers=auth).status_code == 404
    assert client.get("/v1/analytics/moods", headers=auth).json()["feedback_count"] == 0
    # The batch id went with the session: sending it again stores afresh.
    again = post_events(client, auth, "gone", RAGE, batch_id="g1")
    assert again.json()["total_events"] == 4 and "idempotent-replayed" not in again.headers


def test_usage(client: TestClient, auth: dict[str, str]) -> None:
    post_events(client, auth, "u1", RAGE)
    post_events(client, auth, "u1", RAGE)
    post_events(client, auth, "u2", RAGE)
    body = client.get("/v1/usage", headers=auth).json()
    now = datetime.now(UTC)
    assert body["plan"] == "starter"
    assert body["month"] == f"{now.year:04d}-{now.month:02d}"
    assert body["sessions_used"] == 2
    assert body["limit"] == 5000 and body["remaining"] == 4998 and body["overage"] == 0
    reset = datetime.fromisoformat(body["reset_at"].replace("Z", "+00:00"))
    assert reset.day == 1 and reset.hour == 0 and reset > now


# -- quota and unexpected failures ---------------------------------------------


def test_quota_429_then_open_sessions_keep_working(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionmood_server.keys import PLAN_INFO, PlanInfo

    monkeypatch.setitem(PLAN_INFO, "starter", PlanInfo("starter", 2, True, 7))
    assert post_events(client, auth, "q1", RAGE).status_code == 200
    assert post_events(client, auth, "q2", RAGE).status_code == 200
    r = post_events(client, auth, "q3", RAGE)
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "Rate limit exceeded"
    assert body["plan"] == "starter" and body["limit"] == 2
    assert body["reset_at"].endswith("T00:00:00.000Z")
    assert int(r.headers["retry-after"]) > 0
    _assert_nothing_stored(client, auth, "q3")
    assert post_events(client, auth, "q1", RAGE).status_code == 200  # already open
    assert client.get("/v1/usage", headers=auth).json()["remaining"] == 0


def test_pro_is_not_blocked_and_overage_is_counted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionmood_server.keys import PLAN_INFO, PlanInfo

    monkeypatch.setitem(PLAN_INFO, "pro", PlanInfo("pro", 1, False, 90))
    pro = {"X-Api-Key": make_key(client, "pro")}
    for sid in ("p1", "p2", "p3"):
        assert post_events(client, pro, sid, RAGE).status_code == 200
    usage = client.get("/v1/usage", headers=pro).json()
    assert usage["plan"] == "pro"
    assert usage["sessions_used"] == 3 and usage["overage"] == 2 and usage["remaining"] == 0


def test_unexpected_failure_is_json_500_with_logged_request_id(
    client: TestClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    api = client.app.state.api  # type: ignore[attr-defined]

    async def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    api.storage.get_session = broken
    r = client.get("/v1/sessions/x/mood", headers=auth)
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "Internal Server Error"
    assert body["request_id"].startswith("req_")
    assert r.headers["x-request-id"] == body["request_id"]
    assert "disk on fire" not in r.text and "Traceback" not in r.text
    # a browser can read it too
    from_page = client.get("/v1/sessions/x/mood", headers={**auth, "Origin": "https://a.b"})
    assert from_page.status_code == 500
    assert from_page.headers["access-control-allow-origin"] == "*"
    assert any(body["request_id"] in rec.getMessage() for rec in caplog.records)


def test_no_slash_redirects(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/v1/sessions", headers=auth, follow_redirects=False)
    assert r.status_code == 404 and r.json()["error"] == "Not Found"


def test_events_from_a_clock_in_the_future_do_not_freeze_the_mood(
    client: TestClient, auth: dict[str, str]
) -> None:
    now = datetime.now(UTC).timestamp()
    skewed = [{"type": "idle", "duration_ms": 60_000, "ts": now + 86_400}]
    post_events(client, auth, "skew", skewed)
    stored = client.get("/v1/sessions/skew/events", headers=auth).json()["events"][0]
    assert stored["ts"] <= now + 70  # at most a minute ahead
    burst = [{"type": t, "ts": now + i} for i, t in enumerate(["rage_click", "error"] * 3)]
    r = post_events(client, auth, "skew", burst)
    assert r.json()["current_mood"] == "frustrated"
