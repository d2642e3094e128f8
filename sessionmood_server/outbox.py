"""The webhook outbox's pure part: what a delivery says, how it is signed, when
it is tried again.

A batch that changes a session's mood writes one outbox row per matching
webhook in the batch's own transaction (storage), with the body built here;
the delivery worker (``services.webhooks``) sends the rows, signed here, and
schedules retries from ``backoff_s``. Nothing here does I/O.

Signature header: ``SessionMood-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sessionmood_client.types import WebhookEvent

SIGNATURE_HEADER = "SessionMood-Signature"
# Failed deliveries are retried until this long after the change, then given up.
MAX_AGE_S = 24 * 3600
MAX_BACKOFF_S = 3600.0


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def webhook_payload(
    change_id: int,
    session_id: str,
    previous: str,
    mood: str,
    confidence: float,
    signals: list[str],
    action: str,
    occurred_at: float,
) -> str:
    """The JSON body of a ``mood.changed`` delivery, built from the shared wire model
    (``id`` lets receivers drop the duplicates at-least-once delivery can make)."""
    event = WebhookEvent.model_validate(
        {
            "type": "mood.changed",
            "id": change_id,
            "session_id": session_id,
            "previous_mood": previous,
            "mood": mood,
            "confidence": confidence,
            "signals": signals,
            "suggested_action": action,
            "occurred_at": datetime.fromtimestamp(occurred_at, UTC),
        }
    )
    return event.model_dump_json()


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The ``SessionMood-Signature`` header value for ``payload`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_s(attempts: int, base: float) -> float:
    """Delay before attempt ``attempts + 1``: base, 2·base, 4·base… capped at an hour."""
    return float(min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_S))
