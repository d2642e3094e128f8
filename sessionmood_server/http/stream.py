"""``GET /v1/stream/moods``: Server-Sent Events of mood changes, with per-tenant and
per-address limits on open streams."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from sessionmood_client.types import MoodChange
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate
from sessionmood_server.http.errors import bad_request, too_many
from sessionmood_server.http.responses import NO_STORE
from sessionmood_server.limits import client_source
from sessionmood_server.records import MoodChangeRecord
from sessionmood_server.scoring import answered
from sessionmood_server.services.live import Subscription

_EVENT_ID = re.compile(r"[0-9]{1,18}")


class _StreamResponse(StreamingResponse):
    """A streaming answer that gives its stream slot back however it ends:
    finished, the client gone, or never sent at all (Starlette then closes
    the generator without running it)."""

    def __init__(
        self, body: AsyncIterator[bytes], release: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(body, **kwargs)
        self._release: Callable[[], None] | None = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


async def stream_moods(api: Api, request: Request) -> Response:
    """Server-Sent Events: every mood change of the tenant's sessions.

    Resumes after ``Last-Event-ID`` (header, or ``last_event_id`` in the
    query for clients that cannot set it); otherwise starts with the next
    change. A comment line every ``heartbeat_s`` keeps proxies from
    closing an idle stream. The stream ends when its key is revoked.
    """
    key = await authenticate(api.storage, request)
    last = await _resume_after(api, request, key.tenant_id)
    # Counted here, before the 200 and with no await between the check and
    # the count, so simultaneous opens cannot all slip under the limit.
    tenant = key.tenant_id
    source = client_source(request.client.host if request.client else None)
    _take_slot(api, tenant, source)
    sub = api.feed.subscribe(key, last)

    def release() -> None:
        sub.close()  # also when the body never started
        api.stream_slots.give_back(tenant, source)

    return _StreamResponse(
        _messages(sub, api.settings.sse_heartbeat_s),
        release,
        media_type="text/event-stream",
        headers={**NO_STORE, "X-Accel-Buffering": "no"},
    )


async def _resume_after(api: Api, request: Request, tenant_id: int) -> int:
    """The id of the last change the client has: given, or the latest stored."""
    raw_last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw_last is None:
        return await api.storage.last_mood_change_id(tenant_id)
    if not _EVENT_ID.fullmatch(raw_last):
        raise bad_request("Invalid field", field="Last-Event-ID", message="must be an event id")
    return int(raw_last)


def _take_slot(api: Api, tenant: int, source: str) -> None:
    """One of the tenant's and the address's open streams, or a 429. With
    the limits off the slot is still counted, so ``give_back`` balances."""
    slots = api.stream_slots
    if not api.limits_on:
        slots.take(tenant, source, 0, 0)
        return
    refused = slots.take(
        tenant, source, api.settings.streams_per_tenant, api.settings.streams_per_address
    )
    if refused is not None:
        raise too_many(refused, 10, "Too many streams")


async def _messages(sub: Subscription, heartbeat: float) -> AsyncIterator[bytes]:
    """The stream's body: the retry hint, then each change (a heartbeat comment
    when none came for ``heartbeat`` seconds), until the subscription ends."""
    try:
        yield b"retry: 2000\n\n"
        while True:
            changes = await sub.next(heartbeat)
            if changes is None:
                return  # key revoked, or the server is stopping
            if not changes:
                yield b": heartbeat\n\n"
            for ch in changes:
                yield _message(ch)
    finally:
        sub.close()


def _message(ch: MoodChangeRecord) -> bytes:
    payload = MoodChange(
        id=ch.id,
        session_id=ch.session_id,
        previous_mood=ch.previous_mood,
        mood=ch.mood,
        confidence=ch.confidence,
        signals=list(ch.signals),
        **answered(ch.suggested_action, ch.holdout),
        url=ch.url,
        occurred_at=datetime.fromtimestamp(ch.occurred_at, UTC),
    ).model_dump_json()
    return f"id: {ch.id}\nevent: mood.changed\ndata: {payload}\n\n".encode()
