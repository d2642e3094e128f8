"""Settings: the only module that reads the environment.

Order everywhere: explicit argument, then environment, then default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from sessionmood_server.limits import Rate

DEFAULT_DATABASE_URL = "sqlite:///./sessionmood.db"
N = TypeVar("N", int, float)
SignupMode = Literal["open", "admin"]
# Defaults of the rate limits (immutable, so shared safely as dataclass defaults).
NEW_SESSIONS_PER_ADDRESS = Rate(600, 3600.0)
NEW_SESSIONS_PER_ORIGIN = Rate(600, 60.0)
NEW_SESSIONS_PER_KEY = Rate(1200, 60.0)
KEYS_PER_ADDRESS = Rate(10, 3600.0)


def _env_rate(name: str, default: Rate) -> Rate:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return Rate.parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {raw!r}")
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


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
    # Demo shop + dashboard tenant; production turns it off.
    demo: bool = False
    # Origins the demo's publishable key accepts (the CLI fills in its own address).
    demo_origins: tuple[str, ...] = ("http://127.0.0.1:8000", "http://localhost:8000")
    # Where people reach this server (printed links).
    public_url: str = "http://127.0.0.1:8000"
    # Print the demo's dashboard link with its secret key (the CLI: only when
    # the server listens on a loopback address, where only this machine sees it).
    demo_key_printed: bool = True
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
    # Several worker processes: each writes its metrics here, a scrape sums
    # them (PROMETHEUS_MULTIPROC_DIR, prometheus_client's name for it).
    metrics_dir: str | None = None
    # Log lines as text (uvicorn's) or one JSON object each (with the request id).
    log_format: Literal["text", "json"] = "text"

    # -- limits (README "Limits"; every one is a setting) ----------------------
    # False (SESSIONMOOD_LIMITS=off) lifts every rate and count limit below,
    # for benchmarks and load tests; page sizes stay.
    limits: bool = True
    # New sessions opened through publishable keys (browser traffic; secret
    # keys have no per-minute limit, as the API reference documents none).
    # Per key and client address: hundreds of visitors behind one office NAT
    # fit; one source cannot open thousands.
    new_sessions_per_address: Rate = NEW_SESSIONS_PER_ADDRESS
    # Per key and Origin (requests without one share one bucket), and per key.
    new_sessions_per_origin: Rate = NEW_SESSIONS_PER_ORIGIN
    new_sessions_per_key: Rate = NEW_SESSIONS_PER_KEY
    # Anonymous POST /v1/keys/generate per client address ("admin": only with
    # the admin token, i.e. no self-service sign-up at all).
    keys_per_address: Rate = KEYS_PER_ADDRESS
    signup: SignupMode = "open"
    # Open /v1/stream/moods connections per tenant and per client address.
    streams_per_tenant: int = 20
    streams_per_address: int = 100
    # Events one session may hold (0: no limit).
    max_session_events: int = 100_000
    # Events per page of GET /v1/sessions/{id}/events, and the largest
    # ``limit`` of GET /v1/analytics/pages (whose default is 100).
    export_page_events: int = 1000
    analytics_pages_max: int = 1000
    # The key of the holdout group hash (SESSIONMOOD_HOLDOUT_KEY). Unset, each
    # tenant's own salt (drawn at its first PUT /v1/holdout, stored) is the
    # key: the same on every replica either way.
    holdout_key: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        d = _DEFAULTS
        values: dict[str, object] = {
            "database_url": os.environ.get("SESSIONMOOD_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "admin_token": os.environ.get("SESSIONMOOD_ADMIN_TOKEN") or None,
            "metrics_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
            "log_format": _env_choice("SESSIONMOOD_LOG_FORMAT", "text", ("text", "json")),
            "demo": _env_bool("SESSIONMOOD_DEMO", False),
            "sse_heartbeat_s": float(os.environ.get("SESSIONMOOD_SSE_HEARTBEAT_S") or 15.0),
            "allow_private_webhooks": _env_bool("SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS", False),
            "webhook_retry_base_s": float(
                os.environ.get("SESSIONMOOD_WEBHOOK_RETRY_BASE_S") or 5.0
            ),
            "purge_interval_s": float(os.environ.get("SESSIONMOOD_PURGE_INTERVAL_S") or 3600.0),
            "limits": _env_choice("SESSIONMOOD_LIMITS", "on", ("on", "off")) == "on",
            "new_sessions_per_address": _env_rate(
                "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_ADDRESS", d.new_sessions_per_address
            ),
            "new_sessions_per_origin": _env_rate(
                "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_ORIGIN", d.new_sessions_per_origin
            ),
            "new_sessions_per_key": _env_rate(
                "SESSIONMOOD_LIMIT_NEW_SESSIONS_PER_KEY", d.new_sessions_per_key
            ),
            "keys_per_address": _env_rate("SESSIONMOOD_LIMIT_KEYS_PER_ADDRESS", d.keys_per_address),
            "signup": _env_choice("SESSIONMOOD_SIGNUP", d.signup, ("open", "admin")),
            "streams_per_tenant": _env_int(
                "SESSIONMOOD_LIMIT_STREAMS_PER_TENANT", d.streams_per_tenant
            ),
            "streams_per_address": _env_int(
                "SESSIONMOOD_LIMIT_STREAMS_PER_ADDRESS", d.streams_per_address
            ),
            "max_session_events": _env_int(
                "SESSIONMOOD_LIMIT_SESSION_EVENTS", d.max_session_events
            ),
            "export_page_events": max(
                1, _env_int("SESSIONMOOD_EXPORT_PAGE_EVENTS", d.export_page_events)
            ),
            "analytics_pages_max": max(
                1, _env_int("SESSIONMOOD_ANALYTICS_PAGES_MAX", d.analytics_pages_max)
            ),
            "holdout_key": os.environ.get("SESSIONMOOD_HOLDOUT_KEY") or None,
            "webhook_timeout_s": _env_positive("SESSIONMOOD_WEBHOOK_TIMEOUT_S", 10.0, float),
            "webhook_concurrency": _env_positive("SESSIONMOOD_WEBHOOK_CONCURRENCY", 4, int),
            "webhook_max_in_flight": _env_positive("SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT", 100, int),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


_DEFAULTS = Settings()


def env_public_url() -> str | None:
    """``SESSIONMOOD_PUBLIC_URL``: where people reach this server, when it is not
    the address it listens on (behind a proxy, or on 0.0.0.0)."""
    return (os.environ.get("SESSIONMOOD_PUBLIC_URL") or "").strip() or None
