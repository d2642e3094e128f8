"""Records: what storage hands back and takes in, as plain frozen values.

Part of the domain layer: no I/O, so storage, services and the HTTP layer can
all speak them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sessionmood_client.types import MoodLabel, Plan, SuggestedAction
from sessionmood_server.holdout import Holdout
from sessionmood_server.keys import KeyKind
from sessionmood_server.limits import Admission


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored (never the raw key) with its tenant's plan."""

    key_hash: str
    prefix: str
    tenant_id: int
    kind: KeyKind
    plan: Plan
    customer: str
    email: str | None
    created_at: float
    revoked_at: float | None = None
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session's current verdict as stored after its last batch."""

    session_id: str
    mood: MoodLabel
    confidence: float
    signals: tuple[str, ...]
    suggested_action: SuggestedAction
    event_count: int
    updated_at: float
    last_url: str | None
    # In the holdout (control) group: answers say no_action and name
    # ``suggested_action`` as ``held_out_action`` (which is what is stored).
    holdout: bool = False


@dataclass(frozen=True, slots=True)
class Quota:
    """What a batch may do to the monthly session count."""

    month: str  # "YYYY-MM" (UTC)
    limit: int
    blocks: bool  # False for pro: count overage instead of refusing
    # Sessions opened through a publishable key count from their second batch
    # on (see README "Quota"): a request per made-up session id, which anyone
    # holding the public key can send, never uses the month up. A new session
    # is still refused once the month is used up.
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of events to store for one session (``Storage.append_events``).

    ``policy`` (learned from feedback) overrides the engine's suggested action
    per mood in everything written. ``fingerprint`` identifies the batch's
    events: a batch id seen before with another one is a ``mismatch``.
    ``max_events`` (0: none) caps the session's events. ``admission`` (None:
    any batch may open a session) is asked, inside the transaction, only when
    the batch would open a new session; a wait refuses it (``limited``).
    """

    tenant_id: int
    session_id: str
    events: list[dict[str, Any]]
    batch_id: str | None
    quota: Quota
    now: float
    policy: Mapping[MoodLabel, SuggestedAction] | None = None
    fingerprint: str | None = None
    max_events: int = 0
    admission: Admission | None = None
    # The tenant's holdout (None: none), asked for the group of a session
    # this batch opens; an existing session keeps the group it was given.
    holdout: Holdout | None = None

    def opens_held_out(self) -> bool:
        """The group of the session, were this batch to open it."""
        return self.holdout is not None and self.holdout.of(self.tenant_id, self.session_id)


@dataclass(frozen=True, slots=True)
class Feedback:
    """What was done in a session and whether it helped (``Storage.add_feedback``).

    ``trusted`` is False for feedback sent with a publishable key: it shows in
    analytics but never steers the learned policy (anyone can read a
    publishable key).
    """

    tenant_id: int
    session_id: str
    action_taken: str
    was_helpful: bool | None
    notes: str | None
    now: float
    trusted: bool = True


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of ``append_events``.

    ``status`` is ``stored`` (committed now), ``replayed`` (the batch id was seen
    before with the same events: ``response`` is the first answer), ``quota``
    (opening this session would pass the plan's limit), ``conflict`` (the batch
    id was used for another session), ``mismatch`` (the batch id was used with
    other events), ``full`` (the session would pass ``max_events``) or
    ``limited`` (``Batch.admission`` refused to open a new session: retry
    after ``retry_after`` seconds). Nothing is stored unless the status is
    ``stored``; ``mood_changed`` says whether a stored batch changed the
    session's mood (for metrics).
    """

    status: Literal["stored", "replayed", "quota", "conflict", "mismatch", "full", "limited"]
    response: dict[str, Any] = field(default_factory=dict)
    mood_changed: bool = False
    retry_after: float = 0.0


@dataclass(frozen=True, slots=True)
class MoodCounts:
    total_sessions: int
    feedback_count: int
    by_mood: dict[MoodLabel, int]


@dataclass(frozen=True, slots=True)
class MoodChangeRecord:
    id: int
    session_id: str
    previous_mood: MoodLabel
    mood: MoodLabel
    confidence: float
    signals: tuple[str, ...]
    suggested_action: SuggestedAction  # as for the treated: masked on the way out if held out
    url: str | None
    occurred_at: float
    holdout: bool = False


@dataclass(frozen=True, slots=True)
class ActionCounts:
    mood: MoodLabel
    action: str
    taken: int
    helpful: int
    not_helpful: int


@dataclass(frozen=True, slots=True)
class HoldoutSetting:
    """A tenant's holdout (``PUT /v1/holdout``): the share of new sessions held
    out, the salt of its group hash, and when the share was last set."""

    share: float = 0.0
    salt: str | None = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class Conversion:
    """A conversion to count once per (session, name) (``Storage.add_conversion``)."""

    tenant_id: int
    session_id: str
    name: str
    value: float | None
    now: float


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What ``add_conversion`` did: ``found`` False if there is no such session;
    ``counted`` False if this (session, name) was counted before (or ``full``);
    the session's group."""

    found: bool
    counted: bool = False
    holdout: bool = False
    full: bool = False  # the session holds as many conversion names as it may


@dataclass(frozen=True, slots=True)
class UpliftCounts:
    """Sessions first suggested ``action`` (or held back from it) in ``mood``, in
    one group, and how many of them converted (``Storage.uplift_counts``). mood
    and action are None on the overall rows (sessions exposed to any action)."""

    mood: MoodLabel | None
    action: SuggestedAction | None
    holdout: bool
    sessions: int
    conversions: int
    value: float  # sum of the converted sessions' values (0 without values)


@dataclass(frozen=True, slots=True)
class ElementCounts:
    """One element on one page, summed over the sessions that acted on it
    (``Storage.element_counts``)."""

    page: str
    target: str
    sessions: int
    clicks: int
    rage_clicks: int
    dead_clicks: int
    error_clicks: int
    hesitations: int
    frustrated_sessions: int  # turned frustrated or confused within 10 s after acting on it


@dataclass(slots=True)
class JourneyCounts:
    """One path of a session's first page views (``Storage.journeys``)."""

    path: tuple[str, ...]
    sessions: int = 0
    # Per step: how many of the sessions left that page in each mood.
    moods: list[dict[MoodLabel, int]] = field(default_factory=list)
    # Step (1-based) -> sessions that were first frustrated on it.
    first_frustrated: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: str
    tenant_id: int
    url: str
    moods: tuple[MoodLabel, ...] | None  # None: every mood change
    secret: str
    created_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One webhook delivery (an outbox row) and how its attempts went."""

    id: int
    webhook_id: str
    change_id: int
    session_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    latency_ms: float | None
    created_at: float
    delivered_at: float | None
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one delivery attempt went (``Storage.finish_delivery``): delivered,
    due again at ``next_attempt_at``, or (None) given up."""

    delivery_id: int
    delivered: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    next_attempt_at: float | None
    now: float


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A claimed delivery: everything needed to send it."""

    id: int
    webhook_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    created_at: float
    tenant_id: int = 0  # whose it is: the worker shares some resources per tenant
