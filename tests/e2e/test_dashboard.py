"""The dashboard (sessionmood_server/dashboard, served at /dashboard/) in a real
Chromium, on data made by real shoppers in the demo shop.

The live feed is checked while the test acts in another tab: a shopper gets
frustrated there and the entry must appear on the dashboard without a reload.

``SESSIONMOOD_DOCS_IMG=1`` also refreshes docs/img/dashboard.png for the README
(after seeding a realistic mix of sessions through the API).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from sessionmood_server.storage.shared import DEMO_CUSTOMER
from tests.conftest import ROOT
from tests.e2e.test_demo import (
    CLIPPED,
    DOCS_IMG,
    UPDATE_DOCS_IMG,
    Console,
    Demo,
    frustrated_checkout,
    session_id,
    shot,
    start_demo,
    wait_until,
)

KEY_STORE = "sessionmood_dashboard_key"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(tmp_path_factory.mktemp("dashboard"))
    yield d
    d.server.stop()


@pytest.fixture
def console(page: Page) -> Iterator[Console]:
    c = Console()
    c.watch(page)
    yield c
    assert c.errors == []


def rage_click_product(page: Page, demo: Demo) -> str:
    """A shopper clicks three times on a product photo that does nothing."""
    page.goto(demo.url("product.html?id=mug"))
    box = page.locator("[data-product-figure]").bounding_box()
    assert box is not None
    for _ in range(3):
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_test_id("live-chat")).to_be_visible()
    return session_id(page)


def rage_on_the_dead_wallet(page: Page, demo: Demo) -> str:
    """A shopper at checkout hammers the express-pay button, which does nothing."""
    page.goto(demo.url("checkout.html"))
    wallet = page.locator("[data-wallet]")
    wallet.scroll_into_view_if_needed()
    box = wallet.bounding_box()
    assert box is not None
    for _ in range(4):
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_test_id("live-chat")).to_be_visible()
    return session_id(page)


def publishable_key(demo: Demo) -> str:
    m = re.search(r'data-api-key="(pk_\w+)"', httpx.get(demo.url()).text)
    assert m is not None
    return m.group(1)


@pytest.mark.e2e
def test_dashboard_shows_shopper_data_and_streams_mood_changes_live(
    demo: Demo, browser: Browser, page: Page, console: Console, output_path: str
) -> None:
    # A shopper whose payment fails twice, before the dashboard is open.
    shop_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        shop = console.watch(shop_context.new_page())
        first, _ = frustrated_checkout(shop, demo)
        with shop.expect_response(re.compile(r"/feedback$")):
            shop.get_by_test_id("live-chat").get_by_role("button", name="Yes, help me pay").click()

        # Signed in from the link the server printed; the key leaves the address bar.
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(demo.dashboard_url)
        expect(page).to_have_url(f"{demo.base}/dashboard/")
        assert page.evaluate("k => sessionStorage.getItem(k)", KEY_STORE) == demo.secret
        expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
        page.evaluate("() => { window.__sameDocument = true; }")

        # The aggregate panels show that shopper.
        dist = page.get_by_test_id("mood-distribution")
        expect(dist.locator('g[data-mood="frustrated"]')).to_have_attribute("data-count", "1")
        expect(dist.get_by_role("img")).to_have_attribute("aria-label", re.compile("frustrated 1"))
        heat = page.get_by_test_id("page-heatmap")
        checkout = heat.locator('tr[data-url="/demo/checkout.html"]')
        expect(checkout.locator('td[data-mood="frustrated"]')).to_have_text("100%")
        expect(checkout).to_have_attribute("data-frustration-rate", "1")
        expect(checkout.locator('td[data-mood="frustrated"]')).to_have_attribute(
            "style", re.compile(r"background:\s*rgb")
        )
        actions = page.get_by_test_id("action-effectiveness")
        chat_row = actions.locator('tr[data-action="show_live_chat"][data-mood="frustrated"]')
        expect(chat_row).to_contain_text("Live chat")
        expect(chat_row.locator("td.rate")).to_have_text("100%")
        feed = page.get_by_test_id("live-feed")

        # Meanwhile, in another tab, a second shopper gets frustrated.
        second = rage_click_product(console.watch(shop_context.new_page()), demo)
        assert second != first
        entry = feed.locator(f'li[data-session-id="{second}"][data-mood="frustrated"]')
        expect(entry).to_be_visible()
        expect(entry).to_contain_text("→")
        expect(entry).to_contain_text("/demo/product.html")
        expect(entry).to_contain_text("rage_click_detected")
        expect(entry.locator("code.sid")).to_have_attribute("title", second)

        # The aggregates follow without a reload.
        expect(dist.locator('g[data-mood="frustrated"]')).to_have_attribute("data-count", "2")
        product = heat.locator('tr[data-url="/demo/product.html"]')
        expect(product.locator('td[data-mood="frustrated"]')).not_to_have_text("·")
        assert page.evaluate("() => window.__sameDocument") is True
        shot(page, output_path, "dashboard")
    finally:
        shop_context.close()


@pytest.mark.e2e
def test_where_visitors_struggle_names_the_dead_pay_block_first_on_checkout(
    tmp_path: Path, browser: Browser, page: Page, console: Console
) -> None:
    demo = start_demo(tmp_path)  # a server of its own: these shoppers only
    shop_context = browser.new_context(viewport={"width": 1280, "height": 800})
    others: list[Any] = []
    try:
        shop = console.watch(shop_context.new_page())
        raged = rage_on_the_dead_wallet(shop, demo)
        # Another shopper's payment fails twice; one more just browses the shop
        # (each a browser of their own: the cart lives in localStorage).
        for other in (browser.new_context(), browser.new_context()):
            others.append(other)
        frustrated_checkout(console.watch(others[0].new_page()), demo)
        browse = console.watch(others[1].new_page())
        browse.goto(demo.url("index.html"))
        browse.goto(demo.url("product.html?id=mug"))
        checkout = "/demo/checkout.html"
        stored = [e for e in demo.events(raged) if e["type"] in ("click", "rage_click")]
        assert stored and {e.get("target") for e in stored} == {"Pay"}, stored

        def first_on_checkout() -> dict[str, Any] | None:
            found = demo.get(f"/v1/analytics/elements?page={checkout}")["elements"]
            return found[0] if found and found[0]["frustrated_sessions"] >= 2 else None

        wait_until(lambda: first_on_checkout() is not None)
        top = first_on_checkout()
        assert top is not None and top["target"] == "Pay", top
        assert top["rage_clicks"] >= 1 and top["dead_clicks"] >= 3 and top["error_clicks"] >= 1
        assert top["suggested_fix"] == "looks clickable but does nothing, or answers too slowly"
        everywhere = demo.get("/v1/analytics/elements")["elements"]
        assert (everywhere[0]["page"], everywhere[0]["target"]) == (checkout, "Pay")

        # The dashboard says the same, on a desktop and at phone width.
        for viewport in ({"width": 1280, "height": 900}, {"width": 390, "height": 844}):
            page.set_viewport_size(viewport)
            page.goto(demo.dashboard_url)
            panel = page.get_by_test_id("struggle")
            first_page = panel.locator(".struggle-page").first
            expect(first_page).to_have_attribute("data-page", checkout)
            first = first_page.locator("li.element").first
            expect(first).to_have_attribute("data-target", "Pay")
            expect(first).to_contain_text("looks clickable but does nothing")
            expect(first.locator(".signals")).to_contain_text("rage click")
            journeys = page.get_by_test_id("journeys")
            path = journeys.locator('li.journey[data-path="/demo/checkout.html"]')
            expect(path.locator("li.step").first).to_have_attribute(
                "data-frustration-starts", "true"
            )
            expect(path.locator('.moodbar span[data-mood="frustrated"]')).to_have_count(1)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
            for box in (first, path):
                assert box.evaluate(CLIPPED) == [], box.inner_text()
    finally:
        for context in (shop_context, *others):
            context.close()
        demo.server.stop()


@pytest.mark.e2e
def test_the_uplift_table_and_the_holdout_setting(
    tmp_path: Path, page: Page, console: Console
) -> None:
    demo = start_demo(tmp_path)  # a server of its own: only these sessions
    try:
        h = {"X-Api-Key": demo.secret}
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(demo.dashboard_url)
        panel = page.get_by_test_id("uplift")
        expect(panel.locator(".empty")).to_contain_text("Set a holdout share")
        # The owner holds out 50 % from the dashboard; the server has it.
        panel.locator("[data-holdout-share]").fill("50")
        panel.get_by_role("button", name="Save").click()
        expect(panel.locator("[data-holdout-status]")).to_contain_text("50% of new sessions")
        assert demo.get("/v1/holdout")["share"] == 0.5
        # Frustrated visitors, most treated ones buying, few held-out ones.
        held = treated = 0
        for i in range(400):
            sid = f"u{i}"
            send(demo, sid, [{"type": "page_view", "url": "/demo/checkout.html"}, *FRUSTRATED])
            group = demo.mood(sid)["holdout"]
            held, treated = held + group, treated + (not group)
            if (not group and i % 2 == 0) or (group and i % 10 == 0):
                httpx.post(
                    f"{demo.base}/v1/sessions/{sid}/conversions",
                    json={"name": "purchase"},
                    headers=h,
                ).raise_for_status()
        page.reload()
        row = panel.locator('tr[data-mood="frustrated"][data-action="show_live_chat"]')
        expect(row).to_have_attribute("data-verdict", "helps")
        expect(row.locator(".verdict")).to_have_text("Helps")
        expect(row.locator(".interval")).to_contain_text("pts [+")
        expect(panel.locator("tr.overall")).to_contain_text("All actions")
        api = demo.get("/v1/analytics/uplift?name=purchase")["uplift"][0]
        assert (api["treated_sessions"], api["control_sessions"]) == (treated, held)
        assert api["verdict"] == "helps"
        # Another conversion name: collecting data, with the sessions still needed.
        panel.locator("[data-uplift-name]").fill("newsletter")
        panel.get_by_role("button", name="Save").click()
        expect(row).to_have_attribute("data-verdict", "unclear")
        expect(row.locator(".needed")).to_contain_text("more sessions per group")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        rows = panel.locator("tbody tr")
        for i in range(rows.count()):
            assert rows.nth(i).evaluate(CLIPPED) == [], rows.nth(i).inner_text()
        assert panel.locator("form").evaluate(CLIPPED) == []
    finally:
        demo.server.stop()


@pytest.mark.e2e
def test_a_bad_key_goes_back_to_sign_in_with_a_clear_message(
    demo: Demo, page: Page, console: Console
) -> None:
    # The browser logs every 401 answer as a console error: those are the point here.
    console.allowed.append(re.compile(r"status of 40[13]"))
    page.goto(f"{demo.base}/dashboard/#key=sm_{'0' * 48}")
    expect(page.get_by_role("alert")).to_contain_text("not accepted (401)")
    key_field = page.get_by_label("Secret API key")
    expect(key_field).to_be_focused()
    expect(page.get_by_test_id("mood-distribution")).to_be_hidden()
    assert page.evaluate("k => sessionStorage.getItem(k)", KEY_STORE) is None
    assert "#" not in page.url

    key_field.fill(publishable_key(demo))
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.get_by_role("alert")).to_contain_text("publishable")

    key_field.fill(demo.secret)
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.get_by_test_id("mood-distribution")).to_be_visible()
    expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")

    page.reload()  # the key survives a reload of the tab
    expect(page.get_by_test_id("mood-distribution")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(key_field).to_be_visible()
    assert page.evaluate("k => sessionStorage.getItem(k)", KEY_STORE) is None


@pytest.mark.e2e
def test_server_strings_are_rendered_as_text(demo: Demo, page: Page, console: Console) -> None:
    evil = '<img src=x onerror="window.__pwned=1">'
    page.goto(demo.dashboard_url)
    expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
    send(demo, evil, [{"type": "page_view", "url": "/" + evil}, *FRUSTRATED])
    entry = page.get_by_test_id("live-feed").locator("li").filter(has_text="<img")
    expect(entry.first).to_contain_text(evil[:21])
    row = page.get_by_test_id("page-heatmap").locator("tr").filter(has_text="/<img src=x")
    expect(row).to_have_count(1)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("[data-testid] img").count() == 0


# -- seeding a realistic picture for the README ------------------------------------

FRUSTRATED: list[dict[str, Any]] = [
    {"type": "click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment declined"},
    {"type": "error", "message": "Payment declined"},
]
PATTERNS: dict[str, tuple[str, list[tuple[float, dict[str, Any]]]]] = {
    "frustrated": (
        "checkout.html",
        [
            (4, {"type": "click", "x": 1, "y": 1, "target": "Pay"}),
            (9, {**FRUSTRATED[1], "target": "Pay"}),
            (15, FRUSTRATED[2]),
        ],
    ),
    "confused": (
        "checkout.html",
        [
            (2, {"type": "focus", "target": "input#postcode"}),
            (8, {"type": "input_pause", "duration_ms": 4200, "target": "input#postcode"}),
            (14, {"type": "input_pause", "duration_ms": 3600, "target": "input#postcode"}),
            (18, {"type": "hover", "duration_ms": 2600, "target": "label"}),
        ],
    ),
    "disengaged": (
        "product.html",
        [(3, {"type": "click", "x": 1, "y": 1}), (20, {"type": "idle", "duration_ms": 15000})],
    ),
    "browsing": (
        "index.html",
        [
            (4, {"type": "scroll", "speed": 300, "direction": "down"}),
            (9, {"type": "page_view", "url": "/demo/product.html"}),
            (15, {"type": "scroll", "speed": 250, "direction": "down"}),
            (21, {"type": "page_view", "url": "/demo/index.html"}),
            (27, {"type": "page_view", "url": "/demo/product.html"}),
        ],
    ),
    "decisive": (
        "product.html",
        [
            (0.5, {"type": "click", "x": 1, "y": 1}),
            (1, {"type": "click", "x": 1, "y": 1}),
            (1.6, {"type": "page_view", "url": "/demo/cart.html"}),
            (2, {"type": "click", "x": 1, "y": 1}),
        ],
    ),
    "focused": (
        "checkout.html",
        [
            (3, {"type": "focus"}),
            (7, {"type": "blur"}),
            (8, {"type": "focus"}),
            (12, {"type": "click", "x": 1, "y": 1}),
            (15, {"type": "blur"}),
            (17, {"type": "focus"}),
            (21, {"type": "click", "x": 1, "y": 1}),
            (24, {"type": "scroll", "speed": 200, "direction": "down"}),
        ],
    ),
}
FEEDBACK = {
    "frustrated": ("show_live_chat", 0.8),
    "confused": ("show_tooltip", 0.65),
    "disengaged": ("show_exit_offer", 0.35),
    "browsing": ("show_recommendations", 0.55),
}


def send(demo: Demo, sid: str, events: list[dict[str, Any]]) -> None:
    r = httpx.post(
        f"{demo.base}/v1/sessions/{quote(sid, safe='')}/events",
        json={"events": events},
        headers={"X-Api-Key": demo.secret},
    )
    assert r.status_code == 200, r.text


def seed(demo: Demo, n: int, rng: random.Random) -> None:
    """``n`` sessions with the engine's patterns, weighted like a real shop."""
    moods = rng.choices(
        list(PATTERNS), weights=[3, 3, 2, 5, 2, 3], k=n
    )  # frustrated, confused, disengaged, browsing, decisive, focused
    for mood in moods:
        page, steps = PATTERNS[mood]
        t0 = time.time() - 40
        sid = "v_" + "".join(rng.choices("abcdefghjkmnpqrstuvwxyz23456789", k=10))
        events = [{"type": "page_view", "url": f"/demo/{page}", "ts": t0}]
        events += [{**e, "ts": t0 + t} for t, e in steps]
        send(demo, sid, events)
        if mood in FEEDBACK:
            action, p = FEEDBACK[mood]
            httpx.post(
                f"{demo.base}/v1/sessions/{sid}/feedback",
                json={"action_taken": action, "was_helpful": rng.random() < p},
                headers={"X-Api-Key": demo.secret},
            ).raise_for_status()


@pytest.mark.e2e
def test_empty_panels_point_to_the_demo_shop_only_for_the_demo_tenant(
    tmp_path: Path, page: Page, console: Console
) -> None:
    demo = start_demo(tmp_path)  # a server of its own: nothing stored yet
    try:
        other = demo.server.new_key(customer="Acme Inc")
        page.goto(f"{demo.base}/dashboard/#key={other}")
        expect(page.locator("[data-customer]")).to_have_text("Signed in as Acme Inc")
        empty = page.locator(".empty")
        expect(empty).to_have_count(7)
        texts = " ".join(empty.all_text_contents())
        assert "demo" not in texts.lower() and "tracker.js" in texts and "/feedback" in texts

        page.evaluate(f"() => sessionStorage.removeItem('{KEY_STORE}')")
        page.goto("about:blank")  # (only the fragment differs: a real load, not a hash change)
        page.goto(demo.dashboard_url)
        expect(page.locator("[data-customer]")).to_have_text(f"Signed in as {DEMO_CUSTOMER}")
        expect(page.get_by_test_id("action-effectiveness").locator(".empty")).to_contain_text(
            "the demo shop reports"
        )
        expect(page.locator("[data-feed-empty]")).to_contain_text("demo shop")
    finally:
        demo.server.stop()


def test_the_dashboard_knows_the_demo_tenants_name() -> None:
    source = (ROOT / "sessionmood_server" / "dashboard" / "dashboard.js").read_text()
    assert f"const DEMO_CUSTOMER = '{DEMO_CUSTOMER}';" in source


@pytest.mark.e2e
def test_moods_by_page_reads_well_on_a_phone(tmp_path: Path, page: Page, console: Console) -> None:
    demo = start_demo(tmp_path)  # a server of its own: only the seeded pages
    try:
        seed(demo, 24, random.Random(3))
        send(demo, "long-url", [{"type": "page_view", "url": "/demo/" + "a-very-long-path/" * 8}])
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(demo.dashboard_url)
        rows = page.get_by_test_id("page-heatmap").locator("tbody tr")
        expect(rows.first).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        heatmap = page.get_by_test_id("page-heatmap").locator(".heatmap")
        box = heatmap.bounding_box()
        assert box is not None and box["width"] <= 390
        for i in range(rows.count()):
            row = rows.nth(i)
            url = row.locator(".url")
            expect(url).to_be_visible()
            assert (url.bounding_box() or {"width": 999})["width"] <= box["width"]
            # Every mood the page has is shown with its name; the ones it has not, hidden.
            for cell in row.locator(".cell").all():
                if cell.locator(".zero").count():
                    expect(cell).to_be_hidden()
                else:
                    expect(cell).to_be_visible()
                    label = cell.evaluate("c => getComputedStyle(c, '::before').content")
                    assert cell.get_attribute("data-mood") in label
    finally:
        demo.server.stop()


# The size each text of the distribution chart is drawn at on screen: its font
# size in the SVG's units times the SVG's scale.
DRAWN_FONT_SIZES = """svg => [...svg.querySelectorAll('text')].map(t =>
    [t.textContent, parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a])"""


@pytest.mark.e2e
def test_distribution_and_live_feed_read_well_on_a_phone(
    tmp_path: Path, page: Page, console: Console
) -> None:
    demo = start_demo(tmp_path)  # a server of its own
    try:
        rng = random.Random(5)
        seed(demo, 12, rng)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(demo.dashboard_url)
        chart = page.get_by_test_id("mood-distribution").locator("svg.bars")
        expect(chart).to_be_visible()
        sizes = chart.evaluate(DRAWN_FONT_SIZES)
        assert len(sizes) == 2 * 7  # a label and a value per mood
        assert [(text, size) for text, size in sizes if size < 12] == []
        # Labels stay clear of their bars, values inside the chart.
        overlaps = chart.evaluate(
            """svg => [...svg.querySelectorAll('g')].flatMap(g => {
                const [label, track] = [g.querySelector('.label'), g.querySelector('.track')];
                const [l, t, s] = [label, track, svg].map(e => e.getBoundingClientRect());
                const v = g.querySelector('.value').getBoundingClientRect();
                return (l.right > t.left ? [label.textContent] : [])
                    .concat(v.right > s.right + 0.5 ? [g.dataset.mood + ' value'] : []);
            })"""
        )
        assert overlaps == []
        # Mood changes arrive while the dashboard is open: long ids, long pages.
        feed = page.get_by_test_id("live-feed").locator("li")
        send(demo, "a-rather-long-session-identifier-0123456789", [
            {"type": "page_view", "url": "/demo/" + "a-very-long-path/" * 6},
            *[{"type": "rage_click", "x": 5, "y": 5} for _ in range(3)],
            {"type": "error", "message": "x"}, {"type": "error", "message": "x"},
        ])  # fmt: skip
        seed(demo, 5, rng)
        expect(feed).to_have_count(6, timeout=15_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        feed_box = page.locator("[data-feed]")
        assert feed_box.evaluate("f => f.scrollWidth <= f.clientWidth"), "the feed scrolls sideways"
        for i in range(feed.count()):
            assert feed.nth(i).evaluate(CLIPPED) == [], feed.nth(i).inner_text()
    finally:
        demo.server.stop()


@pytest.mark.e2e
@pytest.mark.skipif(not UPDATE_DOCS_IMG, reason="set SESSIONMOOD_DOCS_IMG=1 to refresh docs/img")
def test_refresh_readme_dashboard_screenshot(tmp_path: Path, page: Page, console: Console) -> None:
    demo = start_demo(tmp_path)  # a server of its own: only the seeded picture
    try:
        readme_dashboard(demo, page)
    finally:
        demo.server.stop()


def readme_dashboard(demo: Demo, page: Page) -> None:
    rng = random.Random(7)
    h = {"X-Api-Key": demo.secret}
    httpx.put(f"{demo.base}/v1/holdout", json={"share": 0.3}, headers=h).raise_for_status()
    seed(demo, 40, rng)
    # Purchases, more often where the action was given than where it was held back.
    for i in range(160):
        sid = f"buyer-{i}"
        send(demo, sid, [{"type": "page_view", "url": "/demo/checkout.html"}, *FRUSTRATED])
        if rng.random() < (0.12 if demo.mood(sid)["holdout"] else 0.3):
            httpx.post(
                f"{demo.base}/v1/sessions/{sid}/conversions",
                json={"name": "purchase", "value": round(rng.uniform(14, 90), 2)},
                headers=h,
            ).raise_for_status()
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(demo.dashboard_url)
    expect(page.locator("[data-stream-status]")).to_have_attribute("data-state", "live")
    seed(demo, 8, rng)  # a few changes while we watch: the live feed
    expect(page.get_by_test_id("live-feed").locator("li")).to_have_count(8)
    page.wait_for_timeout(2500)  # let the highlight of fresh entries fade for the picture
    expect(page.locator("[data-kpi=sessions]")).not_to_have_text("\u2013")
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "dashboard.png"), full_page=True, animations="disabled")
