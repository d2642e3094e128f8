"""Which sessions are held out: a keyed hash of (tenant, session id) against the
tenant's share. Pure: the same key, tenant, id and share give the same group
on every replica and after every restart; the group is decided once, at a
session's first batch, and stored with it.

A keyed hash (HMAC-SHA256), not a plain one: session ids come from the page,
and without the key nobody can choose an id that lands in a group.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

MAX_SHARE = 0.5  # at least half of a tenant's sessions get the actions
_SCALE = float(1 << 64)


def position(key: bytes, tenant_id: int, session_id: str) -> float:
    """Where the session falls in [0, 1): uniform over ids, fixed per key."""
    digest = hmac.new(key, f"{tenant_id}:{session_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def held_out(key: bytes, tenant_id: int, session_id: str, share: float) -> bool:
    """Whether a session starting now goes to the control group (no actions)."""
    return share > 0 and position(key, tenant_id, session_id) < share


class Holdout(NamedTuple):
    """A tenant's holdout as a batch carries it: the hash key and the share.
    Asked (``of``) only when the batch opens a session: the hash is not paid
    by the batches of sessions that have their group already."""

    key: bytes
    share: float

    def of(self, tenant_id: int, session_id: str) -> bool:
        return held_out(self.key, tenant_id, session_id, self.share)
