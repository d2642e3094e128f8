"""Rate and count limits: the limiter itself, the settings that name them, and
the clear 429s (JSON, ``Retry-After``) the API answers when one is reached."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionmood_client.types import ExportEventsResponse, PageAnalyticsResponse
from sessionmood_server.app import create_app
from sessionmood_server.limits import Rate, RateLimiter, admit, client_source
from sessionmood_server.settings import Settings
from tests.conftest import ADMIN_TOKEN

SHOP = "https://shop.example"
CLICK = {"events": [{"type": "click", "x": 1, "y": 2}]}

# -- the limiter ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("600/h", 600, 3600), ("30/min", 30, 60), ("10/5m", 10, 300), ("2/d", 2, 86400)],
)
def test_rates_parse(text: str, count: int, period: float) -> None:
    rate = Rate.parse(text)
    assert (rate.count, rate.period_s) == (count, period)


@pytest.mark.parametrize("text", ["", "10", "0/h", "ten/h", "10/fortnight", "-1/h"])
def test_bad_rates_say_what_a_rate_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match="600/h"):
        Rate.parse(text)


def test_a_burst_of_count_then_one_per_interval() -> None:
    lim = RateLimiter(Rate(3, 60.0))
    for _ in range(3):
        assert lim.wait("a", 100.0) == 0
        lim.take("a", 100.0)
    assert lim.wait("a", 100.0) == pytest.approx(20.0)  # one more every 60/3 s
    assert lim.wait("b", 100.0) == 0  # other keys are not affected
    assert lim.wait("a", 119.9) > 0
    assert lim.wait("a", 120.0) == 0


def test_admit_takes_from_every_bucket_or_from_none() -> None:
    small, big = RateLimiter(Rate(1, 60.0)), RateLimiter(Rate(100, 60.0))
    assert admit([(small, "x"), (big, "x")], 0.0) == 0
    # the small bucket refuses: the big one must not be charged for it
    for _ in range(5):
        assert admit([(small, "x"), (big, "x")], 1.0) == 59.0
    assert big.wait("x", 1.0) == 0
    for _ in range(98):
        big.take("x", 1.0)
    assert big.wait("x", 1.0) == 0  # 99 taken of 100: the refused tries cost nothing


def test_memory_stays_bounded_under_many_sources() -> None:
    lim = RateLimiter(Rate(10, 3600.0), max_keys=1000)
    for i in range(20_000):
        lim.take(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(lim) <= 1000
    # keys whose bucket has filled up again are forgotten
    lim.take("late", 7200.0)
    lim._prune(7200.0)
    assert len(lim) == 1


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same subscriber, same /64
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "-"),
    ],
)
def test_client_source(host: str | None, source: str) -> None:
    assert client_source(host) == source


# -- settings -----------------------------------------------------------------------------


def test_every_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_ADDRESS": "5/min",
        "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_ORIGIN": "6/min",
        "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_KEY": "7/min",
        "SESSIONMOOD_LIMIT_KEYS_PER_ADDRESS": "2/d",
        "SESSIONMOOD_SIGNUP": "admin",
        "SESSIONMOOD_LIMIT_STREAMS_PER_TENANT": "3",
        "SESSIONMOOD_LIMIT_STREAMS_PER_ADDRESS": "4",
        "SESSIONMOOD_LIMIT_SESSION_EVENTS": "50",
        "SESSIONMOOD_EXPORT_PAGE_EVENTS": "25",
        "SESSIONMOOD_ANALYTICS_PAGES_MAX": "30",
        "SESSIONMOOD_LIMITS": "off",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert s.new_sessions_per_address == Rate(5, 60.0)
    assert s.new_sessions_per_origin == Rate(6, 60.0)
    assert s.new_sessions_per_key == Rate(7, 60.0)
    assert s.keys_per_address == Rate(2, 86400.0)
    assert s.signup == "admin"
    assert (s.streams_per_tenant, s.streams_per_address, s.max_session_events) == (3, 4, 50)
    assert (s.export_page_events, s.analytics_pages_max, s.limits) == (25, 30, False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSIONMOOD_LIMITS", "maybe"),
        ("SESSIONMOOD_SIGNUP", "closed"),
        ("SESSIONMOOD_LIMIT_KEYS_PER_ADDRESS", "lots"),
        ("SESSIONMOOD_LIMIT_SESSION_EVENTS", "-5"),
    ],
)
def test_a_bad_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


# -- the API's answers ----------------------------------------------------------------------


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """An in-process app with some settings changed; the lifespan runs."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / f'limits{len(clients)}.db'}",
            admin_token=ADMIN_TOKEN,
        )
        c = TestClient(create_app(dataclasses.replace(settings, **changes)))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def _tenant(c: TestClient, plan: str = "growth") -> tuple[dict[str, str], str]:
    r = c.post(
        "/v1/keys/generate",
        json={"customer_name": "Acme", "plan": plan},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    sk = {"X-Api-Key": r.json()["api_key"]}
    pk = c.post("/v1/keys/publishable", json={"allowed_origins": [SHOP]}, headers=sk)
    return sk, pk.json()["publishable_key"]


def _is_clear_429(r: Any) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] and r.json()["message"]


def test_new_sessions_per_address_then_429_and_open_sessions_keep_working(
    make_client: Any,
) -> None:
    c = make_client(new_sessions_per_address=Rate(3, 3600.0))
    sk, pk = _tenant(c)
    h = {"X-Api-Key": pk, "Origin": SHOP}
    for i in range(3):
        assert c.post(f"/v1/sessions/v{i}/events", json=CLICK, headers=h).status_code == 200
    r = c.post("/v1/sessions/v3/events", json=CLICK, headers=h)
    _is_clear_429(r)
    assert "plan" not in r.json()  # not the monthly quota: clients may retry
    assert int(r.headers["retry-after"]) <= 1200  # one more every 3600/3 s
    # nothing of the refused batch was stored; sessions already open go on
    assert c.get("/v1/sessions/v3/mood", headers=sk).status_code == 404
    assert c.post("/v1/sessions/v0/events", json=CLICK, headers=h).status_code == 200
    # secret keys (a backend) have no per-minute limit
    for i in range(5):
        assert c.post(f"/v1/sessions/b{i}/events", json=CLICK, headers=sk).status_code == 200


def test_new_sessions_per_origin_counts_requests_without_one_together(make_client: Any) -> None:
    c = make_client(new_sessions_per_origin=Rate(2, 60.0))
    _, pk = _tenant(c)
    for i in range(2):
        r = c.post(f"/v1/sessions/n{i}/events?key={pk}", json=CLICK)
        assert r.status_code == 200
    _is_clear_429(c.post(f"/v1/sessions/n2/events?key={pk}", json=CLICK))
    # the site's own browsers are another origin: unaffected
    r = c.post("/v1/sessions/s0/events", json=CLICK, headers={"X-Api-Key": pk, "Origin": SHOP})
    assert r.status_code == 200


def test_new_sessions_per_publishable_key(make_client: Any) -> None:
    c = make_client(new_sessions_per_key=Rate(2, 60.0))
    _, pk = _tenant(c)
    _, other_pk = _tenant(c)
    h = {"X-Api-Key": pk, "Origin": SHOP}
    for i in range(2):
        assert c.post(f"/v1/sessions/k{i}/events", json=CLICK, headers=h).status_code == 200
    _is_clear_429(c.post("/v1/sessions/k2/events", json=CLICK, headers=h))
    # another tenant's key is not slowed down
    r = c.post("/v1/sessions/k2/events", json=CLICK, headers={"X-Api-Key": other_pk})
    assert r.status_code == 200


def test_defaults_let_hundreds_of_visitors_behind_one_nat_in(make_client: Any) -> None:
    """An office: 600 new visitors from one address and the site's origin, at once."""
    c = make_client()
    _, pk = _tenant(c, "pro")
    h = {"X-Api-Key": pk, "Origin": SHOP}
    statuses = [
        c.post(f"/v1/sessions/office{i}/events", json=CLICK, headers=h).status_code
        for i in range(600)
    ]
    assert statuses == [200] * 600


def test_limits_off_lifts_them(make_client: Any) -> None:
    c = make_client(
        limits=False,
        new_sessions_per_address=Rate(1, 3600.0),
        keys_per_address=Rate(1, 3600.0),
        max_session_events=2,
    )
    _, pk = _tenant(c)
    for i in range(5):
        r = c.post(f"/v1/sessions/f{i}/events?key={pk}", json={"events": CLICK["events"] * 3})
        assert r.status_code == 200
    for _ in range(3):
        r = c.post("/v1/keys/generate", json={"customer_name": "x"})
        assert r.status_code == 201


def test_key_generation_per_address(make_client: Any) -> None:
    c = make_client(keys_per_address=Rate(2, 3600.0))
    for _ in range(2):
        assert c.post("/v1/keys/generate", json={"customer_name": "x"}).status_code == 201
    r = c.post("/v1/keys/generate", json={"customer_name": "x"})
    _is_clear_429(r)
    assert int(r.headers["retry-after"]) > 60
    # the operator is not limited
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = c.post("/v1/keys/generate", json={"customer_name": "x"}, headers=admin)
    assert r.status_code == 201


def test_signup_admin_only(make_client: Any) -> None:
    c = make_client(signup="admin")
    r = c.post("/v1/keys/generate", json={"customer_name": "x"})
    assert r.status_code == 403 and "SESSIONMOOD_SIGNUP" in r.json()["message"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = c.post("/v1/keys/generate", json={"customer_name": "x"}, headers=admin)
    assert r.status_code == 201


@pytest.mark.parametrize("kind", ["secret", "publishable"])
def test_events_per_session(make_client: Any, kind: str) -> None:
    c = make_client(max_session_events=5)
    sk, pk = _tenant(c)
    h = sk if kind == "secret" else {"X-Api-Key": pk, "Origin": SHOP}
    three = {"events": CLICK["events"] * 3}
    assert c.post("/v1/sessions/full/events", json=three, headers=h).status_code == 200
    r = c.post("/v1/sessions/full/events", json=three, headers=h)
    assert r.status_code == 429
    assert r.json()["limit"] == 5 and r.json()["field"] == "events"
    assert r.headers["x-should-retry"] == "false" and int(r.headers["retry-after"]) >= 1
    # the batch is atomic: nothing of it was stored; one that fits still is
    assert c.get("/v1/sessions/full/mood", headers=sk).json()["event_count"] == 3
    two = {"events": CLICK["events"] * 2}
    assert c.post("/v1/sessions/full/events", json=two, headers=h).status_code == 200


def test_exports_come_in_pages_with_a_cursor(make_client: Any) -> None:
    c = make_client(export_page_events=40)
    sk, _ = _tenant(c)
    for i in range(7):  # batches of 15: pages cut through batches
        events = [{"type": "scroll", "speed": i * 100 + j} for j in range(15)]
        assert c.post("/v1/sessions/big/events", json={"events": events}, headers=sk).is_success
    got: list[dict[str, Any]] = []
    path = "/v1/sessions/big/events"
    pages = 0
    while True:
        page = c.get(path, headers=sk).json()
        pages += 1
        # The session's conversions come with the first page only (issue 27).
        first = {"conversions"} if pages == 1 else set()
        assert set(page) == {"session_id", "event_count", "events", "next_cursor"} | first
        ExportEventsResponse.model_validate(page)  # the shape the client parses
        assert page["event_count"] == 105 and len(page["events"]) <= 40
        got += page["events"]
        if page["next_cursor"] is None:
            break
        path = f"/v1/sessions/big/events?cursor={page['next_cursor']}"
    assert pages == 3
    assert [e["seq"] for e in got] == list(range(1, 106))
    assert [e["speed"] for e in got] == [i * 100 + j for i in range(7) for j in range(15)]
    # a smaller page on request; a larger one is capped at the server's page size
    assert len(c.get("/v1/sessions/big/events?limit=7", headers=sk).json()["events"]) == 7
    assert len(c.get("/v1/sessions/big/events?limit=5000", headers=sk).json()["events"]) == 40
    for bad in ("cursor=abc", "cursor=-1", "cursor=", "limit=0", "limit=x"):
        r = c.get(f"/v1/sessions/big/events?{bad}", headers=sk)
        assert r.status_code == 400 and r.json()["field"] in {"cursor", "limit"}


def test_page_analytics_are_bounded(make_client: Any) -> None:
    c = make_client(analytics_pages_max=150)
    sk, _ = _tenant(c)
    # 300 pages; /p/0 .. /p/9 visited by more sessions than the rest
    views = [{"type": "page_view", "url": f"/p/{i}"} for i in range(300)]
    assert c.post("/v1/sessions/crawler/events", json={"events": views}, headers=sk).is_success
    for s in range(3):
        busy = [{"type": "page_view", "url": f"/p/{i}"} for i in range(10)]
        assert c.post(f"/v1/sessions/s{s}/events", json={"events": busy}, headers=sk).is_success
    body = c.get("/v1/analytics/pages", headers=sk).json()
    PageAnalyticsResponse.model_validate(body)  # the shape the client parses
    default = body["pages"]
    assert len(default) == 100  # top 100 by default
    assert [p["url"] for p in default[:10]] == sorted(f"/p/{i}" for i in range(10))
    assert all(p["sessions"] == 4 for p in default[:10])
    assert all(p["sessions"] == 1 for p in default[10:])
    assert [p["url"] for p in default[10:]] == sorted(p["url"] for p in default[10:])
    assert len(c.get("/v1/analytics/pages?limit=5", headers=sk).json()["pages"]) == 5
    assert len(c.get("/v1/analytics/pages?limit=1000", headers=sk).json()["pages"]) == 150
