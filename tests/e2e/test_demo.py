"""The demo shop (examples/demo_site) in a real Chromium against a real server.

The server is a ``sessionmood serve`` of the module's own, so the demo tenant's
keys are known: the secret key is read from the ``Dashboard: …#key=sm_…`` line
the server prints on start. Shoppers drive the pages with real mouse and
keyboard input; time-based behaviour (typing pauses, idling) runs on
Playwright's fake clock, so no test sleeps through a threshold.

``SESSIONMOOD_DOCS_IMG=1`` also refreshes the README's screenshots in docs/img/.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.conftest import ROOT, LiveServer

DOCS_IMG = ROOT / "docs" / "img"
UPDATE_DOCS_IMG = os.environ.get("SESSIONMOOD_DOCS_IMG") == "1"
SHOPPER = {
    "Email": "ana@example.com",
    "Full name": "Ana Silva",
    "Address": "Rua das Flores 12",
    "City": "Porto",
    "Postcode": "4050-262",
    "Card number": "4242 4242 4242 4242",
    "Expiry": "08/28",
    "Security code (CVC)": "123",
}


# -- the server and its demo tenant ---------------------------------------------


@dataclass
class Demo:
    """A running ``sessionmood serve`` with the demo on, and its demo secret key."""

    server: LiveServer
    secret: str
    dashboard_url: str  # with #key=… as printed

    @property
    def base(self) -> str:
        return self.server.base_url

    def url(self, path: str = "") -> str:
        return f"{self.base}/demo/{path}"

    def get(self, path: str) -> dict[str, Any]:
        r = httpx.get(self.base + path, headers={"X-Api-Key": self.secret}, timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def mood(self, sid: str) -> dict[str, Any]:
        return self.get(f"/v1/sessions/{quote(sid, safe='')}/mood")

    def events(self, sid: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/sessions/{quote(sid, safe='')}/events")["events"])


def start_demo(tmp: Path) -> Demo:
    log = tmp / "serve.log"
    server = LiveServer(database_url=f"sqlite:///{tmp / 'demo.db'}", log_path=log, args=["--demo"])
    server.start()
    # The banner is printed in the lifespan, before the server answers /health.
    m = re.search(r"Dashboard:\s+(\S+#key=(sm_\w+))", log.read_text())
    if m is None:
        server.stop()
        raise AssertionError(f"no demo banner in the server log:\n{log.read_text()}")
    return Demo(server, m.group(2), m.group(1))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(tmp_path_factory.mktemp("demo"))
    yield d
    d.server.stop()


# -- the browser: no console errors, ever ----------------------------------------


@dataclass
class Console:
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.set_default_timeout(10_000)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return page

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not any(a.search(msg.text) for a in self.allowed):
            self.errors.append(f"console: {msg.text}")


@pytest.fixture
def console(page: Page) -> Iterator[Console]:
    c = Console()
    c.watch(page)
    yield c
    assert c.errors == []


# -- shopper steps -----------------------------------------------------------------


def session_id(page: Page) -> str:
    sid = page.evaluate("() => SessionMood.sessionId")
    assert isinstance(sid, str) and sid
    return sid


def to_checkout(page: Page, demo: Demo, product: str = "kettle") -> None:
    """Product page → cart → checkout, by clicking like a shopper."""
    page.goto(demo.url(f"product.html?id={product}"))
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="View cart").click()
    expect(page.locator("[data-cart-rows] tr")).to_have_count(1)
    page.get_by_role("link", name="Go to checkout").click()
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()


def fill_checkout(page: Page) -> None:
    for label, value in SHOPPER.items():
        page.get_by_label(label, exact=True).fill(value)


def pay_button(page: Page) -> Any:
    return page.get_by_role("button", name=re.compile(r"^Pay €"))


def feedback_of(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.text()
    return dict(json.loads(response.request.post_data or "{}"))


def wait_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a server-side condition, bounded."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def shot(page: Page, output_path: str, name: str, docs: str | None = None) -> None:
    """A full-page screenshot into the test's output folder, and optionally the
    viewport into docs/img/ for the README (SESSIONMOOD_DOCS_IMG=1)."""
    page.screenshot(
        path=str(Path(output_path) / f"{name}.png"), full_page=True, animations="disabled"
    )
    if docs and UPDATE_DOCS_IMG:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / docs), animations="disabled")


def frustrated_checkout(page: Page, demo: Demo) -> tuple[str, float]:
    """Two declined payments; answers the session id and the seconds from the
    second click on Pay to the live chat being on screen."""
    to_checkout(page, demo)
    fill_checkout(page)
    chat = page.get_by_test_id("live-chat")
    error = page.get_by_role("alert")

    pay_button(page).click()
    expect(error).to_contain_text("Payment declined")
    expect(pay_button(page)).to_have_attribute("aria-busy", "false")
    expect(chat).to_have_count(0)  # one failure is not frustration yet

    started = time.monotonic()
    pay_button(page).click()
    chat.wait_for(state="visible", timeout=10_000)
    elapsed = time.monotonic() - started
    expect(error).to_contain_text("Payment declined")
    return session_id(page), elapsed


# -- tests ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_frustrated_shopper_gets_live_chat_within_2s_of_the_second_payment_failure(
    demo: Demo, page: Page, console: Console, output_path: str
) -> None:
    sid, elapsed = frustrated_checkout(page, demo)
    assert elapsed < 2.0, f"live chat took {elapsed:.2f} s after the second failure"

    # The server saw what the page reported, and agrees with the page.
    errors = [e for e in demo.events(sid) if e["type"] == "error"]
    assert [e["message"] for e in errors] == ["Payment declined", "Payment declined"]
    mood = demo.mood(sid)
    assert mood["mood"] == "frustrated"
    assert mood["suggested_action"] == "show_live_chat"
    assert "repeated_errors" in mood["signals"]
    badge = page.get_by_test_id("mood-badge")
    expect(badge).to_contain_text("frustrated")
    expect(badge).to_contain_text("repeated errors")
    chat = page.get_by_test_id("live-chat")
    expect(chat).to_contain_text("payment did not go through")

    # Using the chat is feedback: helpful.
    with page.expect_response(re.compile(r"/feedback$")) as answer:
        chat.get_by_role("button", name="Yes, help me pay").click()
    assert feedback_of(answer.value) == {"action_taken": "show_live_chat", "was_helpful": True}
    expect(chat.locator(".msg.agent")).to_have_count(2)
    expect(chat.locator(".msg.agent").last).to_contain_text("press Pay once more")
    shot(page, output_path, "demo-chat", docs="demo-chat.png")

    # The third try goes through.
    pay_button(page).click()
    expect(page.get_by_role("heading", name="Thank you, your order is confirmed")).to_be_visible()
    actions = demo.get("/v1/analytics/actions")["actions"]
    assert {"mood": "frustrated", "action": "show_live_chat", "helpful": 1}.items() <= next(
        a for a in actions if a["action"] == "show_live_chat"
    ).items()


@pytest.mark.e2e
def test_rage_clicks_open_the_chat_and_closing_it_is_not_helpful(
    demo: Demo, page: Page, console: Console
) -> None:
    page.goto(demo.url("product.html?id=grinder"))
    # The product photo looks zoomable; it is not. Three quick clicks on it.
    box = page.locator("[data-product-figure]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for _ in range(3):
        page.mouse.click(x, y)

    chat = page.get_by_test_id("live-chat")
    expect(chat).to_be_visible()
    expect(chat).to_contain_text("not responding")
    expect(page.get_by_test_id("mood-badge")).to_contain_text("rage click detected")
    sid = session_id(page)
    assert "rage_click" in [e["type"] for e in demo.events(sid)]

    with page.expect_response(re.compile(r"/feedback$")) as answer:
        chat.get_by_role("button", name="Close chat").click()
    assert feedback_of(answer.value) == {"action_taken": "show_live_chat", "was_helpful": False}
    expect(chat).to_have_count(0)


@pytest.mark.e2e
def test_hesitant_shopper_gets_help_next_to_the_field(
    demo: Demo, page: Page, console: Console, output_path: str
) -> None:
    page.clock.install()  # before the page loads: the tracker's timers run on it
    page.goto(demo.url("checkout.html"))
    card = page.get_by_label("Card number")
    card.click()
    card.press_sequentially("4242 42")
    page.clock.fast_forward(4000)  # stuck mid-number...
    card.press_sequentially("42")  # ...and going on: input_pause of 4 s
    page.clock.fast_forward(3500)
    card.press_sequentially(" 4242")
    page.clock.run_for(2500)  # the next batch goes out

    tip = page.get_by_test_id("help-tooltip")
    expect(tip).to_be_visible()
    # Beside the field the visitor hesitated on, and announced with it.
    expect(page.locator(".field:has(#card-number)").get_by_test_id("help-tooltip")).to_have_count(1)
    expect(card).to_have_attribute("aria-describedby", "help-tip")
    expect(tip).to_contain_text("Card number")
    expect(page.get_by_test_id("mood-badge")).to_contain_text("confused")
    sid = session_id(page)
    pauses = [e for e in demo.events(sid) if e["type"] == "input_pause"]
    assert pauses and all(e["duration_ms"] >= 2500 for e in pauses)
    shot(page, output_path, "demo-tooltip")

    with page.expect_response(re.compile(r"/feedback$")) as answer:
        tip.get_by_role("button", name="Thanks, that helps").click()
    assert feedback_of(answer.value) == {"action_taken": "show_tooltip", "was_helpful": True}
    expect(tip).to_have_count(0)
    expect(card).not_to_have_attribute("aria-describedby", "help-tip")


@pytest.mark.e2e
def test_shopper_who_fills_the_form_then_hesitates_on_the_card_number_gets_help(
    demo: Demo, page: Page, console: Console
) -> None:
    # The natural flow: the form filled top to bottom at a steady pace, then two
    # 4-second hesitations on the card number. The page's clock is paused, so
    # only the test moves it: a busy machine typing slowly in real time would
    # otherwise give an earlier field a typing pause of its own.
    page.clock.install()
    page.goto(demo.url("checkout.html"))
    page.clock.pause_at(page.evaluate("() => Date.now() / 1000") + 0.1)  # (seconds)
    for label, value in list(SHOPPER.items())[:5]:
        field = page.get_by_label(label, exact=True)
        field.click()
        for word in value.split(" "):
            field.press_sequentially(word + " ")
            page.clock.run_for(900)
        page.clock.run_for(1500)
    card = page.get_by_label("Card number")
    card.click()
    card.press_sequentially("4242 42")
    page.clock.fast_forward(4000)  # stuck...
    card.press_sequentially("42 42")
    page.clock.fast_forward(4000)  # ...and stuck again
    card.press_sequentially("42 4242")
    page.clock.run_for(2500)  # the next batch goes out

    tip = page.get_by_test_id("help-tooltip")
    expect(tip).to_be_visible()
    expect(page.locator(".field:has(#card-number)").get_by_test_id("help-tooltip")).to_have_count(1)
    expect(tip).to_contain_text("Card number")
    mood = demo.mood(session_id(page))
    assert mood["mood"] == "confused" and mood["suggested_action"] == "show_tooltip", mood
    assert "input_hesitation" in mood["signals"]


@pytest.mark.e2e
def test_the_exit_offer_never_takes_the_keyboard_from_someone_typing(
    demo: Demo, page: Page, console: Console
) -> None:
    page.clock.install()
    page.goto(demo.url("checkout.html"))
    email = page.get_by_label("Email", exact=True)
    email.click()
    email.press_sequentially("ana@")
    page.clock.run_for(12_500)  # away with the caret in the field: disengaged

    offer = page.get_by_test_id("exit-offer")
    expect(offer).to_be_visible()
    assert page.evaluate("() => document.activeElement.id") == "email"
    assert page.evaluate("() => document.querySelector('.offer').matches(':modal')") is False
    email.press_sequentially("example.com")  # typing goes on, into the field
    expect(email).to_have_value("ana@example.com")
    expect(offer).to_be_visible()

    # Someone not typing gets the usual modal offer.
    page.goto(demo.url("product.html?id=beans"))
    page.clock.run_for(12_500)
    expect(page.get_by_test_id("exit-offer")).to_be_visible()
    assert page.evaluate("() => document.querySelector('.offer').matches(':modal')") is True


@pytest.mark.e2e
@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_mood_badge_is_always_in_sight_and_never_covers_a_label(
    demo: Demo, page: Page, console: Console, viewport: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    page.goto(demo.url("checkout.html"))
    expect(page.get_by_test_id("mood-badge")).to_be_visible()
    # At every scroll position: the badge is on screen, and every label whose
    # middle is on screen (below the sticky header) is what is there.
    problems = page.evaluate(
        """async () => {
            const problems = [];
            const badge = document.querySelector('[data-testid=mood-badge]');
            const header = document.querySelector('.site-header');
            const end = document.documentElement.scrollHeight - innerHeight;
            for (let y = 0; y <= end + 40; y += 40) {
                scrollTo(0, y);
                await new Promise(r => requestAnimationFrame(r));
                const b = badge.getBoundingClientRect();
                if (b.top < 0 || b.bottom > innerHeight || !b.width) {
                    problems.push('badge off screen at ' + y);
                }
                const top = header.getBoundingClientRect().bottom;
                for (const label of document.querySelectorAll('label')) {
                    const r = label.getBoundingClientRect();
                    const x = r.left + Math.min(r.width / 2, 20), my = r.top + r.height / 2;
                    if (!r.width || my < top || my > innerHeight) continue;
                    const hit = document.elementFromPoint(x, my);
                    if (!hit || hit.closest('label') !== label) {
                        const by = hit && hit.className;
                        problems.push(label.textContent + ' covered at ' + y + ' by ' + by);
                    }
                }
            }
            return problems;
        }"""
    )
    assert problems == []


# Every element inside ``root`` that is cut off: wider than its own box
# (scrollWidth > clientWidth) or reaching outside ``root``'s box.
CLIPPED = """root => {
    const box = root.getBoundingClientRect(), out = [];
    for (const e of [root, ...root.querySelectorAll('*')]) {
        const r = e.getBoundingClientRect();
        if (!r.width) continue;
        const what = (e.className || e.tagName) + ' ' + JSON.stringify(e.textContent.slice(0, 40));
        if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).display !== 'inline') {
            out.push(what + ': ' + e.scrollWidth + ' wide in ' + e.clientWidth);
        }
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
            out.push(what + ': ' + [r.left, r.right, 'outside', box.left, box.right].join(' '));
        }
    }
    return out;
}"""


@pytest.mark.e2e
def test_the_mood_badge_shows_its_signals_whole_on_a_phone(
    demo: Demo, page: Page, console: Console
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    frustrated_checkout(page, demo)
    badge = page.get_by_test_id("mood-badge")
    signals = badge.locator(".signal")
    expect(signals).to_have_count(2)  # the two the badge shows, the longest names there are
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert badge.evaluate(CLIPPED) == []
    box = badge.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


@pytest.mark.e2e
def test_idle_shopper_gets_the_exit_offer(
    demo: Demo, page: Page, console: Console, output_path: str
) -> None:
    page.clock.install()
    page.goto(demo.url("product.html?id=beans"))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("added.")).to_be_visible()
    page.clock.run_for(12_500)  # nobody touches anything past the 10 s idle threshold

    offer = page.get_by_test_id("exit-offer")
    expect(offer).to_be_visible()
    expect(page.get_by_role("dialog", name="10% off your order, today only")).to_be_visible()
    expect(page.get_by_test_id("mood-badge")).to_contain_text("disengaged")
    assert demo.mood(session_id(page))["mood"] == "disengaged"
    shot(page, output_path, "demo-exit-offer")

    with page.expect_response(re.compile(r"/feedback$")) as answer:
        offer.get_by_role("button", name="No thanks").click()
    assert feedback_of(answer.value) == {"action_taken": "show_exit_offer", "was_helpful": False}
    expect(offer).to_have_count(0)


@pytest.mark.e2e
def test_browsing_shopper_gets_recommendations(
    demo: Demo, page: Page, console: Console, output_path: str
) -> None:
    page.clock.install()
    page.goto(demo.url())
    # A relaxed look around: a product every few seconds, back to the list, another.
    for product in ("Stoneware mug, speckled", "Ceramic V60 dripper", "Loose-leaf sencha"):
        page.clock.run_for(4000)
        page.get_by_role("link", name=re.compile(re.escape(product))).first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text(product)
        page.clock.run_for(4000)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Shop").click()
    page.clock.run_for(2500)

    recs = page.get_by_test_id("recommendations")
    expect(recs).to_be_visible()
    expect(recs.get_by_role("link")).to_have_count(3)
    expect(page.get_by_test_id("mood-badge")).to_contain_text("browsing")
    shot(page, output_path, "demo-recommendations")
    # The click navigates away: the feedback is a keepalive request that outlives the page.
    with page.expect_request(re.compile(r"/feedback$")) as sent:
        recs.get_by_role("link").first.click()
    assert json.loads(sent.value.post_data or "{}") == {
        "action_taken": "show_recommendations",
        "was_helpful": True,
    }
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Brew it slowly. Drink it warm.")
    wait_until(
        lambda: any(
            a["action"] == "show_recommendations" and a["helpful"] >= 1
            for a in demo.get("/v1/analytics/actions")["actions"]
        )
    )


@pytest.mark.e2e
def test_every_page_renders_without_errors_and_escapes_nothing_unsafely(
    demo: Demo, page: Page, console: Console
) -> None:
    for path, heading in [
        ("", "Brew it slowly. Drink it warm."),
        ("product.html?id=tea", "Loose-leaf sencha"),
        ("product.html?id=%3Cimg%20src%3Dx%3E", "Stoneware mug, speckled"),  # unknown id
        ("cart.html", "Your cart"),
        ("checkout.html", "Checkout"),
    ]:
        page.goto(demo.url(path))
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_test_id("mood-badge")).to_be_visible()
    # The publishable key was filled in by the server, never a secret one.
    src = page.locator("script[data-api-key]")
    assert (src.get_attribute("data-api-key") or "").startswith("pk_")
    assert demo.secret not in page.content()
