"""Wire models: the request and response shapes of the SessionMood API.

These pydantic models are the single source of the wire format. The client
parses responses with them, the server builds its responses from them, and the
server's OpenAPI document is generated from them, so the three cannot drift.

Request models are strict (``"12"`` is not a number, ``NaN`` is not a number):
a caller that sends the wrong type gets a clear 400 instead of a silent
coercion. Response models are lax so that ISO strings parse into ``datetime``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "EVENT_TYPES",
    "MOODS",
    "PLANS",
    "ActionAnalyticsItem",
    "ActionAnalyticsResponse",
    "AnalyticsResponse",
    "ApiError",
    "BackNavEvent",
    "BacktrackEvent",
    "BlurEvent",
    "ClickEvent",
    "ConversionRequest",
    "ConversionResponse",
    "DeleteSessionResponse",
    "ElementAnalyticsItem",
    "ElementAnalyticsResponse",
    "ErrorEvent",
    "Event",
    "EventType",
    "EventsRequest",
    "ExportEventsResponse",
    "ExportedConversion",
    "ExportedEvent",
    "FeedbackRequest",
    "FeedbackResponse",
    "FocusEvent",
    "HealthResponse",
    "HoldoutRequest",
    "HoldoutResponse",
    "HoverEvent",
    "IdleEvent",
    "InputPauseEvent",
    "JourneyAnalyticsResponse",
    "JourneyItem",
    "JourneyStep",
    "KeyGenerateRequest",
    "KeyGenerateResponse",
    "MoodChange",
    "MoodDistributionItem",
    "MoodLabel",
    "MoodResponse",
    "PageAnalyticsItem",
    "PageAnalyticsResponse",
    "PageViewEvent",
    "Plan",
    "PostEventsResponse",
    "PublishableKeyRequest",
    "PublishableKeyResponse",
    "RageClickEvent",
    "ScrollEvent",
    "SuggestedAction",
    "UpliftItem",
    "UpliftResponse",
    "UsageResponse",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookCreated",
    "WebhookDeleted",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookEvent",
    "WebhookList",
    "WebhookMoodChange",
    "event_adapter",
]

MoodLabel: TypeAlias = Literal[
    "frustrated", "confused", "decisive", "browsing", "disengaged", "focused", "neutral"
]
SuggestedAction: TypeAlias = Literal[
    "no_action", "show_live_chat", "show_tooltip", "show_recommendations", "show_exit_offer"
]
# The event types, for type checkers: each event model below declares its own
# (``type: Literal["click"]``), and ``EVENT_TYPES`` is read from those models;
# this alias must list the same names in the same order (checked at import).
EventType: TypeAlias = Literal[
    "click",
    "rage_click",
    "scroll",
    "input_pause",
    "backtrack",
    "back_nav",
    "page_view",
    "error",
    "idle",
    "hover",
    "focus",
    "blur",
]
Plan: TypeAlias = Literal["starter", "growth", "pro"]

MOODS: tuple[MoodLabel, ...] = get_args(MoodLabel)
ACTIONS: tuple[SuggestedAction, ...] = get_args(SuggestedAction)
PLANS: tuple[Plan, ...] = get_args(Plan)

# The API reference's mood table: the action each mood suggests by default.
DEFAULT_ACTIONS: dict[MoodLabel, SuggestedAction] = {
    "frustrated": "show_live_chat",
    "confused": "show_tooltip",
    "decisive": "no_action",
    "browsing": "show_recommendations",
    "disengaged": "show_exit_offer",
    "focused": "no_action",
    "neutral": "no_action",
}

# ---------------------------------------------------------------------------
# Events (requests)
# ---------------------------------------------------------------------------

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

# Text is stored and later exported, possibly to PostgreSQL, whose text type
# cannot hold NUL: refuse it at the edge, visibly in the schema.
NO_NUL = r"^[^\x00]*$"

# ts is Unix seconds; missing means "server receipt time". Bounded so that a
# millisecond timestamp sent by mistake (1e12) is rejected, not stored as 33658 AD.
Timestamp = Annotated[float, Field(ge=0, le=1e11, description="Unix time in seconds")]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, description="Viewport pixels")]
DurationMs = Annotated[float, Field(ge=0, le=1e9, description="Milliseconds")]
# The element an event happened on, as tracker.js describes it: the site's own
# ``data-sm-name``, else a short CSS-like selector; never page text or values
# (docs/tracker.md). Optional everywhere it may appear, so trackers that do
# not send it keep working. Control characters are refused: a descriptor is
# shown in the dashboard and exported, and no selector holds one.
Target = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The element, as tracker.js describes it (docs/tracker.md)",
    ),
]


class _EventBase(BaseModel):
    model_config = _STRICT
    ts: Timestamp | None = None
    # Only a click can be dead. Other fields a type does not define are ignored,
    # but a ``dead`` elsewhere can only be a tracker bug, so it gets a 400 that
    # names it instead of vanishing (null still means absent).
    dead: SkipJsonSchema[None] = None
    _may_be_dead: ClassVar[bool] = False

    @field_validator("dead", mode="before")
    @classmethod
    def _dead_only_on_clicks(cls, value: Any) -> Any:
        if value is not None and not cls._may_be_dead:
            raise PydanticCustomError("dead_not_click", "only click events can be dead")
        return value


class ClickEvent(_EventBase):
    """A single pointer click; ``dead`` if the page gave it no response."""

    _may_be_dead: ClassVar[bool] = True
    type: Literal["click"] = "click"
    target: Target | None = None
    x: Coordinate | None = None
    y: Coordinate | None = None
    dead: bool | None = Field(  # type: ignore[assignment]
        default=None,
        description=(
            "True when the click landed on something that looks interactive and the page"
            " did not respond (no DOM change nearby, navigation, scroll, selection or focus"
            " change shortly after). Optional; omitted means unknown."
        ),
    )


class RageClickEvent(_EventBase):
    """Rapid repeated clicks in a tight area."""

    type: Literal["rage_click"] = "rage_click"
    target: Target | None = None
    x: Coordinate | None = None
    y: Coordinate | None = None


class ScrollEvent(_EventBase):
    """A scroll gesture; ``speed`` in pixels per second."""

    type: Literal["scroll"] = "scroll"
    speed: Annotated[float, Field(ge=0, le=1e7)] | None = None
    direction: Literal["up", "down"] | None = None


class InputPauseEvent(_EventBase):
    """Typing stopped mid-field for ``duration_ms``."""

    type: Literal["input_pause"] = "input_pause"
    target: Target | None = None
    duration_ms: DurationMs | None = None


class BacktrackEvent(_EventBase):
    """The visitor reversed upward after scrolling down."""

    type: Literal["backtrack"] = "backtrack"


class BackNavEvent(_EventBase):
    """Browser back navigation."""

    type: Literal["back_nav"] = "back_nav"


class PageViewEvent(_EventBase):
    """Navigation to a page or SPA route; send the path, not the query string."""

    type: Literal["page_view"] = "page_view"
    url: Annotated[str, Field(max_length=2048, pattern=NO_NUL)] | None = None


class ErrorEvent(_EventBase):
    """A JS or API error surfaced to the visitor."""

    type: Literal["error"] = "error"
    target: Target | None = None
    message: Annotated[str, Field(max_length=512, pattern=NO_NUL)] | None = None


class IdleEvent(_EventBase):
    """The visitor was inactive for ``duration_ms``."""

    type: Literal["idle"] = "idle"
    duration_ms: DurationMs | None = None


class HoverEvent(_EventBase):
    """The pointer dwelt on an element for ``duration_ms`` without clicking."""

    type: Literal["hover"] = "hover"
    target: Target | None = None
    duration_ms: DurationMs | None = None


class FocusEvent(_EventBase):
    """A form field received focus."""

    type: Literal["focus"] = "focus"
    target: Target | None = None


class BlurEvent(_EventBase):
    """A form field lost focus."""

    type: Literal["blur"] = "blur"
    target: Target | None = None


Event: TypeAlias = Annotated[
    ClickEvent
    | RageClickEvent
    | ScrollEvent
    | InputPauseEvent
    | BacktrackEvent
    | BackNavEvent
    | PageViewEvent
    | ErrorEvent
    | IdleEvent
    | HoverEvent
    | FocusEvent
    | BlurEvent,
    Field(discriminator="type"),
]

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)

# The one list of event types, in the models' order: the server validates with
# it and the OpenAPI document is built from the same models. The tracker's
# copy (tracker/src/config.js) is held to it by tests/test_event_types.py.
_EVENT_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(Event)[0])
EVENT_TYPES: tuple[EventType, ...] = tuple(
    model.model_fields["type"].default for model in _EVENT_MODELS
)
if get_args(EventType) != EVENT_TYPES:
    raise TypeError(
        f"EventType lists {get_args(EventType)}, the event models {EVENT_TYPES}: make them agree"
    )


class EventsRequest(BaseModel):
    """Body of ``POST /v1/sessions/{id}/events``."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
    events: Annotated[list[Event], Field(min_length=1, max_length=1000)]
    batch_id: Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)] | None = Field(
        default=None,
        description="Idempotency key for this batch; a repeat returns the first answer.",
    )


class FeedbackRequest(BaseModel):
    """Body of ``POST /v1/sessions/{id}/feedback``."""

    model_config = ConfigDict(strict=True, extra="ignore")
    action_taken: Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
    was_helpful: bool | None = None
    notes: Annotated[str, Field(max_length=512, pattern=NO_NUL)] | None = None


class KeyGenerateRequest(BaseModel):
    """Body of ``POST /v1/keys/generate``."""

    model_config = ConfigDict(strict=True, extra="ignore")
    customer_name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
    email: Annotated[str, Field(max_length=320, pattern=r"^[^\x00@\s]+@[^\x00@\s]+$")] | None = None
    plan: Plan = "starter"


class PublishableKeyRequest(BaseModel):
    """Body of ``POST /v1/keys/publishable``: the site origins that may use the key."""

    model_config = ConfigDict(strict=True, extra="ignore")
    allowed_origins: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]],
        Field(min_length=1, max_length=50),
    ]


class WebhookCreateRequest(BaseModel):
    """Body of ``POST /v1/webhooks``: where to send mood changes, optionally only some moods."""

    model_config = ConfigDict(strict=True, extra="ignore")
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=NO_NUL)]
    moods: Annotated[list[MoodLabel], Field(min_length=1)] | None = None


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------

_RESPONSE = ConfigDict(extra="ignore")


class PostEventsResponse(BaseModel):
    """Answer to ``POST /v1/sessions/{id}/events``: the mood after this batch."""

    model_config = _RESPONSE
    session_id: str
    events_stored: int
    total_events: int
    current_mood: MoodLabel
    # Additive to the reference's four fields, so a page can act on the answer
    # without a second round trip.
    confidence: float = 0.0
    signals: list[str] = Field(default_factory=list)
    suggested_action: SuggestedAction = "no_action"
    # A held-out session (issue 27) gets no_action, and the action it would have got.
    holdout: bool = False
    held_out_action: SuggestedAction | None = None


class MoodResponse(BaseModel):
    """Answer to ``GET /v1/sessions/{id}/mood``."""

    model_config = _RESPONSE
    session_id: str
    mood: MoodLabel
    confidence: Annotated[float, Field(ge=0, le=1)]
    signals: list[str]
    suggested_action: SuggestedAction
    event_count: int
    updated_at: datetime
    # A held-out session (issue 27) gets no_action, and the action it would have got.
    holdout: bool = False
    held_out_action: SuggestedAction | None = None


class FeedbackResponse(BaseModel):
    model_config = _RESPONSE
    session_id: str
    feedback_recorded: bool


class MoodDistributionItem(BaseModel):
    model_config = _RESPONSE
    mood: MoodLabel
    count: int
    percentage: float


class AnalyticsResponse(BaseModel):
    """Answer to ``GET /v1/analytics/moods``."""

    model_config = _RESPONSE
    total_sessions: int
    feedback_count: int
    mood_distribution: list[MoodDistributionItem]


class PageAnalyticsItem(BaseModel):
    """One page (URL path): the sessions seen on it and the mood they left it in."""

    model_config = _RESPONSE
    url: str
    sessions: int
    mood_distribution: list[MoodDistributionItem]
    frustration_rate: float = Field(description="Share of the page's sessions frustrated, 0-1")


class PageAnalyticsResponse(BaseModel):
    """Answer to ``GET /v1/analytics/pages``: busiest pages first."""

    model_config = _RESPONSE
    since: datetime | None
    until: datetime | None
    pages: list[PageAnalyticsItem]


class ActionAnalyticsItem(BaseModel):
    """Feedback for one mood x action pair."""

    model_config = _RESPONSE
    mood: MoodLabel
    action: str
    taken: int
    helpful: int
    not_helpful: int
    helpful_rate: float | None = Field(description="helpful / (helpful + not_helpful)")


class ActionAnalyticsResponse(BaseModel):
    """Answer to ``GET /v1/analytics/actions``: which intervention works for which mood."""

    model_config = _RESPONSE
    since: datetime | None
    until: datetime | None
    actions: list[ActionAnalyticsItem]


class ElementAnalyticsItem(BaseModel):
    """One element (``target`` descriptor) on one page and the struggle around it."""

    model_config = _RESPONSE
    page: str = Field(description="URL path of the page the element is on")
    target: str = Field(description="The tracker's element descriptor (see docs/tracker.md)")
    sessions: int = Field(description="Sessions that acted on the element")
    clicks: int
    rage_clicks: int
    dead_clicks: int
    error_clicks: int = Field(description="Errors that followed a click on the element")
    hesitations: int = Field(description="Hovers and typing pauses past the engine's thresholds")
    frustrated_sessions: int = Field(
        description="Sessions that turned frustrated or confused within 10 s after acting on it"
    )
    struggle_rate: float = Field(description="frustrated_sessions / sessions, 0-1")
    suggested_fix: str | None = Field(
        description="What the signals suggest fixing (docs/tracker.md); null if nothing stands out"
    )


class ElementAnalyticsResponse(BaseModel):
    """Answer to ``GET /v1/analytics/elements``: most frustrated sessions first."""

    model_config = _RESPONSE
    since: datetime | None
    until: datetime | None
    page: str | None = Field(description="The page filter, if one was given")
    elements: list[ElementAnalyticsItem]


class JourneyStep(BaseModel):
    """One page view of a journey and the moods visitors left it in."""

    model_config = _RESPONSE
    url: str
    mood_distribution: list[MoodDistributionItem]


class JourneyItem(BaseModel):
    """One path through the site: a session's first page views, repeats collapsed."""

    model_config = _RESPONSE
    path: list[str]
    sessions: int
    steps: list[JourneyStep]
    frustration_starts_at: int | None = Field(
        description="0-based step where most of the path's frustrated sessions first turned "
        "frustrated; null when none did"
    )


class JourneyAnalyticsResponse(BaseModel):
    """Answer to ``GET /v1/analytics/journeys``: the most common paths first."""

    model_config = _RESPONSE
    since: datetime | None
    until: datetime | None
    steps: int
    journeys: list[JourneyItem]


class HoldoutRequest(BaseModel):
    """Body of ``PUT /v1/holdout``."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
    share: Annotated[float, Field(ge=0, le=0.5)]


class HoldoutResponse(BaseModel):
    """Answer to ``GET``/``PUT /v1/holdout``: the share of new sessions held out."""

    model_config = _RESPONSE
    share: float
    updated_at: datetime | None = None


class ConversionRequest(BaseModel):
    """Body of ``POST /v1/sessions/{id}/conversions``."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        "conversion"
    )
    value: Annotated[float, Field(ge=0, le=1e9)] | None = None


class ConversionResponse(BaseModel):
    """Answer to ``POST /v1/sessions/{id}/conversions``."""

    model_config = _RESPONSE
    session_id: str
    name: str
    value: float | None
    counted: bool = Field(description="False when this (session, name) was already counted")
    holdout: bool


class UpliftItem(BaseModel):
    """Treated against held-out sessions for one mood x action (or the overall row)."""

    model_config = _RESPONSE
    mood: MoodLabel | None = Field(description="null on the overall row")
    action: SuggestedAction | None = Field(description="null on the overall row")
    treated_sessions: int
    treated_conversions: int
    treated_rate: float | None
    control_sessions: int
    control_conversions: int
    control_rate: float | None
    uplift: float | None = Field(description="treated_rate - control_rate (absolute)")
    uplift_low: float | None = Field(description="95 % interval, Newcombe hybrid score")
    uplift_high: float | None
    relative_uplift: float | None = Field(description="uplift / control_rate")
    treated_value_per_session: float | None
    control_value_per_session: float | None
    verdict: Literal["helps", "hurts", "unclear"]
    sessions_needed: int | None = Field(
        default=None,
        description="Per group, for 80 % power to detect a 2-point uplift at the control rate; "
        "null once the interval decides",
    )


class UpliftResponse(BaseModel):
    """Answer to ``GET /v1/analytics/uplift``."""

    model_config = _RESPONSE
    name: str
    since: datetime | None
    until: datetime | None
    method: str = Field(description="How the interval is computed")
    uplift: list[UpliftItem]
    overall: UpliftItem


class MoodChange(BaseModel):
    """One ``mood.changed`` event of ``GET /v1/stream/moods`` (Server-Sent Events)."""

    model_config = _RESPONSE
    id: int
    session_id: str
    previous_mood: MoodLabel
    mood: MoodLabel
    confidence: float
    signals: list[str]
    suggested_action: SuggestedAction
    url: str | None
    occurred_at: datetime
    # A held-out session (issue 27) gets no_action, and the action it would have got.
    holdout: bool = False
    held_out_action: SuggestedAction | None = None


class DeleteSessionResponse(BaseModel):
    model_config = _RESPONSE
    session_id: str
    deleted: bool
    message: str


class HealthResponse(BaseModel):
    model_config = _RESPONSE
    status: Literal["ok", "degraded", "down"]
    version: str


class KeyGenerateResponse(BaseModel):
    """Answer to ``POST /v1/keys/generate``; ``api_key`` is shown only once."""

    model_config = _RESPONSE
    api_key: str
    customer: str
    email: str | None
    plan: Plan
    limits: str
    message: str


class PublishableKeyResponse(BaseModel):
    """Answer to ``POST /v1/keys/publishable``: a browser key (shown only once)
    that may only send events and feedback (each answer carries the mood)."""

    model_config = _RESPONSE
    publishable_key: str
    allowed_origins: list[str]
    message: str


class Webhook(BaseModel):
    """A webhook subscription (its secret is only shown when it is created)."""

    model_config = _RESPONSE
    id: str
    url: str
    moods: list[MoodLabel] | None
    created_at: datetime


class WebhookCreated(Webhook):
    """Answer to ``POST /v1/webhooks``: ``secret`` signs every delivery; shown once."""

    secret: str


class WebhookList(BaseModel):
    model_config = _RESPONSE
    webhooks: list[Webhook]


class WebhookDeleted(BaseModel):
    model_config = _RESPONSE
    id: str
    deleted: bool


class WebhookDelivery(BaseModel):
    """One delivery of one mood change to one webhook, and how its attempts went."""

    model_config = _RESPONSE
    id: int
    change_id: int
    session_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    latency_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


class WebhookDeliveryList(BaseModel):
    """Answer to ``GET /v1/webhooks/{id}/deliveries``: newest first."""

    model_config = _RESPONSE
    deliveries: list[WebhookDelivery]


class WebhookMoodChange(BaseModel):
    """The ``data`` of a ``mood.changed`` webhook delivery."""

    model_config = ConfigDict(extra="ignore")
    # The mood change's id (the SSE stream's event id).
    id: int | None = None
    session_id: str
    previous_mood: MoodLabel
    mood: MoodLabel
    confidence: float
    signals: list[str]
    suggested_action: SuggestedAction
    occurred_at: datetime
    # A held-out session (issue 27) gets no_action, and the action it would have got.
    holdout: bool = False
    held_out_action: SuggestedAction | None = None


class WebhookEvent(BaseModel):
    """The body of a webhook delivery, in the Standard Webhooks shape
    ``{type, timestamp, data}``, signed with the ``webhook-*`` headers.

    Deliveries are at-least-once: deduplicate on the ``webhook-id`` header,
    which is the same on every retry of a delivery.
    """

    model_config = ConfigDict(extra="ignore")
    type: Literal["mood.changed"]
    timestamp: datetime = Field(description="When the mood changed (UTC)")
    data: WebhookMoodChange


class UsageResponse(BaseModel):
    """Answer to ``GET /v1/usage``: this calendar month (UTC) against the plan."""

    model_config = _RESPONSE
    customer: str | None = Field(
        default=None, description="The customer name the key was created for (shown by dashboards)"
    )
    plan: Plan
    month: str = Field(description="YYYY-MM, UTC")
    sessions_used: int
    limit: int
    remaining: int
    overage: int = Field(description="Sessions past the limit (pro plan is not blocked)")
    reset_at: datetime


class ExportedEvent(BaseModel):
    """One stored event, as received (``ts`` filled with receipt time if it was missing)."""

    model_config = ConfigDict(extra="allow")
    seq: int
    type: EventType
    ts: float
    received_at: float


class ExportedConversion(BaseModel):
    """One conversion a session recorded, as stored."""

    model_config = _RESPONSE
    name: str
    value: float | None
    created_at: datetime


class ExportEventsResponse(BaseModel):
    """Answer to ``GET /v1/sessions/{id}/events``: the stored events, in order, a
    page at a time (``next_cursor`` fetches the next page)."""

    model_config = _RESPONSE
    session_id: str
    event_count: int = Field(description="Events stored in the session (all pages)")
    events: list[ExportedEvent]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as ?cursor= for the next page; null on the last page",
    )
    conversions: list[ExportedConversion] | None = Field(
        default=None,
        description="The session's conversions (POST .../conversions), on the first page only",
    )


class ApiError(BaseModel):
    """The error body every endpoint uses: at least ``error``."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str | None = None
    field: str | None = None
    invalid: list[str] | None = None
    valid_types: list[str] | None = None
    plan: str | None = None
    limit: int | None = None
    reset_at: str | None = None
    session_id: str | None = None
    request_id: str | None = None

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
