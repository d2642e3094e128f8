"""Webhooks: verifying deliveries (the management endpoints' models are wire models).

SessionMood POSTs each ``mood.changed`` to your URL with a JSON body and::

    SessionMood-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>

During a secret rotation the header may carry several ``v1=`` entries; one
match is enough. Verify before trusting anything in the body::

    from sessionmood_client import WebhookVerificationError, verify_webhook

    try:
        event = verify_webhook(raw_body, request.headers["SessionMood-Signature"], secret)
    except (KeyError, WebhookVerificationError):
        return Response(status_code=400)

``verify_webhook`` needs the body exactly as received (bytes): a body parsed
and re-serialised is not the one that was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import ValidationError

from ._exceptions import WebhookVerificationError
from .types import WebhookEvent

__all__ = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "WEBHOOK_SIGNATURE_HEADER",
    "WebhookEvent",
    "sign_webhook",
    "verify_webhook",
]

WEBHOOK_SIGNATURE_HEADER = "SessionMood-Signature"
# Seconds a delivery may be old (or, with clock skew, early): long enough for
# slow networks, short enough that a captured request cannot be replayed later.
DEFAULT_WEBHOOK_TOLERANCE = 300


def _as_bytes(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")


def _check_secret(secret: str) -> bytes:
    # A configuration error, not a forged request: let it surface as a 500.
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be the webhook's non-empty secret (whsec_...)")
    return secret.encode("utf-8")


def _signature(payload: bytes, secret: bytes, timestamp: str) -> str:
    signed = timestamp.encode("ascii") + b"." + payload
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes | str, secret: str, timestamp: float | None = None) -> str:
    """The ``SessionMood-Signature`` header value for ``payload`` (for your tests).

    ``timestamp`` is Unix seconds (default: now), truncated to whole seconds.
    """
    t = str(int(time.time() if timestamp is None else timestamp))
    return f"t={t},v1={_signature(_as_bytes(payload), _check_secret(secret), t)}"


def _parse_header(header: str | None) -> tuple[str, list[str]]:
    if not isinstance(header, str) or not header.strip():
        raise WebhookVerificationError(f"Missing {WEBHOOK_SIGNATURE_HEADER} header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookVerificationError(
                f"Malformed {WEBHOOK_SIGNATURE_HEADER} header: expected t=...,v1=..."
            )
        if name == "t":
            timestamps.append(value.strip())
        elif name == "v1":
            signatures.append(value.strip())
        # Other schemes (a future v2) are skipped, so that adding one does not
        # break receivers that only know v1.
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise WebhookVerificationError(
            f"Malformed {WEBHOOK_SIGNATURE_HEADER} header: expected one t=<unix seconds>"
        )
    if not signatures:
        raise WebhookVerificationError(
            f"Malformed {WEBHOOK_SIGNATURE_HEADER} header: no v1= signature"
        )
    return timestamps[0], signatures


def verify_webhook(
    payload: bytes | str,
    header: str,
    secret: str,
    tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Check a delivery's signature and freshness, then parse it.

    Args:
        payload: the raw request body, exactly as received (bytes, or str decoded as UTF-8).
        header: the ``SessionMood-Signature`` header value.
        secret: the webhook's secret (``create_webhook().secret``).
        tolerance: how many seconds the signed timestamp may differ from ``now``,
            either way (a replayed old request, or a clock far ahead).
        now: Unix seconds to compare against (default: the current time).

    Raises:
        WebhookVerificationError: anything about the request is wrong; answer it with 400.
        ValueError: ``secret`` is empty or ``tolerance`` negative (your configuration).
    """
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0 seconds")
    body = _as_bytes(payload)
    key = _check_secret(secret)
    timestamp, candidates = _parse_header(header)
    expected = _signature(body, key, timestamp).encode("ascii")
    # Every candidate is compared, in constant time, as bytes: compare_digest
    # refuses non-ASCII str, and a forged header must not turn into a TypeError.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise WebhookVerificationError("No signature matches: wrong secret or altered body")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookVerificationError(
            f"Timestamp outside the tolerance of {tolerance}s: replayed, or a clock is wrong"
        )
    try:
        return WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        raise WebhookVerificationError(
            f"Signed body is not a mood.changed event: {exc.error_count()} validation error(s)"
        ) from exc
