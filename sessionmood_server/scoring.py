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

_EVENT_CORE = frozenset({"type", "ts"})


class StoredSession(NamedTuple):
    """A session as stored before a batch (None stands for a new one)."""

    state: engine.State  # mutated by the fold: pass a copy to keep the original
    event_count: int
    last_url: str | None
    mood: str


@dataclass(slots=True)
class BatchOutcome:
    state: engine.State
    verdict: engine.Verdict
    last_url: str | None
    # The mood each page was left in (or is in now): url -> mood. Feeds the
    # per-page heatmap; a page visited twice keeps its latest visit.
    page_moods: dict[str, MoodLabel]


def fold_batch(
    state: engine.State, event_count: int, last_url: str | None, events: list[dict[str, Any]]
) -> BatchOutcome:
    page_moods: dict[str, MoodLabel] = {}
    for ev in events:
        url = ev.get("url") if ev["type"] == "page_view" else None
        if url and last_url and url != last_url and state.n:
            # Leaving a page: remember the mood the visitor left it in.
            page_moods[last_url] = engine.verdict(state).mood
        state = engine.fold(state, ev)
        if url:
            last_url = url
    verdict = engine.verdict(state)
    if last_url:
        page_moods[last_url] = verdict.mood
    return BatchOutcome(state, verdict, last_url, page_moods)


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

    @property
    def changed(self) -> bool:
        return self.folded.verdict.mood != self.previous


def apply_batch(
    session_id: str,
    stored: StoredSession | None,
    events: list[dict[str, Any]],
    policy: Mapping[MoodLabel, SuggestedAction] | None,
) -> AppliedBatch:
    """Fold ``events`` into the ``stored`` session (None: a new one) and decide
    everything the batch writes."""
    if stored is None:
        state, count, last_url, previous = engine.new_state(), 0, None, "neutral"
    else:
        state, count, last_url, previous = stored
    folded = fold_batch(state, count, last_url, events)
    verdict = folded.verdict
    signals = list(verdict.signals)
    action = apply_policy(policy or {}, verdict.mood, verdict.suggested_action, signals)
    total = count + len(events)
    pages = folded.page_moods if folded.page_moods != {last_url: previous} else {}
    response = {
        "session_id": session_id,
        "events_stored": len(events),
        "total_events": total,
        "current_mood": verdict.mood,
        "confidence": verdict.confidence,
        "signals": signals,
        "suggested_action": action,
    }
    return AppliedBatch(folded, previous, total, signals, action, pages, response)
