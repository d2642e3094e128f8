"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the wire models.

The schemas come from the same pydantic models the server answers with and the
client parses with; the operations come from the operation table
(``http.operations``), which the routes are built from too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sessionmood_client import types as m
from sessionmood_server.http.operations import OPERATIONS, Operation
from sessionmood_server.http.responses import JSONResponse

_REF = "#/components/schemas/{model}"


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


_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "session_id": {
        "name": "session_id",
        "in": "path",
        "required": True,
        "description": "Opaque session id, 1-256 characters, URL-encoded",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    },
    "webhook_id": {
        "name": "webhook_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": m.NO_NUL},
    },
}
_WHO = {
    "any": "Secret or publishable key.",
    "secret": "Secret keys only.",
    "none": "No key needed.",
}


def _operation_id(method: str, path: str) -> str:
    clean = path.strip("/").replace("{", "").replace("}", "")
    return f"{method}_{clean.replace('/', '_')}"


def build_openapi(version: str, operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (every endpoint, by default)."""
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, refs)
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
        "webhooks": _webhooks(refs),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _schemas(
    operations: Sequence[Operation],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """The ``$ref`` of every model the operations (and the webhook) take or
    give, and the schemas they refer to."""
    models: list[type[BaseModel]] = []
    for operation in operations:
        req = operation.request
        for model in ([req] if req else []) + list(operation.responses.values()):
            if model not in models:
                models.append(model)
    if m.WebhookEvent not in models:
        models.append(m.WebhookEvent)
    keyed, schema = models_json_schema([(mdl, "validation") for mdl in models], ref_template=_REF)
    refs = {mdl: keyed[(mdl, "validation")] for mdl in models}
    return refs, schema.get("$defs", {})


def _operation(
    operation: Operation, refs: Mapping[type[BaseModel], dict[str, Any]]
) -> dict[str, Any]:
    """One operation of ``paths``: its responses (the common errors of its kind
    included), parameters, body and security."""
    method, path, summary, req = (
        operation.method.lower(),
        operation.path,
        operation.summary,
        operation.request,
    )
    auth = operation.auth != "none"
    responses = {**_common_errors(path, req is not None, auth), **operation.responses}
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": _operation_id(method, path),
        "tags": [operation.tag],
        "description": operation.description or _WHO[operation.auth],
        "responses": {
            str(status): {
                "description": summary if status < 300 else "Error",
                "content": {"application/json": {"schema": refs[model]}},
            }
            for status, model in responses.items()
        },
    }
    parameters = [_PATH_PARAMS[name] for name in operation.path_params]
    parameters += operation.query
    if parameters:
        op["parameters"] = parameters
    if operation.stream:
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
    return op


# The headers of a webhook delivery (Standard Webhooks).
_SIGNATURE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The delivery's id, the same on each retry",
        "schema": {"type": "string", "examples": ["msg_42"]},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds of this attempt",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "v1,<base64 HMAC-SHA256 of "
        '"{webhook-id}.{webhook-timestamp}.{body}">, keyed with the '
        "base64 decoding of the secret after whsec_",
        "schema": {"type": "string"},
    },
]


def _webhooks(refs: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    """What SessionMood POSTs to subscribed URLs (OpenAPI 3.1 webhooks)."""
    return {
        "mood.changed": {
            "post": {
                "summary": "A session's mood changed",
                "description": "Signed the Standard Webhooks way "
                "(https://www.standardwebhooks.com): verify with any of its libraries "
                "and the webhook's `whsec_` secret. `webhook-id` is the same on every "
                "retry of a delivery: deduplicate on it. Answer 2xx; 410 disables the "
                "webhook; anything else is retried with backoff (or after your "
                "`Retry-After`, at most an hour) for 24 h.",
                "parameters": _SIGNATURE_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs[m.WebhookEvent]}},
                },
                "responses": {
                    "200": {"description": "Received (any 2xx)"},
                    "410": {"description": "Gone: the webhook is disabled"},
                },
            }
        }
    }


def openapi_routes(version: str) -> list[BaseRoute]:
    """``/openapi.json``, its document built once, when the app is."""
    document = build_openapi(version)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return [Route("/openapi.json", openapi, methods=["GET"])]
