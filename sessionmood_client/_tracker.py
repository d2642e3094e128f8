"""Batching helpers for backends that report events as they happen.

``client.tracker(session_id)`` returns an ``EventTracker`` (``AsyncEventTracker``
for the async client): a small buffer that sends one request per ``max_batch``
events instead of one per event, and whatever is left when the ``with``
block ends::

    with client.tracker("user_abc", max_batch=20) as t:
        t.track("page_view", url="/checkout")
        t.track("error", message="Payment failed")
    print(t.last_response.current_mood if t.last_response else "nothing sent")
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from ._base import EventInput, quote_session_id
from ._exceptions import SessionMoodError
from .types import Event, EventType, PostEventsResponse, event_adapter


class EventSender(Protocol):
    """What a tracker needs of its client (``SessionMoodClient`` has it)."""

    def send_events(
        self, session_id: str, events: Sequence[EventInput], *, batch_id: str | None = None
    ) -> PostEventsResponse: ...


class AsyncEventSender(Protocol):
    """What an async tracker needs of its client (``AsyncSessionMoodClient`` has it)."""

    async def send_events(
        self, session_id: str, events: Sequence[EventInput], *, batch_id: str | None = None
    ) -> PostEventsResponse: ...


__all__ = ["AsyncEventTracker", "EventTracker"]

log = logging.getLogger("sessionmood_client")

MAX_BATCH_LIMIT = 1000  # the server's cap on events per request


class _TrackerBase:
    """Buffer bookkeeping shared by both trackers; no I/O."""

    def __init__(self, session_id: str, *, max_batch: int) -> None:
        quote_session_id(session_id)  # fail here, not at the first flush
        if not 1 <= max_batch <= MAX_BATCH_LIMIT:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH_LIMIT}")
        self.session_id = session_id
        self.max_batch = max_batch
        self.last_response: PostEventsResponse | None = None
        self._buffer: list[Event] = []
        # A batch handed to send_events that has not been acknowledged. If that
        # call failed, the server may still have stored it, so the next flush
        # resends exactly these events under the same batch_id, never merged
        # with newer ones: the server then answers the replay instead of
        # storing the events twice.
        self._unconfirmed: tuple[str, list[Event]] | None = None

    def __len__(self) -> int:
        """Events not yet acknowledged by the server."""
        unconfirmed = len(self._unconfirmed[1]) if self._unconfirmed else 0
        return len(self._buffer) + unconfirmed

    def _now(self) -> float:
        return time.time()

    def _append(self, event: EventInput) -> bool:
        """Validate and buffer one event; True when the buffer is full."""
        # Validated here, at the caller's line, because one bad event would make
        # the server reject the whole batch later.
        parsed = event_adapter.validate_python(event)
        if parsed.ts is None:
            # Buffered events would otherwise all get the flush's receipt time,
            # and the engine reads timing (idle gaps, rage bursts) from ts.
            parsed = parsed.model_copy(update={"ts": self._now()})
        self._buffer.append(parsed)
        return len(self._buffer) >= self.max_batch

    def _next_batch(self) -> tuple[str, list[Event]] | None:
        if self._unconfirmed is None and self._buffer:
            self._unconfirmed = (str(uuid.uuid4()), self._buffer)
            self._buffer = []
        return self._unconfirmed

    def _confirm(self, response: PostEventsResponse) -> None:
        self._unconfirmed = None
        self.last_response = response

    def _log_lost_on_error(self) -> None:
        log.warning(
            "Could not flush %d buffered event(s) while leaving the tracker after an error",
            len(self),
            exc_info=True,
        )


class EventTracker(_TrackerBase):
    """Buffers events for one session and sends them in batches (sync).

    ``add``/``track`` return the ``PostEventsResponse`` when they caused a
    flush, else None. The buffer is flushed when it holds ``max_batch``
    events, on ``flush()``, and when the ``with`` block exits.
    """

    def __init__(self, client: EventSender, session_id: str, *, max_batch: int = 50) -> None:
        super().__init__(session_id, max_batch=max_batch)
        self._client = client

    def track(self, type: EventType, **fields: Any) -> PostEventsResponse | None:
        """Buffer an event given by its type and fields, e.g. ``track("idle", duration_ms=4500)``.

        ``ts`` defaults to now, so events keep their real timing while buffered.
        """
        return self.add({"type": type, **fields})

    def add(self, event: EventInput) -> PostEventsResponse | None:
        """Buffer an event model or dict; raises pydantic's ``ValidationError`` if it is invalid."""
        return self.flush() if self._append(event) else None

    def flush(self) -> PostEventsResponse | None:
        """Send everything buffered now; returns the last answer, or None if nothing was sent."""
        response = None
        while (batch := self._next_batch()) is not None:
            batch_id, events = batch
            response = self._client.send_events(self.session_id, events, batch_id=batch_id)
            self._confirm(response)
        return response

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
            return
        # Already failing: still try to deliver what happened, but do not let a
        # flush error replace the exception the caller needs to see.
        try:
            self.flush()
        except SessionMoodError:
            self._log_lost_on_error()


class AsyncEventTracker(_TrackerBase):
    """Buffers events for one session and sends them in batches (async).

    Same behaviour as ``EventTracker``; ``track``, ``add`` and ``flush`` are
    coroutines and it is used with ``async with``.
    """

    def __init__(self, client: AsyncEventSender, session_id: str, *, max_batch: int = 50) -> None:
        super().__init__(session_id, max_batch=max_batch)
        self._client = client

    async def track(self, type: EventType, **fields: Any) -> PostEventsResponse | None:
        """Buffer an event given by its type and fields, e.g. ``track("idle", duration_ms=4500)``.

        ``ts`` defaults to now, so events keep their real timing while buffered.
        """
        return await self.add({"type": type, **fields})

    async def add(self, event: EventInput) -> PostEventsResponse | None:
        """Buffer an event model or dict; raises pydantic's ``ValidationError`` if it is invalid."""
        return await self.flush() if self._append(event) else None

    async def flush(self) -> PostEventsResponse | None:
        """Send everything buffered now; returns the last answer, or None if nothing was sent."""
        response = None
        while (batch := self._next_batch()) is not None:
            batch_id, events = batch
            response = await self._client.send_events(self.session_id, events, batch_id=batch_id)
            self._confirm(response)
        return response

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.flush()
            return
        try:
            await self.flush()
        except SessionMoodError:
            self._log_lost_on_error()
