"""What the client tests share besides fixtures (``conftest.py``): constants,
canned answers, respx helpers, the patched clock and the mood stream's bodies.

Not generated: the async tests and their sync copies import the same names.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from sessionmood_client import AsyncSessionMoodClient, SessionMoodClient

BASE = "http://sm.test"
KEY = "sm_" + "4c9174cbe8250bb1d09ae779c168a4399e765819da244cbf"
NOW = 1_800_000_000.0

MOOD = {
    "session_id": "user_abc",
    "mood": "frustrated",
    "confidence": 0.89,
    "signals": ["rage_click_detected", "repeated_errors"],
    "suggested_action": "show_live_chat",
    "event_count": 6,
    "updated_at": "2026-05-04T10:00:00.000Z",
}
POSTED = {
    "session_id": "user_abc",
    "events_stored": 2,
    "total_events": 6,
    "current_mood": "neutral",
}
NO_RETRY = {"X-Should-Retry": "false"}
QUOTA_429 = {
    "error": "Rate limit exceeded",
    "plan": "starter",
    "limit": 5000,
    "reset_at": "2026-06-01T00:00:00.000Z",
}


def _responses(*steps: Any, ok: dict[str, Any] = MOOD) -> list[Any]:
    """respx side effects: an int is a status (200 answers ``ok``), anything else as is."""
    out: list[Any] = []
    for step in steps:
        if isinstance(step, int):
            body = ok if step < 300 else {"error": f"status {step}"}
            out.append(httpx.Response(step, json=body))
        elif isinstance(step, type):
            out.append(step("boom"))
        else:
            out.append(step)
    return out


def _sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def patch_clock(
    monkeypatch: pytest.MonkeyPatch,
    client: AsyncSessionMoodClient | SessionMoodClient,
    sleeps: list[float],
) -> None:
    """No real waiting: sleeps are recorded, jitter is 0 and the clock stands at NOW."""
    if isinstance(client, AsyncSessionMoodClient):

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        monkeypatch.setattr(client, "_sleep", sleep)
    else:
        monkeypatch.setattr(client, "_sleep", sleeps.append)
    monkeypatch.setattr(client, "_random", lambda: 0.0)
    monkeypatch.setattr(client, "_now", lambda: NOW)


# -- the mood stream's answers ------------------------------------------------------


def _change(change_id: int, mood: str = "frustrated") -> dict[str, Any]:
    return {
        "id": change_id,
        "session_id": "user_abc",
        "previous_mood": "neutral",
        "mood": mood,
        "confidence": 0.8,
        "signals": ["rage_click_detected"],
        "suggested_action": "show_live_chat",
        "url": "/checkout",
        "occurred_at": "2026-05-04T10:00:00.000Z",
    }


def _message(change_id: int, mood: str = "frustrated", eol: str = "\n") -> bytes:
    lines = [
        f"id: {change_id}",
        "event: mood.changed",
        f"data: {json.dumps(_change(change_id, mood))}",
    ]
    return (eol.join(lines) + eol + eol).encode()


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that arrives in these chunks, then ends or fails with ``error``."""

    def __init__(self, *chunks: bytes, error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def _sse(*chunks: bytes, error: Exception | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"Content-Type": "text/event-stream; charset=utf-8"},
        stream=Chunks(*chunks, error=error),
    )
