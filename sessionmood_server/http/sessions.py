"""Session endpoints: send a batch, read the mood, export, feedback, erase."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    DEFAULT_ACTIONS,
    DeleteSessionResponse,
    FeedbackResponse,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate, session_id_param
from sessionmood_server.http.errors import (
    HTTPProblem,
    bad_request,
    session_not_found,
    too_many,
)
from sessionmood_server.http.params import int_param
from sessionmood_server.http.responses import (
    NO_STORE,
    REPLAYED,
    JSONResponse,
    iso,
    model_response,
    month_bounds,
)
from sessionmood_server.http.validation import (
    parse_events_body,
    parse_feedback,
    read_body,
    read_json,
)
from sessionmood_server.keys import PLAN_INFO
from sessionmood_server.learning import POLICY_SIGNALS, apply_policy
from sessionmood_server.limits import Admission, client_source
from sessionmood_server.records import AppendResult, Batch, Feedback, KeyRecord, Quota
from sessionmood_server.scoring import answered
from sessionmood_server.services.metrics import METRICS

_SEQ = re.compile(r"[0-9]{1,18}")  # an export cursor


async def post_events(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request, publishable_ok=True)
    session_id = session_id_param(request)
    body = await read_body(request, api.settings.max_body_bytes)
    now = time.time()
    events, batch_id, fingerprint = parse_events_body(
        body, request.headers.get("idempotency-key"), api.settings.max_batch_events, now
    )
    plan = PLAN_INFO[key.plan]
    month, _ = month_bounds(now)
    public = key.kind == "publishable"
    result = await api.storage.append_events(
        Batch(
            key.tenant_id,
            session_id,
            events,
            batch_id,
            Quota(month, plan.monthly_sessions, plan.blocks_at_limit, provisional=public),
            now,
            await api.policies.get(key.tenant_id),
            fingerprint=fingerprint,
            max_events=api.max_session_events,
            admission=_admission(api, request, key) if public and api.limits_on else None,
            holdout=await api.holdouts.holdout(key.tenant_id),
        )
    )
    status = result.status
    if status == "stored":
        mood = result.response["current_mood"] if result.mood_changed else None
        METRICS.batch(len(events), mood)
    elif status != "replayed":
        raise _REFUSALS[status](api, key, result, now)
    # Built by storage in the PostEventsResponse shape (tests check it); no
    # second validation on the hottest path.
    return JSONResponse(result.response, headers=REPLAYED if status == "replayed" else NO_STORE)


def _admission(api: Api, request: Request, key: KeyRecord) -> Admission:
    """For ``append_events``: the buckets a publishable-key batch that opens a
    new session takes one from (per address, per origin, per key)."""
    source = client_source(request.client.host if request.client else None)
    origin = request.headers.get("origin") or ""
    return Admission(
        (
            (api.new_by_source, (key.key_hash, source)),
            (api.new_by_origin, (key.key_hash, origin)),
            (api.new_by_key, key.key_hash),
        ),
        time.monotonic,
    )


# -- what a refused batch answers: one function per AppendResult status ------------


def _limited(api: Api, key: KeyRecord, result: AppendResult, now: float) -> HTTPProblem:
    return too_many(
        "too many new sessions from this address, origin or publishable key; "
        "sessions already open keep working",
        result.retry_after,
    )


def _full(api: Api, key: KeyRecord, result: AppendResult, now: float) -> HTTPProblem:
    return HTTPProblem(
        429,
        "Session event limit reached",
        # Waiting does not make room: only erasing the session does.
        headers={"Retry-After": "3600", "X-Should-Retry": "false"},
        field="events",
        limit=api.max_session_events,
        message=f"a session holds at most {api.max_session_events} events; start a new session",
    )


def _mismatch(api: Api, key: KeyRecord, result: AppendResult, now: float) -> HTTPProblem:
    return HTTPProblem(
        409,
        "Idempotency key reused",
        headers={"X-Should-Retry": "false"},
        field="batch_id",
        message="this batch_id was already used with other events; "
        "use a new batch_id for a new batch",
    )


def _quota(api: Api, key: KeyRecord, result: AppendResult, now: float) -> HTTPProblem:
    _, next_month = month_bounds(now)
    reset_at = next_month.timestamp()
    return HTTPProblem(
        429,
        "Rate limit exceeded",
        headers={"Retry-After": str(max(1, int(reset_at - now)))},
        plan=key.plan,
        limit=PLAN_INFO[key.plan].monthly_sessions,
        reset_at=iso(reset_at),
    )


def _conflict(api: Api, key: KeyRecord, result: AppendResult, now: float) -> HTTPProblem:
    return HTTPProblem(
        409,
        "Idempotency key reused",
        # Permanent: retrying the same batch id cannot succeed.
        headers={"X-Should-Retry": "false"},
        field="batch_id",
        message="this batch_id was already used for another session",
    )


_REFUSALS: dict[str, Callable[[Api, KeyRecord, AppendResult, float], HTTPProblem]] = {
    "limited": _limited,
    "full": _full,
    "mismatch": _mismatch,
    "quota": _quota,
    "conflict": _conflict,
}


async def get_mood(api: Api, request: Request) -> Response:
    # Secret keys only: sites that use user ids as session ids would
    # otherwise let anyone with the public key read every user's mood. The
    # page learns its visitor's mood from the answer to its own batches.
    key = await authenticate(api.storage, request)
    session_id = session_id_param(request)
    rec = await api.storage.get_session(key.tenant_id, session_id)
    if rec is None:
        raise session_not_found(session_id)
    signals = list(rec.signals)
    # Re-applied at read time: feedback since the last batch counts too.
    policy = await api.policies.get(key.tenant_id)
    for learned in POLICY_SIGNALS:
        if learned in signals:
            signals.remove(learned)  # learned at write time: learned again below
    action = apply_policy(policy, rec.mood, DEFAULT_ACTIONS[rec.mood], signals)
    # The MoodResponse shape, built directly: this is the hottest read.
    return JSONResponse(
        {
            "session_id": session_id,
            "mood": rec.mood,
            "confidence": rec.confidence,
            "signals": signals,
            **answered(action, rec.holdout),
            "event_count": rec.event_count,
            "updated_at": iso(rec.updated_at),
        },
        headers=NO_STORE,
    )


async def export_events(api: Api, request: Request) -> Response:
    """One page of a session's events (``limit``, default and at most the
    server's page size), from after ``cursor``; ``next_cursor`` continues."""
    key = await authenticate(api.storage, request)
    session_id = session_id_param(request)
    page = api.settings.export_page_events
    limit = int_param(request, "limit", page, page)
    raw_cursor = request.query_params.get("cursor", "0")
    if not _SEQ.fullmatch(raw_cursor):
        raise bad_request(
            "Invalid field", field="cursor", message="use the next_cursor of the last page"
        )
    after = int(raw_cursor)
    # One more than asked for tells whether another page follows.
    events = await api.storage.export_events(key.tenant_id, session_id, after, limit + 1)
    if events is None:
        raise session_not_found(session_id)
    more = len(events) > limit
    events = events[:limit]
    rec = await api.storage.get_session(key.tenant_id, session_id)
    total = rec.event_count if rec is not None else after + len(events)
    # The session's conversions, on the first page (GDPR access: all it holds).
    conversions = await api.storage.conversions_of(key.tenant_id, session_id) if not after else None
    # Plain dicts, not pydantic models: a page is built and serialised in
    # about a millisecond, so the event loop never stalls on an export.
    return JSONResponse(
        {
            "session_id": session_id,
            "event_count": total,
            "events": events,
            "next_cursor": str(events[-1]["seq"]) if more else None,
            **(
                {"conversions": [_conversion(c) for c in conversions]}
                if conversions is not None
                else {}
            ),
        },
        headers=NO_STORE,
    )


def _conversion(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "value": row["value"], "created_at": iso(row["created_at"])}


async def post_feedback(api: Api, request: Request) -> Response:
    # Publishable keys may report how an on-page intervention went: the page
    # that showed it is the one that knows.
    key = await authenticate(api.storage, request, publishable_ok=True)
    session_id = session_id_param(request)
    fb = parse_feedback(await read_json(request, api.settings.max_body_bytes))
    ok = await api.storage.add_feedback(
        Feedback(
            key.tenant_id,
            session_id,
            fb.action_taken,
            fb.was_helpful,
            fb.notes,
            time.time(),
            trusted=key.kind == "secret",
        )
    )
    if not ok:
        raise session_not_found(session_id)
    api.policies.forget(key.tenant_id)
    return model_response(FeedbackResponse(session_id=session_id, feedback_recorded=True))


async def delete_session(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    session_id = session_id_param(request)
    if not await api.storage.delete_session(key.tenant_id, session_id):
        raise session_not_found(session_id)
    body = DeleteSessionResponse(
        session_id=session_id, deleted=True, message="Session data permanently erased."
    )
    return model_response(body)
