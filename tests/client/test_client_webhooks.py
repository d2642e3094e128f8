"""``verify_webhook`` and ``sign_webhook`` (Standard Webhooks): pure functions, a
fixed clock, and the PyPI ``standardwebhooks`` and ``svix`` libraries as the
independent other side."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix.webhooks

from sessionmood_client import (
    WEBHOOK_SIGNATURE_HEADER,
    SessionMoodError,
    WebhookEvent,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)
from sessionmood_client.signing import new_secret, secret_key

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
HEX_SECRET = "whsec_" + "7a" * 24  # the shape secrets had before Standard Webhooks
NOW = 1_800_000_000
MSG = "msg_42"
BODY = json.dumps(
    {
        "type": "mood.changed",
        "timestamp": "2027-01-15T08:00:00.000Z",
        "data": {
            "id": 42,
            "session_id": "user_abc",
            "previous_mood": "neutral",
            "mood": "frustrated",
            "confidence": 0.89,
            "signals": ["rage_click_detected"],
            "suggested_action": "show_live_chat",
            "occurred_at": "2027-01-15T08:00:00.000Z",
        },
    },
    separators=(",", ":"),
).encode()


def _v1(body: bytes, secret: str = SECRET, t: int = NOW, msg: str = MSG) -> str:
    """The spec's signature, computed here by hand."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg}.{t}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _headers(sig: str, t: int = NOW, msg: str = MSG) -> dict[str, str]:
    return {"webhook-id": msg, "webhook-timestamp": str(t), "webhook-signature": sig}


def test_valid_delivery_is_parsed() -> None:
    headers = sign_webhook(BODY, SECRET, MSG, NOW)
    assert headers == _headers(_v1(BODY))
    event = verify_webhook(BODY, headers, SECRET, now=NOW)
    assert isinstance(event, WebhookEvent)
    assert (event.type, event.data.id, event.data.previous_mood, event.data.mood) == (
        "mood.changed",
        42,
        "neutral",
        "frustrated",
    )
    assert event.data.suggested_action == "show_live_chat"
    assert event.timestamp == event.data.occurred_at == datetime(2027, 1, 15, 8, tzinfo=UTC)
    assert WEBHOOK_SIGNATURE_HEADER == "webhook-signature"


def test_the_libraries_accept_what_sign_webhook_makes_and_the_reverse() -> None:
    for secret in (SECRET, HEX_SECRET, new_secret()):
        at = datetime.fromtimestamp(NOW, UTC)
        ours = sign_webhook(BODY, secret, MSG, NOW)
        theirs = standardwebhooks.Webhook(secret).sign(MSG, at, BODY.decode())
        assert ours["webhook-signature"] == theirs
        assert svix.webhooks.Webhook(secret).sign(MSG, at, BODY.decode()) == theirs
        assert verify_webhook(BODY, _headers(theirs), secret, now=NOW).data.id == 42


def test_hex_secrets_of_before_are_base64_too() -> None:
    # 48 hex digits are 48 base64 characters: 36 bytes of key, no padding needed.
    assert len(secret_key(HEX_SECRET)) == 36
    assert new_secret().startswith("whsec_") and len(secret_key(new_secret())) == 32


def test_headers_are_looked_up_case_insensitively() -> None:
    headers = {k.upper(): v for k, v in sign_webhook(BODY, SECRET, MSG, NOW).items()}
    assert verify_webhook(BODY, headers, SECRET, now=NOW).data.mood == "frustrated"


def test_str_and_bytes_payloads_are_the_same() -> None:
    text = BODY.decode()
    assert sign_webhook(text, SECRET, MSG, NOW) == sign_webhook(BODY, SECRET, MSG, NOW)
    assert verify_webhook(text, sign_webhook(BODY, SECRET, MSG, NOW), SECRET, now=NOW).data.id
    with pytest.raises(TypeError, match="bytes or str"):
        verify_webhook(json.loads(BODY), sign_webhook(BODY, SECRET, MSG, NOW), SECRET, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping"):
        verify_webhook(BODY, _v1(BODY), SECRET, now=NOW)  # type: ignore[arg-type]


def test_tampered_body_is_rejected() -> None:
    headers = sign_webhook(BODY, SECRET, MSG, NOW)
    tampered = BODY.replace(b'"frustrated"', b'"focused"')
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(tampered, headers, SECRET, now=NOW)
    # A re-serialised body is not the signed one either: verify the raw bytes.
    with pytest.raises(WebhookVerificationError):
        verify_webhook(json.dumps(json.loads(BODY)), headers, SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    headers = sign_webhook(BODY, HEX_SECRET, MSG, NOW)
    with pytest.raises(WebhookVerificationError, match="No signature matches") as caught:
        verify_webhook(BODY, headers, SECRET, now=NOW)
    assert isinstance(caught.value, SessionMoodError)


def test_id_and_timestamp_are_part_of_the_signature() -> None:
    # Moving the timestamp forward to look fresh, or replaying under another id, breaks it.
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(BODY, _headers(_v1(BODY), t=NOW + 60), SECRET, now=NOW)
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(BODY, _headers(_v1(BODY), msg="msg_43"), SECRET, now=NOW)


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
    headers = sign_webhook(BODY, SECRET, MSG, signed_at)
    if ok:
        assert verify_webhook(BODY, headers, SECRET, now=NOW).data.mood == "frustrated"
    else:
        with pytest.raises(WebhookVerificationError, match="tolerance of 300s"):
            verify_webhook(BODY, headers, SECRET, now=NOW)


def test_tolerance_is_configurable_and_now_defaults_to_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = sign_webhook(BODY, SECRET, MSG, NOW - 10)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, headers, SECRET, tolerance=5, now=NOW)
    assert verify_webhook(BODY, headers, SECRET, tolerance=10, now=NOW).data.id == 42
    monkeypatch.setattr("sessionmood_client._webhooks.time.time", lambda: NOW + 0.5)
    assert verify_webhook(BODY, sign_webhook(BODY, SECRET, MSG), SECRET).data.id == 42
    assert sign_webhook(BODY, SECRET, MSG)["webhook-timestamp"] == str(NOW)
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(BODY, headers, SECRET, tolerance=-1, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-timestamp": str(NOW), "webhook-signature": _v1(BODY)},  # no id
        {"webhook-id": MSG, "webhook-signature": _v1(BODY)},  # no timestamp
        {"webhook-id": MSG, "webhook-timestamp": str(NOW)},  # no signature
        _headers(""),
        _headers("garbage"),
        _headers(_v1(BODY).replace("v1,", "v0,")),  # only a version we do not know
        {**_headers(_v1(BODY)), "webhook-timestamp": "soon"},
        {**_headers(_v1(BODY)), "webhook-timestamp": f"-{NOW}"},
        {**_headers(_v1(BODY)), "webhook-timestamp": f"{NOW}.5"},
        {**_headers(_v1(BODY)), "webhook-timestamp": "١٢٣"},  # Unicode digits
        _headers("v1,ünïcødé"),
    ],
    ids=[
        "none",
        "no-id",
        "no-timestamp",
        "no-signature",
        "empty-signature",
        "garbage",
        "v0-only",
        "t-not-a-number",
        "t-negative",
        "t-float",
        "t-arabic-digits",
        "v1-non-ascii",
    ],
)
def test_malformed_headers_are_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, headers, SECRET, now=NOW)


def test_any_of_several_v1_entries_may_match() -> None:
    # During a secret rotation a sender signs with the old and the new secret.
    old, new = _v1(BODY, HEX_SECRET), _v1(BODY, SECRET)
    for sig in (f"{old} {new}", f"{new} {old}", f"v0,dead {old}  {new}"):
        assert verify_webhook(BODY, _headers(sig), SECRET, now=NOW).data.id == 42
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY, _headers(f"{old} {old}"), SECRET, now=NOW)


def test_signed_body_must_be_a_mood_change_event() -> None:
    body = b'{"type": "mood.changed", "data": {"mood": "angry"}}'
    with pytest.raises(WebhookVerificationError, match=r"not a mood\.changed event") as caught:
        verify_webhook(body, sign_webhook(body, SECRET, MSG, NOW), SECRET, now=NOW)
    assert caught.value.__cause__ is not None
    with pytest.raises(WebhookVerificationError):
        verify_webhook(b"not json", sign_webhook(b"not json", SECRET, MSG, NOW), SECRET, now=NOW)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_a_bad_secret_is_a_configuration_error(secret: str) -> None:
    headers = sign_webhook(BODY, SECRET, MSG, NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_webhook(BODY, headers, secret, now=NOW)
    with pytest.raises(ValueError, match="secret"):
        sign_webhook(BODY, secret, MSG, NOW)
