"""What the browser tests share: a shop on its own origin that embeds the
snippet, a tenant with a publishable key for it, and one test's browser tab on
the shop, on a desktop or an emulated phone.

The shop's pages are the fixture pages in ``tests/e2e/pages/``; real widget
libraries are served from ``tests/e2e/widgets/node_modules`` (installed from
the npm registry by ``make widgets``, pinned by its package-lock.json, never
committed) under ``/vendor/``. Every assertion reads what the *server* stored
(``GET /v1/sessions/{id}/events``) for the test's own session id.
"""

from __future__ import annotations

import html
import json
import re
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
from playwright.sync_api import Browser, Page, Request

from tests.conftest import LiveServer

PAGES = Path(__file__).resolve().parent / "pages"
VENDOR = Path(__file__).resolve().parent / "widgets" / "node_modules"
ATTR = re.compile(r"data-[a-z-]+")
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
Event = dict[str, Any]

# Resolves with [x, y, inside the viewport] once the element's box is the same
# for two animation frames in a row.
STEADY_CENTER = """el => new Promise(done => {
    let last = '', same = 0;
    const tick = () => {
        const r = el.getBoundingClientRect();
        const key = [r.x, r.y, r.width, r.height].join();
        same = key === last ? same + 1 : 0;
        last = key;
        if (same < 2) return requestAnimationFrame(tick);
        const x = r.x + r.width / 2, y = r.y + r.height / 2;
        done([x, y, x >= 0 && y >= 0 && x <= innerWidth && y <= innerHeight]);
    };
    tick();
})"""

# An emulated phone: touch input, no hovering pointer, a narrow viewport.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
    ),
}


def _page_server(api: str) -> ThreadingHTTPServer:
    if not VENDOR.is_dir():
        pytest.fail("the widget libraries are not installed: run `make widgets`")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.lstrip("/")
            if path.startswith("vendor/"):
                file = (VENDOR / path.removeprefix("vendor/")).resolve()
                if not file.is_relative_to(VENDOR.resolve()):
                    file = VENDOR / "missing"
            elif path.startswith("spa/"):  # the SPA's routes are one page
                file = PAGES / "spa.html"
            else:
                file = PAGES / (path or "index.html")
            if file.suffix not in TYPES or not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            if file.suffix == ".html":
                attrs = "".join(
                    f' {k}="{html.escape(v)}"'
                    for k, v in parse_qsl(parts.query, keep_blank_values=True)
                    if ATTR.fullmatch(k)
                )
                snippet = f'<script src="{api}/static/tracker.js"{attrs}></script>'
                body = body.replace(b"<!--SNIPPET-->", snippet.encode())
            self.send_response(200)
            self.send_header("Content-Type", TYPES[file.suffix] + "; charset=utf-8")
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


def publishable(live_server: LiveServer, secret: str, origin: str) -> str:
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
    return Tenant(secret, publishable(live_server, secret, site))


@dataclass
class Shop:
    """One test's browser tab on the shop, and what the server stored for it."""

    page: Page
    site: str
    api: str
    tenant: Tenant
    sid: str
    mobile: bool = False
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
        """Resolves once every pending click has its verdict and everything queued
        so far got its answer from the server."""
        self.page.evaluate("() => SessionMood.flush()")

    def _get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.api}/v1/sessions/{quote(self.sid, safe='')}{path}",
            headers={"X-Api-Key": self.tenant.secret},
        )

    def events(self) -> list[Event]:
        r = self._get("/events")
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return list(r.json()["events"])

    def mood(self) -> dict[str, Any]:
        r = self._get("/mood")
        r.raise_for_status()
        return dict(r.json())

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
        """The middle of ``selector`` once it rests in the viewport.

        Widgets render after load (Grid.js builds its table asynchronously) and
        push what is below them down: a position read before they settle is
        stale, and a tap there hits something else or nothing. A visitor aims at
        what they see, so wait until the box holds still for two frames."""
        target = self.page.locator(selector).first
        for _ in range(5):
            target.scroll_into_view_if_needed()
            x, y, inside = target.evaluate(STEADY_CENTER)
            if inside:
                return x, y
        raise AssertionError(f"{selector} never came to rest inside the viewport")

    def press(self, x: float, y: float) -> None:
        """One click with the mouse, or one tap with a finger on the phone."""
        if self.mobile:
            self.page.touchscreen.tap(x, y)
        else:
            self.page.mouse.click(x, y)

    def clicks(self, selector: str, n: int, gap_ms: float = 0) -> tuple[float, float]:
        """``n`` quick clicks (taps on the phone) on the middle of ``selector``."""
        x, y = self.center(selector)
        for i in range(n):
            if i and gap_ms:
                self.page.wait_for_timeout(gap_ms)
            self.press(x, y)
        return x, y


def _shop(page: Page, site: str, api: LiveServer, tenant: Tenant, name: str, mobile: bool) -> Shop:
    s = Shop(page, site, api.base_url, tenant, f"e2e-{name}-{uuid.uuid4().hex[:8]}", mobile)
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: s.page_errors.append(str(exc)))
    page.on("request", lambda r: "/events" in r.url and s.posts.append(r))
    return s


@pytest.fixture
def shop(
    page: Page, site: str, live_server: LiveServer, tenant: Tenant, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    s = _shop(page, site, live_server, tenant, request.node.name, mobile=False)
    yield s
    # Errors the tests throw on purpose say so; anything else came from the tracker.
    assert [e for e in s.page_errors if "intentional" not in e] == []


@pytest.fixture(params=["desktop", "phone"])
def any_shop(
    request: pytest.FixtureRequest,
    browser: Browser,
    site: str,
    live_server: LiveServer,
    tenant: Tenant,
) -> Iterator[Shop]:
    """The shop on a desktop (mouse, keyboard) and on an emulated phone (taps)."""
    mobile = request.param == "phone"
    context = browser.new_context(**PHONE) if mobile else browser.new_context()
    try:
        s = _shop(context.new_page(), site, live_server, tenant, request.node.name, mobile)
        yield s
        assert [e for e in s.page_errors if "intentional" not in e] == []
    finally:
        context.close()


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e["type"] == kind]


def clicks(events: list[Event]) -> list[Event]:
    return of(events, "click")


def dead(events: list[Event]) -> list[Event]:
    return [e for e in clicks(events) if e.get("dead")]


def assert_calm(shop: Shop, n_clicks: int) -> list[Event]:
    """Every click stored once, none dead, no rage, and no live chat for this visitor."""
    shop.flush()
    events = shop.events()
    assert len(clicks(events)) == n_clicks, types(events)
    assert of(events, "rage_click") == []
    assert dead(events) == []
    mood = shop.mood()
    assert mood["mood"] != "frustrated" and mood["suggested_action"] != "show_live_chat", mood
    return events


def assert_rage(shop: Shop, n_clicks: int) -> list[Event]:
    """The burst is one rage click, its clicks are dead, and the visitor is frustrated."""
    shop.flush()
    events = shop.events()
    assert len(of(events, "rage_click")) == 1, types(events)
    assert len(dead(clicks(events))) == n_clicks
    mood = shop.mood()
    assert mood["mood"] == "frustrated" and mood["suggested_action"] == "show_live_chat", mood
    return events


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
