"""The operation table: every endpoint of the API, once.

Each row names its method and path, the handler that answers it, the wire
models it takes and gives, who may call it, and what the reference says about
it. The Starlette routes (``http.routes``), the direct fast path for the two
hot requests (``app.SessionMoodApp``) and the OpenAPI document
(``http.openapi``) are all built from this table, so they cannot disagree. A
new endpoint is one row here plus its handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client import types as m
from sessionmood_server.http import analytics, experiments, keys, sessions, stream, webhooks
from sessionmood_server.http.api import Api, health

Handler = Callable[[Api, Request], Awaitable[Response]]
# Who may call: nobody needs a key, a secret key, or a secret or publishable key.
Auth = Literal["none", "secret", "any"]


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter, as the OpenAPI document lists it."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


SINCE = _query("since", "since: Unix seconds or ISO 8601", {"type": "string"})
UNTIL = _query("until", "until: Unix seconds or ISO 8601", {"type": "string"})
EVENTS_LIMIT = _query(
    "limit", "events per page (capped at the page size)", {"type": "integer", "minimum": 1}
)
PAGES_LIMIT = _query(
    "limit",
    "pages at most, busiest first (default 100, cap 1,000)",
    {"type": "integer", "minimum": 1},
)
ELEMENTS_LIMIT = _query(
    "limit",
    "elements at most, most struggling sessions first (default 50, cap 1,000)",
    {"type": "integer", "minimum": 1},
)
PAGE = _query(
    "page",
    "only elements on this page (a URL path, as page_view sent it)",
    {"type": "string", "maxLength": 2048, "pattern": m.NO_NUL},
)
STEPS = _query(
    "steps",
    "page views per path: a session's first ones, repeats collapsed (default 4, cap 8)",
    {"type": "integer", "minimum": 1},
)
JOURNEYS_LIMIT = _query(
    "limit",
    "paths at most, commonest first (default 20, cap 1,000)",
    {"type": "integer", "minimum": 1},
)
UPLIFT_NAME = _query(
    "name",
    "the conversion name to measure (default: conversion)",
    {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.:-]+$"},
)
UPLIFT_EFFECT = _query(
    "effect",
    "the absolute uplift sessions_needed is sized for (default 0.02: two points)",
    {"type": "number", "minimum": 0.001, "maximum": 0.5},
)
CURSOR = _query(
    "cursor",
    "the next_cursor of the previous page",
    {"type": "string", "pattern": "^[0-9]{1,18}$"},
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: how it is routed, answered and documented."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str  # as documented: /v1/sessions/{session_id}/events
    handler: Handler
    summary: str
    tag: str
    responses: Mapping[int, type[BaseModel]]
    auth: Auth = "secret"
    request: type[BaseModel] | None = None  # the JSON body's model
    description: str | None = None  # None: what ``auth`` implies
    query: tuple[dict[str, Any], ...] = ()
    # Served straight from uvicorn, past Starlette's middleware and router:
    # only for the requests that carry the load.
    fast: bool = False
    stream: bool = False  # answers Server-Sent Events, not one JSON body

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


_SESSION = "/v1/sessions/{session_id}"

# In the order the OpenAPI document lists them.
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/health",
        health,
        "Health check",
        "ops",
        {200: m.HealthResponse, 503: m.HealthResponse},
        auth="none",
    ),
    Operation(
        "POST",
        "/v1/keys/generate",
        keys.generate_key,
        "Generate an API key (starter plan is self-serve)",
        "keys",
        {201: m.KeyGenerateResponse, 400: m.ApiError, 403: m.ApiError, 429: m.ApiError},
        auth="none",
        request=m.KeyGenerateRequest,
        description="No key needed, unless the server runs with SESSIONMOOD_SIGNUP=admin (then "
        "only with the admin token). Anonymous calls are limited per client address (429).",
    ),
    Operation(
        "POST",
        "/v1/keys/publishable",
        keys.create_publishable_key,
        "Create a browser (publishable) key for tracker.js, limited to some origins",
        "keys",
        {201: m.PublishableKeyResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        request=m.PublishableKeyRequest,
    ),
    Operation(
        "POST",
        _SESSION + "/events",
        sessions.post_events,
        "Submit a batch of behavioural events",
        "sessions",
        {
            200: m.PostEventsResponse,
            400: m.ApiError,
            401: m.ApiError,
            409: m.ApiError,
            413: m.ApiError,
            415: m.ApiError,
            429: m.ApiError,
        },
        auth="any",
        request=m.EventsRequest,
        description="Secret or publishable key. The answer carries the mood after the batch, "
        "which is how a page learns its visitor's mood. A `batch_id` (or `Idempotency-Key`) "
        "sent again with the same events replays the first answer (`Idempotent-Replayed: "
        "true`); with other events, or for another session, it is refused (409). 429: the "
        "monthly quota (`plan`, `limit`, `reset_at`), a full session (`limit`), or, for "
        "publishable keys, too many new sessions from one address, origin or key "
        "(`Retry-After`).",
        fast=True,
    ),
    Operation(
        "GET",
        _SESSION + "/events",
        sessions.export_events,
        "Export the stored events of a session, a page at a time (GDPR access)",
        "sessions",
        {200: m.ExportEventsResponse, 400: m.ApiError, 401: m.ApiError, 404: m.ApiError},
        description="Secret keys only. Pages of `limit` events (default, and cap: the server's "
        "page size, 1,000 unless configured); follow `next_cursor` until it is null.",
        query=(EVENTS_LIMIT, CURSOR),
    ),
    Operation(
        "GET",
        _SESSION + "/mood",
        sessions.get_mood,
        "Current mood of a session",
        "sessions",
        {200: m.MoodResponse, 401: m.ApiError, 404: m.ApiError},
        description="Secret keys only: a publishable key is public, and session ids may be "
        "user ids.",
        fast=True,
    ),
    Operation(
        "POST",
        _SESSION + "/feedback",
        sessions.post_feedback,
        "Record the outcome of an intervention",
        "sessions",
        {200: m.FeedbackResponse, 400: m.ApiError, 401: m.ApiError, 404: m.ApiError},
        auth="any",
        request=m.FeedbackRequest,
    ),
    Operation(
        "POST",
        _SESSION + "/conversions",
        experiments.post_conversion,
        "Record a conversion of the session (counted once per session and name)",
        "experiments",
        {
            200: m.ConversionResponse,
            201: m.ConversionResponse,
            400: m.ApiError,
            401: m.ApiError,
            404: m.ApiError,
            429: m.ApiError,
        },
        auth="any",
        request=m.ConversionRequest,
        description="Secret or publishable key (tracker.js: `SessionMood.convert(name, value)`). "
        "201 when counted; 200 with `counted: false` when this session already counted this "
        "name (a reload, a retry). `name` defaults to `conversion`; `value` (0 to 1e9) is "
        "optional. At most 32 names per session (429).",
    ),
    Operation(
        "DELETE",
        _SESSION,
        sessions.delete_session,
        "Erase a session (GDPR erasure)",
        "sessions",
        {200: m.DeleteSessionResponse, 401: m.ApiError, 404: m.ApiError},
    ),
    Operation(
        "GET",
        "/v1/analytics/moods",
        analytics.analytics_moods,
        "Mood distribution across the key's sessions",
        "analytics",
        {200: m.AnalyticsResponse, 401: m.ApiError},
    ),
    Operation(
        "GET",
        "/v1/analytics/pages",
        analytics.analytics_pages,
        "Per page (URL path): sessions, mood distribution, frustration rate",
        "analytics",
        {200: m.PageAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        description="Secret keys only. The `limit` busiest pages (default 100, capped at 1,000 "
        "unless configured).",
        query=(SINCE, UNTIL, PAGES_LIMIT),
    ),
    Operation(
        "GET",
        "/v1/analytics/elements",
        analytics.analytics_elements,
        "Where visitors struggle: per page and element, its signals and a suggested fix",
        "analytics",
        {200: m.ElementAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        description="Secret keys only. Per (page, element) that tracker.js named (`target`, "
        "see docs/tracker.md): sessions, clicks, rage, dead and error clicks, hesitations, the "
        "sessions that turned frustrated or confused within 10 s after acting on it, their "
        "share and a suggested fix. Most struggling sessions first; `since`/`until` select "
        "sessions active in the window.",
        query=(SINCE, UNTIL, PAGE, ELEMENTS_LIMIT),
    ),
    Operation(
        "GET",
        "/v1/analytics/journeys",
        analytics.analytics_journeys,
        "The commonest paths of a session's first page views, with the mood at each step",
        "analytics",
        {200: m.JourneyAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        description="Secret keys only. Sessions whose first page view falls in "
        "`since`/`until`, grouped by their first `steps` pages (URL paths, consecutive repeats "
        "collapsed): sessions, the mood visitors left each step in, and the step where most "
        "of the path's frustrated sessions first turned frustrated.",
        query=(SINCE, UNTIL, STEPS, JOURNEYS_LIMIT),
    ),
    Operation(
        "GET",
        "/v1/analytics/uplift",
        experiments.analytics_uplift,
        "Uplift of each action: treated against held-out sessions, with a 95 % interval",
        "experiments",
        {200: m.UpliftResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        description="Secret keys only. Per (mood, action) suggested or held back: sessions, "
        "conversions (under `name`) and rates in each group, the absolute uplift with a 95 % "
        "interval (Newcombe's hybrid score method), the relative uplift, value per session, a "
        "verdict from the interval (helps, hurts, unclear) and, while unclear, the sessions per "
        "group still needed to detect `effect`; an overall row. A session counts once per "
        "(mood, action), from the first time it was suggested or held back; `since`/`until` "
        "select that time.",
        query=(SINCE, UNTIL, UPLIFT_NAME, UPLIFT_EFFECT),
    ),
    Operation(
        "GET",
        "/v1/holdout",
        experiments.get_holdout,
        "The share of new sessions held out (no actions), to measure the uplift",
        "experiments",
        {200: m.HoldoutResponse, 401: m.ApiError, 403: m.ApiError},
    ),
    Operation(
        "PUT",
        "/v1/holdout",
        experiments.put_holdout,
        "Set the share of new sessions held out (0 to 0.5; default 0)",
        "experiments",
        {200: m.HoldoutResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        request=m.HoldoutRequest,
        description="Secret keys only. A session's group is decided at its first batch (a keyed "
        "hash of tenant and session id) and kept: a new share applies to sessions that start "
        "afterwards. Held-out sessions are answered `suggested_action: no_action`, "
        "`holdout: true` and `held_out_action`.",
    ),
    Operation(
        "GET",
        "/v1/analytics/actions",
        analytics.analytics_actions,
        "Per mood x action: times taken, helpful, not helpful, helpful rate",
        "analytics",
        {200: m.ActionAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        query=(SINCE, UNTIL),
    ),
    Operation(
        "GET",
        "/v1/stream/moods",
        stream.stream_moods,
        "Server-Sent Events: mood.changed for every session of the tenant",
        "analytics",
        {200: m.MoodChange, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError, 429: m.ApiError},
        description="Secret keys only. At most 20 open streams per tenant and 100 per client "
        "address by default (429). The stream ends when its key is revoked.",
        stream=True,
    ),
    Operation(
        "POST",
        "/v1/webhooks",
        webhooks.create_webhook,
        "Subscribe a URL to mood changes (growth and pro plans)",
        "webhooks",
        {201: m.WebhookCreated, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        request=m.WebhookCreateRequest,
    ),
    Operation(
        "GET",
        "/v1/webhooks",
        webhooks.list_webhooks,
        "List webhook subscriptions",
        "webhooks",
        {200: m.WebhookList, 401: m.ApiError, 403: m.ApiError},
    ),
    Operation(
        "DELETE",
        "/v1/webhooks/{webhook_id}",
        webhooks.delete_webhook,
        "Delete a webhook subscription (its pending deliveries are dropped)",
        "webhooks",
        {200: m.WebhookDeleted, 401: m.ApiError, 403: m.ApiError, 404: m.ApiError},
    ),
    Operation(
        "GET",
        "/v1/webhooks/{webhook_id}/deliveries",
        webhooks.list_deliveries,
        "Recent delivery attempts of a webhook, newest first",
        "webhooks",
        {200: m.WebhookDeliveryList, 401: m.ApiError, 403: m.ApiError, 404: m.ApiError},
    ),
    Operation(
        "GET",
        "/v1/usage",
        analytics.usage,
        "This month's session usage against the plan",
        "analytics",
        {200: m.UsageResponse, 401: m.ApiError},
    ),
)
