"""The storage protocols: what the rest of the server needs from a database.

Every backend implements ``Storage`` and passes the one contract suite
(``tests/test_storage.py``). All writes that belong together happen in one
transaction inside the backend: ``append_events`` checks the idempotency key,
the monthly quota, folds the events into the session's engine state and
stores state + events at once, so a 200 means everything is committed and
nothing is ever half-stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from sessionmood_client.types import MoodLabel, Plan
from sessionmood_server.records import (
    ActionCounts,
    AppendResult,
    Attempt,
    Batch,
    Conversion,
    ConversionResult,
    DeliveryJob,
    DeliveryRecord,
    ElementCounts,
    Feedback,
    HoldoutSetting,
    JourneyCounts,
    KeyRecord,
    MoodChangeRecord,
    MoodCounts,
    SessionRecord,
    UpliftCounts,
    WebhookRecord,
)


class ChangeListener(Protocol):
    """Told, on the event loop, what may have changed (see ``Storage.add_listener``).
    Calls must return at once and never raise."""

    def moods_changed(self, tenant_ids: Collection[int] | None) -> None:
        """Mood changes of these tenants were committed; None: any tenant's may have been."""
        ...

    def keys_changed(self) -> None:
        """API keys may have been created or revoked."""
        ...


class Storage(Protocol):
    """What the app needs from a database. Implementations are safe for
    concurrent use from one event loop."""

    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    # keys & tenants
    async def create_tenant_key(
        self, customer: str, email: str | None, plan: Plan, raw_key: str, now: float
    ) -> KeyRecord: ...

    async def create_publishable_key(
        self, tenant_id: int, raw_key: str, allowed_origins: tuple[str, ...], now: float
    ) -> KeyRecord: ...

    async def find_key(self, key_hash: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def revoke_keys(self, prefix: str, now: float) -> int: ...

    # sessions
    async def append_events(self, batch: Batch) -> AppendResult:
        """Store ``batch`` atomically (see ``Batch`` for what it may ask)."""
        ...

    async def get_session(self, tenant_id: int, session_id: str) -> SessionRecord | None: ...

    async def export_events(
        self, tenant_id: int, session_id: str, after_seq: int = 0, limit: int = 0
    ) -> list[dict[str, Any]] | None:
        """The session's events with ``seq > after_seq`` in order, at most ``limit``
        (0: all); None if there is no such session."""
        ...

    async def add_feedback(self, feedback: Feedback) -> bool:
        """Record ``feedback``; False if there is no such session."""
        ...

    async def delete_session(self, tenant_id: int, session_id: str) -> bool: ...

    # holdout and conversions: the uplift of the actions
    async def get_holdout(self, tenant_id: int) -> HoldoutSetting: ...

    async def set_holdout(
        self, tenant_id: int, share: float, salt: str, now: float
    ) -> HoldoutSetting:
        """Set the tenant's share; ``salt`` becomes its group hash's salt unless it
        has one already (it never changes, so no session changes group)."""
        ...

    async def add_conversion(self, conversion: Conversion) -> ConversionResult:
        """Count ``conversion`` once per (session, name), under the session's lock."""
        ...

    async def conversions_of(self, tenant_id: int, session_id: str) -> list[dict[str, Any]]:
        """The session's conversions (name, value, created_at), oldest first (GDPR export)."""
        ...

    async def uplift_counts(
        self, tenant_id: int, name: str | None, since: float | None, until: float | None
    ) -> list[UpliftCounts]:
        """Per (mood, action) and group, then per group over any action: sessions
        first exposed in the window and how many converted under ``name``."""
        ...

    async def mood_counts(self, tenant_id: int) -> MoodCounts: ...

    async def month_usage(self, tenant_id: int, month: str) -> int: ...

    async def ensure_demo_tenant(
        self, raw_secret: str, raw_publishable: str, origins: tuple[str, ...], now: float
    ) -> KeyRecord:
        """Create the demo tenant once; replace its keys with these on every start."""
        ...

    # dashboard analytics and the live stream
    async def page_moods(
        self, tenant_id: int, since: float | None, until: float | None, limit: int = 0
    ) -> dict[str, dict[MoodLabel, int]]:
        """Per page URL, how many sessions left it in each mood: the ``limit`` pages
        with the most sessions (0: all), busiest first, ties by URL."""
        ...

    async def action_counts(
        self, tenant_id: int, since: float | None, until: float | None, trusted_only: bool = False
    ) -> list[ActionCounts]: ...

    async def element_counts(
        self, tenant_id: int, since: float | None, until: float | None, page: str | None, limit: int
    ) -> list[ElementCounts]:
        """Per (page, element) of sessions active in the window (on ``page`` only,
        if given): the ``limit`` with the most struggling sessions, then the most
        sessions, ties by page and element (code point order)."""
        ...

    async def journeys(
        self, tenant_id: int, since: float | None, until: float | None, steps: int, limit: int
    ) -> list[JourneyCounts]:
        """Sessions whose journey began in the window, by their first ``steps``
        pages (1 to ``scoring.MAX_STEPS``): the ``limit`` commonest paths, ties by path."""
        ...

    async def mood_changes(
        self, tenant_id: int, after_id: int, limit: int = 100
    ) -> list[MoodChangeRecord]: ...

    async def last_mood_change_id(self, tenant_id: int) -> int: ...

    # webhooks: subscriptions, the outbox, deliveries
    async def create_webhook(self, record: WebhookRecord, limit: int) -> bool:
        """Store ``record`` unless its tenant already has ``limit`` webhooks (then
        False, nothing stored). Counted in the insert's own transaction, so
        concurrent creations can never pass the limit."""
        ...

    async def list_webhooks(self, tenant_id: int) -> list[WebhookRecord]: ...

    async def delete_webhook(self, tenant_id: int, webhook_id: str, now: float) -> bool: ...

    async def list_deliveries(
        self, tenant_id: int, webhook_id: str, limit: int = 50
    ) -> list[DeliveryRecord] | None:
        """Newest first; None if the tenant has no such webhook."""
        ...

    async def claim_deliveries(
        self, now: float, limit: int, lease_s: float, per_endpoint: int | None = None
    ) -> list[DeliveryJob]:
        """Up to ``limit`` due pending deliveries, at most one per (webhook,
        session) and only the oldest pending one of each, so every session's
        changes arrive in order. Claimed rows are leased: another worker (or
        replica) skips them until ``now + lease_s``.

        ``per_endpoint`` caps each webhook's leased rows (claimed by anyone and
        not yet finished), so one endpoint's slow receiver holds at most that
        many attempts. Rows are handed out fairly: round-robin over a tenant's
        webhooks, and the tenant with the fewest attempts in flight first, so
        one tenant's backlog never takes every free slot.
        """
        ...

    async def webhook_backlog(self) -> int:
        """Deliveries still pending (due now or waiting for a retry), all tenants."""
        ...

    async def finish_delivery(self, attempt: Attempt) -> None:
        """Record one attempt: delivered, retry at its ``next_attempt_at``, or (None) give up."""
        ...

    # retention
    async def purge_expired(self, cutoffs: Mapping[Plan, float], limit: int = 1000) -> int:
        """Erase up to ``limit`` sessions whose last activity is before their plan's
        cutoff (events, state, feedback, history, deliveries); returns how many."""
        ...

    def add_listener(self, listener: ChangeListener) -> None:
        """Tell ``listener`` about commits from now on (this process's, and on
        PostgreSQL every replica's)."""
        ...

    def remove_listener(self, listener: ChangeListener) -> None: ...

    async def wait_for_mood_change(self, timeout: float) -> bool:
        """Return when a mood change may have been stored (by any process), or after
        ``timeout`` seconds; callers re-query either way. False once the storage
        is closing, so live streams end."""
        ...
