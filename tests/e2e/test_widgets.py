"""tracker.js on pages built from real widget libraries, as a site's visitors use them.

The widgets come from the npm registry (``tests/e2e/widgets/package.json``,
pinned by its lockfile, installed by ``make widgets``): a flatpickr calendar, a
Swiper carousel, a Grid.js table with pagination, a noUiSlider, Bootstrap's
switch and dropdown, Tom Select, and a Vue Router single-page app. Each test
drives them with real mouse, keyboard or touch input (``any_shop`` runs a
test on a desktop and on an emulated phone) and asserts on what the server
stored and the mood it answers.

What must hold: repeated clicks that the page answers (calendar arrows,
carousels, pagination, steppers, toggles, "load more") are never
``rage_click``, whatever their labels; clicks that get no answer (a disabled
button, a dead div, a handler that throws, a dead button beside a ticking
countdown) are; scrolling the page did by itself (an SPA router, smooth
anchors, "back to top") is never ``scroll`` or ``backtrack``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import Shop, assert_calm, assert_rage, clicks, dead, of

pytestmark = pytest.mark.e2e


# -- answered repeats: never rage ---------------------------------------------


def test_calendar_month_arrow_clicked_to_reach_a_date_is_not_rage(any_shop: Shop) -> None:
    shop = any_shop
    shop.open("widgets.html")
    page = shop.page
    month = """() => {
        const f = document.querySelector('#date')._flatpickr;
        return f.currentYear * 12 + f.currentMonth;
    }"""
    before = page.evaluate(month)
    shop.clicks(".flatpickr-next-month", 6, gap_ms=120)  # an icon-only arrow
    assert page.evaluate(month) == before + 6
    shop.clicks(".flatpickr-day:not(.prevMonthDay):not(.nextMonthDay)", 1)
    assert_calm(shop, 7)


def test_carousel_arrows_are_not_rage(any_shop: Shop) -> None:
    shop = any_shop
    shop.open("widgets.html")
    shop.clicks("#carousel-next", 5, gap_ms=100)
    shop.page.wait_for_function(
        "() => document.querySelector('#carousel').swiper.activeIndex === 5"
    )
    shop.clicks("#carousel-prev", 3, gap_ms=100)
    assert_calm(shop, 8)


def test_pagination_is_not_rage(any_shop: Shop) -> None:
    shop = any_shop
    shop.open("widgets.html")
    page = shop.page
    page.wait_for_selector(".gridjs-pages button")
    first_cell = "() => document.querySelector('.gridjs-tbody tr td').textContent"
    for i in range(4):  # "Next" moves as page numbers come and go: the visitor follows it
        shop.clicks(".gridjs-pages button:last-child", 1)
        # A visitor looks at the new page before aiming again: wait for it, not
        # for a fixed time (a tap on a busy machine may not be answered yet).
        page.wait_for_function(f"() => ({first_cell})() === 'Day {6 + 5 * i}'")
    assert page.evaluate(first_cell) == "Day 21"
    assert_calm(shop, 4)


def test_icon_only_stepper_is_not_rage(any_shop: Shop) -> None:
    shop = any_shop
    shop.open("widgets.html")
    shop.clicks("#more", 5, gap_ms=80)
    shop.clicks("#fewer", 3, gap_ms=80)
    assert shop.page.locator("#guests").text_content() == "4"
    assert_calm(shop, 8)


def test_load_more_is_not_rage(any_shop: Shop) -> None:
    shop = any_shop
    shop.open("widgets.html")
    for i in range(4):  # the button moves down as reviews appear: the visitor follows it
        shop.clicks("#load-more", 1)
        shop.page.wait_for_function(
            f"() => document.querySelectorAll('#more-list li').length === {3 * (i + 1)}"
        )
    assert shop.page.locator("#more-list li").count() == 12
    assert_calm(shop, 4)


def test_switch_toggled_by_its_label_is_one_click_each_and_not_rage(any_shop: Shop) -> None:
    # The browser sends a second click to the control of a <label for>: the
    # visitor clicked once.
    shop = any_shop
    shop.open("widgets.html")
    shop.clicks("#gift-label", 5, gap_ms=100)
    assert shop.page.locator("#gift").is_checked()
    assert_calm(shop, 5)


def test_slider_dragged_four_times_is_not_rage(shop: Shop) -> None:
    shop.open("widgets.html")
    page = shop.page
    page.locator("#price").scroll_into_view_if_needed()
    for i in range(4):
        x, y = shop.center("#price .noUi-handle")
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (40 if i % 2 == 0 else -25), y, steps=5)
        page.mouse.up()  # each drag ends in a click on the handle
    assert page.evaluate("() => +document.querySelector('#price').noUiSlider.get()") != 40
    assert_calm(shop, 4)


def test_dropdowns_operated_with_the_keyboard_are_not_rage(shop: Shop) -> None:
    shop.open("widgets.html")
    page = shop.page
    for _ in range(2):  # Bootstrap's dropdown: Enter opens, arrows move, Enter picks
        page.focus("#time-toggle")
        page.keyboard.press("Enter")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
    assert page.locator("#time-chosen").text_content() == "14:00"
    page.locator("#room-ts-control").focus()  # Tom Select: arrows and Enter
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.querySelector('#room').value") in {"Library", "Cellar"}
    events = assert_calm(shop, 4)
    # Keyboard activations have no coordinates (they would all be 0,0).
    assert all("x" not in e and "y" not in e for e in clicks(events))


def test_selecting_a_word_then_a_paragraph_is_not_rage(shop: Shop) -> None:
    shop.open("widgets.html")
    page = shop.page
    page.locator("#prose").scroll_into_view_if_needed()
    x, y = shop.center("#prose")
    page.mouse.dblclick(x, y)
    page.mouse.click(x, y, click_count=3)
    assert page.evaluate("() => getSelection().toString()").startswith("Selecting")
    assert_calm(shop, 5)


# -- unanswered repeats: rage, at once ----------------------------------------


def open_trouble(shop: Shop, **attrs: str) -> None:
    """The checkout in trouble, once its countdown has ticked a few times: a
    visitor reads a page before hammering it (tickers are learned meanwhile)."""
    shop.open("trouble.html", **attrs)
    shop.page.wait_for_function(
        "() => !/10:00|9:59|9:58/.test(document.querySelector('#countdown').textContent)"
    )


def test_hammering_a_disabled_button_is_rage(any_shop: Shop) -> None:
    # Chromium fires no click on a disabled control, only pointer events.
    shop = any_shop
    open_trouble(shop)
    shop.clicks("#pay-disabled", 5)
    assert_rage(shop, 5)


def test_a_dead_div_button_is_rage(any_shop: Shop) -> None:
    shop = any_shop
    open_trouble(shop)
    shop.clicks("#coupon", 4, gap_ms=120)
    assert_rage(shop, 4)


def test_a_handler_that_throws_is_rage(any_shop: Shop) -> None:
    shop = any_shop
    open_trouble(shop)
    shop.clicks("#confirm", 4, gap_ms=100)
    events = assert_rage(shop, 4)
    assert 1 <= len(of(events, "error")) <= 3  # the same message at most 3 times a minute


def test_a_dead_button_is_rage_while_a_countdown_ticks_beside_it(any_shop: Shop) -> None:
    shop = any_shop
    open_trouble(shop)
    shop.clicks("#claim", 5, gap_ms=150)  # the countdown changes during the burst
    assert_rage(shop, 5)


def test_help_arrives_within_a_second_of_hammering_a_dead_pay_button(any_shop: Shop) -> None:
    shop = any_shop
    open_trouble(shop, flush_interval="2000")
    page = shop.page
    shop.clicks("#pay", 4)
    page.wait_for_function("() => __moods.some(m => m.mood === 'frustrated')", timeout=5000)
    mood = page.evaluate("() => __moods.find(m => m.mood === 'frustrated')")
    assert 0 < mood["at"] - page.evaluate("() => __lastClick") < 1000
    assert mood["suggested_action"] == "show_live_chat"
    assert "rage_click_detected" in mood["signals"]


def test_only_a_click_that_got_no_answer_is_dead(shop: Shop) -> None:
    open_trouble(shop)
    shop.clicks("#coupon", 1)  # nothing happens
    shop.page.wait_for_timeout(1100)
    with shop.page.expect_navigation():
        shop.clicks("#back", 1)  # a link: the page it opens is its answer
    shop.clicks("#more", 1)  # the count changes
    shop.flush()
    assert [bool(e.get("dead")) for e in clicks(shop.events())] == [True, False, False]


# -- scrolling: only the visitor's ----------------------------------------------


def settle_scrolling(page: Page) -> None:
    """Wait until a smooth scroll has come to rest."""
    page.evaluate(
        """() => new Promise(done => {
            let y = scrollY;
            const still = setInterval(() => {
                if (scrollY === y) { clearInterval(still); done(); }
                y = scrollY;
            }, 150);
        })"""
    )


def wheel_read(page: Page, steps: int, dy: int = 240, pause_ms: int = 700) -> None:
    """Reading: a wheel notch or two, then a pause."""
    for _ in range(steps):
        page.mouse.wheel(0, dy)
        page.wait_for_timeout(pause_ms)


def finger_scroll(shop: Shop, dy: int, steps: int = 12) -> None:
    """A real touch drag on the phone (CDP touch events: Chromium scrolls for them)."""
    page = shop.page
    cdp = page.context.new_cdp_session(page)
    x, y = 200, 600 if dy > 0 else 200
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, steps + 1):
        point = {"x": x, "y": y - dy * i / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def read_down(shop: Shop, steps: int = 3) -> None:
    if shop.mobile:
        for _ in range(steps):
            finger_scroll(shop, 220)
            shop.page.wait_for_timeout(900)
    else:
        wheel_read(shop.page, steps)


def test_a_calm_browser_across_four_spa_routes_reads_calm(any_shop: Shop) -> None:
    # Vue Router scrolls to the top on every route change: the page's doing.
    shop = any_shop
    shop.open("spa/")
    page = shop.page
    for route in ("teas", "coffee", "tools", "home"):
        read_down(shop)
        assert page.evaluate("scrollY") > 300
        shop.clicks(f"#nav-{route}", 1)
        page.wait_for_function("() => scrollY === 0")
        page.wait_for_timeout(300)
    shop.flush()
    events = shop.events()
    assert [e["url"] for e in of(events, "page_view")] == [
        "/spa/",
        "/spa/teas",
        "/spa/coffee",
        "/spa/tools",
        "/spa/",
    ]
    scrolls = of(events, "scroll")
    assert scrolls and all(s["direction"] == "down" for s in scrolls), scrolls
    assert max(s["speed"] for s in scrolls) < 2000
    assert of(events, "backtrack") == []
    assert shop.mood()["mood"] not in ("confused", "frustrated")


def test_smooth_anchors_and_back_to_top_are_not_the_visitors_scrolling(shop: Shop) -> None:
    shop.open("spa/teas")
    page = shop.page
    for n in (3, 2, 4):  # the table of contents: smooth jumps down and up
        before = page.evaluate("scrollY")
        shop.clicks(f"#toc-{n}", 1)
        page.wait_for_function("y => scrollY !== y", arg=before)
        settle_scrolling(page)
    shop.clicks("#to-top", 1)
    page.wait_for_function("() => scrollY === 0")
    settle_scrolling(page)
    shop.flush()
    events = shop.events()
    assert of(events, "scroll") == [] and of(events, "backtrack") == []
    assert dead(events) == []  # each jump answered its click


def test_rereading_with_the_wheel_and_flinging_still_count(shop: Shop) -> None:
    shop.open("spa/tools")
    page = shop.page
    wheel_read(page, 4, dy=300, pause_ms=400)
    wheel_read(page, 2, dy=-300, pause_ms=400)  # back up to re-read: backtrack
    for _ in range(6):  # flinging the page
        page.mouse.wheel(0, 1500)
        page.wait_for_timeout(60)
    page.wait_for_timeout(400)
    shop.flush()
    events = shop.events()
    assert len(of(events, "backtrack")) == 1
    assert any(s["direction"] == "up" for s in of(events, "scroll"))
    assert max(s["speed"] for s in of(events, "scroll")) >= 2000


# -- a phone ------------------------------------------------------------------------


@pytest.mark.parametrize("any_shop", ["phone"], indirect=True)
def test_on_a_phone_taps_finger_scrolling_and_idle_are_captured_and_hover_is_not(
    any_shop: Shop,
) -> None:
    shop = any_shop
    assert shop.mobile
    page = shop.page
    page.clock.install()
    shop.open("widgets.html")
    shop.clicks("#more", 1)  # a tap is a click
    x, y = shop.center("#gift-label")
    page.touchscreen.tap(x, y)  # resting after a tap is no hover
    page.clock.run_for(3000)
    finger_scroll(shop, 300)
    page.wait_for_timeout(600)
    page.clock.run_for(600)
    page.clock.fast_forward(11_000)  # nobody touches anything: idle
    shop.flush()
    events = shop.wait_for(lambda ev: bool(of(ev, "idle")))
    assert len(clicks(events)) == 2 and dead(events) == []
    assert all(c["x"] > 0 and c["y"] > 0 for c in clicks(events))
    assert of(events, "scroll") and of(events, "scroll")[0]["direction"] == "down"
    assert of(events, "hover") == []
    assert of(events, "idle")[0]["duration_ms"] >= 10_000
