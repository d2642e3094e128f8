"""``verify_webhook`` and ``sign_webhook``: pure functions, a fixed clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from sessionmood_client import (
    WEBHOOK_SIGNATURE_HEADER,
    SessionMoodError,
    WebhookEvent,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)

SECRET = "whsec_" + "7" * 48
NOW = 1_800_000_000
BODY = json.dumps(
    {
        "id": 42,
        "type": "mood.changed",
        "session_id": "user_abc",
        "previous_mood": "neutral",
        "mood": "frustrated",
        "confidence": 0.89,
        "signals": ["rage_click_detected"],
        "suggested_action": "show_live_chat",
        "occurred_at": "2027-01-15T08:00:00.000Z",
    },
    separators=(",", ":"),
).encode()


def _v1(body: bytes, secret: str = SECRET, t: int = NOW) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_valid_delivery_is_parsed() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    assert header == f"t={NOW},v1={_v1(BODY)}"
    event = verify_webhook(BODY, header, SECRET, now=NOW)
    assert isinstance(event, WebhookEvent)
    assert (event.type, event.id, event.previous_mood, event.mood) == (
        "mood.changed",
        42,
        "neutral",
        "frustrated",
    )
    assert event.suggested_action == "show_live_chat"
    assert event.occurred_at == datetime(2027, 1, 15, 8, tzinfo=UTC)
    assert WEBHOOK_SIGNATURE_HEADER == "SessionMood-Signature"


def test_str_and_bytes_payloads_are_the_same() -> None:
    text = BODY.decode()
    assert sign_webhook(text, SECRET, NOW) == sign_webhook(BODY, SECRET, NOW)
    assert verify_webhook(text, sign_webhook(BODY, SECRET, NOW), SECRET, now=NOW).mood == (
        "frustrated"
    )
    assert verify_webhook(BODY, sign_webhook(text, SECRET, NOW), SECRET, now=NOW).id == 42
    with pytest.raises(TypeError, match="bytes or str"):
        verify_webhook(json.loads(BODY), sign_webhook(BODY, SECRET, NOW), SECRET, now=NOW)  # type: ignore[arg-type]


def test_tampered_body_is_rejected() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    tampered = BODY.replace(b'"frustrated"', b'"focused"')
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(tampered, header, SECRET, now=NOW)
    # A re-serialised body is not the signed one either: verify the raw bytes.
    with pytest.raises(WebhookVerificationError):
        verify_webhook(json.dumps(json.loads(BODY)), header, SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    header = sign_webhook(BODY, "whsec_other", NOW)
    with pytest.raises(WebhookVerificationError, match="No signature matches") as caught:
        verify_webhook(BODY, header, SECRET, now=NOW)
    assert isinstance(caught.value, SessionMoodError)


def test_timestamp_is_part_of_the_signature() -> None:
    # Moving t forward to look fresh breaks the signature.
    header = f"t={NOW + 60},v1={_v1(BODY, t=NOW)}"
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(BODY, header, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("signed_at", "ok"),
    [
        (NOW - 300, True),
        (NOW + 300, True),
        (NOW - 301, False),  # replayed
        (NOW + 301, False),  # from a clock far ahead
        (NOW - 86_400, False),
    ],
    ids=["oldest-ok", "newest-ok", "too-old", "too-new", "a-day-old"],
)
def test_timestamp_tolerance_both_ways(signed_at: int, ok: bool) -> None:
    header = sign_webhook(BODY, SECRET, signed_at)
    if ok:
        assert verify_webhook(BODY, header, SECRET, now=NOW).mood == "frustrated"
    else:
        with pytest.raises(WebhookVerificationError, match="tolerance of 300s"):
            verify_webhook(BODY, header, SECRET, now=NOW)


def test_tolerance_is_configurable_and_now_defaults_to_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = sign_webhook(BODY, SECRET, NOW - 10)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, header, SECRET, tolerance=5, now=NOW)
    assert verify_webhook(BODY, header, SECRET, tolerance=10, now=NOW).id == 42
    monkeypatch.setattr("sessionmood_client._webhooks.time.time", lambda: NOW + 0.5)
    assert verify_webhook(BODY, sign_webhook(BODY, SECRET), SECRET).id == 42
    assert sign_webhook(BODY, SECRET).startswith(f"t={NOW},")
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(BODY, header, SECRET, tolerance=-1, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "garbage",
        f"v1={_v1(BODY)}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v0={_v1(BODY)}",  # only a scheme we do not know
        f"t=soon,v1={_v1(BODY)}",
        f"t=-{NOW},v1={_v1(BODY)}",
        f"t={NOW}.5,v1={_v1(BODY)}",
        f"t={NOW},t={NOW},v1={_v1(BODY)}",
        f"t=١٢٣,v1={_v1(BODY)}",  # Unicode digits are digits to str.isdigit
        f"t={NOW},v1=ünïcødé",
    ],
    ids=[
        "none",
        "empty",
        "blank",
        "garbage",
        "no-t",
        "no-v1",
        "v0-only",
        "t-not-a-number",
        "t-negative",
        "t-float",
        "t-twice",
        "t-arabic-digits",
        "v1-non-ascii",
    ],
)
def test_malformed_headers_are_rejected(header: str | None) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, header, SECRET, now=NOW)  # type: ignore[arg-type]


def test_any_of_several_v1_entries_may_match() -> None:
    # During a secret rotation the server signs with the old and the new secret.
    old, new = _v1(BODY, "whsec_old"), _v1(BODY, SECRET)
    for header in (
        f"t={NOW},v1={old},v1={new}",
        f"t={NOW}, v1={new}, v1={old}",  # spaces after commas are tolerated
        f"v1={old},t={NOW},v0=dead,v1={new}",
    ):
        assert verify_webhook(BODY, header, SECRET, now=NOW).id == 42
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, f"t={NOW},v1={old},v1={old}", SECRET, now=NOW)


def test_signed_body_must_be_a_mood_change_event() -> None:
    body = b'{"type": "mood.changed", "mood": "angry"}'
    with pytest.raises(WebhookVerificationError, match=r"not a mood\.changed event") as caught:
        verify_webhook(body, sign_webhook(body, SECRET, NOW), SECRET, now=NOW)
    assert caught.value.__cause__ is not None
    with pytest.raises(WebhookVerificationError):
        verify_webhook(b"not json", sign_webhook(b"not json", SECRET, NOW), SECRET, now=NOW)


def test_empty_secret_is_a_configuration_error() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_webhook(BODY, header, "", now=NOW)
    with pytest.raises(ValueError, match="secret"):
        sign_webhook(BODY, "", NOW)
