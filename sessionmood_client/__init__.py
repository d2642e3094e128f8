"""Typed Python client for the SessionMood API (sync and async).

Quick start::

    from sessionmood_client import SessionMoodClient

    with SessionMoodClient() as client:  # key from $SESSIONMOOD_API_KEY
        client.send_events("user_abc", [{"type": "rage_click", "x": 240, "y": 580}])
        print(client.get_mood("user_abc").suggested_action)

Everything public is importable from here; the underscored modules are private.
``sessionmood_client.types`` (the wire models) is public too and needs only
pydantic: the server imports it, and so may code that never calls the API; so
is ``sessionmood_client.signing`` (Standard Webhooks signatures, stdlib only),
which the server signs deliveries with. The
HTTP parts load on first use, so importing the models alone pulls in no httpx.
"""

# No other module-level names: everything public here is in __all__ (tested).
import importlib as _importlib
import typing as _typing

from ._version import __version__
from .types import (
    ACTIONS,
    DEFAULT_ACTIONS,
    EVENT_TYPES,
    MOODS,
    PLANS,
    ActionAnalyticsItem,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    ApiError,
    BackNavEvent,
    BacktrackEvent,
    BlurEvent,
    ClickEvent,
    ConversionRequest,
    ConversionResponse,
    DeleteSessionResponse,
    ElementAnalyticsItem,
    ElementAnalyticsResponse,
    ErrorEvent,
    Event,
    EventsRequest,
    EventType,
    ExportedConversion,
    ExportedEvent,
    ExportEventsResponse,
    FeedbackRequest,
    FeedbackResponse,
    FocusEvent,
    HealthResponse,
    HoldoutRequest,
    HoldoutResponse,
    HoverEvent,
    IdleEvent,
    InputPauseEvent,
    JourneyAnalyticsResponse,
    JourneyItem,
    JourneyStep,
    KeyGenerateRequest,
    KeyGenerateResponse,
    MoodChange,
    MoodDistributionItem,
    MoodLabel,
    MoodResponse,
    PageAnalyticsItem,
    PageAnalyticsResponse,
    PageViewEvent,
    Plan,
    PostEventsResponse,
    PublishableKeyRequest,
    PublishableKeyResponse,
    RageClickEvent,
    ScrollEvent,
    SuggestedAction,
    UpliftItem,
    UpliftResponse,
    UsageResponse,
    Webhook,
    WebhookCreated,
    WebhookDeleted,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEvent,
    WebhookList,
    WebhookMoodChange,
)

if _typing.TYPE_CHECKING:
    from ._base import (
        DEFAULT_BASE_URL,
        DEFAULT_MAX_RETRIES,
        DEFAULT_TIMEOUT,
    )
    from ._client import (
        AsyncSessionMoodClient,
        SessionMoodClient,
    )
    from ._exceptions import (
        APIConnectionError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConflictError,
        InternalServerError,
        NotFoundError,
        PayloadTooLargeError,
        PermissionDeniedError,
        RateLimitError,
        SessionMoodError,
        WebhookVerificationError,
    )
    from ._stream import (
        AsyncMoodStream,
        MoodStream,
    )
    from ._tracker import (
        AsyncEventTracker,
        EventTracker,
    )
    from ._webhooks import (
        WEBHOOK_SIGNATURE_HEADER,
        sign_webhook,
        verify_webhook,
    )

# Public name -> the private module that defines it, imported on first use.
_LAZY = {
    "DEFAULT_BASE_URL": "._base",
    "DEFAULT_MAX_RETRIES": "._base",
    "DEFAULT_TIMEOUT": "._base",
    "AsyncSessionMoodClient": "._client",
    "SessionMoodClient": "._client",
    "APIConnectionError": "._exceptions",
    "APIResponseValidationError": "._exceptions",
    "APIStatusError": "._exceptions",
    "APITimeoutError": "._exceptions",
    "AuthenticationError": "._exceptions",
    "BadRequestError": "._exceptions",
    "ConflictError": "._exceptions",
    "InternalServerError": "._exceptions",
    "NotFoundError": "._exceptions",
    "PayloadTooLargeError": "._exceptions",
    "PermissionDeniedError": "._exceptions",
    "RateLimitError": "._exceptions",
    "SessionMoodError": "._exceptions",
    "WebhookVerificationError": "._exceptions",
    "AsyncMoodStream": "._stream",
    "MoodStream": "._stream",
    "AsyncEventTracker": "._tracker",
    "EventTracker": "._tracker",
    "WEBHOOK_SIGNATURE_HEADER": "._webhooks",
    "sign_webhook": "._webhooks",
    "verify_webhook": "._webhooks",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "EVENT_TYPES",
    "MOODS",
    "PLANS",
    "WEBHOOK_SIGNATURE_HEADER",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "ActionAnalyticsItem",
    "ActionAnalyticsResponse",
    "AnalyticsResponse",
    "ApiError",
    "AsyncEventTracker",
    "AsyncMoodStream",
    "AsyncSessionMoodClient",
    "AuthenticationError",
    "BackNavEvent",
    "BacktrackEvent",
    "BadRequestError",
    "BlurEvent",
    "ClickEvent",
    "ConflictError",
    "ConversionRequest",
    "ConversionResponse",
    "DeleteSessionResponse",
    "ElementAnalyticsItem",
    "ElementAnalyticsResponse",
    "ErrorEvent",
    "Event",
    "EventTracker",
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
    "InternalServerError",
    "JourneyAnalyticsResponse",
    "JourneyItem",
    "JourneyStep",
    "KeyGenerateRequest",
    "KeyGenerateResponse",
    "MoodChange",
    "MoodDistributionItem",
    "MoodLabel",
    "MoodResponse",
    "MoodStream",
    "NotFoundError",
    "PageAnalyticsItem",
    "PageAnalyticsResponse",
    "PageViewEvent",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Plan",
    "PostEventsResponse",
    "PublishableKeyRequest",
    "PublishableKeyResponse",
    "RageClickEvent",
    "RateLimitError",
    "ScrollEvent",
    "SessionMoodClient",
    "SessionMoodError",
    "SuggestedAction",
    "UpliftItem",
    "UpliftResponse",
    "UsageResponse",
    "Webhook",
    "WebhookCreated",
    "WebhookDeleted",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookEvent",
    "WebhookList",
    "WebhookMoodChange",
    "WebhookVerificationError",
    "__version__",
    "sign_webhook",
    "verify_webhook",
]
