"""Holdout, conversions and uplift over HTTP (sessionmood_server/http/experiments.py,
issue 27): what a held-out session is answered everywhere, conversions counted
once per (session, name) with clear 400s, the uplift table, and the policy
following the uplift where its interval decides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from sessionmood_client.types import (
    ConversionResponse,
    HoldoutResponse,
    UpliftResponse,
    WebhookEvent,
)
from sessionmood_server.app import create_app
from sessionmood_server.holdout import held_out
from sessionmood_server.http.stream import _message
from sessionmood_server.learning import UPLIFT_SIGNAL
from sessionmood_server.outbox import webhook_payload
from sessionmood_server.records import MoodChangeRecord
from sessionmood_server.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_key

KEY = "a fixed holdout key"
FRUSTRATING = [
    {"type": "rage_click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment failed"},
    {"type": "error", "message": "Payment failed"},
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'app.db'}", admin_token=ADMIN_TOKEN, holdout_key=KEY
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    return {"X-Api-Key": make_key(client, "pro")}


def _tenant(client: TestClient, auth: dict[str, str]) -> int:
    from sessionmood_server.keys import hash_key

    storage = client.app.state.api.storage  # type: ignore[attr-defined]
    record = client.portal.call(storage.find_key, hash_key(auth["X-Api-Key"]))  # type: ignore[union-attr]
    assert record is not None
    return int(record.tenant_id)


def _ids(tenant: int, share: float, held: bool, n: int, prefix: str = "s") -> list[str]:
    """``n`` session ids that the server will put in (or out of) the holdout."""
    out = []
    i = 0
    while len(out) < n:
        sid = f"{prefix}{i}"
        if held_out(KEY.encode(), tenant, sid, share) == held:
            out.append(sid)
        i += 1
    return out


def _send(client: TestClient, auth: dict[str, str], sid: str) -> dict[str, Any]:
    r = client.post(f"/v1/sessions/{sid}/events", json={"events": FRUSTRATING}, headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _convert(client: TestClient, auth: dict[str, str], sid: str, **body: Any) -> Any:
    return client.post(f"/v1/sessions/{sid}/conversions", json=body, headers=auth)


# -- the holdout share --------------------------------------------------------------


def test_the_holdout_share_defaults_to_zero_and_is_set_within_bounds(
    client: TestClient, auth: dict[str, str]
) -> None:
    got = client.get("/v1/holdout", headers=auth)
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    assert got.json() == {"share": 0.0, "updated_at": None}
    put = client.put("/v1/holdout", json={"share": 0.1}, headers=auth)
    assert put.status_code == 200
    body = HoldoutResponse.model_validate(put.json())
    assert body.share == 0.1 and body.updated_at is not None
    assert client.get("/v1/holdout", headers=auth).json()["share"] == 0.1
    for bad in ({"share": 0.6}, {"share": -0.1}, {"share": "0.1"}, {}, {"share": None}):
        r = client.put("/v1/holdout", json=bad, headers=auth)
        assert r.status_code == 400 and r.json()["field"] == "share", (bad, r.text)
    assert client.get("/v1/holdout", headers=auth).json()["share"] == 0.1  # unchanged
    pk = client.post(
        "/v1/keys/publishable", json={"allowed_origins": ["https://a.b"]}, headers=auth
    ).json()["publishable_key"]
    assert (
        client.put("/v1/holdout", json={"share": 0.5}, headers={"X-Api-Key": pk}).status_code == 403
    )
    assert client.get("/v1/holdout", headers={"X-Api-Key": pk}).status_code == 403


def test_a_held_out_session_is_answered_no_action_everywhere(
    client: TestClient, auth: dict[str, str]
) -> None:
    t = _tenant(client, auth)
    client.put("/v1/holdout", json={"share": 0.5}, headers=auth)
    [held] = _ids(t, 0.5, True, 1)
    [treated] = _ids(t, 0.5, False, 1)
    answer = _send(client, auth, held)
    assert answer["current_mood"] == "frustrated"
    assert (answer["suggested_action"], answer["holdout"], answer["held_out_action"]) == (
        "no_action",
        True,
        "show_live_chat",
    )
    mood = client.get(f"/v1/sessions/{held}/mood", headers=auth).json()
    assert (mood["suggested_action"], mood["holdout"], mood["held_out_action"]) == (
        "no_action",
        True,
        "show_live_chat",
    )
    answer = _send(client, auth, treated)
    assert (answer["suggested_action"], answer["holdout"], answer["held_out_action"]) == (
        "show_live_chat",
        False,
        None,
    )
    # The stream and webhooks say the same (their messages are built from the
    # stored change, whose group is stored with it).
    storage = client.app.state.api.storage  # type: ignore[attr-defined]
    changes = client.portal.call(storage.mood_changes, t, 0)  # type: ignore[union-attr]
    by_session = {c.session_id: c for c in changes}
    assert by_session[held].holdout and not by_session[treated].holdout
    streamed = orjson.loads(_message(by_session[held]).split(b"data: ", 1)[1])
    assert (streamed["suggested_action"], streamed["holdout"], streamed["held_out_action"]) == (
        "no_action",
        True,
        "show_live_chat",
    )
    hook = WebhookEvent.model_validate_json(
        webhook_payload(1, held, "neutral", "frustrated", 0.9, ["x"], "show_live_chat", 0.0, True)
    )
    assert (hook.data.suggested_action, hook.data.holdout, hook.data.held_out_action) == (
        "no_action",
        True,
        "show_live_chat",
    )


def test_a_new_share_applies_only_to_sessions_that_start_afterwards(
    client: TestClient, auth: dict[str, str]
) -> None:
    t = _tenant(client, auth)
    client.put("/v1/holdout", json={"share": 0.5}, headers=auth)
    [held] = _ids(t, 0.5, True, 1)
    assert _send(client, auth, held)["holdout"] is True
    client.put("/v1/holdout", json={"share": 0.0}, headers=auth)
    assert _send(client, auth, held)["holdout"] is True  # it started held out: it stays
    [later] = _ids(t, 0.5, True, 1, prefix="later")
    assert _send(client, auth, later)["holdout"] is False  # held-out id, but share 0 now


# -- conversions --------------------------------------------------------------------------


def test_a_conversion_counts_once_per_session_and_name(
    client: TestClient, auth: dict[str, str]
) -> None:
    _send(client, auth, "buyer")
    first = _convert(client, auth, "buyer", name="purchase", value=42.5)
    assert first.status_code == 201
    assert ConversionResponse.model_validate(first.json()).model_dump() == {
        "session_id": "buyer",
        "name": "purchase",
        "value": 42.5,
        "counted": True,
        "holdout": False,
    }
    again = _convert(client, auth, "buyer", name="purchase", value=42.5)  # a retry, a reload
    assert again.status_code == 200 and again.json()["counted"] is False
    default = _convert(client, auth, "buyer")
    assert default.status_code == 201 and default.json()["name"] == "conversion"
    exported = client.get("/v1/sessions/buyer/events", headers=auth).json()
    assert [(c["name"], c["value"]) for c in exported["conversions"]] == [
        ("purchase", 42.5),
        ("conversion", None),
    ]
    datetime.fromisoformat(exported["conversions"][0]["created_at"].replace("Z", "+00:00"))
    assert client.delete("/v1/sessions/buyer", headers=auth).status_code == 200
    assert _convert(client, auth, "buyer").status_code == 404  # erased with the session
    _send(client, auth, "buyer")  # a new session under the same id starts afresh
    assert client.get("/v1/sessions/buyer/events", headers=auth).json()["conversions"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 7}, "name"),
        ({"value": -1}, "value"),
        ({"value": 1e10}, "value"),
        ({"value": "12"}, "value"),
    ],
)
def test_bad_conversions_get_a_400_naming_the_field_and_count_nothing(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    _send(client, auth, "s")
    r = _convert(client, auth, "s", **body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert client.get("/v1/sessions/s/events", headers=auth).json()["conversions"] == []


def test_conversions_need_a_session_and_are_capped_per_session(
    client: TestClient, auth: dict[str, str]
) -> None:
    assert _convert(client, auth, "nobody").status_code == 404
    for body in (b"[1]", b"null", b'"purchase"', b""):
        r = client.post("/v1/sessions/s/conversions", content=body, headers=auth)
        assert r.status_code == 400, body
    _send(client, auth, "s")
    for i in range(32):
        assert _convert(client, auth, "s", name=f"n{i}").status_code == 201
    full = _convert(client, auth, "s", name="one-more")
    assert full.status_code == 429 and full.json()["limit"] == 32
    assert _convert(client, auth, "s", name="n3").status_code == 200  # counted already: fine


def test_the_page_may_send_conversions_with_its_publishable_key(
    client: TestClient, auth: dict[str, str]
) -> None:
    pk = client.post(
        "/v1/keys/publishable", json={"allowed_origins": ["https://shop.example"]}, headers=auth
    ).json()["publishable_key"]
    page = {"X-Api-Key": pk, "Origin": "https://shop.example"}
    assert (
        client.post("/v1/sessions/v/events", json={"events": FRUSTRATING}, headers=page).status_code
        == 200
    )
    assert _convert(client, page, "v", name="purchase").status_code == 201
    elsewhere = {"X-Api-Key": pk, "Origin": "https://evil.example"}
    assert _convert(client, elsewhere, "v", name="other").status_code == 403
    assert client.get("/v1/analytics/uplift", headers=page).status_code == 403


# -- the uplift --------------------------------------------------------------------------------


def _seed(
    client: TestClient, auth: dict[str, str], share: float, plan: dict[bool, tuple[int, int]]
) -> None:
    """Sessions per group (held out?) -> (sessions, of which convert)."""
    t = _tenant(client, auth)
    client.put("/v1/holdout", json={"share": share}, headers=auth)
    for group, (n, converting) in plan.items():
        for i, sid in enumerate(_ids(t, share, group, n, prefix=f"g{int(group)}-")):
            assert _send(client, auth, sid)["holdout"] is group
            if i < converting:
                assert _convert(client, auth, sid, name="purchase", value=10.0).status_code == 201


def test_the_uplift_table_counts_each_group_and_compares_them(
    client: TestClient, auth: dict[str, str]
) -> None:
    _seed(client, auth, 0.5, {False: (40, 10), True: (30, 3)})
    r = client.get("/v1/analytics/uplift?name=purchase", headers=auth)
    assert r.status_code == 200, r.text
    body = UpliftResponse.model_validate(r.json())
    assert body.name == "purchase" and "Newcombe" in body.method
    [row] = body.uplift
    assert (row.mood, row.action) == ("frustrated", "show_live_chat")
    assert (row.treated_sessions, row.treated_conversions, row.treated_rate) == (40, 10, 0.25)
    assert (row.control_sessions, row.control_conversions, row.control_rate) == (30, 3, 0.1)
    assert row.uplift == pytest.approx(0.15)
    assert row.uplift_low is not None and row.uplift_high is not None
    assert row.uplift_low < row.uplift < row.uplift_high
    assert row.relative_uplift == pytest.approx(1.5)
    assert (row.treated_value_per_session, row.control_value_per_session) == (2.5, 1.0)
    assert row.verdict == "unclear" and row.sessions_needed and row.sessions_needed > 0
    assert body.overall.treated_sessions == 40 and body.overall.control_sessions == 30
    # Another name has no conversions yet; a later window no sessions.
    other = client.get("/v1/analytics/uplift", headers=auth).json()
    assert other["name"] == "conversion" and other["uplift"][0]["treated_conversions"] == 0
    later = client.get(f"/v1/analytics/uplift?since={2_000_000_000}", headers=auth).json()
    assert later["uplift"] == [] and later["overall"]["treated_sessions"] == 0
    bigger = client.get("/v1/analytics/uplift?name=purchase&effect=0.1", headers=auth).json()
    assert bigger["uplift"][0]["sessions_needed"] < row.sessions_needed


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("name=a%20b", "name"),
        ("effect=0", "effect"),
        ("effect=x", "effect"),
        ("since=nope", "since"),
    ],
)
def test_bad_uplift_parameters_get_a_400(
    client: TestClient, auth: dict[str, str], query: str, field: str
) -> None:
    r = client.get(f"/v1/analytics/uplift?{query}", headers=auth)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_the_policy_drops_an_action_the_uplift_shows_hurts(
    client: TestClient, auth: dict[str, str]
) -> None:
    # The live chat costs sales: none of 150 treated sessions buy, 60 of 150 held out do.
    _seed(client, auth, 0.5, {False: (150, 0), True: (150, 60)})
    row = client.get("/v1/analytics/uplift?name=purchase", headers=auth).json()["uplift"][0]
    assert row["verdict"] == "hurts"
    client.put("/v1/holdout", json={"share": 0.0}, headers=auth)  # (also drops the cached policy)
    answer = _send(client, auth, "after")
    assert answer["suggested_action"] == "no_action"
    assert UPLIFT_SIGNAL in answer["signals"]
    assert UPLIFT_SIGNAL in client.get("/v1/sessions/after/mood", headers=auth).json()["signals"]


def test_the_policy_keeps_an_action_the_uplift_shows_helps(
    client: TestClient, auth: dict[str, str]
) -> None:
    _seed(client, auth, 0.5, {False: (150, 60), True: (150, 0)})
    client.put("/v1/holdout", json={"share": 0.0}, headers=auth)
    # Feedback says the chat never helps: the uplift wins.
    for i in range(20):
        _send(client, auth, f"rated{i}")
        client.post(
            f"/v1/sessions/rated{i}/feedback",
            json={"action_taken": "show_live_chat", "was_helpful": False},
            headers=auth,
        )
    answer = _send(client, auth, "after")
    assert answer["suggested_action"] == "show_live_chat"
    assert UPLIFT_SIGNAL in answer["signals"]


def test_a_mood_change_record_without_holdout_is_treated() -> None:
    change = MoodChangeRecord(1, "s", "neutral", "frustrated", 0.9, (), "show_live_chat", None, 0.0)
    data = orjson.loads(_message(change).split(b"data: ", 1)[1])
    assert (data["suggested_action"], data["holdout"], data["held_out_action"]) == (
        "show_live_chat",
        False,
        None,
    )
    assert datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00")).tzinfo == UTC
