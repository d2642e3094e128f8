"""static/tracker.js in a real Chromium against a real server.

The fixture pages are served from another origin than the API (another port),
the way a shop embeds the snippet. Every assertion reads what the *server*
stored (``GET /v1/sessions/{id}/events``) for the test's own session id: a
closing page's beacon may land during the next test, under its own id.
Time-based behaviour (hover, input pause, idle) runs on Playwright's fake
clock, so no test sleeps through a threshold.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Route

from tests.conftest import ROOT, LiveServer

PAGES = Path(__file__).resolve().parent / "pages"
ATTR = re.compile(r"data-[a-z-]+")
Event = dict[str, Any]


# -- the shop: static pages on their own origin -------------------------------


def _page_server(api: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            file = PAGES / (parts.path.lstrip("/") or "index.html")
            if file.suffix != ".html" or not file.is_file() or file.parent != PAGES:
                self.send_error(404)
                return
            attrs = "".join(
                f' {k}="{html.escape(v)}"'
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if ATTR.fullmatch(k)
            )
            snippet = f'<script src="{api}/static/tracker.js"{attrs}></script>'
            body = file.read_text().replace("<!--SNIPPET-->", snippet).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            # Never from the back/forward cache: going back reloads the page.
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def site(live_server: LiveServer) -> Iterator[str]:
    server = _page_server(live_server.base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _publishable(live_server: LiveServer, secret: str, origin: str) -> str:
    r = httpx.post(
        live_server.base_url + "/v1/keys/publishable",
        json={"allowed_origins": [origin]},
        headers={"X-Api-Key": secret},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["publishable_key"])


@dataclass(frozen=True)
class Tenant:
    secret: str
    publishable: str


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer, site: str) -> Tenant:
    secret = live_server.new_key(customer="e2e shop")
    return Tenant(secret, _publishable(live_server, secret, site))


@dataclass
class Shop:
    """One test's browser tab on the shop, and what the server stored for it."""

    page: Page
    site: str
    api: str
    tenant: Tenant
    sid: str
    page_errors: list[str] = field(default_factory=list)
    posts: list[Request] = field(default_factory=list)

    def url(self, name: str = "index.html", query: str = "", **attrs: str) -> str:
        params = {
            "data-api-key": self.tenant.publishable,
            "data-session-id": self.sid,
            # Batches by timer only when a test wants it: tests flush explicitly.
            "data-flush-interval": "60000",
            **{"data-" + k.replace("_", "-"): v for k, v in attrs.items()},
        }
        return f"{self.site}/{name}?{urlencode(params)}{'&' + query if query else ''}"

    def open(self, name: str = "index.html", query: str = "", **attrs: str) -> None:
        self.page.goto(self.url(name, query, **attrs))  # the snippet is synchronous: loaded

    def flush(self) -> None:
        """Resolves once everything queued so far got its answer from the server."""
        self.page.evaluate("() => SessionMood.flush()")

    def events(self, sid: str | None = None) -> list[Event]:
        r = httpx.get(
            f"{self.api}/v1/sessions/{quote(sid or self.sid, safe='')}/events",
            headers={"X-Api-Key": self.tenant.secret},
        )
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return list(r.json()["events"])

    def wait_for(self, done: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        """Poll the export (bounded) until ``done`` holds; fail with what was stored."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if done(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; stored: {json.dumps(events)}")
            self.page.wait_for_timeout(50)

    def center(self, selector: str) -> tuple[float, float]:
        box = self.page.locator(selector).bounding_box()
        assert box is not None
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def clicks(self, selector: str, n: int) -> tuple[float, float]:
        x, y = self.center(selector)
        for _ in range(n):
            self.page.mouse.click(x, y)
        return x, y


@pytest.fixture
def shop(
    page: Page, site: str, live_server: LiveServer, tenant: Tenant, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    sid = f"e2e-{request.node.name}-{uuid.uuid4().hex[:8]}"
    s = Shop(page, site, live_server.base_url, tenant, sid)
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: s.page_errors.append(str(exc)))
    page.on("request", lambda r: "/events" in r.url and s.posts.append(r))
    yield s
    # Errors the tests throw on purpose say so; anything else came from the tracker.
    assert [e for e in s.page_errors if "intentional" not in e] == []


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e["type"] == kind]


def throw(page: Page, message: str) -> None:
    """An uncaught error in the page, as the site's own code would raise it."""
    page.evaluate(
        """m => {
            const s = document.createElement('script');
            s.textContent = 'throw new Error(' + JSON.stringify(m) + ')';
            document.head.appendChild(s);
        }""",
        message,
    )


ALL_TYPES = {
    "click", "rage_click", "scroll", "input_pause", "backtrack", "back_nav",
    "page_view", "error", "idle", "hover", "focus", "blur",
}  # fmt: skip


# -- what is captured -----------------------------------------------------------


@pytest.mark.e2e
def test_every_event_type_is_stored_with_its_fields(shop: Shop) -> None:
    page = shop.page
    page.clock.install()
    started = time.time()
    shop.open()

    page.click("#name")  # click + focus
    pay = shop.clicks("#pay", 3)  # rage_click (and blur of #name)

    page.mouse.wheel(0, 1500)  # scroll down...
    page.wait_for_function("() => scrollY > 1000")
    page.clock.run_for(600)
    page.mouse.wheel(0, -800)  # ...and back up: backtrack
    page.wait_for_function("() => scrollY < 1000")
    page.clock.run_for(600)

    page.mouse.wheel(0, -2000)
    page.wait_for_function("() => scrollY === 0")
    page.clock.run_for(600)
    page.click("#name")
    page.keyboard.type("abc")
    page.clock.fast_forward(3000)
    page.keyboard.type("d")  # resumed after 3 s: input_pause
    page.keyboard.press("Tab")  # blur

    page.mouse.move(*shop.center("#help"))
    page.clock.fast_forward(1500)
    page.mouse.move(5, 300)  # left without clicking: hover

    throw(page, "intentional: Payment failed")
    page.evaluate("() => history.pushState({}, '', '/spa/confirm')")
    page.go_back()  # popstate fires with the location change
    page.wait_for_function("() => location.pathname === '/index.html'")

    page.clock.fast_forward(11_000)  # nobody touches anything: idle, while still away
    shop.flush()
    events = shop.wait_for(lambda ev: set(types(ev)) >= ALL_TYPES)

    for e in events:
        assert started - 1 < e["ts"] < time.time() + 60, e  # Unix seconds (fake clock ahead)
    [click, *_] = of(events, "click")
    assert isinstance(click["x"], int | float) and isinstance(click["y"], int | float)
    [rage] = of(events, "rage_click")
    assert abs(rage["x"] - pay[0]) <= 1 and abs(rage["y"] - pay[1]) <= 1
    scrolls = of(events, "scroll")
    assert {s["direction"] for s in scrolls} == {"up", "down"}
    assert all(s["speed"] > 0 for s in scrolls)
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(scrolls)]
    assert all(g >= 0.249 for g in gaps), gaps  # throttled: at most 4 a second
    [pause] = of(events, "input_pause")
    assert pause["duration_ms"] >= 3000
    [hover] = of(events, "hover")
    assert hover["duration_ms"] >= 1500
    [idle] = of(events, "idle")
    assert idle["duration_ms"] >= 10_000
    [error] = of(events, "error")
    assert "intentional: Payment failed" in error["message"]
    assert [p["url"] for p in of(events, "page_view")] == [
        "/index.html",
        "/spa/confirm",
        "/index.html",
    ]
    assert len(of(events, "back_nav")) == 1
    assert len(of(events, "focus")) == 2 and len(of(events, "blur")) == 2


@pytest.mark.e2e
def test_no_rage_click_for_selection_steppers_pagination_fields_or_opt_out(shop: Shop) -> None:
    page = shop.page
    shop.open()
    page.dblclick("#prose")  # select a word
    page.click("#prose2", click_count=3)  # select a paragraph
    for selector in ("#minus", "#qty", "#plus", "#prev", "#next", "#name", "#optout"):
        shop.clicks(selector, 5)
    pay = shop.clicks("#pay", 3)  # the detector is alive: this one is rage
    shop.flush()

    events = shop.events()
    assert len(of(events, "click")) == 2 + 3 + 7 * 5 + 3
    [rage] = of(events, "rage_click")
    assert (rage["x"], rage["y"]) == pytest.approx(pay, abs=1)


@pytest.mark.e2e
def test_typed_text_query_strings_and_cookies_never_leave_the_page(shop: Shop) -> None:
    page = shop.page
    shop.open(query="q=secret-query&email=secret%40example.com#secret-fragment")
    page.evaluate("() => { document.cookie = 'sid=secret-cookie'; }")
    page.click("#name")
    page.keyboard.type("secret typed text", delay=5)
    page.keyboard.press("Tab")
    page.evaluate("() => history.pushState({}, '', '/search?q=secret-spa#secret-hash')")
    throw(page, "intentional: GET https://shop.test/api?token=secret-token failed")
    shop.flush()

    events = shop.events()
    assert "secret" not in json.dumps(events)
    assert [e["url"] for e in of(events, "page_view")] == ["/index.html", "/search"]
    assert of(events, "error")[0]["message"].endswith("https://shop.test/api failed")
    for post in shop.posts:
        assert "secret" not in (post.post_data or "")
        assert "secret" not in post.url
        assert "cookie" not in post.all_headers()
        assert post.headers["content-type"].startswith("text/plain")  # no preflight


# -- delivery ---------------------------------------------------------------------


@pytest.mark.e2e
def test_a_batch_retried_after_two_failures_is_stored_once(shop: Shop) -> None:
    page = shop.page
    bodies: list[dict[str, Any]] = []

    def flaky(route: Route) -> None:
        bodies.append(json.loads(route.request.post_data or "{}"))
        if len(bodies) == 1:  # stored by the server, but the answer is lost
            answer = route.fetch()
            assert answer.status == 200
            route.fulfill(status=503, json={"error": "Service Unavailable"}, headers=CORS)
        elif len(bodies) == 2:  # never reaches the server
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r"/v1/sessions/.*/events\?key="), flaky)
    shop.open()
    page.click("#pay")
    page.evaluate("() => SessionMood.flush()")  # first try, fails; the rest is on timers
    page.wait_for_function("() => __moods.length > 0", timeout=15_000)

    assert len(bodies) == 3
    assert len({b["batch_id"] for b in bodies}) == 1  # one batch id for every try
    assert all(b == bodies[0] for b in bodies)
    assert types(shop.events()) == ["page_view", "click"]  # stored once


CORS = {"Access-Control-Allow-Origin": "*"}


@pytest.mark.e2e
def test_leaving_before_a_flush_is_delivered_by_beacon_and_coming_back_is_back_nav(
    shop: Shop,
) -> None:
    page = shop.page
    shop.open()
    page.click("#pay")
    assert shop.posts == []  # nothing sent yet: the flush interval is a minute
    page.goto(shop.site + "/other.html")

    shop.wait_for(lambda ev: types(ev) == ["page_view", "click"])

    page.go_back()  # a back/forward page load
    page.wait_for_function("() => !!(window.SessionMood && SessionMood.sessionId)")
    shop.flush()
    assert types(shop.events()) == ["page_view", "click", "page_view", "back_nav"]


@pytest.mark.e2e
def test_on_mood_reports_frustrated_within_a_second_of_rage_and_errors(shop: Shop) -> None:
    page = shop.page
    shop.open()
    throw(page, "intentional: Payment failed")
    page.wait_for_function("() => __moods.length > 0")  # errors are sent at once too
    shop.clicks("#pay", 3)
    page.wait_for_function("() => __moods.some(m => m.mood === 'frustrated')", timeout=5000)

    mood = page.evaluate("() => __moods.find(m => m.mood === 'frustrated')")
    assert 0 < mood["at"] - page.evaluate("() => __lastClick") < 1000  # after the burst
    assert mood["session_id"] == shop.sid
    assert mood["suggested_action"] == "show_live_chat"
    assert "rage_click_detected" in mood["signals"]
    assert 0 < mood["confidence"] <= 1


@pytest.mark.e2e
def test_publishable_key_is_refused_from_another_origin(
    shop: Shop, live_server: LiveServer
) -> None:
    page = shop.page
    elsewhere = _publishable(live_server, shop.tenant.secret, "https://shop.example")
    with page.expect_response(re.compile(r"/events\?key=")) as refused:
        shop.open(api_key=elsewhere)
        page.click("#pay")
        shop.flush()
    assert refused.value.status == 403
    throw(page, "intentional: after the refusal")  # the tracker has stopped: sends nothing
    shop.flush()
    assert len(shop.posts) == 1
    assert shop.events() == []


@pytest.mark.e2e
def test_do_not_track_sends_nothing(shop: Shop) -> None:
    page = shop.page
    page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
    )
    shop.open(respect_dnt="")
    shop.clicks("#pay", 3)
    page.keyboard.press("PageDown")
    page.evaluate("() => SessionMood.flush()")
    assert page.evaluate("() => SessionMood.sessionId") is None  # never started
    page.goto(shop.site + "/other.html")  # no beacon either
    assert shop.posts == []
    assert shop.events() == []


@pytest.mark.e2e
def test_errors_are_capped_per_message_and_cut_to_512_chars(shop: Shop) -> None:
    page = shop.page
    shop.open()
    for _ in range(10):
        throw(page, "intentional: render loop")
    page.evaluate(
        """() => new Promise(seen => {
            addEventListener('unhandledrejection', () => setTimeout(seen), {once: true});
            Promise.reject(new Error('intentional: ' + 'x'.repeat(2000)));
        })"""
    )
    shop.flush()

    errors = [e["message"] for e in of(shop.events(), "error")]
    assert len(errors) == 4
    assert sum("render loop" in m for m in errors) == 3
    assert max(len(m) for m in errors) == 512


@pytest.mark.e2e
def test_error_messages_lose_what_the_visitor_typed(shop: Shop) -> None:
    # JSON.parse and app errors often echo input: quoted text and e-mail
    # addresses never leave the page.
    page = shop.page
    shop.open()
    throw(page, 'intentional: "jane.doe@example.com" is not valid JSON')
    throw(page, "intentional: no account for jane.doe@example.com at /login?next=/pay")
    shop.flush()
    errors = [e["message"] for e in of(shop.events(), "error")]
    assert len(errors) == 2
    for m in errors:
        assert "jane" not in m and "example.com" not in m and "next=" not in m
        assert m.startswith("Uncaught Error: intentional") or "intentional" in m


@pytest.mark.e2e
def test_track_sanitises_what_it_is_given_and_never_throws(shop: Shop) -> None:
    page = shop.page
    shop.open()
    page.evaluate(
        """() => {
            SessionMood.track('page_visit');               // not a type: dropped
            SessionMood.track('click', {x: '12', y: {}, text: 'dropped'});
            SessionMood.track('scroll', {speed: -5, direction: 'sideways'});
            SessionMood.track('hover', null);
            SessionMood.init({apiKey: 'ignored'});         // already running
        }"""
    )
    shop.flush()
    stored = [
        {k: v for k, v in e.items() if k in {"type", "x", "y", "speed", "direction"}}
        for e in shop.events()
    ]
    assert stored == [
        {"type": "page_view"},
        {"type": "click", "x": 12},
        {"type": "scroll", "speed": 0},
        {"type": "hover"},
    ]


def test_tracker_fits_its_size_budget() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tracker_size.py"), "--minifier", "builtin"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "within budget" in done.stdout
