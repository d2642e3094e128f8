"""Folding one batch into a session: the pure part every storage backend shares.

Backends load the stored session (or their cached copy of it), call
:func:`apply_batch`, and write everything it decides in the batch's own
transaction. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from sessionmood_client.types import MoodLabel, SuggestedAction
from sessionmood_server import engine
from sessionmood_server.learning import apply_policy
from sessionmood_server.rules import HOVER_HESITATION_MS, INPUT_HESITATION_MS

_EVENT_CORE = frozenset({"type", "ts"})

# Element analytics (GET /v1/analytics/elements): a session "struggled with"
# an element when it turned frustrated or confused within this many seconds
# (on the events' clock) after acting on it.
STRUGGLE_WINDOW_S = 10.0
STRUGGLE_MOODS = frozenset({"frustrated", "confused"})
# Journeys keep a session's first MAX_STEPS page views, plus one more row that
# only absorbs later updates (see ``Visit``), so a page deep in a long visit
# never rewrites an early step that happens to have its URL.
MAX_STEPS = 8
STORED_STEPS = MAX_STEPS + 1


class StoredSession(NamedTuple):
    """A session as stored before a batch (None stands for a new one)."""

    state: engine.State  # mutated by the fold: pass a copy to keep the original
    event_count: int
    last_url: str | None
    mood: str
    holdout: bool = False  # its group, decided at its first batch


class Visit(NamedTuple):
    """One step of a session's journey as a batch saw it: a page and the mood it
    was left in (or is in now); ``frustrated`` if the session was frustrated
    on it at a verdict of this batch. ``continued``: the page the session was
    on before the batch (its stored step is updated, not a new one added)."""

    url: str
    mood: MoodLabel
    frustrated: bool
    continued: bool


@dataclass(slots=True)
class ElementTally:
    """What one batch did to one element on one page (GET /v1/analytics/elements)."""

    clicks: int = 0
    rage_clicks: int = 0
    dead_clicks: int = 0
    error_clicks: int = 0
    hesitations: int = 0  # hovers and typing pauses past the engine's thresholds
    last_ts: float = 0.0  # the latest action on it, on the events' clock


def _tally(tally: ElementTally, ev: dict[str, Any], t: float) -> None:
    etype = ev["type"]
    if etype == "click":
        tally.clicks += 1
        tally.dead_clicks += ev.get("dead") is True
    elif etype == "rage_click":
        tally.rage_clicks += 1
    elif etype == "error":
        tally.error_clicks += 1  # tracker.js names the element only after a click
    elif etype in ("hover", "input_pause"):
        # The engine's own thresholds; a bare one counts, as in its rules.
        least = HOVER_HESITATION_MS if etype == "hover" else INPUT_HESITATION_MS
        duration = ev.get("duration_ms")
        tally.hesitations += duration is None or duration >= least
    if t > tally.last_ts:
        tally.last_ts = t


@dataclass(slots=True)
class BatchOutcome:
    state: engine.State
    verdict: engine.Verdict
    last_url: str | None
    # The mood each page was left in (or is in now): url -> mood. Feeds the
    # per-page heatmap; a page visited twice keeps its latest visit.
    page_moods: dict[str, MoodLabel]
    # The pages of the batch in order, consecutive repeats collapsed (journeys).
    visits: list[Visit]
    # (page, target) -> what the batch did to it; page "" before any page_view.
    elements: dict[tuple[str, str], ElementTally]


def fold_batch(
    state: engine.State, event_count: int, last_url: str | None, events: list[dict[str, Any]]
) -> BatchOutcome:
    page_moods: dict[str, MoodLabel] = {}
    visits: list[Visit] = []
    elements: dict[tuple[str, str], ElementTally] = {}
    first_url = last_url if state.n else None
    for ev in events:
        url = ev.get("url") if ev["type"] == "page_view" else None
        if url and last_url and url != last_url and state.n:
            # Leaving a page: remember the mood the visitor left it in.
            mood = engine.verdict(state).mood
            page_moods[last_url] = mood
            visits.append(_visit(last_url, mood, visits, first_url))
        state = engine.fold(state, ev)
        if url:
            last_url = url
        target = ev.get("target")
        if target is not None:
            key = (last_url or "", target)
            tally = elements.get(key)
            if tally is None:
                tally = elements[key] = ElementTally()
            _tally(tally, ev, float(ev["ts"]))
    verdict = engine.verdict(state)
    if last_url:
        page_moods[last_url] = verdict.mood
        visits.append(_visit(last_url, verdict.mood, visits, first_url))
    return BatchOutcome(state, verdict, last_url, page_moods, visits, elements)


def _visit(url: str, mood: MoodLabel, visits: list[Visit], first_url: str | None) -> Visit:
    """``url`` left (or still open) in ``mood``, after ``visits`` of this batch."""
    return Visit(url, mood, mood == "frustrated", not visits and url == first_url)


class EventColumns(NamedTuple):
    """Events as an events table with one row per event stores them, a column
    each (the statements that insert them take one array per column)."""

    seqs: list[int]  # numbered on from the session's events before the batch
    types: list[str]
    ts: list[float]
    fields: list[str | None]  # the other fields as JSON, None when there are none


def event_columns(
    events: list[dict[str, Any]], first_seq: int, into: EventColumns | None = None
) -> EventColumns:
    """The columns of ``events``, numbered from ``first_seq``: new ones, or
    ``into``'s with these appended (a group of batches in one call)."""
    columns = into if into is not None else EventColumns([], [], [], [])
    columns.seqs.extend(range(first_seq, first_seq + len(events)))
    # One loop, bound appends: this runs for every batch, and on PostgreSQL's
    # fast path the replica's CPU is what runs out first.
    add_type, add_ts, add_fields = columns.types.append, columns.ts.append, columns.fields.append
    dumps = orjson.dumps
    for ev in events:
        extra = None
        if len(ev) > 2 or not _EVENT_CORE.issuperset(ev):
            # A copy without the two core keys: a third of a comprehension's cost.
            rest = ev.copy()
            rest.pop("type", None)
            rest.pop("ts", None)
            if rest:
                extra = dumps(rest).decode()
        add_type(ev["type"])
        add_ts(ev["ts"])
        add_fields(extra)
    return columns


@dataclass(slots=True)
class AppliedBatch:
    """Everything a backend writes for one stored batch, computed without I/O."""

    folded: BatchOutcome
    previous: str  # the session's mood before the batch ("neutral" if new)
    total: int  # events in the session after the batch
    signals: list[str]
    action: SuggestedAction  # after the tenant's learned policy
    # The pages whose mood must be (re)recorded: none when the visitor stayed
    # on the same page in the same mood.
    page_moods: dict[str, MoodLabel]
    response: dict[str, Any]  # the PostEventsResponse body
    # The journey steps to (re)record: as ``page_moods``, none when nothing moved.
    visits: list[Visit]
    # Set when the batch turned the session frustrated or confused: elements
    # acted on since this time (events' clock) are marked as struggled with.
    struggled_since: float | None
    # The session's group; ``action`` is what a treated session gets (stored
    # so), the answer says ``no_action`` to a held-out one.
    holdout: bool
    # (mood, action) to record as first suggested (or held back) now: the
    # batch opened the session or changed its mood, to a mood with an action.
    exposure: tuple[MoodLabel, SuggestedAction] | None

    @property
    def changed(self) -> bool:
        return self.folded.verdict.mood != self.previous


def answered(action: SuggestedAction, holdout: bool) -> dict[str, Any]:
    """The action fields of an answer about a session: a held-out one gets
    ``no_action`` and is told what it would have got."""
    if holdout:
        return {"suggested_action": "no_action", "holdout": True, "held_out_action": action}
    return {"suggested_action": action, "holdout": False, "held_out_action": None}


def apply_batch(
    session_id: str,
    stored: StoredSession | None,
    events: list[dict[str, Any]],
    policy: Mapping[MoodLabel, SuggestedAction] | None,
    holdout: bool = False,
) -> AppliedBatch:
    """Fold ``events`` into the ``stored`` session (None: a new one, in the
    holdout if ``holdout``) and decide everything the batch writes."""
    if stored is None:
        state, count, last_url, previous = engine.new_state(), 0, None, "neutral"
    else:
        state, count, last_url, previous, holdout = stored
    folded = fold_batch(state, count, last_url, events)
    verdict = folded.verdict
    signals = list(verdict.signals)
    action = apply_policy(
        policy if policy is not None else {}, verdict.mood, verdict.suggested_action, signals
    )
    total = count + len(events)
    pages = folded.page_moods if folded.page_moods != {last_url: previous} else {}
    visits = folded.visits if pages else []
    turned = verdict.mood in STRUGGLE_MOODS and verdict.mood != previous
    struggled_since = folded.state.t_max - STRUGGLE_WINDOW_S if turned else None
    response = {
        "session_id": session_id,
        "events_stored": len(events),
        "total_events": total,
        "current_mood": verdict.mood,
        "confidence": verdict.confidence,
        "signals": signals,
        **answered(action, holdout),
    }
    exposed = action != "no_action" and (stored is None or verdict.mood != previous)
    return AppliedBatch(
        folded, previous, total, signals, action, pages, response, visits, struggled_since,
        holdout, (verdict.mood, action) if exposed else None,
    )  # fmt: skip
