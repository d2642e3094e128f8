"""Webhook endpoints: subscribe, list, delete, and the delivery log."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    Webhook,
    WebhookCreated,
    WebhookCreateRequest,
    WebhookDeleted,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookList,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate
from sessionmood_server.http.errors import (
    HTTPProblem,
    bad_request,
    forbidden,
)
from sessionmood_server.http.responses import (
    dt,
    dt_req,
    model_response,
)
from sessionmood_server.http.validation import (
    check_webhook_id,
    read_json,
    validate_body,
)
from sessionmood_server.outbox import new_webhook_id, new_webhook_secret
from sessionmood_server.records import KeyRecord, WebhookRecord
from sessionmood_server.services.ssrf import WebhookURLError, check_webhook_url

MAX_WEBHOOKS = 20


async def _webhook_key(api: Api, request: Request) -> KeyRecord:
    key = await authenticate(api.storage, request)
    if key.plan not in {"growth", "pro"}:
        raise forbidden(
            f"webhooks are available on the growth and pro plans (this key is {key.plan})"
        )
    return key


async def create_webhook(api: Api, request: Request) -> Response:
    key = await _webhook_key(api, request)
    req = validate_body(WebhookCreateRequest, await read_json(request, api.settings.max_body_bytes))
    try:
        url = await check_webhook_url(req.url, api.settings.allow_private_webhooks)
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
    if not await api.storage.create_webhook(record, MAX_WEBHOOKS):
        raise bad_request(f"At most {MAX_WEBHOOKS} webhooks per tenant", field="url")
    body = WebhookCreated(
        id=record.id,
        url=record.url,
        moods=None if record.moods is None else list(record.moods),
        secret=record.secret,
        created_at=dt_req(record.created_at),
    )
    return model_response(body, 201)


async def list_webhooks(api: Api, request: Request) -> Response:
    key = await _webhook_key(api, request)
    hooks = await api.storage.list_webhooks(key.tenant_id)
    body = WebhookList(
        webhooks=[
            Webhook(
                id=h.id,
                url=h.url,
                moods=None if h.moods is None else list(h.moods),
                created_at=dt_req(h.created_at),
            )
            for h in hooks
        ]
    )
    return model_response(body)


async def delete_webhook(api: Api, request: Request) -> Response:
    key = await _webhook_key(api, request)
    webhook_id = check_webhook_id(request.path_params["webhook_id"])
    if not await api.storage.delete_webhook(key.tenant_id, webhook_id, time.time()):
        raise HTTPProblem(404, "Webhook not found", webhook_id=webhook_id)
    return model_response(WebhookDeleted(id=webhook_id, deleted=True))


async def list_deliveries(api: Api, request: Request) -> Response:
    key = await _webhook_key(api, request)
    webhook_id = check_webhook_id(request.path_params["webhook_id"])
    rows = await api.storage.list_deliveries(key.tenant_id, webhook_id)
    if rows is None:
        raise HTTPProblem(404, "Webhook not found", webhook_id=webhook_id)
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
                created_at=dt_req(d.created_at),
                delivered_at=dt(d.delivered_at),
                next_attempt_at=dt(d.next_attempt_at),
            )
            for d in rows
        ]
    )
    return model_response(body)
