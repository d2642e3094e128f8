"""Standard Webhooks signatures: the one implementation, used by the server to
sign deliveries and by ``verify_webhook`` / ``sign_webhook`` in the client.

The scheme (https://www.standardwebhooks.com, the one the PyPI ``standardwebhooks``
and ``svix`` libraries verify):

- ``webhook-id``: the delivery's id, the same on every retry (receivers dedupe on it);
- ``webhook-timestamp``: Unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``,
  space-separated when several (a secret rotation); one match is enough;
- the key is the base64 decoding of the secret after its ``whsec_`` prefix.

Secrets created before this scheme are ``whsec_`` + 48 hex digits. Hex digits
are base64 characters and 48 is a multiple of 4, so those secrets decode as
base64 too: they keep working, unchanged, with any Standard Webhooks library.

Pure: no I/O, importable by the server (a wire-level module, not a private one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = [
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "new_secret",
    "secret_key",
    "signature",
    "signature_matches",
    "webhook_headers",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (``whsec_<base64>``; the prefix is optional, as
    the Standard Webhooks libraries accept it without).

    Raises ValueError for an empty or non-base64 secret: a configuration error.
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be the webhook's non-empty secret (whsec_...)")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret must be whsec_ followed by base64") from exc
    if not key:
        raise ValueError("secret must be the webhook's non-empty secret (whsec_...)")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a delivery of ``body`` carries."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret_key(secret), msg_id, timestamp, body),
    }


def signature_matches(header: str, expected: str) -> bool:
    """Whether any ``v1,`` entry of a ``webhook-signature`` header is ``expected``.

    Every entry is compared, in constant time, as bytes (``compare_digest``
    refuses non-ASCII str, and a forged header must not become a TypeError).
    Other versions (a future ``v2,``) are skipped, so adding one breaks no receiver.
    """
    want = expected.encode("ascii")
    matched = False
    for entry in header.split():
        if entry.startswith("v1,"):
            matched |= hmac.compare_digest(want, entry.encode("utf-8", "replace"))
    return matched
