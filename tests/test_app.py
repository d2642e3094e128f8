"""The direct route for POST events / GET mood answers exactly as the full stack does.

``SessionMoodApp`` sends the two hot requests straight to their handlers; every
other request goes through Starlette's middleware and routing. Each request
below is sent to an app with the direct route and to one without it, and the
answers must match: status, body and the headers a client acts on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionmood_server.app import create_app
from sessionmood_server.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_key

EVENTS = {"events": [{"type": "click", "ts": 1714900200}, {"type": "error", "ts": 1714900201}]}
ONE_EVENT = {"events": EVENTS["events"][:1]}  # b-1 again, other events: a 409
COMPARED_HEADERS = (
    "content-type",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "www-authenticate",
    "idempotent-replayed",
    "x-should-retry",
    "allow",
    "cache-control",
    "retry-after",
)

PREFLIGHT = {"Access-Control-Request-Method": "POST"}
# (method, path, headers, body); "KEY" in a header is replaced by the app's own key.
Case = tuple[str, str, dict[str, str], Any]
CASES: list[Case] = [
    ("POST", "/v1/sessions/s1/events", {"X-Api-Key": "KEY"}, EVENTS),
    ("POST", "/v1/sessions/s1/events", {"X-Api-Key": "KEY"}, EVENTS),
    ("GET", "/v1/sessions/s1/mood", {"X-Api-Key": "KEY"}, None),
    ("GET", "/v1/sessions/s1/mood", {"Authorization": "Bearer KEY"}, None),
    ("GET", "/v1/sessions/s1/mood", {"X-Api-Key": "KEY", "Origin": "https://a.example"}, None),
    ("GET", "/v1/sessions/nope/mood", {"X-Api-Key": "KEY"}, None),
    ("GET", "/v1/sessions/nope/mood", {"X-Api-Key": "KEY", "Origin": "https://a.example"}, None),
    ("GET", "/v1/sessions/s1/mood", {}, None),
    ("GET", "/v1/sessions/s1/mood", {"X-Api-Key": "sm_" + "0" * 48}, None),
    ("GET", "/v1/sessions/s1/mood", {"Authorization": "Basic abc"}, None),
    ("GET", "/v1/sessions//mood", {"X-Api-Key": "KEY"}, None),
    ("GET", "/v1/sessions/a%00b/mood", {"X-Api-Key": "KEY"}, None),
    ("GET", "/v1/sessions/%FF/mood", {"X-Api-Key": "KEY"}, None),
    ("GET", "/v1/sessions/s1/mood/x", {"X-Api-Key": "KEY"}, None),
    ("HEAD", "/v1/sessions/s1/mood", {"X-Api-Key": "KEY"}, None),
    ("POST", "/v1/sessions/s1/mood", {"X-Api-Key": "KEY"}, EVENTS),
    ("GET", "/v1/sessions/s1/events", {"X-Api-Key": "KEY"}, None),
    ("PUT", "/v1/sessions/s1/events", {"X-Api-Key": "KEY"}, EVENTS),
    ("POST", "/v1/sessions/a%2Fb/events", {"X-Api-Key": "KEY"}, EVENTS),
    ("GET", "/v1/sessions/a%2Fb/mood", {"X-Api-Key": "KEY"}, None),
    ("POST", "/v1/sessions//events", {"X-Api-Key": "KEY"}, EVENTS),
    ("POST", "/v1/sessions/events", {"X-Api-Key": "KEY"}, EVENTS),
    ("POST", "/v1/sessions/s2/events", {"X-Api-Key": "KEY", "Origin": "https://a.example"}, EVENTS),
    ("POST", "/v1/sessions/s3/events", {"X-Api-Key": "KEY"}, {**EVENTS, "batch_id": "b-1"}),
    ("POST", "/v1/sessions/s3/events", {"X-Api-Key": "KEY"}, {**EVENTS, "batch_id": "b-1"}),
    ("POST", "/v1/sessions/s4/events", {"X-Api-Key": "KEY"}, {**EVENTS, "batch_id": "b-1"}),
    ("POST", "/v1/sessions/s3/events", {"X-Api-Key": "KEY"}, {**ONE_EVENT, "batch_id": "b-1"}),
    ("POST", "/v1/sessions/s5/events", {"X-Api-Key": "KEY", "Idempotency-Key": "h-1"}, EVENTS),
    ("POST", "/v1/sessions/s5/events", {"X-Api-Key": "KEY", "Idempotency-Key": "h-1"}, EVENTS),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, b"{not json"),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, {"events": []}),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, {"events": [{"type": "nope"}]}),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, {"events": [{}] * 1001}),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY", "Content-Type": "text/csv"}, b"a,b"),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, b""),
    ("POST", "/v1/sessions/s6/events", {"X-Api-Key": "KEY"}, b"x" * (1024 * 1024 + 1)),
    ("POST", "/v1/sessions/s6/events", {}, EVENTS),
    ("OPTIONS", "/v1/sessions/s6/events", {"Origin": "https://a.example", **PREFLIGHT}, None),
]  # fmt: skip


@contextmanager
def app_client(tmp_path: Path, name: str, *, fast_paths: bool) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / name}.db", admin_token=ADMIN_TOKEN)
    app = create_app(settings, fast_paths=fast_paths)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def send(client: TestClient, key: str, case: Case) -> tuple[int, Any, dict[str, str]]:
    method, path, headers, body = case
    headers = {k: v.replace("KEY", key) for k, v in headers.items()}
    if isinstance(body, bytes):
        headers.setdefault("Content-Type", "application/json")
        r = client.request(method, path, headers=headers, content=body)
    else:
        r = client.request(method, path, headers=headers, json=body)
    try:
        data = r.json()
    except ValueError:
        data = r.content
    if isinstance(data, dict):  # the clock moves between the two apps
        data.pop("updated_at", None)
        for event in data.get("events", ()):
            event.pop("received_at", None)
    kept = {h: r.headers[h] for h in COMPARED_HEADERS if h in r.headers}
    return r.status_code, data, kept


def test_direct_route_answers_like_the_full_stack(tmp_path: Path) -> None:
    with (
        app_client(tmp_path, "fast", fast_paths=True) as fast,
        app_client(tmp_path, "full", fast_paths=False) as full,
    ):
        fast_key, full_key = make_key(fast), make_key(full)
        for case in CASES:
            got, want = send(fast, fast_key, case), send(full, full_key, case)
            assert got == want, case
        # The catalogue reached both branches of the direct route and errors.
        statuses = {send(full, full_key, c)[0] for c in CASES}
        assert {200, 400, 401, 404, 405, 409, 413, 415} <= statuses


@pytest.mark.parametrize("fast_paths", [True, False])
def test_unexpected_errors_are_logged_500s_with_cors(
    tmp_path: Path, fast_paths: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app_client(tmp_path, "boom", fast_paths=fast_paths) as client:
        key = make_key(client)
        storage = client.app.state.api.storage  # type: ignore[attr-defined]

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(storage, "get_session", broken)
        r = client.get(
            "/v1/sessions/s1/mood", headers={"X-Api-Key": key, "Origin": "https://a.example"}
        )
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "Internal Server Error"
        assert body["request_id"] == r.headers["x-request-id"]
        assert "disk on fire" not in r.text
        assert r.headers["access-control-allow-origin"] == "*"


# -- secure defaults ------------------------------------------------------------------


@pytest.fixture
def demo_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}", admin_token=ADMIN_TOKEN, demo=True
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("path", ["/dashboard/", "/demo/", "/demo/checkout.html"])
def test_html_pages_carry_csp_framing_nosniff_and_referrer_rules(
    demo_client: TestClient, path: str
) -> None:
    r = demo_client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_assets_are_not_sniffed_and_not_given_a_page_policy(demo_client: TestClient) -> None:
    r = demo_client.get("/static/tracker.js")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers


@pytest.mark.parametrize("fast_paths", [True, False])
def test_authenticated_answers_are_never_cached(tmp_path: Path, fast_paths: bool) -> None:
    with app_client(tmp_path, "cache", fast_paths=fast_paths) as c:
        r = c.post("/v1/keys/generate", json={"customer_name": "x"})
        assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
        h = {"X-Api-Key": r.json()["api_key"]}
        answers = [
            c.post("/v1/sessions/s/events", json=EVENTS, headers=h),
            c.post("/v1/sessions/s/events", json={**EVENTS, "batch_id": "x"}, headers=h),
            c.post("/v1/sessions/s/events", json={**EVENTS, "batch_id": "x"}, headers=h),
            c.get("/v1/sessions/s/mood", headers=h),
            c.get("/v1/sessions/s/events", headers=h),
            c.get("/v1/analytics/moods", headers=h),
            c.get("/v1/analytics/pages", headers=h),
            c.get("/v1/analytics/actions", headers=h),
            c.get("/v1/usage", headers=h),
            c.post("/v1/keys/publishable", json={"allowed_origins": ["https://a.b"]}, headers=h),
            c.get("/v1/sessions/none/mood", headers=h),
            c.get("/v1/usage"),
        ]
        assert answers[2].headers["idempotent-replayed"] == "true"
        for r in answers:
            assert r.headers["cache-control"] == "no-store", (r.request.url, r.status_code)
        # public and unauthenticated: cacheable as before
        assert "no-store" not in c.get("/static/tracker.js").headers["cache-control"]


def test_the_demo_key_is_printed_only_when_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for printed in (True, False):
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / f'd{printed}.db'}",
            demo=True,
            demo_key_printed=printed,
        )
        with TestClient(create_app(settings)):
            pass
        out = capsys.readouterr().out
        assert "/demo/" in out
        assert ("#key=sm_" in out) is printed
        assert out.count("sm_") == int(printed)  # the only secret ever printed
