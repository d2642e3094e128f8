"""The storage contract for where visitors struggle (issue 26), on every backend:
per-element rows summed over sessions, struggle marks within 10 s of a turn
to frustrated or confused, and journeys counted exactly on seeded sessions
with known paths and moods."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from sessionmood_server.records import Batch, ElementCounts
from sessionmood_server.scoring import MAX_STEPS
from sessionmood_server.storage import Storage
from tests import test_storage
from tests.test_storage import MONTH, NOW, _ev, _tenant

# The contract suite's fixture: every test here runs on every backend.
store = test_storage.store

pytestmark = pytest.mark.anyio


async def _append(
    store: Storage, t: int, sid: str, events: list[dict[str, Any]], now: float
) -> str:
    res = await store.append_events(Batch(t, sid, events, None, MONTH, now))
    assert res.status == "stored"
    return str(res.response["current_mood"])


def _pay(ts: float, kind: str = "click", **f: Any) -> dict[str, Any]:
    return _ev(kind, ts, target="button#pay", **f)


async def test_elements_are_summed_per_page_and_target(store: Storage) -> None:
    t = await _tenant(store)
    # A: hesitates over help early, then hammers a dead Pay that ends in an error.
    a = [
        _ev("page_view", NOW, url="/checkout"),
        _ev("hover", NOW + 1, target="#help", duration_ms=2600),
    ]
    a += [_pay(NOW + 30 + i, dead=True) for i in range(2)]
    a += [_pay(NOW + 32, "rage_click"), _pay(NOW + 33, "error", message="402")]
    assert await _append(store, t, "a", a, NOW + 40) == "frustrated"
    # B: one Pay click that worked, on the same page; C: another page.
    b = [_ev("page_view", NOW, url="/checkout"), _pay(NOW + 5), _ev("scroll", NOW + 9)]
    assert await _append(store, t, "b", b, NOW + 40) != "frustrated"
    c = [_ev("page_view", NOW, url="/home")] + [
        _ev("click", NOW + 3 * i, target="nav > a:nth-of-type(2)") for i in range(1, 4)
    ]
    await _append(store, t, "c", c, NOW + 40)
    # A short hover is no hesitation; an element before any page_view is on page "".
    await _append(store, t, "d", [_ev("hover", NOW, target="#help", duration_ms=300)], NOW + 40)

    found = await store.element_counts(t, None, None, None, 50)
    assert found[0] == ElementCounts(
        page="/checkout", target="button#pay", sessions=2, clicks=3, rage_clicks=1,
        dead_clicks=2, error_clicks=1, hesitations=0, frustrated_sessions=1,
    )  # fmt: skip
    rest = [
        (e.page, e.target, e.sessions, e.clicks, e.hesitations, e.frustrated_sessions)
        for e in found[1:]
    ]
    # Equal struggle and sessions: by page, then target (code point order).
    assert rest == [
        ("", "#help", 1, 0, 0, 0),
        ("/checkout", "#help", 1, 0, 1, 0),  # hovered 29 s before the turn: not struggled with
        ("/home", "nav > a:nth-of-type(2)", 1, 3, 0, 0),
    ]
    assert [e.target for e in await store.element_counts(t, None, None, "/home", 50)] == [
        "nav > a:nth-of-type(2)"
    ]
    assert len(await store.element_counts(t, None, None, None, 2)) == 2
    assert await store.element_counts(t, NOW + 41, None, None, 50) == []
    assert await store.element_counts(await _tenant(store), None, None, None, 50) == []
    # A later batch adds to the session's row instead of counting it twice.
    await _append(store, t, "b", [_pay(NOW + 50)], NOW + 60)
    again = await store.element_counts(t, None, None, "/checkout", 1)
    assert (again[0].sessions, again[0].clicks) == (2, 4)
    # Erasure takes the session's rows with it.
    assert await store.delete_session(t, "a")
    after = await store.element_counts(t, None, None, "/checkout", 50)
    assert [(e.target, e.sessions, e.frustrated_sessions) for e in after] == [("button#pay", 1, 0)]


async def test_struggle_marks_what_was_acted_on_in_the_10_s_before_the_turn(store: Storage) -> None:
    t = await _tenant(store)
    first = [_ev("page_view", NOW, url="/p"), _ev("click", NOW + 1, target="#old")]
    first += [_ev("click", NOW + 15, target="#near"), _ev("scroll", NOW + 16)]
    assert await _append(store, t, "s", first, NOW + 16) != "frustrated"
    # The turn comes in a later batch, at NOW + 24: #near (9 s before) struggled,
    # #old (23 s before) did not.
    burst = [_ev("rage_click", NOW + 20 + i, target="#pay") for i in range(3)]
    burst += [_ev("error", NOW + 23, target="#pay"), _ev("error", NOW + 24)]
    assert await _append(store, t, "s", burst, NOW + 25) in ("frustrated", "confused")
    marks = {
        e.target: e.frustrated_sessions for e in await store.element_counts(t, None, None, None, 50)
    }
    assert marks == {"#pay": 1, "#near": 1, "#old": 0}
    # Staying frustrated is no new turn: a later element is not marked.
    await _append(store, t, "s", [_ev("click", NOW + 26, target="#later")], NOW + 27)
    marks = {
        e.target: e.frustrated_sessions for e in await store.element_counts(t, None, None, None, 50)
    }
    assert marks["#later"] == 0


# -- journeys -----------------------------------------------------------------------------

PAGES = ["/", "/shop", "/item", "/cart", "/checkout"]


def _visit(url: str, angry: bool, ts: float) -> list[dict[str, Any]]:
    events = [_ev("page_view", ts, url=url), _ev("scroll", ts + 1, speed=300.0)]
    if angry:
        events += [_ev("rage_click", ts + 2 + i) for i in range(3)] + [_ev("error", ts + 5)]
    else:
        events += [_ev("click", ts + 4)]
    return events


class _Seeded:
    """Sessions with known paths; each page visit one batch, and the mood the
    store answered after it is the mood that page was left in (the oracle)."""

    def __init__(self) -> None:
        self.steps: dict[str, list[tuple[str, str, bool]]] = {}  # sid -> [(url, mood, frustrated)]


async def _seed(store: Storage, t: int, n: int, rng: random.Random, start: float) -> _Seeded:
    seeded = _Seeded()
    for k in range(n):
        sid = f"j{k}"
        ts = start + k * 1000
        steps: list[tuple[str, str, bool]] = []
        for _ in range(rng.randint(1, 10)):
            url = rng.choice(PAGES[:3]) if rng.random() < 0.5 else rng.choice(PAGES)
            mood = await _append(store, t, sid, _visit(url, rng.random() < 0.2, ts), ts + 6)
            ts += 10
            if steps and steps[-1][0] == url:  # a reload: the same step, mood as now
                steps[-1] = (url, mood, steps[-1][2] or mood == "frustrated")
            else:
                steps.append((url, mood, mood == "frustrated"))
        seeded.steps[sid] = steps
    return seeded


def _expected(
    seeded: _Seeded, steps: int
) -> dict[tuple[str, ...], tuple[int, list[Counter[str]], Counter[int]]]:
    out: dict[tuple[str, ...], tuple[int, list[Counter[str]], Counter[int]]] = {}
    for journey in seeded.steps.values():
        first = journey[:steps]
        path = tuple(url for url, _, _ in first)
        n, moods, starts = out.get(path, (0, [Counter() for _ in path], Counter()))
        for counter, (_, mood, _) in zip(moods, first, strict=True):
            counter[mood] += 1
        flagged = [i for i, (_, _, f) in enumerate(first, start=1) if f]
        if flagged:
            starts[flagged[0]] += 1
        out[path] = (n + 1, moods, starts)
    return out


async def test_journeys_are_counted_exactly_on_seeded_sessions(store: Storage) -> None:
    t = await _tenant(store)
    seeded = await _seed(store, t, 60, random.Random(26), NOW)
    assert any(f for j in seeded.steps.values() for _, _, f in j), "the seed must frustrate some"
    assert any(len(j) > MAX_STEPS for j in seeded.steps.values()), "and run past the last step"
    for steps in (1, 2, 4, MAX_STEPS):
        expected = _expected(seeded, steps)
        found = await store.journeys(t, None, None, steps, 0)
        got = {
            j.path: (j.sessions, [Counter(m) for m in j.moods], Counter(j.first_frustrated))
            for j in found
        }
        assert got == expected, steps
        # Commonest first, ties by path.
        assert [j.path for j in found] == sorted(expected, key=lambda p: (-expected[p][0], p))
        assert sum(j.sessions for j in found) == len(seeded.steps)
    top = await store.journeys(t, None, None, 4, 3)
    assert [j.path for j in top] == [j.path for j in await store.journeys(t, None, None, 4, 0)][:3]


async def test_journeys_window_is_when_the_journey_began(store: Storage) -> None:
    t = await _tenant(store)
    await _append(store, t, "early", _visit("/", False, NOW), NOW)
    await _append(store, t, "early", _visit("/shop", False, NOW + 500), NOW + 500)
    await _append(store, t, "late", _visit("/shop", False, NOW + 500), NOW + 500)
    assert [j.path for j in await store.journeys(t, NOW + 100, None, 4, 0)] == [("/shop",)]
    assert [j.path for j in await store.journeys(t, None, NOW + 100, 4, 0)] == [("/", "/shop")]
    assert await store.journeys(await _tenant(store), None, None, 4, 0) == []
    assert await store.delete_session(t, "early")
    assert [j.path for j in await store.journeys(t, None, None, 4, 0)] == [("/shop",)]
