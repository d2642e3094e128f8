"""The element descriptor, the ``target`` tracker.js adds to the events that
happen on an element (docs/tracker.md, "Element descriptors").

On a page built from real widget libraries (``pages/descriptors.html``:
flatpickr, Swiper, Bootstrap, Tom Select, Grid.js), driven with real mouse,
keyboard and touch input, every assertion reads what the *server* stored: a
descriptor names the control that was used, distinct controls read distinct,
the same control reads the same after a reload, the site's ``data-sm-name``
wins, generated-looking names are skipped, nothing is over 120 characters,
and no text, value or attribute value of the page ever reaches the server
(its export and its SQLite files are searched for random tokens).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import LiveServer
from tests.e2e.conftest import Event, Shop, clicks, dead, of, throw

pytestmark = pytest.mark.e2e

PAGE = "descriptors.html"


def targets(events: list[Event]) -> list[str | None]:
    return [e.get("target") for e in events]


def click_all(shop: Shop, selectors: list[str]) -> list[str | None]:
    """Click (tap) each control once, in order, and return the stored click targets."""
    before = len(clicks(shop.events()))
    for selector in selectors:
        shop.clicks(selector, 1)
        # A visitor looks before aiming again: the next control may have moved.
        shop.page.wait_for_timeout(120)
    shop.flush()
    stored = clicks(shop.events())[before:]
    assert len(stored) == len(selectors), targets(stored)
    return targets(stored)


def matches(shop: Shop, target: str, selector: str) -> bool:
    """``target``, read as CSS, selects exactly one element: the one ``selector``
    names, or the control holding it (an icon's)."""
    return bool(
        shop.page.evaluate(
            """([t, s]) => {
                const all = document.querySelectorAll(t);
                return all.length === 1 && all[0].contains(document.querySelector(s));
            }""",
            [target, selector],
        )
    )


# Controls whose descriptor is a selector of the page as it stays (their
# widgets do not re-render them), each with what it must read.
STATIC = {
    ".items li:nth-child(1) button": (
        "ul.items.list-unstyled > li:nth-of-type(1) > button.btn.btn-sm"
    ),
    ".items li:nth-child(3) button": (
        "ul.items.list-unstyled > li:nth-of-type(3) > button.btn.btn-sm"
    ),
    ".toolbar button:nth-child(1)": "section.cart > div.toolbar > button:nth-of-type(1)",
    ".toolbar button:nth-child(2)": "section.cart > div.toolbar > button:nth-of-type(2)",
    "#save": "button#save",  # an id is unique enough: no ancestors
    ".btn-group button:nth-child(2)": (
        "section:nth-of-type(2) > div.btn-group > button.btn.btn-outline-secondary"
    ),
    "#carousel .swiper-button-next": "div#carousel > div.swiper-button-next",
    "#carousel .swiper-button-prev": "div#carousel > div.swiper-button-prev",
    # The icon names the arrow around it.
    ".flatpickr-next-month svg": (
        "div.flatpickr-calendar.animate > div.flatpickr-months > span.flatpickr-next-month"
    ),
    ".flatpickr-prev-month": (
        "div.flatpickr-calendar.animate > div.flatpickr-months > span.flatpickr-prev-month"
    ),
    # June 2031 (the page's calendar) starts on a Sunday: the 1st is the first <span>.
    ".dayContainer .flatpickr-day:nth-child(3)": (
        "div.flatpickr-days > div.dayContainer > span.flatpickr-day:nth-of-type(3)"
    ),
    ".dayContainer .flatpickr-day:nth-child(20)": (
        "div.flatpickr-days > div.dayContainer > span.flatpickr-day:nth-of-type(20)"
    ),
}

# Controls their widget renders again (Grid.js's pagination): distinct all the same.
RENDERED = [
    ".gridjs-pages button:nth-child(2)",
    ".gridjs-pages button:nth-child(3)",
    ".ts-control",  # Tom Select
]


def test_distinct_controls_get_distinct_descriptors(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE)
    shop.page.wait_for_selector(".gridjs-pages button")
    selectors = [*STATIC, *RENDERED]
    got = click_all(shop, selectors)

    assert None not in got
    assert len(set(got)) == len(selectors), got
    assert dict(zip(STATIC, got, strict=False)) == STATIC
    for selector, target in zip(STATIC, got, strict=False):
        assert target is not None and matches(shop, target, selector), (selector, target)
    page2, page3, tom = got[len(STATIC) :]
    assert page2 == "div.gridjs-pagination > div.gridjs-pages > button:nth-of-type(2)"
    assert page3 == "div.gridjs-pagination > div.gridjs-pages > button:nth-of-type(3)"
    assert tom == "input#room-ts-control"
    assert all(t is not None and len(t) <= 120 for t in got)


def test_the_same_control_reads_the_same_after_a_reload(any_shop: Shop) -> None:
    shop = any_shop
    selectors = [
        ".items li:nth-child(2) button",
        ".toolbar button:nth-child(3)",
        "#carousel .swiper-button-next",
        ".flatpickr-next-month",
        ".dayContainer .flatpickr-day:nth-child(12)",
        ".gridjs-pages button:nth-child(3)",
        ".ts-control",
        "#generated .gen button",
    ]
    runs = []
    for _ in range(2):
        shop.open(PAGE)  # a new page load, the same session
        shop.page.wait_for_selector(".gridjs-pages button")
        runs.append(click_all(shop, selectors))
    first, again = runs
    assert None not in first and len(set(first)) == len(selectors), first
    assert again == first


def test_data_sm_name_wins_over_ids_and_classes_from_an_ancestor_too(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE)
    got = click_all(shop, ["#pay svg", "#pay", "#coupon", ".btn-group button:nth-child(1)"])
    # #pay has an id and classes; its ancestor's name wins, for the icon in it too.
    assert got == ["checkout pay", "checkout pay", "apply coupon", "button#save"]


def test_generated_looking_names_are_skipped(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE)
    got = click_all(shop, ["#generated .gen button", "#generated .gen2 button"])
    # Skipped: ids `Button_x7f3a_12` and `_2Ce8z`; classes `css-1x2y3z`,
    # `sc-bdVaJa`, `Button_x7f3a_12`, `me@example.com`, a name over 32
    # characters, `order-4711`, `kBqTbC`, `svelte-abcdef`, `w-1/2`.
    assert got == [
        "section#generated > div.gen > button.kept",
        "section#generated > div.gen2 > button.again",
    ]
    for t in got:
        assert t is not None
        for part in (
            "x7f3a",
            "1x2y3z",
            "bdVaJa",
            "@",
            "longer",
            "4711",
            "2Ce8z",
            "kBqTbC",
            "svelte",
            "1/2",
        ):
            assert part not in t, (part, t)


def test_descriptors_are_at_most_120_characters(shop: Shop) -> None:
    shop.open(PAGE)
    deep, long_name = click_all(shop, ["section[aria-label=Deep] button", "#long-name"])
    # Three levels of two 32-character classes: the outer levels go, the element stays.
    assert deep == "button.a-long-but-usable-class-name-red.a-long-but-usable-class-name-tan"
    # A name of 140 characters (code points), 40 of them outside the BMP: cut
    # at 120 whole characters, never half of one.
    assert long_name == "n" * 100 + "\U0001f375" * 20
    assert len(long_name) == 120


def test_an_error_right_after_a_click_names_the_clicked_control(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE)
    throw(shop.page, "intentional: before any click")
    shop.clicks("#save", 1)
    shop.page.wait_for_timeout(1700)  # longer than the 1.5 s error-click window
    throw(shop.page, "intentional: long after the click")
    shop.clicks("#explode", 1)  # its handler throws
    shop.flush()
    events = shop.wait_for(lambda ev: len(of(ev, "error")) == 3)
    early, late, failed = of(events, "error")
    assert "target" not in early and "target" not in late, (early, late)
    assert failed["target"] == "button#explode"
    assert targets(clicks(events)) == ["button#save", "button#explode"]


def test_track_keeps_a_clean_target_on_the_types_that_carry_one(shop: Shop) -> None:
    shop.open(PAGE)
    shop.clicks("#save", 1)
    shop.page.evaluate(
        """() => {
            SessionMood.track('error', {message: 'Payment declined'});  // just after the click
            SessionMood.track('click', {target: 'promo\\nbanner\\u0007'});
            SessionMood.track('scroll', {speed: 10, direction: 'down', target: 'dropped'});
            SessionMood.track('error', {message: 'own', target: 'payment form'});
        }"""
    )
    shop.flush()
    events = shop.wait_for(lambda ev: len(of(ev, "error")) == 2)
    declined, own = of(events, "error")
    assert declined["target"] == "button#save"
    assert own["target"] == "payment form"
    assert targets(clicks(events)) == ["button#save", "promobanner"]
    [scroll] = of(events, "scroll")
    assert "target" not in scroll  # the server would refuse the batch


def test_a_rage_click_names_its_control(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE)
    shop.clicks("#nothing", 4)
    shop.flush()
    events = shop.events()
    [rage] = of(events, "rage_click")
    assert rage["target"] == "button#nothing"
    assert targets(dead(events)) == ["button#nothing"] * 4


def test_hover_names_the_hovered_control(shop: Shop) -> None:
    shop.open(PAGE, hover_ms="300")
    page = shop.page
    page.mouse.move(*shop.center(".toolbar button:nth-child(2)"))
    page.wait_for_timeout(500)
    page.mouse.move(*shop.center(".btn-group button:nth-child(2)"))
    page.wait_for_timeout(500)
    page.mouse.move(*shop.center("h1"))  # left both without clicking
    shop.flush()
    events = shop.wait_for(lambda ev: len(of(ev, "hover")) == 2)
    assert targets(of(events, "hover")) == [
        "section.cart > div.toolbar > button:nth-of-type(2)",
        "section:nth-of-type(2) > div.btn-group > button.btn.btn-outline-secondary",
    ]


def test_focus_blur_and_input_pause_name_the_field(any_shop: Shop) -> None:
    shop = any_shop
    shop.open(PAGE, pause_ms="300")
    page = shop.page
    shop.clicks("textarea.note", 1)
    page.keyboard.type("abc")
    page.wait_for_timeout(500)
    page.keyboard.type("d")  # resumed after a pause
    shop.clicks("h1", 1)  # left the field
    shop.flush()
    events = shop.wait_for(lambda ev: bool(of(ev, "blur")) and bool(of(ev, "input_pause")))
    field = "section:nth-of-type(7) > div.field > textarea.form-control.note"
    assert matches(shop, field, "textarea.note")
    assert targets(of(events, "focus")) == [field]
    assert targets(of(events, "input_pause")) == [field]
    assert targets(of(events, "blur")) == [field]


# -- privacy --------------------------------------------------------------------


def database_bytes(live_server: LiveServer) -> bytes:
    """The live server's SQLite files as they are on disk: the database, its WAL."""
    assert live_server.database_url.startswith("sqlite:///"), live_server.database_url
    db = Path(live_server.database_url.removeprefix("sqlite:///"))
    files = sorted(db.parent.glob(db.name + "*"))
    assert db in files
    return b"".join(f.read_bytes() for f in files)


# Where the page holds a token: texts, a typed value, attribute values, the query string.
TOKEN_PLACES = [
    "text", "label", "button", "answer", "hint", "name", "placeholder", "title", "aria",
    "data", "value", "href", "alt", "src", "query",
]  # fmt: skip


def test_no_text_value_or_attribute_value_of_the_page_reaches_the_server(
    any_shop: Shop, live_server: LiveServer
) -> None:
    shop = any_shop
    tokens = {place: uuid.uuid4().hex for place in TOKEN_PLACES}
    shop.open(PAGE, query=urlencode(tokens), pause_ms="300", hover_ms="300")
    page = shop.page
    # The tokens are on the very controls used (and the query string).
    assert page.evaluate("() => document.querySelector('.secret-button').title") == tokens["title"]
    shop.clicks("#email", 1)  # click + focus
    page.keyboard.type(tokens["value"])
    page.wait_for_timeout(500)
    page.keyboard.type("x")  # input_pause
    shop.clicks(".secret-button", 1)  # blur, a click answered by a new text
    page.wait_for_timeout(1100)
    shop.clicks(".secret-link", 1)
    if not shop.mobile:
        page.mouse.move(*shop.center(".secret-hint"))  # [title]
        page.wait_for_timeout(500)
        page.mouse.move(*shop.center(".secret-link"))
        page.wait_for_timeout(500)
        page.mouse.move(*shop.center("h1"))
    shop.flush()
    want = {"click", "focus", "input_pause", "blur"} | (set() if shop.mobile else {"hover"})
    events = shop.wait_for(lambda ev: want <= {e["type"] for e in ev})
    assert page.locator(".secret-button").text_content() == tokens["answer"]

    stored = [e for e in events if e["type"] in want]
    assert all(e.get("target") for e in stored), stored
    export = shop._get("/events").text
    database = database_bytes(live_server)
    # What is searched holds this visitor's events (the search can find things).
    for haystack in (export, database.decode("latin-1")):
        assert shop.sid in haystack
        assert "section#private > form.signup > a.secret-link" in haystack
    for place, token in tokens.items():
        assert token not in export, place
        assert token.encode() not in database, place
    assert targets(clicks(events)) == [
        "input#email",
        "section#private > form.signup > button.btn.btn-primary",
        "section#private > form.signup > a.secret-link",
    ]
