"""The webhook outbox's pure part: what a delivery says, how it is signed, when
it is tried again.

A batch that changes a session's mood writes one outbox row per matching
webhook in the batch's own transaction (storage), with the body built here;
the delivery worker (``services.webhooks``) sends the rows, signed here, and
schedules retries from ``backoff_s``. Nothing here does I/O.

Deliveries follow Standard Webhooks: a ``{type, timestamp, data}`` body and the
``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers, signed by
``sessionmood_client.signing`` (the same code the client verifies with).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sessionmood_client.signing import new_secret, webhook_headers
from sessionmood_client.types import WebhookEvent

# Failed deliveries are retried until this long after the change, then given up.
MAX_AGE_S = 24 * 3600
MAX_BACKOFF_S = 3600.0


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    return new_secret()


def webhook_payload(
    change_id: int,
    session_id: str,
    previous: str,
    mood: str,
    confidence: float,
    signals: list[str],
    action: str,
    occurred_at: float,
    holdout: bool = False,
) -> str:
    """The JSON body of a ``mood.changed`` delivery, built from the shared wire
    model; a held-out session's says ``no_action`` and names ``action`` as the
    one held back."""
    when = datetime.fromtimestamp(occurred_at, UTC)
    event = WebhookEvent.model_validate(
        {
            "type": "mood.changed",
            "timestamp": when,
            "data": {
                "id": change_id,
                "session_id": session_id,
                "previous_mood": previous,
                "mood": mood,
                "confidence": confidence,
                "signals": signals,
                "suggested_action": "no_action" if holdout else action,
                "holdout": holdout,
                "held_out_action": action if holdout else None,
                "occurred_at": when,
            },
        }
    )
    return event.model_dump_json()


def standard_body(stored: str) -> str:
    """The body to send for an outbox row. Rows written before deliveries took
    the Standard Webhooks shape hold the flat ``{type, id, session_id, ...}``
    body: those are wrapped as ``{type, timestamp, data}`` so that a receiver
    sees one shape only, whenever its delivery was queued."""
    try:
        body: Any = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(body, dict) or "data" in body or "session_id" not in body:
        return stored  # already the new shape (or not ours to reshape)
    data = {k: v for k, v in body.items() if k != "type"}
    wrapped = {"type": body.get("type"), "timestamp": body.get("occurred_at"), "data": data}
    return json.dumps(wrapped, separators=(",", ":"))


def delivery_id(outbox_id: int) -> str:
    """The ``webhook-id`` of an outbox row: the same on each of its attempts."""
    return f"msg_{outbox_id}"


def signed_headers(body: str, secret: str, outbox_id: int, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt to deliver ``body``."""
    return webhook_headers(secret, delivery_id(outbox_id), timestamp, body.encode())


def retry_after_s(value: str | None, now: float) -> float | None:
    """A receiver's ``Retry-After`` (seconds or an HTTP date) as a delay from ``now``,
    capped at an hour like the backoff; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        delay = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT
            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - now
    return min(max(delay, 0.0), MAX_BACKOFF_S)


def backoff_s(attempts: int, base: float) -> float:
    """Delay before attempt ``attempts + 1``: base, 2·base, 4·base… capped at an hour."""
    return float(min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_S))
