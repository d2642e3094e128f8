"""Folding one batch into a session: the pure part every storage backend shares.

Backends load the session row, call :func:`fold_batch`, and write back what it
returns in the same transaction. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sessionmood_client._models import MoodLabel
from sessionmood_server import engine

_EVENT_CORE = frozenset({"type", "ts"})


@dataclass(slots=True)
class BatchOutcome:
    state: engine.State
    verdict: engine.Verdict
    last_url: str | None
    # The mood each page was left in (or is in now): url -> mood. Feeds the
    # per-page heatmap; a page visited twice keeps its latest visit.
    page_moods: dict[str, MoodLabel]
    # (seq, type, ts, extra fields as JSON or None) for the events table.
    event_rows: list[tuple[int, str, float, str | None]]


def fold_batch(
    state: engine.State, event_count: int, last_url: str | None, events: list[dict[str, Any]]
) -> BatchOutcome:
    page_moods: dict[str, MoodLabel] = {}
    rows: list[tuple[int, str, float, str | None]] = []
    for seq, ev in enumerate(events, start=event_count + 1):
        url = ev.get("url") if ev["type"] == "page_view" else None
        if url and last_url and url != last_url and state.n:
            # Leaving a page: remember the mood the visitor left it in.
            page_moods[last_url] = engine.verdict(state).mood
        state = engine.fold(state, ev)
        if url:
            last_url = url
        extra = {k: v for k, v in ev.items() if k not in _EVENT_CORE}
        rows.append((seq, ev["type"], ev["ts"], orjson.dumps(extra).decode() if extra else None))
    verdict = engine.verdict(state)
    if last_url:
        page_moods[last_url] = verdict.mood
    return BatchOutcome(state, verdict, last_url, page_moods, rows)
