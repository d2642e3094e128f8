"""Settings: the only module that reads the environment.

Order everywhere: explicit argument, then environment, then default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_DATABASE_URL = "sqlite:///./sessionmood.db"
N = TypeVar("N", int, float)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_positive(name: str, default: N, kind: Callable[[str], N]) -> N:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not (value > 0 and math.isfinite(value)):
        raise SettingsError(f"{name} must be a positive number, got {raw!r}")
    return value


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Server configuration. Build with ``Settings.from_env()`` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    # Bearer token that may create growth/pro keys over HTTP; None disables that.
    admin_token: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 1000
    # Demo shop + dashboard tenant (issue 6); production turns it off.
    demo: bool = False
    # Origins the demo's publishable key accepts (the CLI fills in its own address).
    demo_origins: tuple[str, ...] = ("http://127.0.0.1:8000", "http://localhost:8000")
    # Where people reach this server (printed links).
    public_url: str = "http://127.0.0.1:8000"
    # Seconds between SSE comment lines on an idle /v1/stream/moods.
    sse_heartbeat_s: float = 15.0
    # Webhooks: SSRF escape hatch for internal receivers, and the retry base
    # delay (attempt n waits base * 2**(n-1), capped at an hour, for 24 h).
    allow_private_webhooks: bool = False
    webhook_retry_base_s: float = 5.0
    webhooks_enabled: bool = True
    # So that one tenant's slow receivers never delay another's deliveries:
    # each attempt's deadline (DNS, connect, send, status line), the attempts
    # in flight per webhook endpoint (across all replicas), and per process.
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 4
    webhook_max_in_flight: int = 100
    # Retention purge period (seconds); 0 turns the periodic purge off.
    purge_interval_s: float = 3600.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": os.environ.get("SESSIONMOOD_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "admin_token": os.environ.get("SESSIONMOOD_ADMIN_TOKEN") or None,
            "demo": _env_bool("SESSIONMOOD_DEMO", False),
            "sse_heartbeat_s": float(os.environ.get("SESSIONMOOD_SSE_HEARTBEAT_S") or 15.0),
            "allow_private_webhooks": _env_bool("SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS", False),
            "webhook_retry_base_s": float(
                os.environ.get("SESSIONMOOD_WEBHOOK_RETRY_BASE_S") or 5.0
            ),
            "purge_interval_s": float(os.environ.get("SESSIONMOOD_PURGE_INTERVAL_S") or 3600.0),
            "webhook_timeout_s": _env_positive("SESSIONMOOD_WEBHOOK_TIMEOUT_S", 10.0, float),
            "webhook_concurrency": _env_positive("SESSIONMOOD_WEBHOOK_CONCURRENCY", 4, int),
            "webhook_max_in_flight": _env_positive("SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT", 100, int),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
