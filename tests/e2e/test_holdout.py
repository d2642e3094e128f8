"""Proving the intervention pays, in real Chromium (issue 27): tracker.js's
``SessionMood.convert()`` counted once per session across a reload, and the
demo shop showing no help to a held-out visitor while a treated one gets the
live chat. Assertions read what the server stored and answered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Shop
from tests.e2e.test_dashboard import rage_on_the_dead_wallet
from tests.e2e.test_demo import Console, Demo, start_demo, wait_until

pytestmark = pytest.mark.e2e


def _conversions(shop: Shop) -> list[dict[str, Any]]:
    r = shop._get("/events")
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return list(r.json()["conversions"] or [])


def test_convert_is_counted_once_per_session_across_a_reload(shop: Shop) -> None:
    shop.open()
    assert shop.page.evaluate("() => SessionMood.convert('purchase', 42.5)") is True
    wait_until(lambda: len(_conversions(shop)) == 1)
    shop.page.reload()
    assert shop.page.evaluate("() => SessionMood.sessionId") == shop.sid
    assert shop.page.evaluate("() => SessionMood.convert('purchase', 42.5)") is True
    shop.page.evaluate("() => SessionMood.convert()")  # the default name: another conversion
    wait_until(lambda: len(_conversions(shop)) == 2)
    time.sleep(0.5)  # (a second purchase, were it counted, has had its time to land)
    got = sorted((c["name"], c["value"]) for c in _conversions(shop))
    assert got == [("conversion", None), ("purchase", 42.5)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(tmp_path_factory.mktemp("holdout"))
    r = httpx.put(d.base + "/v1/holdout", json={"share": 0.5}, headers={"X-Api-Key": d.secret})
    r.raise_for_status()
    yield d
    d.server.stop()


def _visitor_in(demo: Demo, held: bool) -> str:
    """A session id the server put in the holdout (or not), started with a page view."""
    for i in range(200):
        sid = f"{'held' if held else 'treated'}-{i}-{time.time_ns()}"
        r = httpx.post(
            f"{demo.base}/v1/sessions/{sid}/events",
            json={"events": [{"type": "page_view", "url": "/demo/index.html"}]},
            headers={"X-Api-Key": demo.secret},
        )
        r.raise_for_status()
        if r.json()["holdout"] is held:
            return sid
    raise AssertionError("no session id in the wanted group")


@pytest.mark.parametrize("held", [True, False], ids=["held-out", "treated"])
def test_the_demo_offers_the_chat_only_to_treated_visitors(
    demo: Demo, browser: Browser, held: bool
) -> None:
    sid = _visitor_in(demo, held)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"sessionStorage.setItem('sm_session_id', {sid!r})")
    console = Console()
    try:
        page: Page = console.watch(context.new_page())
        if held:
            page.goto(demo.url("checkout.html"))
            wallet = page.locator("[data-wallet]")
            box = wallet.bounding_box()
            assert box is not None
            for _ in range(4):
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            badge = page.get_by_test_id("mood-badge")
            # The page heard the answer: frustrated, held out, nothing to show.
            expect(badge).to_have_attribute("data-mood", "frustrated")
            expect(badge).to_have_attribute("data-holdout", "true")
            page.wait_for_timeout(1500)  # what a chat would need to open, and more
            expect(page.get_by_test_id("live-chat")).to_have_count(0)
        else:
            rage_on_the_dead_wallet(page, demo)  # waits for the chat
        assert page.evaluate("() => SessionMood.sessionId") == sid
        mood = demo.mood(sid)
        assert mood["mood"] == "frustrated"
        assert mood["holdout"] is held
        expected = ("no_action", "show_live_chat") if held else ("show_live_chat", None)
        assert (mood["suggested_action"], mood["held_out_action"]) == expected
        assert console.errors == []
    finally:
        context.close()
