"""The HTTP endpoints of the API reference, plus export and usage.

Each handler: authenticate, validate, one storage call, answer with a wire
model. Errors are raised as ``ApiError`` and rendered by the app.
"""

from __future__ import annotations

import functools
import hmac
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from sessionmood_client import __version__
from sessionmood_client.types import (
    DEFAULT_ACTIONS,
    MOODS,
    PLANS,
    ActionAnalyticsItem,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    DeleteSessionResponse,
    FeedbackResponse,
    HealthResponse,
    KeyGenerateRequest,
    KeyGenerateResponse,
    MoodChange,
    MoodDistributionItem,
    MoodLabel,
    PageAnalyticsResponse,
    PublishableKeyRequest,
    PublishableKeyResponse,
    UsageResponse,
    Webhook,
    WebhookCreated,
    WebhookCreateRequest,
    WebhookDeleted,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
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
from sessionmood_server.learning import LEARNED_SIGNAL, apply_policy
from sessionmood_server.limits import RateLimiter, admit, client_source
from sessionmood_server.outbox import new_webhook_id, new_webhook_secret
from sessionmood_server.records import KeyRecord, Quota, WebhookRecord
from sessionmood_server.services.live import LiveFeed
from sessionmood_server.services.policy import PolicyCache
from sessionmood_server.services.ssrf import WebhookURLError, check_webhook_url
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage
from sessionmood_server.validation import (
    check_session_id,
    check_webhook_id,
    parse_events_body,
    parse_feedback,
    read_body,
    read_json,
    validate_body,
)

VERSION = __version__
MAX_TS = 1e11  # as the wire models' Timestamp
_EVENT_ID = re.compile(r"[0-9]{1,18}")
_SEQ = re.compile(r"[0-9]{1,18}")
MAX_WEBHOOKS = 20
DEFAULT_PAGES = 100  # GET /v1/analytics/pages without ``limit``
# Authenticated answers must not be kept by browsers or proxies: they carry
# moods, events, usage and, once, keys.
NO_STORE = {"Cache-Control": "no-store"}
_REPLAYED = {"Idempotent-Replayed": "true", **NO_STORE}


def iso(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the reference shows."""
    d = datetime.fromtimestamp(ts, UTC)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}."
        f"{d.microsecond // 1000:03d}Z"
    )


def month_bounds(now: float) -> tuple[str, datetime]:
    """("YYYY-MM", first instant of next month) for ``now`` in UTC."""
    # Every request needs this; months start on the hour, so the hour decides.
    return _month_of_hour(int(now // 3600))


@functools.lru_cache(maxsize=64)
def _month_of_hour(hour: int) -> tuple[str, datetime]:
    d = datetime.fromtimestamp(hour * 3600, UTC)
    nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return f"{d.year:04d}-{d.month:02d}", nxt


def distribution_rows(counts: dict[MoodLabel, int]) -> list[dict[str, Any]]:
    """All seven moods, most frequent first, with one-decimal percentages."""
    total = sum(counts.values())
    order = {m: i for i, m in enumerate(MOODS)}
    items = sorted(((m, counts.get(m, 0)) for m in MOODS), key=lambda kv: (-kv[1], order[kv[0]]))
    return [
        {"mood": m, "count": n, "percentage": round(n * 100 / total, 1) if total else 0.0}
        for m, n in items
    ]


def distribution(counts: dict[MoodLabel, int]) -> list[MoodDistributionItem]:
    return [MoodDistributionItem(**row) for row in distribution_rows(counts)]


def parse_time_param(request: Request, name: str) -> float | None:
    """``since``/``until``: Unix seconds or ISO 8601 (naive means UTC)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        ts = float(raw)
    except ValueError:
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError):
            ts = math.nan
    # Same range as event timestamps: NaN, infinities and year 5000 are mistakes.
    if not 0 <= ts <= MAX_TS:
        raise bad_request(
            "Invalid field",
            field=name,
            message="use Unix seconds or ISO 8601, between 1970 and 5138",
        )
    return ts


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _dt_req(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def normalise_origin(origin: str) -> str | None:
    """An origin as browsers send it in ``Origin``, or None if it is not one:
    ``https://Shop.example:443/`` -> ``https://shop.example`` (default port dropped),
    IDN hosts in punycode, IPv6 hosts in brackets."""
    try:
        parsed = urlsplit(origin.strip())
        port = parsed.port
    except ValueError:
        return None
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return None
    if parsed.path not in {"", "/"} or parsed.query or parsed.fragment or parsed.username:
        return None
    host = parsed.hostname
    if ":" in host:
        host = f"[{host}]"
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    default = 443 if parsed.scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parsed.scheme}://{host}{suffix}"


def model_response(
    model: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        media_type="application/json",
    )


def too_many(
    message: str, retry_after: float, error: str = "Too many requests", **fields: Any
) -> ApiError:
    """A 429 for a rate or count limit: JSON, with ``Retry-After`` in seconds."""
    return ApiError(
        429,
        error,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        message=message,
        **fields,
    )


def int_param(request: Request, name: str, default: int, most: int) -> int:
    """A positive integer query parameter, capped at ``most``; a 400 naming it if
    it is not one."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise bad_request(
            "Invalid field", field=name, message=f"{name} must be a whole number >= 1"
        )
    return min(int(raw), most)


class _Slots:
    """Open streams per tenant and per client address, taken before the 200.

    ``take`` checks and counts in one synchronous step (nothing else runs on
    the loop in between), so simultaneous opens cannot all pass the check.
    """

    def __init__(self) -> None:
        self.by_tenant: dict[int, int] = {}
        self.by_source: dict[str, int] = {}

    def take(self, tenant: int, source: str, per_tenant: int, per_source: int) -> str | None:
        """None if taken, else which limit refused."""
        if per_tenant and self.by_tenant.get(tenant, 0) >= per_tenant:
            return f"at most {per_tenant} open /v1/stream/moods per tenant"
        if per_source and self.by_source.get(source, 0) >= per_source:
            return f"at most {per_source} open /v1/stream/moods per client address"
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        return None

    def give_back(self, tenant: int, source: str) -> None:
        _decrement(self.by_tenant, tenant)
        _decrement(self.by_source, source)


def _decrement(counts: dict[Any, int], key: object) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


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


class Api:
    """Request handlers bound to one storage and one settings object."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.policies = PolicyCache(storage)
        self.feed = LiveFeed(storage, poll_s=min(5.0, settings.sse_heartbeat_s))
        self._stream_slots = _Slots()
        on = settings.limits
        # New sessions through publishable keys: per (key, address), (key, origin), key.
        self._new_by_source = RateLimiter(settings.new_sessions_per_address)
        self._new_by_origin = RateLimiter(settings.new_sessions_per_origin)
        self._new_by_key = RateLimiter(settings.new_sessions_per_key)
        self._keys_by_source = RateLimiter(settings.keys_per_address)
        self._limits_on = on
        self._max_session_events = settings.max_session_events if on else 0

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
                    "publishable keys (pk_) may only send events and feedback (the answer "
                    "to each batch carries the mood); reading needs a secret key (sm_) "
                    "from your backend"
                )
            origin = request.headers.get("origin")
            if origin is not None and origin not in record.allowed_origins:
                raise forbidden(f"origin {origin} is not allowed for this publishable key")
        return record

    def _session_id(self, request: Request) -> str:
        session_id: str = request.path_params["session_id"]
        # The server decodes %XX leniently: bytes that are not UTF-8 (%FF, a lone
        # surrogate %ED%A0%80) would become U+FFFD and merge distinct ids. Only
        # then is the raw path worth a strict look.
        raw_path = request.scope.get("raw_path")
        if "\ufffd" in session_id and raw_path:
            try:
                unquote_to_bytes(raw_path.decode("latin-1")).decode("utf-8")
            except UnicodeDecodeError:
                raise bad_request(
                    "Invalid session id",
                    field="session_id",
                    message="session ids must be UTF-8, percent-encoded",
                ) from None
        return check_session_id(session_id)

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
        req = validate_body(KeyGenerateRequest, data)
        admin = self._is_admin(request)
        if not admin and self.settings.signup == "admin":
            raise forbidden(
                "sign-up is closed on this server (SESSIONMOOD_SIGNUP=admin): call with "
                "'Authorization: Bearer $SESSIONMOOD_ADMIN_TOKEN' or use "
                "'sessionmood keys create --customer NAME'"
            )
        if req.plan != "starter" and not admin:
            raise forbidden(
                f"the {req.plan} plan cannot be self-served: call with "
                "'Authorization: Bearer $SESSIONMOOD_ADMIN_TOKEN' or use "
                f"'sessionmood keys create --customer NAME --plan {req.plan}'"
            )
        if not admin and self._limits_on:
            source = client_source(request.client.host if request.client else None)
            wait = admit([(self._keys_by_source, source)], time.monotonic())
            if wait:
                rate = self.settings.keys_per_address
                raise too_many(f"at most {rate} new keys per client address", wait)
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
        req = validate_body(
            PublishableKeyRequest, await read_json(request, self.settings.max_body_bytes)
        )
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
            message="Embed this key in tracker.js; it can only send events and feedback.",
        )
        return model_response(body, 201)

    def _is_admin(self, request: Request) -> bool:
        token = self.settings.admin_token
        if not token:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Bytes: compare_digest refuses non-ASCII str, which a caller controls.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )

    async def post_events(self, request: Request) -> Response:
        key = await self.authenticate(request, publishable_ok=True)
        session_id = self._session_id(request)
        body = await read_body(request, self.settings.max_body_bytes)
        now = time.time()
        events, batch_id, fingerprint = parse_events_body(
            body, request.headers.get("idempotency-key"), self.settings.max_batch_events, now
        )
        plan = PLAN_INFO[key.plan]
        month, reset_at = month_bounds(now)
        public = key.kind == "publishable"
        refused: list[float] = []
        result = await self.storage.append_events(
            key.tenant_id,
            session_id,
            events,
            batch_id,
            Quota(month, plan.monthly_sessions, plan.blocks_at_limit, provisional=public),
            now,
            await self.policies.get(key.tenant_id),
            fingerprint=fingerprint,
            max_events=self._max_session_events,
            admit_new=self._new_session_admitter(request, key, refused)
            if public and self._limits_on
            else None,
        )
        if result.status == "limited":
            raise too_many(
                "too many new sessions from this address, origin or publishable key; "
                "sessions already open keep working",
                refused[0],
            )
        if result.status == "full":
            raise ApiError(
                429,
                "Session event limit reached",
                # Waiting does not make room: only erasing the session does.
                headers={"Retry-After": "3600", "X-Should-Retry": "false"},
                field="events",
                limit=self._max_session_events,
                message=f"a session holds at most {self._max_session_events} events; "
                "start a new session",
            )
        if result.status == "mismatch":
            raise ApiError(
                409,
                "Idempotency key reused",
                headers={"X-Should-Retry": "false"},
                field="batch_id",
                message="this batch_id was already used with other events; "
                "use a new batch_id for a new batch",
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
                # Permanent: retrying the same batch id cannot succeed.
                headers={"X-Should-Retry": "false"},
                field="batch_id",
                message="this batch_id was already used for another session",
            )
        headers = _REPLAYED if result.status == "replayed" else NO_STORE
        # Built by storage in the PostEventsResponse shape (tests check it); no
        # second validation on the hottest path.
        return JSONResponse(result.response, headers=headers)

    def _new_session_admitter(
        self, request: Request, key: KeyRecord, refused: list[float]
    ) -> Callable[[], bool]:
        """For ``append_events``: may this publishable-key batch open a new session?
        Appends the seconds to wait to ``refused`` when not."""
        source = client_source(request.client.host if request.client else None)
        origin = request.headers.get("origin") or ""

        def admit_new() -> bool:
            wait = admit(
                [
                    (self._new_by_source, (key.key_hash, source)),
                    (self._new_by_origin, (key.key_hash, origin)),
                    (self._new_by_key, key.key_hash),
                ],
                time.monotonic(),
            )
            if wait:
                refused.append(wait)
            return not wait

        return admit_new

    async def get_mood(self, request: Request) -> Response:
        # Secret keys only: sites that use user ids as session ids would
        # otherwise let anyone with the public key read every user's mood. The
        # page learns its visitor's mood from the answer to its own batches.
        key = await self.authenticate(request)
        session_id = self._session_id(request)
        rec = await self.storage.get_session(key.tenant_id, session_id)
        if rec is None:
            raise session_not_found(session_id)
        signals = list(rec.signals)
        # Re-applied at read time: feedback since the last batch counts too.
        policy = await self.policies.get(key.tenant_id)
        action = apply_policy(policy, rec.mood, DEFAULT_ACTIONS[rec.mood], signals)
        if action == DEFAULT_ACTIONS[rec.mood] and LEARNED_SIGNAL in signals:
            signals.remove(LEARNED_SIGNAL)  # learned at write time, since unlearned
        # The MoodResponse shape, built directly: this is the hottest read.
        return JSONResponse(
            {
                "session_id": session_id,
                "mood": rec.mood,
                "confidence": rec.confidence,
                "signals": signals,
                "suggested_action": action,
                "event_count": rec.event_count,
                "updated_at": iso(rec.updated_at),
            },
            headers=NO_STORE,
        )

    async def export_events(self, request: Request) -> Response:
        """One page of a session's events (``limit``, default and at most the
        server's page size), from after ``cursor``; ``next_cursor`` continues."""
        key = await self.authenticate(request)
        session_id = self._session_id(request)
        page = self.settings.export_page_events
        limit = int_param(request, "limit", page, page)
        raw_cursor = request.query_params.get("cursor", "0")
        if not _SEQ.fullmatch(raw_cursor):
            raise bad_request(
                "Invalid field", field="cursor", message="use the next_cursor of the last page"
            )
        after = int(raw_cursor)
        # One more than asked for tells whether another page follows.
        events = await self.storage.export_events(key.tenant_id, session_id, after, limit + 1)
        if events is None:
            raise session_not_found(session_id)
        more = len(events) > limit
        events = events[:limit]
        rec = await self.storage.get_session(key.tenant_id, session_id)
        total = rec.event_count if rec is not None else after + len(events)
        # Plain dicts, not pydantic models: a page is built and serialised in
        # about a millisecond, so the event loop never stalls on an export.
        return JSONResponse(
            {
                "session_id": session_id,
                "event_count": total,
                "events": events,
                "next_cursor": str(events[-1]["seq"]) if more else None,
            },
            headers=NO_STORE,
        )

    async def post_feedback(self, request: Request) -> Response:
        # Publishable keys may report how an on-page intervention went: the page
        # that showed it is the one that knows.
        key = await self.authenticate(request, publishable_ok=True)
        session_id = self._session_id(request)
        fb = parse_feedback(await read_json(request, self.settings.max_body_bytes))
        ok = await self.storage.add_feedback(
            key.tenant_id,
            session_id,
            fb.action_taken,
            fb.was_helpful,
            fb.notes,
            time.time(),
            trusted=key.kind == "secret",
        )
        if not ok:
            raise session_not_found(session_id)
        self.policies.forget(key.tenant_id)
        return model_response(FeedbackResponse(session_id=session_id, feedback_recorded=True))

    async def delete_session(self, request: Request) -> Response:
        key = await self.authenticate(request)
        session_id = self._session_id(request)
        if not await self.storage.delete_session(key.tenant_id, session_id):
            raise session_not_found(session_id)
        body = DeleteSessionResponse(
            session_id=session_id, deleted=True, message="Session data permanently erased."
        )
        return model_response(body)

    async def analytics_moods(self, request: Request) -> Response:
        key = await self.authenticate(request)
        counts = await self.storage.mood_counts(key.tenant_id)
        body = AnalyticsResponse(
            total_sessions=counts.total_sessions,
            feedback_count=counts.feedback_count,
            mood_distribution=distribution(counts.by_mood),
        )
        return model_response(body)

    async def analytics_pages(self, request: Request) -> Response:
        key = await self.authenticate(request)
        since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
        most = self.settings.analytics_pages_max
        limit = int_param(request, "limit", min(DEFAULT_PAGES, most), most)
        pages = await self.storage.page_moods(key.tenant_id, since, until, limit)
        # Plain dicts in the PageAnalyticsItem shape (a test checks it): up to
        # a thousand pages without a model each keeps the event loop free.
        items: list[dict[str, Any]] = []
        for url, counts in pages.items():  # busiest first, as storage returns them
            n = sum(counts.values())
            items.append(
                {
                    "url": url,
                    "sessions": n,
                    "mood_distribution": distribution_rows(counts),
                    "frustration_rate": round(counts.get("frustrated", 0) / n, 4),
                }
            )
        body = PageAnalyticsResponse(since=_dt(since), until=_dt(until), pages=[])
        payload = body.model_dump(mode="json")
        payload["pages"] = items
        return JSONResponse(payload, headers=NO_STORE)

    async def analytics_actions(self, request: Request) -> Response:
        key = await self.authenticate(request)
        since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
        rows = await self.storage.action_counts(key.tenant_id, since, until)
        items = [
            ActionAnalyticsItem(
                mood=r.mood,
                action=r.action,
                taken=r.taken,
                helpful=r.helpful,
                not_helpful=r.not_helpful,
                helpful_rate=(
                    round(r.helpful / (r.helpful + r.not_helpful), 4)
                    if r.helpful + r.not_helpful
                    else None
                ),
            )
            for r in rows
        ]
        body = ActionAnalyticsResponse(since=_dt(since), until=_dt(until), actions=items)
        return model_response(body)

    async def stream_moods(self, request: Request) -> Response:
        """Server-Sent Events: every mood change of the tenant's sessions.

        Resumes after ``Last-Event-ID`` (header, or ``last_event_id`` in the
        query for clients that cannot set it); otherwise starts with the next
        change. A comment line every ``heartbeat_s`` keeps proxies from
        closing an idle stream. The stream ends when its key is revoked.
        """
        key = await self.authenticate(request)
        raw_last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if raw_last is not None:
            if not _EVENT_ID.fullmatch(raw_last):
                raise bad_request(
                    "Invalid field", field="Last-Event-ID", message="must be an event id"
                )
            last = int(raw_last)
        else:
            last = await self.storage.last_mood_change_id(key.tenant_id)
        # Counted here, before the 200 and with no await between the check and
        # the count, so simultaneous opens cannot all slip under the limit.
        tenant = key.tenant_id
        source = client_source(request.client.host if request.client else None)
        slots = self._stream_slots
        if self._limits_on:
            refused = slots.take(
                tenant,
                source,
                self.settings.streams_per_tenant,
                self.settings.streams_per_address,
            )
            if refused is not None:
                raise too_many(refused, 10, "Too many streams")
        else:
            slots.take(tenant, source, 0, 0)
        heartbeat = self.settings.sse_heartbeat_s
        sub = self.feed.subscribe(key, last)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    changes = await sub.next(heartbeat)
                    if changes is None:
                        return  # key revoked, or the server is stopping
                    if not changes:
                        yield b": heartbeat\n\n"
                    for ch in changes:
                        payload = MoodChange(
                            id=ch.id,
                            session_id=ch.session_id,
                            previous_mood=ch.previous_mood,
                            mood=ch.mood,
                            confidence=ch.confidence,
                            signals=list(ch.signals),
                            suggested_action=ch.suggested_action,
                            url=ch.url,
                            occurred_at=datetime.fromtimestamp(ch.occurred_at, UTC),
                        ).model_dump_json()
                        yield f"id: {ch.id}\nevent: mood.changed\ndata: {payload}\n\n".encode()
            finally:
                sub.close()

        def release() -> None:
            sub.close()  # also when the body never started
            slots.give_back(tenant, source)

        return _StreamResponse(
            events(),
            release,
            media_type="text/event-stream",
            headers={**NO_STORE, "X-Accel-Buffering": "no"},
        )

    # -- webhooks ----------------------------------------------------------------

    async def _webhook_key(self, request: Request) -> KeyRecord:
        key = await self.authenticate(request)
        if key.plan not in {"growth", "pro"}:
            raise forbidden(
                f"webhooks are available on the growth and pro plans (this key is {key.plan})"
            )
        return key

    async def create_webhook(self, request: Request) -> Response:
        key = await self._webhook_key(request)
        req = validate_body(
            WebhookCreateRequest, await read_json(request, self.settings.max_body_bytes)
        )
        try:
            url = await check_webhook_url(req.url, self.settings.allow_private_webhooks)
        except WebhookURLError as exc:
            raise bad_request("Webhook URL refused", field="url", message=str(exc)) from None
        record = WebhookRecord(
            id=new_webhook_id(),
            tenant_id=key.tenant_id,
            url=url,
            moods=None if req.moods is None else tuple(dict.fromkeys(req.moods)),
            secret=new_webhook_secret(),
            created_at=time.time(),
        )
        if not await self.storage.create_webhook(record, MAX_WEBHOOKS):
            raise bad_request(f"At most {MAX_WEBHOOKS} webhooks per tenant", field="url")
        body = WebhookCreated(
            id=record.id,
            url=record.url,
            moods=None if record.moods is None else list(record.moods),
            secret=record.secret,
            created_at=_dt_req(record.created_at),
        )
        return model_response(body, 201)

    async def list_webhooks(self, request: Request) -> Response:
        key = await self._webhook_key(request)
        hooks = await self.storage.list_webhooks(key.tenant_id)
        body = WebhookList(
            webhooks=[
                Webhook(
                    id=h.id,
                    url=h.url,
                    moods=None if h.moods is None else list(h.moods),
                    created_at=_dt_req(h.created_at),
                )
                for h in hooks
            ]
        )
        return model_response(body)

    async def delete_webhook(self, request: Request) -> Response:
        key = await self._webhook_key(request)
        webhook_id = check_webhook_id(request.path_params["webhook_id"])
        if not await self.storage.delete_webhook(key.tenant_id, webhook_id, time.time()):
            raise ApiError(404, "Webhook not found", webhook_id=webhook_id)
        return model_response(WebhookDeleted(id=webhook_id, deleted=True))

    async def list_deliveries(self, request: Request) -> Response:
        key = await self._webhook_key(request)
        webhook_id = check_webhook_id(request.path_params["webhook_id"])
        rows = await self.storage.list_deliveries(key.tenant_id, webhook_id)
        if rows is None:
            raise ApiError(404, "Webhook not found", webhook_id=webhook_id)
        body = WebhookDeliveryList(
            deliveries=[
                WebhookDelivery(
                    id=d.id,
                    change_id=d.change_id,
                    session_id=d.session_id,
                    status=d.status,
                    attempts=d.attempts,
                    last_status_code=d.last_status_code,
                    last_error=d.last_error,
                    latency_ms=None if d.latency_ms is None else round(d.latency_ms, 2),
                    created_at=_dt_req(d.created_at),
                    delivered_at=_dt(d.delivered_at),
                    next_attempt_at=_dt(d.next_attempt_at),
                )
                for d in rows
            ]
        )
        return model_response(body)

    async def usage(self, request: Request) -> Response:
        key = await self.authenticate(request)
        now = time.time()
        month, reset_at = month_bounds(now)
        used = await self.storage.month_usage(key.tenant_id, month)
        plan = PLAN_INFO[key.plan]
        body = UsageResponse(
            customer=key.customer,
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
        return JSONResponse(payload, headers=NO_STORE)
