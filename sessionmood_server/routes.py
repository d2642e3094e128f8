"""The HTTP endpoints of the API reference, plus export and usage.

Each handler: authenticate, validate, one storage call, answer with a wire
model. Errors are raised as ``ApiError`` and rendered by the app.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client._models import (
    MOODS,
    PLANS,
    AnalyticsResponse,
    DeleteSessionResponse,
    ExportEventsResponse,
    FeedbackResponse,
    HealthResponse,
    KeyGenerateRequest,
    KeyGenerateResponse,
    MoodDistributionItem,
    MoodResponse,
    PublishableKeyRequest,
    PublishableKeyResponse,
    UsageResponse,
)
from sessionmood_server.errors import (
    ApiError,
    JSONResponse,
    bad_request,
    forbidden,
    session_not_found,
    unauthorized,
)
from sessionmood_server.keys import PLANS as PLAN_INFO
from sessionmood_server.keys import hash_key, key_kind, new_key
from sessionmood_server.settings import Settings
from sessionmood_server.storage import KeyRecord, Quota, Storage
from sessionmood_server.validation import (
    check_session_id,
    parse_events,
    parse_feedback,
    read_json,
)

VERSION = "1.0.0"


def iso(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the reference shows."""
    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


def month_bounds(now: float) -> tuple[str, datetime]:
    """("YYYY-MM", first instant of next month) for ``now`` in UTC."""
    d = datetime.fromtimestamp(now, UTC)
    nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return f"{d.year:04d}-{d.month:02d}", nxt


def normalise_origin(origin: str) -> str | None:
    """``https://Shop.example:443/`` -> ``https://shop.example:443``; None if not an origin."""
    parsed = urlsplit(origin.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return None
    if parsed.path not in {"", "/"} or parsed.query or parsed.fragment or parsed.username:
        return None
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.hostname}{port}"


def model_response(
    model: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


class Api:
    """Request handlers bound to one storage and one settings object."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage

    # -- auth ----------------------------------------------------------------

    async def authenticate(self, request: Request, *, publishable_ok: bool = False) -> KeyRecord:
        raw = request.headers.get("x-api-key")
        query_key = request.query_params.get("key") if raw is None else None
        if query_key is not None:
            # Only for beacons, which cannot set headers; a secret key in a URL
            # ends up in logs and histories, so it is refused outright.
            if key_kind(query_key) != "publishable":
                raise unauthorized("secret keys must not be sent in URLs: use X-Api-Key")
            raw = query_key
        if raw is None:
            auth = request.headers.get("authorization")
            if auth is not None:
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise unauthorized("Malformed Authorization header: use 'Bearer <key>'")
                raw = token.strip()
        if raw is None:
            raise unauthorized("Missing API key: send X-Api-Key or Authorization: Bearer")
        if key_kind(raw) is None:
            raise unauthorized()
        record = await self.storage.find_key(hash_key(raw))
        if record is None or record.revoked_at is not None:
            raise unauthorized()
        if record.kind == "publishable":
            if not publishable_ok:
                raise forbidden(
                    "publishable keys (pk_) may only send events and read moods; "
                    "use a secret key (sm_) from your backend"
                )
            origin = request.headers.get("origin")
            if origin is not None and origin not in record.allowed_origins:
                raise forbidden(f"origin {origin} is not allowed for this publishable key")
        return record

    async def _session_id(self, request: Request) -> str:
        return check_session_id(request.path_params["session_id"])

    # -- endpoints -----------------------------------------------------------

    async def health(self, request: Request) -> Response:
        try:
            ok = await self.storage.ping()
        except Exception:
            ok = False
        body = HealthResponse(status="ok" if ok else "down", version=VERSION)
        return model_response(body, 200 if ok else 503)

    async def generate_key(self, request: Request) -> Response:
        data = await read_json(request, self.settings.max_body_bytes)
        if not isinstance(data, dict):
            raise bad_request("Request body must be a JSON object")
        name = data.get("customer_name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("customer_name is required")
        plan = data.get("plan", "starter")
        if plan not in PLANS:
            raise bad_request("Invalid plan", valid_plans=list(PLANS))
        try:
            req = KeyGenerateRequest.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"])
            raise bad_request("Invalid field", field=field, message=err["msg"]) from None
        if req.email is not None and "@" not in req.email:
            raise bad_request("Invalid field", field="email", message="not an email address")
        if req.plan != "starter" and not self._is_admin(request):
            raise forbidden(
                f"the {req.plan} plan cannot be self-served: call with "
                "'Authorization: Bearer $SESSIONMOOD_ADMIN_TOKEN' or use "
                f"'sessionmood keys create --customer NAME --plan {req.plan}'"
            )
        raw = new_key("secret")
        await self.storage.create_tenant_key(
            req.customer_name.strip(), req.email, req.plan, raw, time.time()
        )
        body = KeyGenerateResponse(
            api_key=raw,
            customer=req.customer_name.strip(),
            email=req.email,
            plan=req.plan,
            limits=PLAN_INFO[req.plan].limits_text,
            message="Store this key safely - it won't be shown again.",
        )
        return model_response(body, 201)

    async def create_publishable_key(self, request: Request) -> Response:
        key = await self.authenticate(request)
        data = await read_json(request, self.settings.max_body_bytes)
        try:
            req = PublishableKeyRequest.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "allowed_origins"
            if err["type"] == "missing":
                raise bad_request("Missing required field", field=field) from None
            raise bad_request("Invalid field", field=field, message=err["msg"]) from None
        origins = []
        for i, origin in enumerate(req.allowed_origins):
            normal = normalise_origin(origin)
            if normal is None:
                raise bad_request(
                    "Invalid field",
                    field=f"allowed_origins.{i}",
                    message="an origin looks like https://shop.example.com[:port], without a path",
                )
            origins.append(normal)
        raw = new_key("publishable")
        await self.storage.create_publishable_key(key.tenant_id, raw, tuple(origins), time.time())
        body = PublishableKeyResponse(
            publishable_key=raw,
            allowed_origins=origins,
            message="Embed this key in tracker.js; it can only send events and read moods.",
        )
        return model_response(body, 201)

    def _is_admin(self, request: Request) -> bool:
        token = self.settings.admin_token
        if not token:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)

    async def post_events(self, request: Request) -> Response:
        key = await self.authenticate(request, publishable_ok=True)
        session_id = await self._session_id(request)
        data = await read_json(request, self.settings.max_body_bytes)
        now = time.time()
        events, batch_id = parse_events(
            data, request.headers.get("idempotency-key"), self.settings.max_batch_events, now
        )
        plan = PLAN_INFO[key.plan]
        month, reset_at = month_bounds(now)
        result = await self.storage.append_events(
            key.tenant_id,
            session_id,
            events,
            batch_id,
            Quota(month, plan.monthly_sessions, plan.blocks_at_limit),
            now,
        )
        if result.status == "quota":
            raise ApiError(
                429,
                "Rate limit exceeded",
                headers={"Retry-After": str(max(1, int(reset_at.timestamp() - now)))},
                plan=key.plan,
                limit=plan.monthly_sessions,
                reset_at=iso(reset_at.timestamp()),
            )
        if result.status == "conflict":
            raise ApiError(
                409,
                "Idempotency key reused",
                field="batch_id",
                message="this batch_id was already used for another session",
            )
        headers = {"Idempotent-Replayed": "true"} if result.status == "replayed" else None
        # Built by storage in the PostEventsResponse shape (tests check it); no
        # second validation on the hottest path.
        return JSONResponse(result.response, headers=headers)

    async def get_mood(self, request: Request) -> Response:
        key = await self.authenticate(request, publishable_ok=True)
        session_id = await self._session_id(request)
        rec = await self.storage.get_session(key.tenant_id, session_id)
        if rec is None:
            raise session_not_found(session_id)
        body = MoodResponse(
            session_id=session_id,
            mood=rec.mood,
            confidence=rec.confidence,
            signals=list(rec.signals),
            suggested_action=rec.suggested_action,
            event_count=rec.event_count,
            updated_at=datetime.fromtimestamp(rec.updated_at, UTC),
        )
        # Serialise updated_at the reference's way (millisecond Z), not pydantic's.
        payload = body.model_dump(mode="json")
        payload["updated_at"] = iso(rec.updated_at)
        return JSONResponse(payload)

    async def export_events(self, request: Request) -> Response:
        key = await self.authenticate(request)
        session_id = await self._session_id(request)
        events = await self.storage.export_events(key.tenant_id, session_id)
        if events is None:
            raise session_not_found(session_id)
        body = ExportEventsResponse.model_validate(
            {"session_id": session_id, "event_count": len(events), "events": events}
        )
        return model_response(body)

    async def post_feedback(self, request: Request) -> Response:
        key = await self.authenticate(request)
        session_id = await self._session_id(request)
        fb = parse_feedback(await read_json(request, self.settings.max_body_bytes))
        ok = await self.storage.add_feedback(
            key.tenant_id, session_id, fb.action_taken, fb.was_helpful, fb.notes, time.time()
        )
        if not ok:
            raise session_not_found(session_id)
        return model_response(FeedbackResponse(session_id=session_id, feedback_recorded=True))

    async def delete_session(self, request: Request) -> Response:
        key = await self.authenticate(request)
        session_id = await self._session_id(request)
        if not await self.storage.delete_session(key.tenant_id, session_id):
            raise session_not_found(session_id)
        body = DeleteSessionResponse(
            session_id=session_id, deleted=True, message="Session data permanently erased."
        )
        return model_response(body)

    async def analytics_moods(self, request: Request) -> Response:
        key = await self.authenticate(request)
        counts = await self.storage.mood_counts(key.tenant_id)
        total = counts.total_sessions
        order = {m: i for i, m in enumerate(MOODS)}
        items = sorted(counts.by_mood.items(), key=lambda kv: (-kv[1], order[kv[0]]))
        body = AnalyticsResponse(
            total_sessions=total,
            feedback_count=counts.feedback_count,
            mood_distribution=[
                MoodDistributionItem(
                    mood=mood,
                    count=n,
                    percentage=round(n * 100 / total, 1) if total else 0.0,
                )
                for mood, n in items
            ],
        )
        return model_response(body)

    async def usage(self, request: Request) -> Response:
        key = await self.authenticate(request)
        now = time.time()
        month, reset_at = month_bounds(now)
        used = await self.storage.month_usage(key.tenant_id, month)
        plan = PLAN_INFO[key.plan]
        body = UsageResponse(
            plan=key.plan,
            month=month,
            sessions_used=used,
            limit=plan.monthly_sessions,
            remaining=max(0, plan.monthly_sessions - used),
            overage=max(0, used - plan.monthly_sessions),
            reset_at=reset_at,
        )
        payload = body.model_dump(mode="json")
        payload["reset_at"] = iso(reset_at.timestamp())
        return JSONResponse(payload)
