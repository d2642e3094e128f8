"""Request parsing and validation: bytes in, validated Python values or a clear 400 out.

Kept apart from the routes so the rules (which error body for which mistake)
read in one place and can be tested without HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from sessionmood_client.types import (
    EVENT_TYPES,
    NO_NUL,
    EventsRequest,
    FeedbackRequest,
    event_adapter,
)
from sessionmood_server.http.errors import HTTPProblem, bad_request

M = TypeVar("M", bound=BaseModel)
VALID_TYPES = frozenset(EVENT_TYPES)
MAX_SESSION_ID = 256
MAX_BATCH_ID = 128
# Clock skew tolerated in event timestamps; later ones count as this far ahead.
MAX_FUTURE_S = 60.0
# A body must arrive within this many seconds: a client that trickles bytes
# (slowloris) gets a 408 instead of holding a connection forever.
BODY_TIMEOUT_S = 10.0
# Set in the ASGI scope by ``protocol.DeadlineProtocol``, which enforces the
# body deadline itself (without a timer per request); other servers get one here.
DEADLINES_SCOPE_KEY = "sessionmood.deadlines"
_JSON_TYPES = {"", "application/json", "text/plain"}


def check_session_id(session_id: str) -> str:
    if not session_id or len(session_id) > MAX_SESSION_ID:
        raise bad_request(
            "Invalid session id",
            field="session_id",
            message=f"session id must be 1-{MAX_SESSION_ID} characters (URL-encode special ones)",
        )
    if "\x00" in session_id:
        raise bad_request(
            "Invalid session id", field="session_id", message="session id must not contain NUL"
        )
    return session_id


def check_webhook_id(webhook_id: str) -> str:
    # Never stored from a path, only looked up, but PostgreSQL refuses NUL even
    # in a comparison: a clear 400 on every backend instead of a 500 on one.
    if "\x00" in webhook_id:
        raise bad_request(
            "Invalid webhook id", field="webhook_id", message="webhook id must not contain NUL"
        )
    return webhook_id


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw request body, refusing bodies over ``max_bytes`` (413), non-JSON
    content types (415), slow senders (408) and empty bodies (400)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    # text/plain is what browsers send without a CORS preflight (tracker.js).
    if media not in _JSON_TYPES and not media.endswith("+json"):
        raise HTTPProblem(
            415,
            "Unsupported media type",
            message="send a JSON body with Content-Type: application/json",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    if request.scope.get(DEADLINES_SCOPE_KEY):
        body = await _read_body(request, max_bytes)
    else:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await _read_body(request, max_bytes)
        except TimeoutError:
            raise HTTPProblem(
                408, "Request timeout", message="the request body did not arrive in time"
            ) from None
    if not body:
        raise bad_request("Request body is empty", message="send a JSON object")
    return body


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("Invalid JSON", message=str(exc)) from None


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body parsed as JSON (see ``read_body`` for what is refused)."""
    return parse_json(await read_body(request, max_bytes))


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body straight from the ASGI receive channel, refusing oversize bodies
    as they stream in (a 10 MB upload is never held in memory)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            # Nobody is left to read the answer; this just ends the request quietly.
            raise HTTPProblem(400, "Client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> HTTPProblem:
    return HTTPProblem(
        413, "Payload too large", message=f"request bodies are limited to {max_bytes} bytes"
    )


def _require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


# What a pattern the wire models use means, in words: "should match pattern
# '^[^\x00-\x1f\x7f]+$'" teaches nobody what to change.
PATTERN_MEANINGS = {
    NO_NUL: "must not contain NUL",
    r"^[^\x00-\x1f\x7f]+$": "must not contain control characters (newlines, tabs, NUL...)",
    r"^[A-Za-z0-9_.:-]+$": "may hold only letters, digits and _ . : -",
}


def _first_error(exc: ValidationError, prefix: str, skip: int = 0) -> HTTPProblem:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"][skip:]]
    field = prefix + ("." if prefix and loc else "") + ".".join(loc)
    if err["type"] == "missing":
        return bad_request("Missing required field", field=field)
    message = err["msg"]
    if err["type"] == "string_pattern_mismatch":
        meaning = PATTERN_MEANINGS.get(str((err.get("ctx") or {}).get("pattern")))
        message = f"{loc[-1] if loc else 'the value'} {meaning}" if meaning else message
    return bad_request("Invalid field", field=field, message=message)


# The shape that works, in the 400s of a body without it (the launch post's
# examples sent one bare event).
EVENTS_EXAMPLE = {"events": [{"type": "click", "x": 10, "y": 20}]}


def batch_fingerprint(events: list[dict[str, Any]]) -> str:
    """What makes two batches with one batch id "the same": their events as
    validated, before missing timestamps are filled in with the receipt time (a
    retry arrives later, so its filled times would differ)."""
    raw = orjson.dumps(events, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def parse_events_body(
    body: bytes, header_batch_id: str | None, max_events: int, received_at: float
) -> ParsedBatch:
    """``parse_events`` for raw bytes, with a fast path for the common valid batch.

    Valid batches are parsed and validated in one call into pydantic's Rust core.
    Anything it rejects goes through ``parse_events`` on the orjson-parsed body,
    which owns the error rules, so both paths answer alike.
    """
    try:
        req = EventsRequest.model_validate_json(body)
    except ValidationError:
        req = None
    if req is not None and len(req.events) <= max_events:
        batch_id = req.batch_id if req.batch_id is not None else header_batch_id
        if batch_id is None or _valid_batch_id(batch_id):
            # Event models are flat (scalar fields only), so their __dict__
            # without the unset fields is model_dump(exclude_none=True), at a
            # fraction of the cost on the hottest path.
            events = [
                {k: v for k, v in model.__dict__.items() if v is not None} for model in req.events
            ]
            fingerprint = None if batch_id is None else batch_fingerprint(events)
            latest = received_at + MAX_FUTURE_S
            for ev in events:
                ts = ev.get("ts")
                ev["ts"] = received_at if ts is None else ts if ts < latest else latest
            return ParsedBatch(events, batch_id, fingerprint)
    return parse_events(parse_json(body), header_batch_id, max_events, received_at)


def _event_time(ev: dict[str, Any], received_at: float) -> float:
    """The event's own ``ts``, receipt time when missing, and never far in the
    future: one event from a clock a day ahead would otherwise become the
    session's "now" and freeze its mood until real time caught up."""
    ts: float = ev.get("ts", received_at)
    return min(ts, received_at + MAX_FUTURE_S)


def _valid_batch_id(batch_id: object) -> bool:
    return (
        isinstance(batch_id, str) and 0 < len(batch_id) <= MAX_BATCH_ID and "\x00" not in batch_id
    )


class ParsedBatch(NamedTuple):
    """An events body, validated: what ``append_events`` stores."""

    events: list[dict[str, Any]]  # each as its model dumps it, ``ts`` filled in
    batch_id: str | None  # the body's, else the Idempotency-Key header's
    fingerprint: str | None  # ``batch_fingerprint`` of the events, when there is an id


def parse_events(
    data: Any, header_batch_id: str | None, max_events: int, received_at: float
) -> ParsedBatch:
    """Validate an events body (or raise the HTTPProblem that says what is wrong).

    A batch is atomic, so every event is checked before anything is stored:
    the body's shape first, then every event's type (one 400 names all the
    unknown ones), then each event's fields, then the batch id.
    """
    body = _require_object(data)
    raw = _events_array(body, max_events)
    _check_types(raw)
    events = _validated_events(raw)
    batch_id = _batch_id(body.get("batch_id"), header_batch_id)
    fingerprint = None if batch_id is None else batch_fingerprint(events)
    for ev in events:
        ev["ts"] = _event_time(ev, received_at)
    return ParsedBatch(events, batch_id, fingerprint)


def _events_array(body: dict[str, Any], max_events: int) -> list[Any]:
    """``events``: an array of 1 to ``max_events`` items; the 400s show the shape
    that works (a body of one bare event is the usual mistake)."""
    if "events" not in body:
        looks_like_one = "type" in body
        raise bad_request(
            "Missing required field",
            field="events",
            message=(
                "this body looks like one event: send it in an events array, "
                if looks_like_one
                else "send a batch of events in an events array, "
            )
            + 'e.g. {"events": [{"type": "click", "x": 10, "y": 20}]}',
            example=EVENTS_EXAMPLE,
        )
    raw = body["events"]
    if not isinstance(raw, list):
        raise bad_request(
            "Invalid field",
            field="events",
            message="events must be an array, "
            'e.g. {"events": [{"type": "click", "x": 10, "y": 20}]}',
            example=EVENTS_EXAMPLE,
        )
    if not raw:
        raise bad_request(
            "Invalid field", field="events", message="events must contain at least one event"
        )
    if len(raw) > max_events:
        raise HTTPProblem(
            413,
            "Too many events",
            field="events",
            limit=max_events,
            message=f"send at most {max_events} events per batch",
        )
    return raw


def _check_types(raw: list[Any]) -> None:
    """Every item an object with a type; every unknown type named in one 400."""
    invalid: list[str] = []
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict):
            raise bad_request(
                "Invalid field", field=f"events[{i}]", message="each event must be a JSON object"
            )
        t = ev.get("type")
        if t is None:
            raise bad_request("Missing required field", field=f"events[{i}].type")
        if not isinstance(t, str) or t not in VALID_TYPES:
            invalid.append(t if isinstance(t, str) else orjson.dumps(t).decode())
    if invalid:
        raise bad_request("Invalid event type(s)", invalid=invalid, valid_types=list(EVENT_TYPES))


def _validated_events(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event through its wire model; the 400 names the first bad field."""
    events: list[dict[str, Any]] = []
    for i, ev in enumerate(raw):
        try:
            model = event_adapter.validate_python(ev)
        except ValidationError as exc:
            # loc starts with the discriminator tag ("click", ...): drop it.
            raise _first_error(exc, f"events[{i}]", skip=1) from None
        events.append(model.model_dump(exclude_none=True))
    return events


def _batch_id(given: Any, header_batch_id: str | None) -> str | None:
    """The body's ``batch_id``; absent or null: the Idempotency-Key header, if any."""
    batch_id = header_batch_id if given is None else given
    if batch_id is not None and not _valid_batch_id(batch_id):
        raise bad_request(
            "Invalid field",
            field="batch_id",
            message=f"batch_id must be a string of 1-{MAX_BATCH_ID} characters, without NUL",
        )
    return batch_id


def validate_body(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or the 400 naming the first bad field."""
    body = _require_object(data)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc, "") from None


def parse_feedback(data: Any) -> FeedbackRequest:
    return validate_body(FeedbackRequest, data)
