"""Who is calling: API keys from headers (or, for beacons, the query), the
operator's admin token, and the session id from the path."""

from __future__ import annotations

import hmac
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from sessionmood_server.http.errors import (
    bad_request,
    forbidden,
    unauthorized,
)
from sessionmood_server.http.validation import (
    check_session_id,
)
from sessionmood_server.keys import PUBLISHABLE_PREFIX, SECRET_PREFIX, hash_key, key_kind
from sessionmood_server.records import KeyRecord
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage


async def authenticate(
    storage: Storage, request: Request, *, publishable_ok: bool = False
) -> KeyRecord:
    raw = request.headers.get("x-api-key")
    query_key = request.query_params.get("key") if raw is None else None
    if query_key is not None:
        # Only for beacons, which cannot set headers; a secret key in a URL
        # ends up in logs and histories, so it is refused outright.
        kind = key_kind(query_key)
        looks = query_key.strip()[:3].lower()
        if kind == "secret" or (kind is None and looks == SECRET_PREFIX):
            raise unauthorized("secret keys must not be sent in URLs: use X-Api-Key")
        if kind is None:
            # A publishable key cut short or mistyped is what this usually is:
            # say so, rather than blame a secret key nobody sent.
            raise unauthorized(
                "invalid publishable key: a pk_ key is pk_ and 48 hex characters, "
                "as POST /v1/keys/publishable returned it"
                if looks == PUBLISHABLE_PREFIX
                else "invalid key: ?key= takes a publishable key (pk_...); "
                "send secret keys (sm_...) in X-Api-Key"
            )
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
    record = await storage.find_key(hash_key(raw))
    if record is None or record.revoked_at is not None:
        raise unauthorized()
    if record.kind == "publishable":
        if not publishable_ok:
            raise forbidden(
                "publishable keys (pk_) may only send events, feedback and conversions (the answer "
                "to each batch carries the mood); reading needs a secret key (sm_) "
                "from your backend"
            )
        origin = request.headers.get("origin")
        if origin is not None and origin not in record.allowed_origins:
            raise forbidden(f"origin {origin} is not allowed for this publishable key")
    return record


def session_id_param(request: Request) -> str:
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


def is_admin(settings: Settings, request: Request) -> bool:
    """Whether the request carries the operator's admin token."""
    token = settings.admin_token
    if not token:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Bytes: compare_digest refuses non-ASCII str, which a caller controls.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
