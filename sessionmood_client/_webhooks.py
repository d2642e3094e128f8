"""Webhooks: verifying deliveries (the management endpoints' models are wire models).

SessionMood signs each delivery the Standard Webhooks way (``signing``): a
JSON body ``{"type": "mood.changed", "timestamp": ..., "data": {...}}`` and::

    webhook-id: msg_...            the same on every retry: deduplicate on it
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{raw body}")>

Any Standard Webhooks library (``standardwebhooks``, ``svix``) verifies them
too. Verify before trusting anything in the body::

    from sessionmood_client import WebhookVerificationError, verify_webhook

    try:
        event = verify_webhook(raw_body, request.headers, secret)
    except WebhookVerificationError:
        return Response(status_code=400)

``verify_webhook`` needs the body exactly as received (bytes): a body parsed
and re-serialised is not the one that was signed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from pydantic import ValidationError

from ._exceptions import WebhookVerificationError
from .signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, secret_key, signature
from .signing import signature_matches as _matches
from .signing import webhook_headers as _headers
from .types import WebhookEvent

__all__ = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "WEBHOOK_SIGNATURE_HEADER",
    "WebhookEvent",
    "sign_webhook",
    "verify_webhook",
]

WEBHOOK_SIGNATURE_HEADER = SIGNATURE_HEADER
# Seconds a delivery may be old (or, with clock skew, early): long enough for
# slow networks, short enough that a captured request cannot be replayed later.
# The Standard Webhooks libraries use the same five minutes.
DEFAULT_WEBHOOK_TOLERANCE = 300


def _as_bytes(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")


def sign_webhook(
    payload: bytes | str, secret: str, msg_id: str, timestamp: float | None = None
) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers
    of a delivery of ``payload`` (for your tests).

    ``timestamp`` is Unix seconds (default: now), truncated to whole seconds.
    """
    t = int(time.time() if timestamp is None else timestamp)
    return _headers(secret, msg_id, t, _as_bytes(payload))


def _header(headers: Mapping[str, str], name: str) -> str:
    # Header names are case-insensitive; frameworks' mappings are not all so.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"Missing {name} header")


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Check a delivery's signature and freshness, then parse it.

    Args:
        payload: the raw request body, exactly as received (bytes, or str decoded as UTF-8).
        headers: the request's headers (any mapping; names compared case-insensitively).
        secret: the webhook's secret (``create_webhook().secret``, ``whsec_...``).
        tolerance: how many seconds the signed timestamp may differ from ``now``,
            either way (a replayed old request, or a clock far ahead).
        now: Unix seconds to compare against (default: the current time).

    Raises:
        WebhookVerificationError: anything about the request is wrong; answer it with 400.
        ValueError: ``secret`` is empty or not ``whsec_<base64>``, or ``tolerance``
            negative (your configuration).
    """
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0 seconds")
    if isinstance(headers, str | bytes) or not isinstance(headers, Mapping):
        raise TypeError("headers must be the request's headers (a mapping), not one value")
    body = _as_bytes(payload)
    key = secret_key(secret)  # a configuration error surfaces as a ValueError (a 500)
    msg_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER).strip()
    sent = _header(headers, SIGNATURE_HEADER)
    if not stamp.isascii() or not stamp.isdigit():
        raise WebhookVerificationError(f"Malformed {TIMESTAMP_HEADER} header: Unix seconds")
    if not _matches(sent, signature(key, msg_id, int(stamp), body)):
        raise WebhookVerificationError("No signature matches: wrong secret or altered body")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        raise WebhookVerificationError(
            f"Timestamp outside the tolerance of {tolerance}s: replayed, or a clock is wrong"
        )
    try:
        return WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        raise WebhookVerificationError(
            f"Signed body is not a mood.changed event: {exc.error_count()} validation error(s)"
        ) from exc
