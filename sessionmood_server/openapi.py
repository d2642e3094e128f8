"""OpenAPI 3.1 document generated from the wire models.

The schemas come from the same pydantic models the server answers with and the
client parses with; only the path table below is written by hand.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sessionmood_client import types as m

_REF = "#/components/schemas/{model}"

# (method, path, summary, request model, {status: response model}, auth, tags)
_Op = tuple[str, str, str, type[BaseModel] | None, dict[int, type[BaseModel]], bool, str]
OPERATIONS: list[_Op] = [
    (
        "get",
        "/health",
        "Health check",
        None,
        {200: m.HealthResponse, 503: m.HealthResponse},
        False,
        "ops",
    ),
    (
        "post",
        "/v1/keys/generate",
        "Generate an API key (starter plan is self-serve)",
        m.KeyGenerateRequest,
        {201: m.KeyGenerateResponse, 400: m.ApiError, 403: m.ApiError, 429: m.ApiError},
        False,
        "keys",
    ),
    (
        "post",
        "/v1/keys/publishable",
        "Create a browser (publishable) key for tracker.js, limited to some origins",
        m.PublishableKeyRequest,
        {201: m.PublishableKeyResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        True,
        "keys",
    ),
    (
        "post",
        "/v1/sessions/{session_id}/events",
        "Submit a batch of behavioural events",
        m.EventsRequest,
        {
            200: m.PostEventsResponse,
            400: m.ApiError,
            401: m.ApiError,
            409: m.ApiError,
            413: m.ApiError,
            415: m.ApiError,
            429: m.ApiError,
        },
        True,
        "sessions",
    ),
    (
        "get",
        "/v1/sessions/{session_id}/events",
        "Export the stored events of a session, a page at a time (GDPR access)",
        None,
        {200: m.ExportEventsResponse, 400: m.ApiError, 401: m.ApiError, 404: m.ApiError},
        True,
        "sessions",
    ),
    (
        "get",
        "/v1/sessions/{session_id}/mood",
        "Current mood of a session",
        None,
        {200: m.MoodResponse, 401: m.ApiError, 404: m.ApiError},
        True,
        "sessions",
    ),
    (
        "post",
        "/v1/sessions/{session_id}/feedback",
        "Record the outcome of an intervention",
        m.FeedbackRequest,
        {200: m.FeedbackResponse, 400: m.ApiError, 401: m.ApiError, 404: m.ApiError},
        True,
        "sessions",
    ),
    (
        "delete",
        "/v1/sessions/{session_id}",
        "Erase a session (GDPR erasure)",
        None,
        {200: m.DeleteSessionResponse, 401: m.ApiError, 404: m.ApiError},
        True,
        "sessions",
    ),
    (
        "get",
        "/v1/analytics/moods",
        "Mood distribution across the key's sessions",
        None,
        {200: m.AnalyticsResponse, 401: m.ApiError},
        True,
        "analytics",
    ),
    (
        "get",
        "/v1/analytics/pages",
        "Per page (URL path): sessions, mood distribution, frustration rate",
        None,
        {200: m.PageAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        True,
        "analytics",
    ),
    (
        "get",
        "/v1/analytics/actions",
        "Per mood x action: times taken, helpful, not helpful, helpful rate",
        None,
        {200: m.ActionAnalyticsResponse, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        True,
        "analytics",
    ),
    (
        "get",
        "/v1/stream/moods",
        "Server-Sent Events: mood.changed for every session of the tenant",
        None,
        {200: m.MoodChange, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError, 429: m.ApiError},
        True,
        "analytics",
    ),
    (
        "post",
        "/v1/webhooks",
        "Subscribe a URL to mood changes (growth and pro plans)",
        m.WebhookCreateRequest,
        {201: m.WebhookCreated, 400: m.ApiError, 401: m.ApiError, 403: m.ApiError},
        True,
        "webhooks",
    ),
    (
        "get",
        "/v1/webhooks",
        "List webhook subscriptions",
        None,
        {200: m.WebhookList, 401: m.ApiError, 403: m.ApiError},
        True,
        "webhooks",
    ),
    (
        "delete",
        "/v1/webhooks/{webhook_id}",
        "Delete a webhook subscription (its pending deliveries are dropped)",
        None,
        {200: m.WebhookDeleted, 401: m.ApiError, 403: m.ApiError, 404: m.ApiError},
        True,
        "webhooks",
    ),
    (
        "get",
        "/v1/webhooks/{webhook_id}/deliveries",
        "Recent delivery attempts of a webhook, newest first",
        None,
        {200: m.WebhookDeliveryList, 401: m.ApiError, 403: m.ApiError, 404: m.ApiError},
        True,
        "webhooks",
    ),
    (
        "get",
        "/v1/usage",
        "This month's session usage against the plan",
        None,
        {200: m.UsageResponse, 401: m.ApiError},
        True,
        "analytics",
    ),
]


def _common_errors(path: str, has_body: bool, auth: bool) -> dict[int, type[BaseModel]]:
    """Errors every operation of a kind can give, so no table row forgets one."""
    errors: dict[int, type[BaseModel]] = {}
    if auth:
        # 401 for a bad key; 403 for a publishable key off its origin or endpoints
        errors.update({401: m.ApiError, 403: m.ApiError})
    if has_body:
        errors.update({400: m.ApiError, 408: m.ApiError, 413: m.ApiError, 415: m.ApiError})
    if "{session_id}" in path or "{webhook_id}" in path:
        errors[400] = m.ApiError  # a malformed session or webhook id
    return errors


_TIME_RANGE_PATHS = {"/v1/analytics/pages", "/v1/analytics/actions"}
# What a publishable (browser) key may call; everything else needs a secret key.
_PUBLISHABLE_OK = {
    ("post", "/v1/sessions/{session_id}/events"),
    ("post", "/v1/sessions/{session_id}/feedback"),
}
_DESCRIPTIONS = {
    ("post", "/v1/sessions/{session_id}/events"): (
        "Secret or publishable key. The answer carries the mood after the batch, which is "
        "how a page learns its visitor's mood. A `batch_id` (or `Idempotency-Key`) sent "
        "again with the same events replays the first answer (`Idempotent-Replayed: "
        "true`); with other events, or for another session, it is refused (409). 429: "
        "the monthly quota (`plan`, `limit`, `reset_at`), a full session (`limit`), or, "
        "for publishable keys, too many new sessions from one address, origin or key "
        "(`Retry-After`)."
    ),
    ("get", "/v1/sessions/{session_id}/mood"): (
        "Secret keys only: a publishable key is public, and session ids may be user ids."
    ),
    ("get", "/v1/sessions/{session_id}/events"): (
        "Secret keys only. Pages of `limit` events (default, and cap: the server's page "
        "size, 1,000 unless configured); follow `next_cursor` until it is null."
    ),
    ("get", "/v1/analytics/pages"): (
        "Secret keys only. The `limit` busiest pages (default 100, capped at 1,000 unless "
        "configured)."
    ),
    ("get", "/v1/stream/moods"): (
        "Secret keys only. At most 20 open streams per tenant and 100 per client address "
        "by default (429). The stream ends when its key is revoked."
    ),
    ("post", "/v1/keys/generate"): (
        "No key needed, unless the server runs with SESSIONMOOD_SIGNUP=admin (then only "
        "with the admin token). Anonymous calls are limited per client address (429)."
    ),
}
_LIMIT_PARAMS = {
    "/v1/sessions/{session_id}/events": ("limit", "events per page (capped at the page size)"),
    "/v1/analytics/pages": ("limit", "pages at most, busiest first (default 100, cap 1,000)"),
}


def _operation_id(method: str, path: str) -> str:
    clean = path.strip("/").replace("{", "").replace("}", "")
    return f"{method}_{clean.replace('/', '_')}"


def build_openapi(version: str, operations: list[_Op] | None = None) -> dict[str, Any]:
    ops = operations if operations is not None else OPERATIONS
    models: list[type[BaseModel]] = []
    for _, _, _, req, responses, _, _ in ops:
        for model in ([req] if req else []) + list(responses.values()):
            if model not in models:
                models.append(model)
    if m.WebhookEvent not in models:
        models.append(m.WebhookEvent)
    keyed, schema = models_json_schema([(mdl, "validation") for mdl in models], ref_template=_REF)
    refs = {mdl: keyed[(mdl, "validation")] for mdl in models}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, req, responses, auth, tag in ops:
        responses = {**_common_errors(path, req is not None, auth), **responses}
        op: dict[str, Any] = {
            "summary": summary,
            "operationId": _operation_id(method, path),
            "tags": [tag],
            "description": _DESCRIPTIONS.get(
                (method, path),
                "Secret or publishable key."
                if (method, path) in _PUBLISHABLE_OK
                else "Secret keys only."
                if auth
                else "No key needed.",
            ),
            "responses": {
                str(status): {
                    "description": summary if status < 300 else "Error",
                    "content": {"application/json": {"schema": refs[model]}},
                }
                for status, model in responses.items()
            },
        }
        if "{session_id}" in path:
            op["parameters"] = [
                {
                    "name": "session_id",
                    "in": "path",
                    "required": True,
                    "description": "Opaque session id, 1-256 characters, URL-encoded",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                }
            ]
        if "{webhook_id}" in path:
            op["parameters"] = [
                {
                    "name": "webhook_id",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "pattern": m.NO_NUL,
                    },
                }
            ]
        if path in _TIME_RANGE_PATHS:
            op["parameters"] = [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": f"{name}: Unix seconds or ISO 8601",
                    "schema": {"type": "string"},
                }
                for name in ("since", "until")
            ]
        if method == "get" and path in _LIMIT_PARAMS:
            name, what = _LIMIT_PARAMS[path]
            op.setdefault("parameters", []).append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": what,
                    "schema": {"type": "integer", "minimum": 1},
                }
            )
        if method == "get" and path == "/v1/sessions/{session_id}/events":
            op["parameters"].append(
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "the next_cursor of the previous page",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                }
            )
        if path == "/v1/stream/moods":
            ok = op["responses"]["200"]
            ok["content"] = {"text/event-stream": ok["content"]["application/json"]}
            ok["description"] = (
                "A stream of `event: mood.changed` messages whose `data` is a MoodChange; "
                "resume with the Last-Event-ID header"
            )
        if req is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[req]}},
            }
        if auth:
            op["security"] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SessionMood API",
            "version": version,
            "description": "Real-time behavioural mood inference: send events, read a mood, "
            "a confidence, the signals behind it and a suggested action.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        # What SessionMood POSTs to subscribed URLs (OpenAPI 3.1 webhooks).
        "webhooks": {
            "mood.changed": {
                "post": {
                    "summary": "A session's mood changed",
                    "description": "Signed: SessionMood-Signature: t=<unix>,v1=<hex "
                    'HMAC-SHA256(secret, "t.body")>. Answer 2xx; anything else is retried '
                    "with backoff for 24 h.",
                    "requestBody": {
                        "content": {"application/json": {"schema": refs[m.WebhookEvent]}}
                    },
                    "responses": {"200": {"description": "Received"}},
                }
            }
        },
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }
