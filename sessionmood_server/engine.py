"""The mood engine: behavioural events in, a current mood out.

Pure and deterministic: no I/O, no wall clock, no randomness. Time is the
events' own ``ts``, so replaying a session always gives the same verdict.

How it works
------------
Every row of :data:`RULES` watches one kind of event (optionally filtered on a
field, e.g. ``input_pause`` with ``duration_ms >= 2500``) and keeps one
exponentially decayed count of the matching events::

    value(T) = sum over matching events of exp(-(T - t_event) / tau)

where ``T`` is the newest ``ts`` seen and ``tau = half_life / ln 2``. Sums of
exponentials are order-independent, so a late or out-of-order event simply adds
its already-decayed weight; the clock never moves backwards. To make ``fold``
O(1) (one ``exp`` per matching rule, no loop over the whole state) the counts
are stored relative to an anchor time ``ref``::

    acc = sum exp((t_event - ref) / tau)        value(T) = acc * exp(-(T - ref) / tau)

and the anchor is moved forward (rescaling every count once) only when the
newest ``ts`` runs far enough ahead of it that ``exp`` could overflow.

:func:`verdict` turns each decayed count into a rule strength in ``[0, 1]``
(a linear ramp from ``at`` to ``full``), adds ``strength * weight`` into each
mood's score, and picks the best mood. Sessions with fewer than
:data:`MIN_EVENTS` events, or whose best score is below :data:`NEUTRAL_FLOOR`,
are ``neutral``. Confidence grows with the winning score, with its margin over
the runner-up and with the number of events.

Currentness: rules marked ``ongoing`` are patterns of ordinary activity
(steady task work, browsing, fast pace) that describe the visitor only while
they go on. Each rule also remembers its newest matching ``ts``. When a
``suspends`` rule (the cues, and the patterns that are a phase of their own)
of mood X matched more recently than a pattern, the pattern's evidence for
every mood but X, and its counter-evidence, is scaled by ``1 - strength`` of
that rule (the strongest such rule counts). A newer phase at the landing
page's minimum evidence (two long typing pauses, two errors, a long idle:
strength 1) therefore replaces the older pattern however long it lasted,
while weaker newer evidence (one pause) only weakens it. Newest-``ts`` maxima,
like decayed sums, do not depend on arrival order.

The rules, their thresholds and the reason for each live in :data:`RULES`;
``docs/engine.md`` documents them row by row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from sessionmood_client.types import DEFAULT_ACTIONS, MOODS, MoodLabel, SuggestedAction

__all__ = [
    "MIN_EVENTS",
    "NEUTRAL_FLOOR",
    "RULES",
    "Rule",
    "State",
    "Verdict",
    "dumps",
    "fold",
    "loads",
    "new_state",
    "scores",
    "verdict",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table: which events count, how fast they fade, what they mean.

    An event counts when its type is in ``events`` and, if ``field`` is set, its
    value lies in ``[lo, hi)`` (or equals ``equals`` for string and boolean
    fields). Events without the field count only if ``when_missing`` is true: the
    API reference defines ``input_pause``, ``hover`` and ``idle`` as already past
    a client-side threshold, so a bare one is still a hesitation.

    A rule's *mood* is the one it pushes hardest. ``ongoing`` rules are patterns
    that hold only while they go on: a newer match of a ``suspends`` rule of
    mood X scales their evidence for other moods than X (and their
    counter-evidence) by ``1 - that rule's strength``. Cues suspend by default,
    patterns do not (their events are everyday activity) unless they are a
    phase of their own.
    """

    signal: str
    events: tuple[str, ...]
    half_life_s: float
    at: float  # decayed count where the rule starts to fire
    full: float  # decayed count where it fires fully (strength 1)
    weights: Mapping[MoodLabel, float]
    reason: str
    field: str | None = None
    lo: float = -math.inf
    hi: float = math.inf
    equals: str | bool | None = None
    when_missing: bool = False
    # Conjunction: strength is scaled by the strength of the rule with this signal.
    requires: str | None = None
    # "Nothing since": instead of a decayed count, track the newest matching
    # event; the rule holds (decaying from that event) only while no event of
    # these types is newer.
    unless_after: tuple[str, ...] = ()
    # "Right after": track the newest matching event; the rule holds (decaying
    # from it) only while it came at most ``within_s`` after the newest event
    # of these types ("the visitor's latest click was followed by an error").
    after: tuple[str, ...] = ()
    within_s: float = 0.0
    # "Again at the same spot": the rule holds (decaying from the newer of the
    # two) while two of its latest ``SPOT_MEMORY`` matches came at one spot.
    same_spot: bool = False
    ongoing: bool = False
    suspends: bool | None = None  # None: cues suspend, patterns do not
    # Where the cue and its threshold come from (shown in docs/engine.md).
    source: str = ""


# Thresholds from the landing page: input_pause >= 2.5 s and hover >= 2 s are
# hesitation, idle >= 10 s is disengagement.
INPUT_HESITATION_MS = 2500.0
HOVER_HESITATION_MS = 2000.0
LONG_IDLE_MS = 10_000.0
# Reading scrolls run at a few hundred px/s; thousands is flinging the page.
FAST_SCROLL_PX_S = 2000.0
# An error this soon after a click is that click's failure ("error click",
# Datadog: a click right before a JS error). A handler that throws does so at
# once and a failed request answers within its round trip; a background poll
# failing seconds later is not the visitor's action failing.
ERROR_CLICK_S = 1.5
# Two clicks this close (viewport px) without an element descriptor are on
# the same control (PostHog's rage radius); with ``target`` the descriptors decide.
SAME_SPOT_PX = 30.0
# How many of a ``same_spot`` rule's newest matches are compared.
SPOT_MEMORY = 3

# Frustration and confusion fade over about a minute: a visitor who rage-clicked
# ten minutes ago (10 half-lives) and has worked calmly since is not frustrated.
_SLOW = 60.0
# Pace and engagement patterns describe what the visitor is doing *now*.
_MEDIUM = 30.0
# "Fast, direct" is about the last few seconds only.
_FAST = 3.0

# Anything the visitor does on purpose; a blur with none of these after it is
# a form left behind.
_ACTIVE = (
    "click", "rage_click", "scroll", "input_pause", "backtrack", "back_nav",
    "page_view", "error", "hover", "focus",
)  # fmt: skip

# fmt: off
RULES: tuple[Rule, ...] = (
    # --- frustrated -------------------------------------------------------
    Rule("rage_click_detected", ("rage_click",), _SLOW, 0.0, 1.5,
         {"frustrated": 6.0, "decisive": -4.0},
         "Several rapid clicks on one spot: the strongest cue. The burst's own clicks"
         " are not fast, direct interaction, so it cancels that pace too.",
         source="landing page: rage_click -> frustrated (strong signal)"),
    Rule("repeated_errors", ("error",), _SLOW, 1.0, 2.0,
         {"frustrated": 6.0, "confused": -1.5},
         "Two or more recent errors: the visitor keeps failing, past mere confusion"
         " (landing page: 1 error -> confused, 2+ -> frustrated).",
         source="landing page: error -> frustrated (2+)"),
    Rule("error_encountered", ("error",), _SLOW, 0.0, 1.0,
         {"confused": 2.0, "frustrated": 1.0},
         "A single error leaves the visitor unsure what happened (landing page: 1 -> confused).",
         source="landing page: error -> confused (1)"),
    Rule("fast_scroll", ("scroll",), _MEDIUM, 0.0, 2.0,
         {"frustrated": 1.5, "confused": 0.5},
         "Flinging the page at thousands of px/s is frantic searching, not reading.",
         field="speed", lo=FAST_SCROLL_PX_S,
         source="landing page: scroll -> frustrated (fast); 2000 px/s is ours"),
    Rule("repeated_dead_click", ("click",), _SLOW, 0.0, 1.0,
         {"frustrated": 2.5},
         "A control that did not answer, clicked again (two of the latest three dead"
         " clicks on one spot): the visitor keeps trying what fails.",
         field="dead", equals=True, same_spot=True,
         source="API reference: frustrated = repeated failed actions; Sentry: rage ="
                " repeated dead clicks on one element"),
    Rule("dead_click_detected", ("click",), _SLOW, 0.0, 3.0,
         {"frustrated": 2.1},
         "Clicks on interactive-looking things that got no response: a cue, not a verdict."
         " Two on different controls stay under the floor; a third or another sign tips it.",
         field="dead", equals=True,
         source="tracker.js dead flag (PostHog, Sentry dead clicks: an issue to look at,"
                " not a visitor's state)"),
    Rule("error_click_detected", ("error",), _SLOW, 0.0, 1.0,
         {"frustrated": 0.8},
         "The newest error came within 1.5 s of the latest click: that click failed (Datadog's"
         " error click). Tips one error to frustrated only with another frustration cue.",
         after=("click", "rage_click"), within_s=ERROR_CLICK_S,
         source="Datadog error click; 1.5 s is ours"),
    Rule("back_navigation", ("back_nav",), _SLOW, 0.0, 1.0,
         {"confused": 2.0, "frustrated": 0.6},
         "Pressing back means the page was not what the visitor expected.",
         source="API reference: back_nav -> frustrated, confused"),
    # --- confused ---------------------------------------------------------
    Rule("high_page_churn", ("page_view",), _SLOW, 2.0, 4.0,
         {"confused": 2.0, "browsing": -1.5},
         "Many page views *with* back navigation is hunting, not relaxed exploring.",
         requires="back_navigation",
         source="landing page: page_view -> confused (4+, high churn)"),
    Rule("backtrack_detected", ("backtrack",), _SLOW, 0.0, 2.0,
         {"confused": 3.0},
         "Reversing up the page is re-reading: the content did not answer the question.",
         source="landing page: backtrack -> confused"),
    Rule("backtrack_detected", ("scroll",), _SLOW, 0.0, 2.0,
         {"confused": 2.0},
         "An upward scroll is a scroll reversal, the same cue as backtrack.",
         field="direction", equals="up",
         source="API reference: confused = scroll reversals"),
    Rule("hover_hesitation", ("hover",), _SLOW, 0.0, 2.0,
         {"confused": 3.5},
         "Hovering >= 2 s without clicking is hesitation over what an element does.",
         field="duration_ms", lo=HOVER_HESITATION_MS, when_missing=True,
         source="landing page: hover -> hesitation; 2 s is ours"),
    Rule("input_hesitation", ("input_pause",), _SLOW, 0.0, 2.0,
         {"confused": 3.5, "frustrated": 0.3},
         "Stopping >= 2.5 s mid-field: the visitor does not know what to enter (landing page).",
         field="duration_ms", lo=INPUT_HESITATION_MS, when_missing=True,
         source="landing page: input_pause -> confused (>= 2.5 s)"),
    # --- decisive ---------------------------------------------------------
    Rule("fast_direct_interactions", ("click", "focus", "page_view"), _FAST, 2.5, 4.5,
         {"decisive": 4.0, "focused": -1.0, "browsing": -1.0},
         "Clicks, focuses and navigations about a second apart or faster: no hesitation,"
         " which is neither relaxed browsing nor steady task work. Dead clicks do not count.",
         field="dead", equals=False, when_missing=True, ongoing=True, suspends=True,
         source="landing page: click -> decisive (rapid bursts)"),
    # --- browsing ---------------------------------------------------------
    Rule("multi_page_browse", ("page_view",), _SLOW, 1.0, 3.5,
         {"browsing": 3.0, "focused": -1.0},
         "Several page views in the last minute is exploring, not one task"
         " (landing page: 2+ -> browsing).",
         ongoing=True, suspends=True,
         source="landing page: page_view -> browsing (2+)"),
    Rule("casual_hover", ("hover",), _MEDIUM, 0.0, 2.0,
         {"browsing": 1.0},
         "Brief hovers are looking around, not hesitating.",
         field="duration_ms", hi=HOVER_HESITATION_MS, ongoing=True,
         source="landing page: hover -> browsing"),
    Rule("moderate_scroll", ("scroll",), _MEDIUM, 0.0, 3.0,
         {"browsing": 1.2, "focused": 0.5},
         "Steady scrolling is reading: relaxed exploring, or part of a task; never distress.",
         field="speed", hi=FAST_SCROLL_PX_S, when_missing=True, ongoing=True,
         source="API reference: scroll -> browsing; landing page: focused (steady)"),
    # --- disengaged -------------------------------------------------------
    Rule("long_idle", ("idle",), _SLOW, 0.0, 1.0,
         {"disengaged": 6.0},
         "No activity for >= 10 s: attention has drifted (landing page: idle >= 10 s),"
         " until the visitor is back (any deliberate action since).",
         field="duration_ms", lo=LONG_IDLE_MS, when_missing=True, unless_after=_ACTIVE,
         source="landing page: idle -> disengaged (>= 10 s)"),
    Rule("short_idle", ("idle",), _SLOW, 0.0, 2.0,
         {"disengaged": 1.5},
         "Repeated short lapses in activity hint at drifting attention.",
         field="duration_ms", hi=LONG_IDLE_MS,
         source="API reference: idle -> disengaged"),
    Rule("form_abandoned", ("blur",), _SLOW, 0.0, 1.0,
         {"disengaged": 1.0},
         "A blur with no deliberate action since is a form left behind (blur without re-focus)."
         " Every blur starts out like this, so it suspends no pattern.",
         unless_after=_ACTIVE, suspends=False,
         source="API reference: blur -> possibly abandoned"),
    # --- focused ----------------------------------------------------------
    Rule("steady_interaction_pattern", ("click",), _MEDIUM, 1.0, 4.0,
         {"focused": 2.0, "decisive": 0.5, "browsing": 0.3},
         "Clicks sustained over half a minute are task work (dead clicks are not).",
         field="dead", equals=False, when_missing=True, ongoing=True,
         source="landing page: focused = steady, task-oriented"),
    Rule("steady_interaction_pattern", ("focus", "blur"), _MEDIUM, 1.0, 4.0,
         {"focused": 2.0, "decisive": 0.3},
         "Moving in and out of form fields is sustained form completion.",
         ongoing=True, suspends=True,
         source="API reference: focused = sustained form interaction"),
    Rule("steady_interaction_pattern", ("input_pause",), _MEDIUM, 0.0, 2.0,
         {"focused": 1.0},
         "Pauses under 2.5 s while typing are ordinary typing rhythm.",
         field="duration_ms", hi=INPUT_HESITATION_MS, ongoing=True,
         source="landing page: confused only from 2.5 s"),
)
# fmt: on

# Fewer events than this is "insufficient data" whatever they are (API
# reference: neutral below ~3-5 events; landing page: neutral under ~3).
MIN_EVENTS = 3
# A best score below this is too little evidence to name a mood.
NEUTRAL_FLOOR = 1.5
# Score difference that multiplies a mood's odds by e (softmax temperature).
CONFIDENCE_TEMPERATURE = 1.0
# Event count at which the "enough data" factor reaches 1 - 1/e (~0.63).
VOLUME_EVENTS = 3.0

# --- precomputed views of the table (fold is the hot path) ---------------

_N_RULES = len(RULES)
_INV_TAU: tuple[float, ...] = tuple(math.log(2.0) / r.half_life_s for r in RULES)
_MAX_INV_TAU = max(_INV_TAU)
# Move the anchor when the newest event is this many (fastest) time constants
# ahead of it: exp(40) ~ 2e17 is far from overflow, and rebasing is rare.
_REBASE_SPAN = 40.0 / _MAX_INV_TAU
_MOOD_INDEX = {m: i for i, m in enumerate(MOODS)}
_NEUTRAL = _MOOD_INDEX["neutral"]
_SIGNAL_INDEX: dict[str, int] = {}
for _i, _r in enumerate(RULES):
    _SIGNAL_INDEX.setdefault(_r.signal, _i)
# Rules tracking "newest matching event" rather than a decayed count, and the
# guard slot holding the newest event of the types that cancel (``unless_after``)
# or anchor (``after``) each of them.
_LATEST: tuple[int, ...] = tuple(i for i, r in enumerate(RULES) if r.unless_after or r.after)
# ``same_spot`` rules keep, instead of a count, the newer ts of their newest
# pair of matches at one spot (and the matches themselves in ``State.spots``).
_SPOT_RULES: tuple[int, ...] = tuple(i for i, r in enumerate(RULES) if r.same_spot)
_IS_LATEST = tuple(i in _LATEST or i in _SPOT_RULES for i in range(_N_RULES))
_N_GUARDS = len(_LATEST)
_SPOT_SLOT = {i: n for n, i in enumerate(_SPOT_RULES)}
# Matcher kinds: what a matching event does to its rule's slot in ``acc``.
_COUNT, _NEWEST, _SPOT = 0, 1, 2
_REQUIRES: tuple[int, ...] = tuple(
    -1 if r.requires is None else _SIGNAL_INDEX[r.requires] for r in RULES
)
assert all(not (r.unless_after and r.after) for r in RULES), "one guard per rule"
assert not any(r.same_spot and (r.unless_after or r.after) for r in RULES), "spot rules: no guard"

# event type -> tuple of (rule index, field, lo, hi, equals, when_missing, inv_tau, kind)
_Matcher = tuple[int, str | None, float, float, str | bool | None, bool, float, int]
_BY_TYPE: dict[str, tuple[_Matcher, ...]] = {}
_GUARDS_BY_TYPE: dict[str, tuple[int, ...]] = {}
for _i, _r in enumerate(RULES):
    for _t in _r.events:
        _BY_TYPE[_t] = (
            *_BY_TYPE.get(_t, ()),
            (_i, _r.field, _r.lo, _r.hi, _r.equals, _r.when_missing, _INV_TAU[_i],
             _SPOT if _r.same_spot else _NEWEST if _IS_LATEST[_i] else _COUNT),
        )  # fmt: skip
for _g, _i in enumerate(_LATEST):
    for _t in RULES[_i].unless_after or RULES[_i].after:
        _GUARDS_BY_TYPE[_t] = (*_GUARDS_BY_TYPE.get(_t, ()), _g)
# Per rule: (mood index, weight) pairs, so verdict avoids dict lookups.
_WEIGHTS: tuple[tuple[tuple[int, float], ...], ...] = tuple(
    tuple((_MOOD_INDEX[m], w) for m, w in r.weights.items()) for r in RULES
)
# Per mood: (rule index, signal, weight) of the rules that push it, in rule order.
_PUSHERS: tuple[tuple[tuple[int, str, float], ...], ...] = tuple(
    tuple((i, r.signal, w) for i, r in enumerate(RULES) for m, w in _WEIGHTS[i] if m == k and w > 0)
    for k in range(len(MOODS))
)
# Currentness: each rule's mood (the one it pushes hardest), and whether it is
# a pattern and whether its newer matches suspend patterns of other moods.
_MOOD_OF: tuple[int, ...] = tuple(
    _MOOD_INDEX[max(r.weights, key=lambda m: r.weights[m])] for r in RULES
)
assert all(r.weights[MOODS[_MOOD_OF[i]]] > 0 for i, r in enumerate(RULES)), "every rule pushes"
_SUSPENDS = tuple(not r.ongoing if r.suspends is None else r.suspends for r in RULES)
# verdict runs on every batch, so _evaluate reads each rule's numbers from one
# flat tuple: (index, 1/tau, at, full - at, guard slot (-1 none, -2 a spot
# rule's unguarded newest ts), latest event's
# allowed lag behind the guard event (inf for ``unless_after``, -1 for plain
# rules), required rule or -1, weights, mood, ongoing, suspends). A rule may
# only require one listed before it, so one pass in table order sees every
# requirement's final strength.
_GUARD_OF = {i: g for g, i in enumerate(_LATEST)}
_Row = tuple[
    int, float, float, float, int, float, int, tuple[tuple[int, float], ...], int, bool, bool
]
_RULE_ROWS: tuple[_Row, ...] = tuple(
    (
        i,
        _INV_TAU[i],
        r.at,
        r.full - r.at,
        _GUARD_OF.get(i, -2 if r.same_spot else -1),
        r.within_s if r.after else math.inf if r.unless_after else -1.0,
        _REQUIRES[i],
        _WEIGHTS[i],
        _MOOD_OF[i],
        r.ongoing,
        _SUSPENDS[i],
    )
    for i, r in enumerate(RULES)
)
assert all(j < i for i, j in enumerate(_REQUIRES)), "a rule must require an earlier one"

_NONE = -1.0  # "no such event yet" for timestamps (validated ts are >= 0)


class Spot(NamedTuple):
    """One match of a ``same_spot`` rule: when, and where (its element descriptor
    when the tracker sent one, else its viewport point)."""

    ts: float
    x: float | None
    y: float | None
    target: str | None

    def key(self) -> tuple[float, float, float, str]:
        """A total order: the newest matches win, ties broken by content."""
        inf = -math.inf
        x, y = self.x, self.y
        return (self.ts, inf if x is None else x, inf if y is None else y, self.target or "")


def _same_spot(a: Spot, b: Spot) -> bool:
    if a.target is not None and b.target is not None:
        return a.target == b.target
    if a.x is None or a.y is None or b.x is None or b.y is None:
        return False  # no point to compare (a keyboard click): not known to be one control
    return math.hypot(a.x - b.x, a.y - b.y) <= SAME_SPOT_PX


def _remember(spots: list[Spot], event: Mapping[str, Any], t: float) -> float:
    """Keep the ``SPOT_MEMORY`` newest matches (by ``Spot.key``, so which ones
    are kept never depends on arrival order) and return the newer ts of the
    newest pair at one spot among them, or ``_NONE``."""
    x, y, target = event.get("x"), event.get("y"), event.get("target")
    spot = Spot(t, None if x is None else float(x), None if y is None else float(y), target)
    spots.append(spot)
    spots.sort(key=Spot.key, reverse=True)
    del spots[SPOT_MEMORY:]
    pair = _NONE
    for i, a in enumerate(spots):
        for b in spots[i + 1 :]:
            if _same_spot(a, b):
                pair = max(pair, a.ts)  # spots are newest first: a is the newer
    return pair


class Verdict(NamedTuple):
    """A session's mood and why. A named tuple: one is built per batch."""

    mood: MoodLabel
    confidence: float  # 0..1
    signals: tuple[str, ...]  # strongest first, only those that drove the verdict
    suggested_action: SuggestedAction  # DEFAULT_ACTIONS[mood]


@dataclass(slots=True)
class State:
    """Fixed-size engine state: two numbers per rule, one per guard, three scalars,
    and ``SPOT_MEMORY`` remembered matches per ``same_spot`` rule."""

    n: int = 0  # events folded so far
    t_max: float = 0.0  # newest ts seen ("now" for the verdict)
    ref: float = 0.0  # anchor time of the decayed counts in ``acc``
    # Per rule: decayed count relative to ``ref``, or for ``unless_after`` and
    # ``after`` rules the newest matching ts.
    acc: list[float] = field(default_factory=lambda: _fresh_acc())
    # Per ``unless_after``/``after`` rule: newest ts of a cancelling/anchoring event.
    guard: list[float] = field(default_factory=lambda: [_NONE] * _N_GUARDS)
    # Per rule: newest matching ts in whole milliseconds after ``ref`` (None
    # before the first match). Which phase is newer needs no finer clock, and
    # small exact integers keep the saved state short and its round trip exact.
    last: list[int | None] = field(default_factory=lambda: [None] * _N_RULES)
    # Per ``same_spot`` rule: its newest ``SPOT_MEMORY`` matches, newest first.
    spots: list[list[Spot]] = field(default_factory=lambda: [[] for _ in _SPOT_RULES])

    def copy(self) -> State:
        """An independent copy (``fold`` mutates its state in place)."""
        spots = [s[:] for s in self.spots]
        return State(self.n, self.t_max, self.ref, self.acc[:], self.guard[:], self.last[:], spots)


def _fresh_acc() -> list[float]:
    return [_NONE if latest else 0.0 for latest in _IS_LATEST]


def new_state() -> State:
    return State()


def _ms(t: float) -> int:
    return int(t * 1000.0 + 0.5)  # ts >= 0, so this rounds to the nearest ms


def _rebase(state: State, new_ref: float) -> None:
    acc, last = state.acc, state.last
    dt = new_ref - state.ref
    shift = _ms(state.ref) - _ms(new_ref)
    for i in range(_N_RULES):
        if acc[i] and not _IS_LATEST[i]:
            acc[i] *= math.exp(-dt * _INV_TAU[i])
        x = last[i]
        if x is not None:
            last[i] = x + shift
    state.ref = new_ref


def fold(state: State, event: Mapping[str, Any]) -> State:
    """Add one validated event to ``state`` (mutated in place and returned)."""
    t = float(event["ts"])
    if state.n == 0:
        state.ref = state.t_max = t
    elif t > state.t_max:
        state.t_max = t
        if t - state.ref > _REBASE_SPAN:
            _rebase(state, t)
    state.n += 1
    etype = event["type"]
    guards = _GUARDS_BY_TYPE.get(etype)
    if guards is not None:
        g_ts = state.guard
        for g in guards:
            if t > g_ts[g]:
                g_ts[g] = t
    matchers = _BY_TYPE.get(etype)
    if matchers is None:
        return state
    acc, last = state.acc, state.last
    dt = t - state.ref  # <= _REBASE_SPAN, so exp cannot overflow
    t_ms = int(t * 1000.0 + 0.5) - int(state.ref * 1000.0 + 0.5)  # _ms(t) - _ms(ref), inline
    for i, fname, lo, hi, eq, when_missing, inv_tau, kind in matchers:
        if fname is not None:
            v = event.get(fname)
            if v is None:
                if not when_missing:
                    continue
            elif eq is not None:
                if v != eq:
                    continue
            elif not lo <= v < hi:
                continue
        if kind == _COUNT:
            acc[i] += math.exp(dt * inv_tau)
        elif kind == _NEWEST:
            if t > acc[i]:
                acc[i] = t
        else:
            # The rule's evidence is its newest pair, recomputed from the kept
            # matches: it may end when newer matches push one of the pair out.
            pair = _remember(state.spots[_SPOT_SLOT[i]], event, t)
            acc[i] = pair
            last[i] = None if pair == _NONE else _ms(pair) - _ms(state.ref)
            continue
        x = last[i]
        if x is None or t_ms > x:
            last[i] = t_ms
    return state


# A pattern's suspension: its unsuspended strength and the two strongest newer
# suspending rules of distinct moods, as (strength, mood, strength).
_Suspension = tuple[float, float, int, float]


def _toward(sus: _Suspension, mood: int) -> float:
    """A suspended pattern's strength as evidence for ``mood`` (positive weights):
    a newer phase of ``mood`` itself does not suspend evidence for ``mood``."""
    s, s1, m1, s2 = sus
    return s * (1.0 - (s1 if m1 != mood else s2))


def _evaluate(state: State) -> tuple[list[float], list[float], dict[int, _Suspension]]:
    """Each rule's strength in [0, 1] at ``t_max``, each mood's score, and how
    each pattern was suspended.

    A rule's decayed count at ``t_max`` (for ``unless_after``/``after`` rules:
    how recent its newest match is, while its guard condition holds) is ramped
    linearly from ``at`` to ``full``, times the strength of the rule it
    requires. Then the patterns are suspended by newer matches of suspending
    rules (see the module docstring), and the moods' scores add up
    strength * weight (other rules in table order, then the patterns). A
    pattern's reported strength is the one toward its own mood.
    """
    t_max = state.t_max
    dt = t_max - state.ref
    acc, guard = state.acc, state.guard
    exp = math.exp
    strengths = [0.0] * _N_RULES
    sc = [0.0] * len(MOODS)
    last = state.last
    patterns: list[tuple[int, int, float]] = []  # (rule, mood, strength)
    newer: list[tuple[float, int, int]] = []  # suspending rules: (strength, newest, mood)
    for i, k, at, span, g, lag, req, weights, mood, ongoing, suspends in _RULE_ROWS:
        a = acc[i]
        if g == -1:
            v = a * exp(-dt * k) if a else 0.0
        elif a == _NONE:
            continue
        elif g == -2:  # a same_spot rule: decaying from its newest pair
            v = exp(-(t_max - a) * k)
        else:
            # unless_after: no cancelling event newer than the match (lag inf);
            # after: the match came at most ``lag`` after the anchoring event.
            gt = guard[g]
            if gt > a or (a - gt > lag) or (gt == _NONE and lag != math.inf):
                continue
            v = exp(-(t_max - a) * k)
        s = (v - at) / span
        if s <= 0.0:
            continue
        if s >= 1.0:
            s = 1.0
        if req >= 0:
            s *= strengths[req]
            if not s:
                continue
        strengths[i] = s
        if suspends and (t := last[i]) is not None:  # a rule with strength has matched
            newer.append((s, t, mood))
        if ongoing:  # scored below, once currentness has scaled it
            patterns.append((i, mood, s))
        else:
            for m, w in weights:
                sc[m] += s * w
    # Currentness: a pattern's evidence for a mood counts only as far as no newer
    # match of a suspending rule of another mood has replaced it (its
    # counter-evidence goes with its own mood). Scales come from unscaled
    # strengths, so they do not depend on the order of the rules. Strongest
    # first: the first newer one, or the first of another mood than that, counts.
    newer.sort(reverse=True)
    suspended: dict[int, _Suspension] = {}
    for i, mood, s in patterns:
        newest = last[i]
        s1 = s2 = 0.0
        m1 = -1
        if newest is not None:
            for x, t, m in newer:
                if t > newest:
                    if m1 < 0:
                        s1, m1 = x, m
                    elif m != m1:
                        s2 = x
                        break
        suspended[i] = (s, s1, m1, s2)
        other, own = s * (1.0 - s1), s * (1.0 - s2)  # for moods other than m1; for m1
        strengths[i] = own if mood == m1 else other
        for k, w in _WEIGHTS[i]:
            sc[k] += (own if (k if w > 0 else mood) == m1 else other) * w
    return strengths, sc, suspended


def scores(state: State) -> dict[MoodLabel, float]:
    """Per-mood evidence scores (diagnostics and docs; ``verdict`` uses the same sums)."""
    sc = _evaluate(state)[1]
    return {m: sc[i] for i, m in enumerate(MOODS)}


def _neutral(state: State) -> Verdict:
    # Confidence that the session is "nothing yet" stays low and grows slowly
    # with events: 0 with no data, 0.16 after one event, 0.25 after two.
    conf = 0.4 * (1.0 - math.exp(-state.n / 2.0))
    return Verdict("neutral", round(conf, 3), ("insufficient_data",), DEFAULT_ACTIONS["neutral"])


def verdict(state: State) -> Verdict:
    """The session's current mood, evaluated at its newest event."""
    if state.n < MIN_EVENTS:
        return _neutral(state)
    strengths, sc, suspended = _evaluate(state)
    top = max(sc)
    best = sc.index(top)  # ties go to the mood listed first
    if top < NEUTRAL_FLOOR or best == _NEUTRAL:
        return _neutral(state)
    mood = MOODS[best]
    # Softmax share of the winner against every other mood, with "neutral"
    # standing in at the floor score: low when a rival is close or when the
    # winner barely clears the floor. Scaled by how many events we have seen.
    sc[_NEUTRAL] = NEUTRAL_FLOOR
    exp = math.exp
    total = 0.0
    for x in sc:
        total += exp((x - top) / CONFIDENCE_TEMPERATURE)
    share = 1.0 / total
    volume = 1.0 - math.exp(-state.n / VOLUME_EVENTS)
    conf = share * volume
    # Signals: rules that pushed the winner, strongest contribution first.
    contrib: dict[str, float] = {}
    for i, sig, w in _PUSHERS[best]:
        sus = suspended.get(i)
        s = strengths[i] if sus is None else _toward(sus, best)
        if s:
            contrib[sig] = contrib.get(sig, 0.0) + s * w
    if len(contrib) > 1:
        signals = tuple(sorted(contrib, key=lambda k: (-contrib[k], k)))
    else:
        signals = tuple(contrib)
    return Verdict(mood, round(min(max(conf, 0.0), 1.0), 3), signals, DEFAULT_ACTIONS[mood])


def dumps(state: State) -> str:
    """Compact JSON; floats in shortest round-trip form, so ``loads(dumps(s))`` is exact."""
    spots = state.spots
    return orjson.dumps(
        {
            "v": 3,
            "n": state.n,
            "t": state.t_max,
            "r": state.ref,
            "a": state.acc,
            "g": state.guard,
            "l": state.last,
            "s": [[list(x) for x in kept] for kept in spots] if any(spots) else spots,
        }
    ).decode()


def loads(data: str) -> State:
    d = orjson.loads(data)
    acc = [float(x) for x in d["a"]]
    guard = [float(x) for x in d.get("g", ())]
    last: list[int | None] = d.get("l", [])  # ints and nulls, as dumps wrote them
    raw: list[list[list[Any]]] = d.get("s", ())
    spots = [[Spot(*x) for x in kept] for kept in raw] if any(raw) else [[] for _ in raw]
    if (
        len(acc) != _N_RULES
        or len(guard) != _N_GUARDS
        or len(last) != _N_RULES
        or len(spots) != len(_SPOT_RULES)
    ):
        # Saved under a different rule table: the counts cannot be mapped, so
        # start the evidence afresh but keep the event count and clock.
        acc, guard, last = _fresh_acc(), [_NONE] * _N_GUARDS, [None] * _N_RULES
        spots = [[] for _ in _SPOT_RULES]
    return State(
        n=int(d["n"]),
        t_max=float(d["t"]),
        ref=float(d["r"]),
        acc=acc,
        guard=guard,
        last=last,
        spots=spots,
    )
