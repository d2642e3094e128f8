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

The rules, their thresholds and the reason for each live in
:mod:`sessionmood_server.rules`; ``docs/engine.md`` documents them row by row.
This module compiles that table once, at import, into the flat views the hot
path reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from sessionmood_client.types import DEFAULT_ACTIONS, MOODS, MoodLabel, SuggestedAction
from sessionmood_server.rules import RULES, SAME_SPOT_PX, SPOT_MEMORY, Rule

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


# Fewer events than this is "insufficient data" whatever they are (API
# reference: neutral below ~3-5 events; landing page: neutral under ~3).
MIN_EVENTS = 3
# A best score below this is too little evidence to name a mood.
NEUTRAL_FLOOR = 1.5
# Score difference that multiplies a mood's odds by e (softmax temperature).
CONFIDENCE_TEMPERATURE = 1.0
# Event count at which the "enough data" factor reaches 1 - 1/e (~0.63).
VOLUME_EVENTS = 3.0


# --- the table compiled into the views fold and verdict read (the hot path) --


class _Matcher(NamedTuple):
    """What one rule asks of an event of one of its types (``fold``'s inner loop)."""

    rule: int
    field: str | None
    lo: float
    hi: float
    equals: str | bool | None
    when_missing: bool
    inv_tau: float
    kind: int  # _COUNT, _NEWEST or _SPOT: what a match does to the rule's slot


class _Row(NamedTuple):
    """One rule as ``_evaluate`` reads it."""

    rule: int
    inv_tau: float
    at: float
    span: float  # full - at
    guard: int  # its guard slot, or _PLAIN (a decayed count) or _SPOT_TS (a same_spot rule)
    lag: float  # how long after its guard event a match may come: inf for unless_after
    requires: int  # the rule whose strength scales this one's, or -1
    weights: tuple[tuple[int, float], ...]  # (mood index, weight)
    mood: int  # the mood it pushes hardest
    ongoing: bool
    suspends: bool


class _Pusher(NamedTuple):
    """A rule that pushes a mood (for the verdict's signals)."""

    rule: int
    signal: str
    weight: float


# The hot loops unpack these records' values from exact tuples: CPython
# unpacks an exact tuple in one specialised step, a NamedTuple through the
# iterator protocol (verdict took 20 % longer). The aliases list the fields in
# the records' order; tests/test_rules.py checks they agree.
_MatcherValues = tuple[int, str | None, float, float, str | bool | None, bool, float, int]
_RowValues = tuple[
    int, float, float, float, int, float, int, tuple[tuple[int, float], ...], int, bool, bool
]
_PusherValues = tuple[int, str, float]
_SuspensionValues = tuple[float, float, int, float]

# Matcher kinds: what a matching event does to its rule's slot in ``acc``.
_COUNT, _NEWEST, _SPOT = 0, 1, 2
# Row guards that are not guard slots.
_PLAIN, _SPOT_TS = -1, -2
_MOOD_INDEX = {m: i for i, m in enumerate(MOODS)}
_NEUTRAL = _MOOD_INDEX["neutral"]


def _values(record: Any) -> Any:
    """A record's values as an exact tuple (see the aliases above)."""
    return tuple(record)


def _check(rules: tuple[Rule, ...]) -> None:
    """What the compiled views rely on (raised, not asserted: ``-O`` keeps it)."""
    signals = [r.signal for r in rules]
    for i, r in enumerate(rules):
        if (r.unless_after and r.after) or (r.same_spot and (r.unless_after or r.after)):
            raise ValueError(f"{r.signal}: one guard per rule, none for same_spot")
        if r.requires is not None and r.requires not in signals[:i]:
            raise ValueError(f"{r.signal}: a rule may only require one listed before it")
        if r.weights[max(r.weights, key=lambda m: r.weights[m])] <= 0:
            raise ValueError(f"{r.signal}: every rule pushes some mood")


def _matchers(
    rules: tuple[Rule, ...], inv_tau: tuple[float, ...]
) -> dict[str, tuple[_MatcherValues, ...]]:
    """Event type -> the rules that watch it, in table order."""
    by_type: dict[str, list[_Matcher]] = {}
    for i, r in enumerate(rules):
        guarded = bool(r.unless_after or r.after)
        kind = _SPOT if r.same_spot else _NEWEST if guarded else _COUNT
        for etype in r.events:
            m = _Matcher(i, r.field, r.lo, r.hi, r.equals, r.when_missing, inv_tau[i], kind)
            by_type.setdefault(etype, []).append(m)
    return {etype: tuple(_values(m) for m in ms) for etype, ms in by_type.items()}


def _guards_by_type(
    rules: tuple[Rule, ...], guarded: tuple[int, ...]
) -> dict[str, tuple[int, ...]]:
    """Event type -> the guard slots it moves (newest cancelling/anchoring event)."""
    by_type: dict[str, list[int]] = {}
    for slot, i in enumerate(guarded):
        for etype in rules[i].unless_after or rules[i].after:
            by_type.setdefault(etype, []).append(slot)
    return {etype: tuple(slots) for etype, slots in by_type.items()}


def _rows(
    rules: tuple[Rule, ...], inv_tau: tuple[float, ...], guarded: tuple[int, ...]
) -> tuple[_Row, ...]:
    first_of: dict[str, int] = {}
    for i, r in enumerate(rules):
        first_of.setdefault(r.signal, i)
    slot_of = {i: slot for slot, i in enumerate(guarded)}
    rows = []
    for i, r in enumerate(rules):
        rows.append(
            _Row(
                rule=i,
                inv_tau=inv_tau[i],
                at=r.at,
                span=r.full - r.at,
                guard=slot_of.get(i, _SPOT_TS if r.same_spot else _PLAIN),
                lag=r.within_s if r.after else math.inf,
                requires=-1 if r.requires is None else first_of[r.requires],
                weights=tuple((_MOOD_INDEX[m], w) for m, w in r.weights.items()),
                mood=_MOOD_INDEX[max(r.weights, key=lambda m: r.weights[m])],
                ongoing=r.ongoing,
                # Cues suspend older patterns unless marked otherwise; patterns only if marked.
                suspends=not r.ongoing if r.suspends is None else r.suspends,
            )
        )
    return tuple(rows)


def _pushers(rows: tuple[_Row, ...]) -> tuple[tuple[_PusherValues, ...], ...]:
    """Per mood: the rules that push it (positive weight), in table order."""
    return tuple(
        tuple(
            _values(_Pusher(row.rule, RULES[row.rule].signal, w))
            for row in rows
            for m, w in row.weights
            if m == k and w > 0
        )
        for k in range(len(MOODS))
    )


_check(RULES)
_N_RULES = len(RULES)
_INV_TAU: tuple[float, ...] = tuple(math.log(2.0) / r.half_life_s for r in RULES)
# Move the anchor when the newest event is this many (fastest) time constants
# ahead of it: exp(40) ~ 2e17 is far from overflow, and rebasing is rare.
_REBASE_SPAN = 40.0 / max(_INV_TAU)
# Rules tracking "newest matching event" rather than a decayed count, each with
# a guard slot holding the newest event of the types that cancel
# (``unless_after``) or anchor (``after``) it.
_GUARDED: tuple[int, ...] = tuple(i for i, r in enumerate(RULES) if r.unless_after or r.after)
_N_GUARDS = len(_GUARDED)
# ``same_spot`` rules keep, instead of a count, the newer ts of their newest
# pair of matches at one spot (and the matches themselves in ``State.spots``).
_SPOT_RULES: tuple[int, ...] = tuple(i for i, r in enumerate(RULES) if r.same_spot)
_SPOT_SLOT = {i: n for n, i in enumerate(_SPOT_RULES)}
# Rules whose slot in ``acc`` holds a ts, not a decayed count.
_HOLDS_TS = tuple(i in _GUARDED or i in _SPOT_RULES for i in range(_N_RULES))
_BY_TYPE = _matchers(RULES, _INV_TAU)
_GUARDS_BY_TYPE = _guards_by_type(RULES, _GUARDED)
# verdict runs on every batch: one pass over these in table order sees every
# required rule's final strength (a rule only requires an earlier one).
_ROWS = _rows(RULES, _INV_TAU, _GUARDED)
_RULE_ROWS: tuple[_RowValues, ...] = tuple(_values(row) for row in _ROWS)
_PUSHERS = _pushers(_ROWS)


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
    return [_NONE if latest else 0.0 for latest in _HOLDS_TS]


def new_state() -> State:
    return State()


def _ms(t: float) -> int:
    return int(t * 1000.0 + 0.5)  # ts >= 0, so this rounds to the nearest ms


def _rebase(state: State, new_ref: float) -> None:
    acc, last = state.acc, state.last
    dt = new_ref - state.ref
    shift = _ms(state.ref) - _ms(new_ref)
    for i in range(_N_RULES):
        if acc[i] and not _HOLDS_TS[i]:
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


class _Suspension(NamedTuple):
    """How newer cues suspended a pattern: its unsuspended strength and the two
    strongest newer suspending rules of distinct moods."""

    strength: float
    first: float  # the strongest newer suspending rule's strength...
    first_mood: int  # ...and its mood (-1: none)
    second: float  # the strongest newer one of another mood than ``first_mood``


def _toward(sus: _SuspensionValues, mood: int) -> float:
    """A suspended pattern's strength as evidence for ``mood`` (positive weights):
    a newer phase of ``mood`` itself does not suspend evidence for ``mood``."""
    s, s1, m1, s2 = sus
    return s * (1.0 - (s1 if m1 != mood else s2))


# A pattern that held at t_max, waiting for currentness: (rule, mood, strength, weights).
_Pattern = tuple[int, int, float, tuple[tuple[int, float], ...]]


def _evaluate(
    state: State,
) -> tuple[list[float], list[float], dict[int, _SuspensionValues]]:
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
    strengths = [0.0] * _N_RULES
    sc = [0.0] * len(MOODS)
    patterns: list[_Pattern] = []
    newer: list[tuple[float, int, int]] = []  # suspending rules: (strength, newest, mood)
    _score_rules(state, strengths, sc, patterns, newer)
    suspended = _score_patterns(state.last, strengths, sc, patterns, newer)
    return strengths, sc, suspended


def _score_rules(
    state: State,
    strengths: list[float],
    sc: list[float],
    patterns: list[_Pattern],
    newer: list[tuple[float, int, int]],
) -> None:
    """Every rule's strength into ``strengths`` and, for cues, its evidence into
    ``sc``; patterns go to ``patterns`` and suspending rules to ``newer``."""
    t_max = state.t_max
    dt = t_max - state.ref
    acc, guard, last = state.acc, state.guard, state.last
    exp = math.exp
    for i, k, at, span, g, lag, req, weights, mood, ongoing, suspends in _RULE_ROWS:
        a = acc[i]
        if g == _PLAIN:
            v = a * exp(-dt * k) if a else 0.0
        elif a == _NONE:
            continue
        elif g == _SPOT_TS:  # decaying from its newest pair at one spot
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
        if ongoing:  # scored by _score_patterns, once currentness has scaled it
            patterns.append((i, mood, s, weights))
        else:
            for m, w in weights:
                sc[m] += s * w


def _score_patterns(
    last: list[int | None],
    strengths: list[float],
    sc: list[float],
    patterns: list[_Pattern],
    newer: list[tuple[float, int, int]],
) -> dict[int, _SuspensionValues]:
    """Currentness: a pattern's evidence for a mood counts only as far as no
    newer match of a suspending rule of another mood has replaced it (its
    counter-evidence goes with its own mood). Scales come from unscaled
    strengths, so they do not depend on the order of the rules. Strongest
    first: the first newer one, or the first of another mood than that, counts."""
    newer.sort(reverse=True)
    suspended: dict[int, _SuspensionValues] = {}  # (see _Suspension)
    for i, mood, s, weights in patterns:
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
        for k, w in weights:
            sc[k] += (own if (k if w > 0 else mood) == m1 else other) * w
    return suspended


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
