"""static/tracker.js in a real Chromium against a real server.

The fixture pages are served from another origin than the API (another port),
the way a shop embeds the snippet. Every assertion reads what the *server*
stored (``GET /v1/sessions/{id}/events``) for the test's own session id: a
closing page's beacon may land during the next test, under its own id.
Time-based behaviour (hover, input pause, idle) runs on Playwright's fake
clock, so no test sleeps through a threshold.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Route

from tests.conftest import LiveServer
from tests.e2e.conftest import Shop, of, publishable, throw, types

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
def test_no_rage_click_in_fields_or_opt_outs_and_the_thresholds_are_options(shop: Shop) -> None:
    page = shop.page
    shop.open()
    for selector in ("#name", "#qty", "#note", "#optout"):  # fields place a caret; opted out
        shop.clicks(selector, 5)
    pay = shop.clicks("#pay", 3)  # the detector is alive: a dead button is rage
    shop.flush()
    events = shop.events()
    assert len(of(events, "click")) == 4 * 5 + 3
    [rage] = of(events, "rage_click")
    assert (rage["x"], rage["y"]) == pytest.approx(pay, abs=1)
    # Clicks in fields and opted-out elements are never dead either.
    assert [bool(e.get("dead")) for e in of(events, "click")] == [False] * 20 + [True] * 3

    # data-rage-clicks="5": three clicks are no longer rage, five are.
    shop.sid += "-options"
    shop.open(rage_clicks="5", dead_ms="300")
    shop.clicks("#pay", 3)
    page.wait_for_timeout(1200)
    shop.clicks("#pay", 5)
    shop.flush()
    assert len(of(shop.events(), "rage_click")) == 1


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
def test_a_server_down_from_the_start_is_retried_with_backoff_not_in_a_loop(shop: Shop) -> None:
    # The backoff doubles from 1 s (times a jitter in [0.5, 1)): in 3.5 s at
    # most the first try and three retries. A backoff exponent that starts
    # undefined makes every delay NaN, i.e. 0 ms: hundreds of requests.
    page = shop.page
    tries: list[float] = []

    def down(route: Route) -> None:
        tries.append(time.monotonic())
        route.fulfill(status=503, json={"error": "Service Unavailable"}, headers=CORS)

    page.route(re.compile(r"/v1/sessions/.*/events\?key="), down)
    shop.open()
    page.evaluate("() => SessionMood.flush()")
    page.wait_for_timeout(3500)
    assert 2 <= len(tries) <= 4, len(tries)
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert all(g >= 0.4 for g in gaps), gaps


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
def test_a_refused_key_stops_the_tracker_with_one_warning_in_the_servers_words(
    shop: Shop, live_server: LiveServer
) -> None:
    page = shop.page
    warnings: list[str] = []
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    elsewhere = publishable(live_server, shop.tenant.secret, "https://shop.example")
    with page.expect_response(re.compile(r"/events\?key=")) as refused:
        shop.open(api_key=elsewhere)
        page.click("#pay")
        shop.flush()
    assert refused.value.status == 403
    throw(page, "intentional: after the refusal")  # the tracker has stopped: sends nothing
    shop.flush()
    assert len(shop.posts) == 1
    assert shop.events() == []
    message = refused.value.json()["message"]
    assert warnings == [f"[SessionMood] 403 {message}: tracking stopped."]
    assert "is not allowed" in message

    # An unknown (or revoked) key: 401, the same single warning.
    warnings.clear()
    shop.open(api_key="pk_" + "0" * 48)
    page.click("#pay")
    shop.flush()
    shop.flush()
    assert len(warnings) == 1 and warnings[0].startswith("[SessionMood] 401 ")


@pytest.mark.e2e
def test_data_debug_logs_what_is_captured_and_sent(shop: Shop) -> None:
    page = shop.page
    logs: list[str] = []
    page.on("console", lambda m: m.type == "debug" and logs.append(m.text))
    shop.open(debug="")
    shop.clicks("#pay", 1)
    shop.flush()
    captured = [m for m in logs if m.startswith("[SessionMood] event")]
    sent = [m for m in logs if m.startswith("[SessionMood] sent")]
    assert len(captured) == 2 and "page_view" in captured[0] and "click" in captured[1]
    assert len(sent) == 1 and " 200 " in sent[0]

    logs.clear()  # without data-debug: silent
    shop.sid += "-quiet"
    shop.open()
    shop.clicks("#pay", 1)
    shop.flush()
    assert logs == []


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
