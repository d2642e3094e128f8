"""API keys: generation, hashing and the plans they carry.

Keys are shown once and stored only as a SHA-256 hash. A fast hash is right
here (unlike passwords): keys carry 192 random bits, so there is nothing to
brute-force, and auth runs on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from sessionmood_client.types import Plan

KeyKind = Literal["secret", "publishable"]

SECRET_PREFIX = "sm_"
PUBLISHABLE_PREFIX = "pk_"
_KEY_RE = re.compile(r"^(sm|pk)_[0-9a-f]{48}$")
# Shown in `keys list` and logs: enough to tell keys apart, useless to an attacker.
DISPLAY_PREFIX_LEN = 11


@dataclass(frozen=True, slots=True)
class PlanInfo:
    name: Plan
    monthly_sessions: int
    # Pro is never blocked: overage is counted and billed instead.
    blocks_at_limit: bool
    retention_days: int

    @property
    def limits_text(self) -> str:
        return f"{self.monthly_sessions:,} sessions/month"


PLAN_INFO: dict[Plan, PlanInfo] = {
    "starter": PlanInfo("starter", 5_000, True, 7),
    "growth": PlanInfo("growth", 50_000, True, 30),
    "pro": PlanInfo("pro", 200_000, False, 90),
}


def new_key(kind: KeyKind = "secret") -> str:
    prefix = SECRET_PREFIX if kind == "secret" else PUBLISHABLE_PREFIX
    return prefix + secrets.token_hex(24)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_kind(raw: str) -> KeyKind | None:
    """The kind of a well-formed key, or None for anything malformed."""
    m = _KEY_RE.match(raw)
    if m is None:
        return None
    return "secret" if m.group(1) == "sm" else "publishable"


def display_prefix(raw: str) -> str:
    return raw[:DISPLAY_PREFIX_LEN]
