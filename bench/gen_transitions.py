"""Generate labelled "transition" sessions, to check the engine beyond the shared files.

Usage::

    .venv/bin/python bench/gen_transitions.py [--seed S] [--per N] [--focused] > F.jsonl
    .venv/bin/python bench/eval_offline.py --file F.jsonl

Each session is a long phase of one behaviour (steady form work, browsing,
quick purchasing, or an idle spell and a return to work), a pause of 3-12 s,
then a short recent phase at about the minimum evidence the landing page names
for its mood; the label is the recent phase's mood. The kinds follow the
description of ``transitions.jsonl`` in the shared scenarios README, written
independently of that file (own pacing, own variants), so a rule tuned to the
file's quirks shows up here. ``--focused`` makes the recent phase 20-35 s of
form work instead (a kind the shared file does not have).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable

Event = dict[str, object]
Phase = Callable[[random.Random, float], tuple[list[Event], float]]


def _xy(r: random.Random) -> Event:
    return {"x": r.randint(0, 1200), "y": r.randint(0, 800)}


def focused_phase(r: random.Random, t: float, seconds: float) -> tuple[list[Event], float]:
    """Form work: fields focused, typed with short pauses and left; clicks, slow scrolls."""
    out: list[Event] = []
    end = t + seconds
    while t < end:
        k = r.random()
        if k < 0.45:
            out.append({"type": "focus", "ts": t})
            t += r.uniform(1.0, 4.0)
            if r.random() < 0.5:
                out.append({"type": "input_pause", "ts": t, "duration_ms": r.randint(600, 2000)})
                t += r.uniform(1.0, 3.0)
            out.append({"type": "blur", "ts": t})
        elif k < 0.75:
            out.append({"type": "click", "ts": t, **_xy(r)})
        else:
            out.append(
                {"type": "scroll", "ts": t, "speed": r.randint(80, 350), "direction": "down"}
            )
        t += r.uniform(1.0, 5.0)
    return out, t


def browsing_phase(r: random.Random, t: float, seconds: float) -> tuple[list[Event], float]:
    """Relaxed exploring: page views, reading scrolls, brief hovers, a few clicks."""
    out: list[Event] = [{"type": "page_view", "ts": t, "url": "/"}]
    end = t + seconds
    t += r.uniform(1, 3)
    while t < end:
        k = r.random()
        if k < 0.3:
            out.append({"type": "page_view", "ts": t, "url": f"/p{r.randint(0, 99)}"})
        elif k < 0.65:
            out.append(
                {"type": "scroll", "ts": t, "speed": r.randint(200, 900), "direction": "down"}
            )
        elif k < 0.85:
            out.append({"type": "hover", "ts": t, "duration_ms": r.randint(300, 1400)})
        else:
            out.append({"type": "click", "ts": t, **_xy(r)})
        t += r.uniform(1.5, 7.0)
    return out, t


def decisive_phase(r: random.Random, t: float, seconds: float) -> tuple[list[Event], float]:
    """Quick purchasing: clicks, fields and pages a fraction of a second apart."""
    out: list[Event] = [{"type": "page_view", "ts": t, "url": "/"}]
    t += r.uniform(0.5, 2.5)
    end = t + seconds
    while t < end:
        k = r.random()
        if k < 0.7:
            out.append({"type": "click", "ts": t, **_xy(r)})
        elif k < 0.85:
            out.append({"type": "focus", "ts": t})
        else:
            out.append({"type": "page_view", "ts": t, "url": f"/p{r.randint(0, 9)}"})
        t += r.uniform(0.3, 1.1)
    return out, t


def away_then_back_phase(r: random.Random, t: float, seconds: float) -> tuple[list[Event], float]:
    """An idle spell right after landing, then steady work again."""
    out: list[Event] = [{"type": "page_view", "ts": t, "url": "/"}]
    t += r.uniform(1, 3)
    out.append({"type": "idle", "ts": t, "duration_ms": r.randint(15_000, 60_000)})
    more, t = focused_phase(r, t + r.uniform(1, 3), seconds)
    return out + more, t


EARLIER: dict[str, Phase] = {
    "focused": lambda r, t: focused_phase(r, t, r.uniform(60, 130)),
    "browsing": lambda r, t: browsing_phase(r, t, r.uniform(40, 80)),
    "decisive": lambda r, t: decisive_phase(r, t, r.uniform(10, 20)),
    "disengaged_then_back": lambda r, t: away_then_back_phase(r, t, r.uniform(25, 50)),
}


def recent_phase(r: random.Random, mood: str, t: float, variant: int) -> list[Event]:
    """A short phase at about the landing page's minimum evidence for ``mood``."""
    xy = _xy(r)
    if mood == "frustrated":
        if variant % 2 == 0:  # a rage burst, then an error
            return [
                {"type": "click", "ts": t, **xy},
                {"type": "rage_click", "ts": t + r.uniform(0.2, 0.5), **xy},
                {"type": "error", "ts": t + r.uniform(0.6, 1.3), "message": "500"},
            ]
        t1 = t + r.uniform(0.4, 1.0)  # two failed attempts
        t2 = t1 + r.uniform(0.5, 2.5)
        return [
            {"type": "click", "ts": t, **xy},
            {"type": "error", "ts": t1, "message": "Payment failed"},
            {"type": "click", "ts": t2, **xy},
            {"type": "error", "ts": t2 + r.uniform(0.3, 1.0), "message": "Payment failed"},
        ]
    if mood == "confused":
        kind = variant % 3
        if kind == 0:  # two long typing pauses in one field
            t1 = t + r.uniform(1, 2.5)
            return [
                {"type": "focus", "ts": t},
                {"type": "input_pause", "ts": t1, "duration_ms": r.randint(3000, 7000)},
                {
                    "type": "input_pause",
                    "ts": t1 + r.uniform(4, 8),
                    "duration_ms": r.randint(3000, 7000),
                },
            ]
        if kind == 1:  # back and forth between two pages
            t1 = t + r.uniform(1.5, 4.5)
            t2 = t1 + r.uniform(1.0, 3.0)
            return [
                {"type": "page_view", "ts": t, "url": "/a"},
                {"type": "back_nav", "ts": t1},
                {"type": "page_view", "ts": t2, "url": "/b"},
                {"type": "back_nav", "ts": t2 + r.uniform(2.0, 5.0)},
            ]
        t1 = t + r.uniform(3.5, 6)  # hovering without acting, then back up the page
        return [
            {"type": "hover", "ts": t, "duration_ms": r.randint(2800, 5000)},
            {"type": "hover", "ts": t1, "duration_ms": r.randint(2800, 5000)},
            {"type": "backtrack", "ts": t1 + r.uniform(1.5, 2.5)},
        ]
    if mood == "disengaged":
        out: list[Event] = [{"type": "idle", "ts": t, "duration_ms": r.randint(12_000, 56_000)}]
        if r.random() < 0.35:
            out.append({"type": "blur", "ts": t + r.uniform(0.5, 2.0)})
        return out
    if mood == "decisive":
        out = [{"type": "page_view", "ts": t, "url": "/buy"}]
        t += r.uniform(0.4, 0.9)
        for _ in range(r.randint(4, 8)):
            out.append({"type": r.choice(["click", "click", "click", "focus"]), "ts": t})
            t += r.uniform(0.25, 0.8)
        return out
    if mood == "browsing":
        out = []
        for _ in range(3):  # three page views with reading
            out.append({"type": "page_view", "ts": t, "url": f"/c{r.randint(0, 99)}"})
            t += r.uniform(2.0, 4.5)
            out.append(
                {"type": "scroll", "ts": t, "speed": r.randint(200, 900), "direction": "down"}
            )
            t += r.uniform(1.0, 3.0)
        return out
    if mood == "focused":
        return focused_phase(r, t, r.uniform(20, 35))[0]
    raise ValueError(mood)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per", type=int, default=12, help="sessions per (recent, earlier) pair")
    ap.add_argument("--focused", action="store_true", help="recent phase: form work")
    args = ap.parse_args()
    moods = (
        ["focused"]
        if args.focused
        else ["frustrated", "confused", "disengaged", "decisive", "browsing"]
    )
    pairs = [
        (mood, before)
        for mood in moods
        for before in EARLIER
        if not before.startswith(mood)  # no "browsing after browsing", no idle after idle
    ]
    r = random.Random(args.seed)
    n = 0
    for mood, before in pairs:
        for i in range(args.per):
            t0 = 1_764_000_000.0 + r.uniform(0, 1e6)
            events, t = EARLIER[before](r, t0)
            events += recent_phase(r, mood, t + r.uniform(3.0, 12.0), i)
            session = {"id": f"gen_{args.seed}_{n:04d}", "label": mood, "after": before}
            print(json.dumps({**session, "events": events}))
            n += 1


if __name__ == "__main__":
    main()
