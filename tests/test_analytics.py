"""GET /v1/analytics/elements and /v1/analytics/journeys over HTTP (issue 26):
the answer's shape and numbers, the suggested fix, the parameters' 400s, and
the events' ``target`` refused with a 400 that names it, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionmood_client.types import ElementAnalyticsItem, JourneyItem
from sessionmood_server.http.analytics import FIX_DEAD, FIX_ERRORS, FIX_HESITATION, suggested_fix
from sessionmood_server.records import ElementCounts

T = 1_700_000_000


def _send(client: TestClient, auth: dict[str, str], sid: str, events: list[dict[str, Any]]) -> Any:
    r = client.post(f"/v1/sessions/{sid}/events", json={"events": events}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def _checkout(client: TestClient, auth: dict[str, str], sid: str, t: float) -> None:
    events: list[dict[str, Any]] = [{"type": "page_view", "url": "/checkout", "ts": t}]
    events += [
        {"type": "click", "x": 5, "y": 5, "dead": True, "target": "Pay", "ts": t + 1 + i}
        for i in range(3)
    ]
    events += [
        {"type": "rage_click", "x": 5, "y": 5, "target": "Pay", "ts": t + 4},
        {"type": "error", "message": "card declined", "target": "Pay", "ts": t + 5},
        {"type": "hover", "duration_ms": 3000, "target": "#coupon", "ts": t - 30},
    ]
    assert _send(client, auth, sid, events)["current_mood"] == "frustrated"


def test_elements_answer_the_struggle_per_page_and_element(
    client: TestClient, auth: dict[str, str]
) -> None:
    _checkout(client, auth, "a", T)
    _checkout(client, auth, "b", T + 100)
    calm = [{"type": "page_view", "url": "/", "ts": T}]
    calm += [
        {"type": "click", "x": 1, "y": 1, "target": "nav a.shop", "ts": T + 2 * i}
        for i in range(1, 4)
    ]
    _send(client, auth, "c", calm)
    r = client.get("/v1/analytics/elements", headers=auth)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert (body["since"], body["until"], body["page"]) == (None, None, None)
    items = [ElementAnalyticsItem.model_validate(e) for e in body["elements"]]
    assert [e.model_dump() for e in items] == body["elements"]  # exactly the model's fields
    assert [(e.page, e.target) for e in items] == [
        ("/checkout", "Pay"),  # two struggling sessions
        ("/checkout", "#coupon"),  # none struggling (hovered 30 s before): two sessions
        ("/", "nav a.shop"),  # one
    ]
    pay = items[0]
    assert (pay.sessions, pay.clicks, pay.dead_clicks, pay.rage_clicks, pay.error_clicks) == (
        2,
        6,
        6,
        2,
        2,
    )
    assert (pay.frustrated_sessions, pay.struggle_rate, pay.suggested_fix) == (2, 1.0, FIX_DEAD)
    coupon = items[1]
    assert (coupon.hesitations, coupon.frustrated_sessions, coupon.suggested_fix) == (
        2,
        0,
        FIX_HESITATION,
    )
    assert items[2].suggested_fix is None and items[2].struggle_rate == 0.0
    one = client.get("/v1/analytics/elements?page=/checkout&limit=1", headers=auth).json()
    assert one["page"] == "/checkout" and [e["target"] for e in one["elements"]] == ["Pay"]
    later = client.get(f"/v1/analytics/elements?since={T + 10**9}", headers=auth).json()
    assert later["elements"] == []


def test_the_suggested_fix_follows_the_strongest_signal() -> None:
    def fix(**n: int) -> str | None:
        counts = dict.fromkeys(
            ("clicks", "rage_clicks", "dead_clicks", "error_clicks", "hesitations"), 0
        )
        counts.update(n)
        return suggested_fix(ElementCounts("/", "x", 1, frustrated_sessions=0, **counts))

    assert fix() is None
    assert fix(clicks=9) is None  # plain clicks suggest nothing
    assert fix(dead_clicks=2, error_clicks=1) == FIX_DEAD
    assert fix(rage_clicks=1, dead_clicks=1, error_clicks=2) == FIX_ERRORS  # a tie: the failure
    assert fix(hesitations=3, dead_clicks=2) == FIX_HESITATION


def test_journeys_answer_paths_moods_and_where_frustration_starts(
    client: TestClient, auth: dict[str, str]
) -> None:
    for sid in ("s1", "s2"):
        _send(client, auth, sid, [{"type": "page_view", "url": "/", "ts": T}])
        _send(client, auth, sid, [{"type": "page_view", "url": "/", "ts": T + 1}])  # a reload
        _checkout(client, auth, sid, T + 10)
    _send(client, auth, "s3", [{"type": "page_view", "url": "/", "ts": T}])
    body = client.get("/v1/analytics/journeys", headers=auth).json()
    assert body["steps"] == 4
    journeys = [JourneyItem.model_validate(j) for j in body["journeys"]]
    assert [(j.path, j.sessions, j.frustration_starts_at) for j in journeys] == [
        (["/", "/checkout"], 2, 1),
        (["/"], 1, None),
    ]
    steps = journeys[0].steps
    assert [s.url for s in steps] == ["/", "/checkout"]
    assert {d.mood: d.count for d in steps[1].mood_distribution}["frustrated"] == 2
    assert {d.mood: d.count for d in steps[0].mood_distribution}["neutral"] == 2
    assert len(steps[0].mood_distribution) == 7  # every mood, as the page heatmap
    short = client.get("/v1/analytics/journeys?steps=1&limit=1", headers=auth).json()
    assert short["steps"] == 1
    assert [(j["path"], j["sessions"]) for j in short["journeys"]] == [(["/"], 3)]
    assert client.get("/v1/analytics/journeys?steps=99", headers=auth).json()["steps"] == 8


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/analytics/elements?limit=0", "limit"),
        ("/v1/analytics/elements?limit=x", "limit"),
        ("/v1/analytics/elements?since=yesterday", "since"),
        ("/v1/analytics/elements?page=" + "a" * 2049, "page"),
        ("/v1/analytics/elements?page=%00", "page"),
        ("/v1/analytics/journeys?steps=0", "steps"),
        ("/v1/analytics/journeys?steps=-1", "steps"),
        ("/v1/analytics/journeys?until=nope", "until"),
        ("/v1/analytics/journeys?limit=1.5", "limit"),
    ],
)
def test_bad_parameters_get_a_400_naming_them(
    client: TestClient, auth: dict[str, str], path: str, field: str
) -> None:
    r = client.get(path, headers=auth)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


@pytest.mark.parametrize(
    "target", ["", "x" * 257, "a\x01b", "tab\there", "del\x7f", 7, ["Pay"], {"name": "Pay"}]
)
def test_a_bad_target_is_a_400_naming_it_and_nothing_is_stored(
    client: TestClient, auth: dict[str, str], target: Any
) -> None:
    events = [{"type": "page_view", "url": "/"}, {"type": "click", "target": target}]
    r = client.post("/v1/sessions/bad/events", json={"events": events}, headers=auth)
    assert r.status_code == 400 and r.json()["field"] == "events[1].target", r.text
    assert client.get("/v1/sessions/bad/events", headers=auth).status_code == 404


def test_targets_are_stored_and_exported_on_the_types_that_carry_them(
    client: TestClient, auth: dict[str, str]
) -> None:
    kinds = ["click", "rage_click", "hover", "input_pause", "focus", "blur", "error"]
    events = [{"type": k, "target": f"#{k}", "ts": T + i} for i, k in enumerate(kinds)]
    events.append({"type": "scroll", "target": "#ignored", "ts": T + 9})  # no element: dropped
    _send(client, auth, "kinds", events)
    exported = client.get("/v1/sessions/kinds/events", headers=auth).json()["events"]
    assert [e.get("target") for e in exported] == [f"#{k}" for k in kinds] + [None]
    longest = "é" * 256  # characters, not bytes
    _send(client, auth, "long", [{"type": "click", "target": longest}])
    assert (
        client.get("/v1/sessions/long/events", headers=auth).json()["events"][0]["target"]
        == longest
    )
