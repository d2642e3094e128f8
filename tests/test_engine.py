"""The mood engine: properties that must hold for any input, then behaviour by example."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionmood_client.types import DEFAULT_ACTIONS, EVENT_TYPES, MOODS
from sessionmood_server import engine

Event = dict[str, Any]
T0 = 1_760_000_000.0
PUBLIC = Path("/work/shared/scenarios/public.jsonl")
TRANSITIONS = Path("/work/shared/scenarios/transitions.jsonl")


def run(events: Iterable[Mapping[str, Any]]) -> engine.State:
    state = engine.new_state()
    for e in events:
        state = engine.fold(state, e)
    return state


def mood_of(events: Iterable[Mapping[str, Any]]) -> engine.Verdict:
    return engine.verdict(run(events))


def ev(kind: str, t: float, **fields: Any) -> Event:
    return {"type": kind, "ts": T0 + t, **fields}


# --- strategies ------------------------------------------------------------

_coord = st.floats(-1e6, 1e6, allow_nan=False)
_dur = st.floats(0, 1e9, allow_nan=False)
_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "click": {
        "x": _coord,
        "y": _coord,
        "dead": st.booleans(),
        "target": st.sampled_from(["#pay", "#coupon"]),
    },
    "rage_click": {"x": _coord, "y": _coord},
    "scroll": {
        "speed": st.floats(0, 1e7, allow_nan=False),
        "direction": st.sampled_from(["up", "down"]),
    },
    "input_pause": {"duration_ms": _dur},
    "page_view": {"url": st.text("/abz", max_size=5)},
    "error": {"message": st.text("/abz", max_size=5)},
    "idle": {"duration_ms": _dur},
    "hover": {"duration_ms": _dur},
}


@st.composite
def events(draw: st.DrawFn, *, base: float = T0, span: float = 3600.0) -> Event:
    kind = draw(st.sampled_from(EVENT_TYPES))
    e: Event = {"type": kind, "ts": draw(st.floats(base, base + span, allow_nan=False))}
    for name, strat in _FIELDS.get(kind, {}).items():
        if draw(st.booleans()):
            e[name] = draw(strat)
    return e


# Sessions mixing ordinary timestamps with the extremes the wire format allows
# (0 and 1e11), to exercise the anchor rebasing and exp() range.
sessions = st.one_of(
    st.lists(events(), max_size=25),
    st.lists(events(base=0.0, span=1e11), max_size=10),
    st.lists(events(span=5.0), max_size=25),
)


def check_verdict(v: engine.Verdict) -> None:
    assert v.mood in MOODS
    assert 0.0 <= v.confidence <= 1.0 and not math.isnan(v.confidence)
    assert v.suggested_action == DEFAULT_ACTIONS[v.mood]
    assert isinstance(v.signals, tuple) and v.signals
    assert all(isinstance(s, str) and re.fullmatch(r"[a-z_]+", s) for s in v.signals)
    assert len(set(v.signals)) == len(v.signals)


# --- properties --------------------------------------------------------------


@given(sessions)
def test_any_sequence_gives_a_valid_verdict(evs: list[Event]) -> None:
    state = engine.new_state()
    check_verdict(engine.verdict(state))
    for e in evs:
        state = engine.fold(state, e)
        check_verdict(engine.verdict(state))


@given(sessions, st.lists(st.integers(0, 25), max_size=4))
def test_batching_and_persistence_do_not_change_the_verdict(
    evs: list[Event], cuts: list[int]
) -> None:
    """The server folds each batch into a state loaded from the database."""
    whole = run(evs)
    state = engine.new_state()
    bounds = sorted({0, len(evs), *(c for c in cuts if c <= len(evs))})
    for a, b in itertools.pairwise(bounds):
        state = engine.loads(engine.dumps(state))
        for e in evs[a:b]:
            state = engine.fold(state, e)
    state = engine.loads(engine.dumps(state))
    assert engine.verdict(state) == engine.verdict(whole)
    assert engine.dumps(state) == engine.dumps(whole)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(sessions, st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_the_evidence(evs: list[Event], rnd: random.Random) -> None:
    """Late and out-of-order events add the same decayed weight as in-order ones."""
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = engine.scores(run(evs)), engine.scores(run(shuffled))
    for m in MOODS:
        assert math.isclose(a[m], b[m], rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.lists(events(span=1e6), min_size=1, max_size=12), st.integers(2000, 4000))
def test_state_stays_small_however_long_the_session(sample: list[Event], n: int) -> None:
    state = engine.new_state()
    for i in range(n):
        e = dict(sample[i % len(sample)])
        e["ts"] = T0 + i * 7.3  # hours of activity
        state = engine.fold(state, e)
        if i % 500 == 0:
            state = engine.loads(engine.dumps(state))
    data = engine.dumps(state)
    assert len(data.encode()) < 1024
    assert engine.loads(data) == state


@given(st.lists(events(), min_size=1, max_size=2))
def test_one_or_two_events_are_neutral_with_low_confidence(evs: list[Event]) -> None:
    """Landing page: neutral under ~3 events, however loud those events are."""
    v = mood_of(evs)
    assert v.mood == "neutral" and v.signals == ("insufficient_data",)
    assert v.confidence < 0.5


# --- behaviour by example ----------------------------------------------------


def test_empty_state_is_neutral_with_no_confidence() -> None:
    v = engine.verdict(engine.new_state())
    assert v.mood == "neutral"
    assert v.confidence < 0.05
    assert v.signals == ("insufficient_data",)
    assert v.suggested_action == "no_action"


def test_neutral_confidence_stays_below_half() -> None:
    v = mood_of([ev("page_view", 0), ev("click", 1)])
    assert v.mood == "neutral" and v.confidence < 0.5


def calm_work(start: float, seconds: float) -> list[Event]:
    """Steady form work: a click, a field filled, a slow scroll, every few seconds."""
    out: list[Event] = []
    t = start
    cycle: list[tuple[str, dict[str, Any]]] = [
        ("click", {}),
        ("focus", {}),
        ("input_pause", {"duration_ms": 900}),
        ("blur", {}),
        ("scroll", {"speed": 200, "direction": "down"}),
    ]
    i = 0
    while t < start + seconds:
        kind, fields = cycle[i % len(cycle)]
        out.append(ev(kind, t, **fields))
        t += 3.0
        i += 1
    return out


def browsing(start: float, seconds: float) -> list[Event]:
    """Relaxed exploring: a page, a read, a glance, every few seconds."""
    out: list[Event] = []
    cycle: list[tuple[str, dict[str, Any]]] = [
        ("page_view", {"url": "/p"}),
        ("scroll", {"speed": 400, "direction": "down"}),
        ("hover", {"duration_ms": 800}),
        ("scroll", {"speed": 600, "direction": "down"}),
    ]
    for i in range(int(seconds / 4)):
        kind, fields = cycle[i % len(cycle)]
        out.append(ev(kind, start + 4.0 * i, **fields))
    return out


def quick_buying(start: float, seconds: float) -> list[Event]:
    """Fast, direct: a click or a field every 0.6 s, a new page every 3 s."""
    out: list[Event] = []
    for i in range(int(seconds / 0.6)):
        kind = "page_view" if i % 5 == 0 else "focus" if i % 5 == 3 else "click"
        out.append(ev(kind, start + 0.6 * i))
    return out


def away_then_back(start: float, seconds: float) -> list[Event]:
    """A long idle spell, then the visitor comes back to steady work."""
    return [ev("idle", start, duration_ms=45_000), *calm_work(start + 2, seconds - 2)]


EARLIER = {
    "focused": calm_work,
    "browsing": browsing,
    "decisive": quick_buying,
    "away_then_back": away_then_back,
}
# A short recent phase at about the landing page's minimum evidence for its mood.
RECENT: dict[str, tuple[str, list[tuple[float, str, dict[str, Any]]]]] = {
    "two long typing pauses": (
        "confused",
        [(0, "focus", {}), (2, "input_pause", {"duration_ms": 4000}),
         (8, "input_pause", {"duration_ms": 4500})],
    ),
    "back and forth": (
        "confused",
        [(0, "page_view", {}), (3, "back_nav", {}), (5, "page_view", {}), (8, "back_nav", {})],
    ),
    "hovering then going back up": (
        "confused",
        [(0, "hover", {"duration_ms": 3500}), (5, "hover", {"duration_ms": 4000}),
         (7, "backtrack", {})],
    ),
    "two failed clicks": (
        "frustrated",
        [(0, "click", {}), (0.6, "error", {}), (2, "click", {}), (2.5, "error", {})],
    ),
    "rage then an error": (
        "frustrated",
        [(0, "click", {}), (0.3, "rage_click", {}), (1.0, "error", {})],
    ),
    "walked away": ("disengaged", [(0, "idle", {"duration_ms": 25_000})]),
    "a quick run of clicks": (
        "decisive",
        [(0, "page_view", {}), (0.5, "click", {}), (1.0, "click", {}), (1.4, "focus", {}),
         (1.9, "click", {}), (2.4, "click", {})],
    ),
    "three pages with reading": (
        "browsing",
        [(0, "page_view", {}), (3, "scroll", {"speed": 500}), (6, "page_view", {}),
         (9, "scroll", {"speed": 400}), (12, "page_view", {}), (15, "scroll", {"speed": 600})],
    ),
}  # fmt: skip


@pytest.mark.parametrize("earlier_s", [60, 300])
@pytest.mark.parametrize(
    ("before", "recent"),
    [
        (b, r)
        for b in EARLIER
        for r, (mood, _) in RECENT.items()
        if mood != b and not (b == "away_then_back" and mood == "disengaged")
    ],
)
def test_the_recent_phase_decides_once_it_reaches_minimum_evidence(
    before: str, recent: str, earlier_s: float
) -> None:
    """However long the phase before, the newest phase at the landing page's
    minimum evidence names the mood now."""
    mood, steps = RECENT[recent]
    earlier = [ev("page_view", 0), *EARLIER[before](1, earlier_s)]
    t = earlier[-1]["ts"] - T0 + 6
    session = [*earlier, *(ev(kind, t + dt, **fields) for dt, kind, fields in steps)]
    v = mood_of(session)
    assert v.mood == mood, (before, recent, v, engine.scores(run(session)))
    assert v.suggested_action == DEFAULT_ACTIONS[mood]


def test_one_long_pause_only_weakens_the_work_before_it() -> None:
    work = [ev("page_view", 0), *calm_work(1, 120)]
    t = work[-1]["ts"] - T0
    before = engine.scores(run(work))["focused"]
    one = engine.scores(
        run([*work, ev("focus", t + 3), ev("input_pause", t + 5, duration_ms=4000)])
    )
    two = engine.scores(
        run(
            [
                *work,
                ev("focus", t + 3),
                ev("input_pause", t + 5, duration_ms=4000),
                ev("input_pause", t + 11, duration_ms=4000),
            ]
        )
    )
    assert 0.3 * before < one["focused"] < 0.7 * before
    assert two["focused"] < 0.1 * before


def test_a_newer_phase_keeps_older_evidence_for_its_own_mood() -> None:
    # Reading scrolls count toward browsing and a little toward focused; form
    # work after them suspends their browsing evidence, not their focused one.
    reading = [ev("page_view", 0)]
    reading += [ev("scroll", 2 + 3 * i, speed=200, direction="down") for i in range(4)]
    form = [ev(kind, 15 + 2.5 * i) for i, kind in enumerate(["focus", "blur"] * 3)]
    both = engine.scores(run([*reading, *form]))
    form_only = engine.scores(run([reading[0], *form]))
    assert engine.scores(run(reading))["browsing"] > 1.0
    assert both["browsing"] < 0.05
    assert both["focused"] > form_only["focused"] + 0.3


def checkout_form(start: float) -> list[Event]:
    """The demo's checkout form filled top to bottom: six fields over ~40 s, each
    clicked, typed into with short pauses (tracker.js reports none under 2.5 s;
    other clients may) and left."""
    out = [ev("page_view", start, url="/checkout")]
    t = start + 1
    for i in range(6):
        out += [ev("click", t, x=300, y=100 + 60 * i), ev("focus", t + 0.1)]
        if i % 2:
            out.append(ev("input_pause", t + 3, duration_ms=1200))
        out.append(ev("blur", t + 5.5))
        t += 6.5
    return out


def test_hesitating_on_the_card_number_after_filling_the_form_asks_for_help() -> None:
    form = checkout_form(0)
    assert mood_of(form).mood == "focused"
    t = form[-1]["ts"] - T0 + 1
    card = [
        ev("click", t, x=300, y=500),
        ev("focus", t + 0.1),
        ev("input_pause", t + 5, duration_ms=4000),
        ev("input_pause", t + 10, duration_ms=4000),
    ]
    # One long pause only weakens the form work; the second one is the
    # landing page's minimum evidence of confusion.
    assert mood_of([*form, *card[:3]]).mood == "focused"
    v = mood_of([*form, *card])
    assert v.mood == "confused" and v.suggested_action == "show_tooltip"
    assert v.signals[0] == "input_hesitation" and v.confidence > 0.5


def test_coming_back_from_an_idle_spell_ends_disengagement() -> None:
    away = [ev("page_view", 0), ev("click", 2), ev("idle", 4, duration_ms=45_000)]
    assert mood_of(away).mood == "disengaged"
    # The idle is still within its minute, but the visitor is back at work.
    back = mood_of([*away, *calm_work(6, 30)])
    assert back.mood == "focused" and "long_idle" not in back.signals
    # Blurring the field on the way out is not coming back.
    assert mood_of([*away, ev("blur", 5)]).mood == "disengaged"


def test_old_rage_clicks_fade_after_calm_work() -> None:
    rage = [ev("page_view", 0), *(ev("rage_click", 1 + i * 0.4) for i in range(10))]
    assert mood_of(rage).mood == "frustrated"
    v = mood_of(rage + calm_work(10, 600))
    assert v.mood == "focused"
    assert "rage_click_detected" not in v.signals


def test_calm_session_ending_in_two_errors_is_frustrated_at_once() -> None:
    calm = [ev("page_view", 0), *calm_work(1, 300)]
    assert mood_of(calm).mood == "focused"
    v = mood_of([*calm, ev("error", 301, message="Payment failed"), ev("error", 302)])
    assert v.mood == "frustrated"
    assert v.signals[0] == "repeated_errors"
    assert v.suggested_action == "show_live_chat"


def test_one_error_confuses_two_frustrate() -> None:
    start = [ev("page_view", 0), ev("click", 2), ev("click", 5)]
    assert mood_of([*start, ev("error", 6)]).mood == "confused"
    assert mood_of([*start, ev("error", 6), ev("error", 8)]).mood == "frustrated"


def test_out_of_order_events_give_the_same_verdict() -> None:
    session = [
        ev("page_view", 0),
        ev("focus", 1.5),
        ev("click", 2.1),
        ev("error", 2.9, message="Payment failed"),
        ev("rage_click", 3.6),
        ev("error", 4.4),
        ev("back_nav", 5.0),
    ]
    in_order = mood_of(session)
    for seed in range(5):
        shuffled = list(session)
        random.Random(seed).shuffle(shuffled)
        v = mood_of(shuffled)
        assert v.mood == in_order.mood == "frustrated"
        assert v.confidence == pytest.approx(in_order.confidence, abs=1e-3)


def test_late_event_does_not_move_the_clock_back() -> None:
    state = run([ev("page_view", 0), ev("click", 100)])
    state = engine.fold(state, ev("click", 50))
    assert state.t_max == T0 + 100
    assert state.n == 3


def test_late_event_counts_with_its_decayed_weight() -> None:
    # An error reported late but stamped 10 minutes earlier barely registers.
    work = [ev("page_view", 0), *calm_work(1, 700)]
    late_old = mood_of([*work, ev("error", 80), ev("error", 81)])
    assert late_old.mood == "focused"
    late_recent = mood_of([*work, ev("error", 690), ev("error", 691)])
    assert late_recent.mood == "frustrated"


@pytest.mark.parametrize(("duration_ms", "expected"), [(12_000, True), (5_000, False)])
def test_idle_threshold_is_ten_seconds(duration_ms: float, expected: bool) -> None:
    v = mood_of(
        [ev("page_view", 0), ev("scroll", 3, speed=300), ev("idle", 9, duration_ms=duration_ms)]
    )
    assert (v.mood == "disengaged") is expected


@pytest.mark.parametrize(("duration_ms", "expected"), [(3_000, "confused"), (1_200, "focused")])
def test_input_pause_threshold_is_two_and_a_half_seconds(duration_ms: float, expected: str) -> None:
    evs = [ev("page_view", 0)]
    for i in range(3):
        evs += [
            ev("focus", 3 + 10 * i),
            ev("input_pause", 5 + 10 * i, duration_ms=duration_ms),
            ev("blur", 7 + 10 * i),
            ev("click", 9 + 10 * i),
        ]
    assert mood_of(evs).mood == expected


def test_hovering_long_is_confused_briefly_is_browsing() -> None:
    pages = [ev("page_view", 4 * i, url=f"/p{i}") for i in range(4)]
    long_hovers = [ev("hover", 2 + 4 * i, duration_ms=4000) for i in range(3)]
    short_hovers = [ev("hover", 2 + 4 * i, duration_ms=600) for i in range(3)]
    base = [ev("page_view", 0), ev("backtrack", 1)]
    assert mood_of(base + long_hovers).mood == "confused"
    assert mood_of(pages + short_hovers).mood == "browsing"


def test_fast_direct_clicks_are_decisive_and_slow_ones_are_not() -> None:
    fast = [ev("page_view", 0), *(ev("click", 0.6 * (i + 1)) for i in range(8))]
    v = mood_of(fast)
    assert v.mood == "decisive"
    assert v.signals[0] == "fast_direct_interactions"
    slow = [ev("page_view", 0), *(ev("click", 4.0 * (i + 1)) for i in range(8))]
    assert mood_of(slow).mood != "decisive"


def test_a_rage_burst_among_fast_clicks_is_frustrated_not_decisive() -> None:
    # tracker.js sends each click of a burst as well as the rage_click itself:
    # those clicks must not read as fast, direct interaction.
    for n in (3, 4, 8, 12):
        burst = [ev("page_view", 0), ev("click", 2)]
        burst += [ev("click", 5 + 0.15 * i) for i in range(n)]
        burst.append(ev("rage_click", 5.3))
        v = mood_of(burst)
        assert v.mood == "frustrated", (n, v)
        assert v.signals[0] == "rage_click_detected"


def test_dead_clicks_on_different_controls_are_a_cue_not_a_verdict() -> None:
    # Peers' users report false dead clicks (audio buttons, copy to clipboard)
    # and peers flag dead clicks as something to look at, not a visitor's
    # state: one or two on different controls name no frustration.
    start = [ev("page_view", 0), ev("scroll", 2, speed=300, direction="down"), ev("click", 4)]
    assert mood_of([*start, ev("click", 6, x=100, y=100, dead=True)]).mood == "neutral"
    apart = [ev("click", 6, x=100, y=100, dead=True), ev("click", 8, x=400, y=120, dead=True)]
    assert mood_of([*start, *apart]).mood != "frustrated"
    # Element descriptors decide over points: two controls side by side.
    named = [
        ev("click", 6, x=100, y=100, dead=True, target="#pay"),
        ev("click", 8, x=104, y=100, dead=True, target="#coupon"),
    ]
    assert mood_of([*start, *named]).mood != "frustrated"
    # Keyboard clicks carry no point: not known to be one control.
    keys = [ev("click", 6, dead=True), ev("click", 8, dead=True)]
    assert mood_of([*start, *keys]).mood != "frustrated"


def test_dead_clicks_repeated_on_one_control_or_with_other_signs_frustrate() -> None:
    start = [ev("page_view", 0), ev("scroll", 2, speed=300, direction="down"), ev("click", 4)]
    # The same control again (within 30 px, or the same descriptor).
    again = [ev("click", 6, x=100, y=100, dead=True), ev("click", 9, x=110, y=104, dead=True)]
    v = mood_of([*start, *again])
    assert v.mood == "frustrated" and v.signals[0] == "repeated_dead_click"
    assert v.suggested_action == "show_live_chat"
    named = [
        ev("click", 6, x=100, y=100, dead=True, target="#pay"),
        ev("click", 9, x=300, y=500, dead=True, target="#pay"),  # scrolled in between
    ]
    assert mood_of([*start, *named]).signals[0] == "repeated_dead_click"
    # Another control between the two is still a repetition (the latest three count).
    between = [*again[:1], ev("click", 7, x=500, y=300, dead=True), again[1]]
    assert mood_of([*start, *between]).mood == "frustrated"
    # Dead clicks on two controls plus a fling, or plus the visitor's click failing.
    apart = [ev("click", 6, x=100, y=100, dead=True), ev("click", 8, x=400, y=120, dead=True)]
    fling = mood_of([*start, *apart, ev("scroll", 9, speed=3000, direction="down")])
    assert fling.mood == "frustrated", fling
    failed = mood_of([*start, *apart, ev("click", 9, x=600, y=40), ev("error", 9.5)])
    assert failed.mood == "frustrated", failed
    # A third dead click within the minute is repeated failure too.
    third = mood_of([*start, *apart, ev("click", 10, x=700, y=400, dead=True)])
    assert third.mood == "frustrated"
    # A repeat long ago has faded like any other cue.
    late = mood_of([*start, *again, *(ev("click", 300 + 5 * i, x=9, y=9) for i in range(8))])
    assert late.mood != "frustrated"


def test_dead_clicks_are_not_fast_direct_interaction() -> None:
    def run_of(**fields: Any) -> list[Event]:
        return [ev("page_view", 0), *(ev("click", 0.6 * (i + 1), **fields) for i in range(8))]

    dead = mood_of(run_of(dead=True))
    assert dead.mood == "frustrated" and dead.signals == ("dead_click_detected",)
    assert mood_of(run_of(dead=False)) == mood_of(run_of())
    assert mood_of(run_of(dead=False)).mood == "decisive"


def test_an_error_right_after_a_click_is_an_error_click() -> None:
    # One fast fling alone is too little to name frustration; with a plain
    # error it reads confused (landing page: 1 error), with an error click
    # (the visitor's own click failed) it tips to frustrated.
    base = [ev("page_view", 0), ev("scroll", 2, speed=2500, direction="down")]
    assert mood_of([*base, ev("error", 6)]).mood == "confused"
    clicked = mood_of([*base, ev("click", 5.5), ev("error", 6)])
    assert clicked.mood == "frustrated" and "error_click_detected" in clicked.signals
    # 1.5 s is the window: an error 3 s after the click is not that click's failure.
    assert mood_of([*base, ev("click", 3), ev("error", 6)]).mood == "confused"
    # It is the latest click that failed: a click since then that worked ends it.
    assert mood_of([*base, ev("click", 5.5), ev("error", 6), ev("click", 7)]).mood == "confused"
    # Arrival order does not matter (the newest click and error are maxima).
    late = [*base, ev("error", 6), ev("click", 5.5)]
    assert mood_of(late) == clicked


def test_page_hopping_is_browsing_but_with_back_navigation_is_churn() -> None:
    hops = [ev("page_view", 4.0 * i, url=f"/p{i}") for i in range(6)]
    assert mood_of(hops).mood == "browsing"
    churn = [*hops, ev("back_nav", 25), ev("page_view", 27), ev("back_nav", 29)]
    v = mood_of(churn)
    assert v.mood == "confused"
    assert "high_page_churn" in v.signals


def test_scroll_reversal_is_backtracking() -> None:
    evs = [ev("page_view", 0), *(ev("scroll", 1 + i, direction="up", speed=400) for i in range(3))]
    v = mood_of(evs)
    assert v.mood == "confused" and v.signals[0] == "backtrack_detected"


def test_blur_without_refocus_then_idle_is_form_abandoned() -> None:
    v = mood_of(
        [ev("page_view", 0), ev("focus", 5), ev("blur", 9), ev("idle", 11, duration_ms=40_000)]
    )
    assert v.mood == "disengaged"
    assert v.signals == ("long_idle", "form_abandoned")
    refocused = run([ev("page_view", 0), ev("focus", 5), ev("blur", 9), ev("focus", 10)])
    assert "form_abandoned" not in engine.verdict(refocused).signals


def test_signals_are_strongest_first_and_only_for_the_winning_mood() -> None:
    v = mood_of(
        [ev("page_view", 0), ev("error", 1), ev("rage_click", 2), ev("error", 3), ev("hover", 4)]
    )
    assert v.mood == "frustrated"
    assert v.signals[:2] == ("repeated_errors", "rage_click_detected")
    for sig in v.signals:
        assert any(r.signal == sig and r.weights.get("frustrated", 0) > 0 for r in engine.RULES)


def test_confidence_rises_with_consistent_evidence() -> None:
    confs = []
    evs = [ev("page_view", 0)]
    for i in range(8):
        evs.append(ev("rage_click", 1 + i))
        v = mood_of(evs)
        if len(evs) >= 3:
            assert v.mood == "frustrated"
            confs.append(v.confidence)
    assert confs == sorted(confs) and confs[-1] > confs[0] + 0.2


def test_huge_time_jumps_do_not_overflow() -> None:
    evs: list[Event] = [
        {"type": "click", "ts": 0.0},
        {"type": "rage_click", "ts": 1e11},
        {"type": "error", "ts": 0.5},
        {"type": "error", "ts": 1e11 - 1},
        {"type": "error", "ts": 1e11 - 2},
    ]
    v = mood_of(evs)
    assert v.mood == "frustrated"
    assert engine.loads(engine.dumps(run(evs))) == run(evs)


def test_state_from_another_rule_table_restarts_the_evidence() -> None:
    saved = json.loads(engine.dumps(run([ev("page_view", 0), ev("click", 1), ev("error", 2)])))
    saved["a"] = saved["a"][:-1]
    state = engine.loads(json.dumps(saved))
    assert state.n == 3 and state.t_max == T0 + 2
    assert engine.verdict(state).mood == "neutral"


# --- the labeled sessions ------------------------------------------------------


def _f1s(pairs: list[tuple[str, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in MOODS:
        tp = sum(1 for a, p in pairs if a == p == m)
        fp = sum(1 for a, p in pairs if p == m != a)
        fn = sum(1 for a, p in pairs if a == m != p)
        if tp + fn:
            out[m] = 2 * tp / (2 * tp + fp + fn)
    return out


@pytest.mark.skipif(not TRANSITIONS.exists(), reason="labeled sessions not available")
def test_transition_sessions_name_the_recent_phase() -> None:
    """A long phase of one behaviour, then a short recent one at minimum evidence:
    the label is the recent phase's mood."""
    rows = []
    for line in TRANSITIONS.read_text().splitlines():
        s = json.loads(line)
        rows.append((s["label"], mood_of(s["events"]).mood))
    accuracy = sum(label == mood for label, mood in rows) / len(rows)
    assert accuracy >= 0.97
    assert min(_f1s(rows).values()) >= 0.9


@pytest.mark.skipif(not PUBLIC.exists(), reason="labeled sessions not available")
def test_public_sessions_accuracy_and_reliability() -> None:
    rows = []
    for line in PUBLIC.read_text().splitlines():
        s = json.loads(line)
        rows.append((s["label"], mood_of(s["events"])))
    f1 = _f1s([(label, v.mood) for label, v in rows])
    assert sum(f1.values()) / len(f1) >= 0.97
    assert min(f1.values()) >= 0.93
    # Higher confidence bands are at least as accurate as lower ones.
    accs = []
    for lo, hi in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01)):
        band = [label == v.mood for label, v in rows if lo <= v.confidence < hi]
        if band:
            accs.append(sum(band) / len(band))
    assert accs == sorted(accs)
