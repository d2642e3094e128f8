"""Key endpoints: sign-up (a tenant and its secret key) and publishable browser keys."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    PLANS,
    KeyGenerateRequest,
    KeyGenerateResponse,
    PublishableKeyRequest,
    PublishableKeyResponse,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate, is_admin
from sessionmood_server.http.errors import bad_request, forbidden, too_many
from sessionmood_server.http.responses import model_response
from sessionmood_server.http.validation import (
    read_json,
    validate_body,
)
from sessionmood_server.keys import PLAN_INFO, new_key
from sessionmood_server.limits import admit, client_source


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


async def generate_key(api: Api, request: Request) -> Response:
    data = await read_json(request, api.settings.max_body_bytes)
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    name = data.get("customer_name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("customer_name is required")
    plan = data.get("plan", "starter")
    if plan not in PLANS:
        raise bad_request("Invalid plan", valid_plans=list(PLANS))
    req = validate_body(KeyGenerateRequest, data)
    admin = is_admin(api.settings, request)
    if not admin and api.settings.signup == "admin":
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
    if not admin and api.limits_on:
        source = client_source(request.client.host if request.client else None)
        wait = admit([(api.keys_by_source, source)], time.monotonic())
        if wait:
            rate = api.settings.keys_per_address
            raise too_many(f"at most {rate} new keys per client address", wait)
    raw = new_key("secret")
    await api.storage.create_tenant_key(
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


async def create_publishable_key(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    req = validate_body(
        PublishableKeyRequest, await read_json(request, api.settings.max_body_bytes)
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
    await api.storage.create_publishable_key(key.tenant_id, raw, tuple(origins), time.time())
    body = PublishableKeyResponse(
        publishable_key=raw,
        allowed_origins=origins,
        message="Embed this key in tracker.js; it can only send events, feedback and conversions.",
    )
    return model_response(body, 201)
