"""The outbox's pure part: delivery bodies and signatures (Standard Webhooks),
rows queued in the old shape, Retry-After and the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import standardwebhooks

from sessionmood_server.outbox import (
    backoff_s,
    delivery_id,
    new_webhook_secret,
    retry_after_s,
    signed_headers,
    standard_body,
    webhook_payload,
)

NOW = 1_800_000_000


def test_a_delivery_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_webhook_secret()
    body = webhook_payload(
        7, "user_abc", "neutral", "frustrated", 0.8, ["x"], "show_live_chat", NOW
    )
    headers = signed_headers(body, secret, 42, NOW)
    assert headers["webhook-id"] == delivery_id(42) == "msg_42"
    at = datetime.fromtimestamp(NOW, UTC)
    assert standardwebhooks.Webhook(secret).sign("msg_42", at, body) == headers["webhook-signature"]
    event = json.loads(body)
    assert event["type"] == "mood.changed"
    assert event["timestamp"] == event["data"]["occurred_at"]
    assert (event["data"]["id"], event["data"]["mood"]) == (7, "frustrated")


def test_rows_queued_in_the_old_flat_shape_are_sent_in_the_new_one() -> None:
    old = json.dumps(
        {
            "type": "mood.changed",
            "id": 7,
            "session_id": "user_abc",
            "previous_mood": "neutral",
            "mood": "frustrated",
            "confidence": 0.8,
            "signals": ["x"],
            "suggested_action": "show_live_chat",
            "occurred_at": "2027-01-15T08:00:00.000Z",
        }
    )
    new = json.loads(standard_body(old))
    assert new["type"] == "mood.changed"
    assert new["timestamp"].startswith("2027-01-15T08:00:00")
    assert new["data"]["session_id"] == "user_abc" and new["data"]["id"] == 7
    # A body already in the new shape is sent as stored, byte for byte.
    current = webhook_payload(7, "s", "neutral", "frustrated", 0.8, [], "show_live_chat", NOW)
    assert standard_body(current) == current


def test_retry_after_in_seconds_or_as_a_date_capped_at_an_hour() -> None:
    assert retry_after_s("120", NOW) == 120
    assert retry_after_s(" 0 ", NOW) == 0
    assert retry_after_s("86400", NOW) == 3600
    date = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert retry_after_s(date, NOW) == 90
    past = format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True)
    assert retry_after_s(past, NOW) == 0
    assert retry_after_s(None, NOW) is None
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s("-5", NOW) is None


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(n, 5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_s(30, 5) == 3600
