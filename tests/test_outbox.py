"""The outbox's pure part: delivery signatures and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac

from sessionmood_server.outbox import backoff_s, sign


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    header = sign('{"a":1}', "whsec_x", 1700000000)
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(n, 5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_s(30, 5) == 3600
