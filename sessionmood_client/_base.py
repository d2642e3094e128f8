"""Everything the sync and async clients share: all of it free of I/O.

Configuration, building requests, mapping responses to models or errors,
deciding whether to retry and how long to wait live here once, so that
``SessionMoodClient`` and ``AsyncSessionMoodClient`` differ only in ``await``
and in how they sleep. If a behaviour differs between the two, it is a bug.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

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
)
from ._version import __version__
from .types import (
    MOODS,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    ConversionResponse,
    DeleteSessionResponse,
    ElementAnalyticsResponse,
    Event,
    ExportEventsResponse,
    FeedbackResponse,
    HealthResponse,
    HoldoutResponse,
    JourneyAnalyticsResponse,
    KeyGenerateResponse,
    MoodChange,
    MoodLabel,
    MoodResponse,
    PageAnalyticsResponse,
    Plan,
    PostEventsResponse,
    PublishableKeyResponse,
    UpliftResponse,
    UsageResponse,
    WebhookCreated,
    WebhookDeleted,
    WebhookDeliveryList,
    WebhookList,
)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "BaseClient",
    "EventInput",
    "ModelT",
    "RequestSpec",
    "StreamLink",
    "TimeInput",
    "decode_body",
    "format_time",
    "quote_path_segment",
    "quote_session_id",
    "serialize_event",
    "translate_httpx_errors",
]

log = logging.getLogger("sessionmood_client")

API_KEY_ENV = "SESSIONMOOD_API_KEY"
BASE_URL_ENV = "SESSIONMOOD_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# Connect fails fast (a dead host should not stall a request handler for long);
# the rest allows for a slow database behind the API.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2

# An event as callers may pass it: a typed model or a plain dict on the wire shape.
EventInput = Event | Mapping[str, Any]
# since/until: an aware datetime (naive means UTC) or Unix seconds.
TimeInput = datetime | float

ModelT = TypeVar("ModelT", bound=BaseModel)
HttpClientT = TypeVar("HttpClientT", httpx.Client, httpx.AsyncClient)

# Transport failures worth another try; anything else (a malformed URL, a bad
# header) fails the same way every time.
_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@contextmanager
def translate_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """The one place where httpx exceptions become ``APIConnectionError``s.

    A plain (sync) context manager on purpose: it also wraps an ``await``.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(request=request) from exc
    except httpx.RequestError as exc:
        raise APIConnectionError(f"Connection error: {exc}", request=request) from exc


@dataclass(frozen=True)
class RequestSpec(Generic[ModelT]):
    """One API call, described without doing it: what to send, what to parse."""

    method: str
    path: str
    cast_to: type[ModelT]
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True
    params: Mapping[str, str] | None = None
    timeout: httpx.Timeout | None = None  # None: the client's


def quote_session_id(session_id: str) -> str:
    """Percent-encode a session id so any character survives as one path segment."""
    return quote_path_segment(session_id, "session_id")


def quote_path_segment(value: str, name: str) -> str:
    """Percent-encode ``value`` as exactly one path segment (``name`` is for the error)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    quoted = quote(value, safe="")
    # "." and ".." are unreserved, so quote() keeps them, and httpx would then
    # collapse them as dot-segments and hit a different URL.
    if quoted in {".", ".."}:
        quoted = quoted.replace(".", "%2E")
    return quoted


def serialize_event(event: EventInput) -> dict[str, Any]:
    """Wire form of one event; dicts pass through so the server stays the judge."""
    if isinstance(event, BaseModel):
        return event.model_dump(mode="json", exclude_none=True)
    if isinstance(event, Mapping):
        return dict(event)
    raise TypeError(f"an event must be an event model or a mapping, not {type(event).__name__}")


def format_time(value: TimeInput, name: str) -> str:
    """A ``since``/``until`` query value: ISO 8601 in UTC for datetimes, else seconds."""
    if isinstance(value, datetime):
        # Naive means UTC (as the server reads it), not the machine's local time.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        # Always "Z": a "+02:00" offset would need its "+" escaped in a query string.
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a datetime or Unix seconds, not {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number of seconds")
    return repr(value) if isinstance(value, float) else str(value)


def _time_params(since: TimeInput | None, until: TimeInput | None) -> dict[str, str]:
    params = {}
    if since is not None:
        params["since"] = format_time(since, "since")
    if until is not None:
        params["until"] = format_time(until, "until")
    return params


def _positive(params: dict[str, str], name: str, value: int | None) -> None:
    """``value`` as query parameter ``name``, if given: a positive int."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int")
        params[name] = str(value)


def _string_list(values: Sequence[str], name: str) -> list[str]:
    # A bare string is a Sequence too; iterating it would send one item per letter.
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings")
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a list of strings")
    return list(values)


def decode_body(response: httpx.Response) -> object:
    """The JSON body, or the text when it is not JSON (a proxy's HTML page, say)."""
    try:
        return response.json()
    except ValueError:
        return response.text


def _is_quota_exhausted(body: object) -> bool:
    # The monthly-quota 429 names the plan and when it resets; waiting seconds
    # cannot help, so it must not be retried.
    return isinstance(body, dict) and any(k in body for k in ("plan", "limit", "reset_at"))


def _mask(api_key: str | None) -> str:
    return "None" if api_key is None else f"'{api_key[:5]}…'"


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


class BaseClient(Generic[HttpClientT]):
    """State and I/O-free logic shared by the sync and async clients."""

    # Backoff: INITIAL * 2**retry, capped at MAX, times a jitter in (1 - JITTER, 1]
    # so that many clients failing together do not retry in lockstep.
    INITIAL_RETRY_DELAY = 0.5
    MAX_RETRY_DELAY = 8.0
    JITTER = 0.25
    # A server asking us to wait longer than this is not worth blocking a caller on.
    MAX_RETRY_AFTER = 60.0

    base_url: str
    timeout: httpx.Timeout
    max_retries: int
    _api_key: str | None
    _http: HttpClientT
    _owns_http: bool

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: HttpClientT | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        key = key.strip() if key else None
        if not key:
            raise SessionMoodError(
                f"No API key: pass api_key=... or set the {API_KEY_ENV} environment variable "
                "(create one with generate_key() or POST /v1/keys/generate)."
            )
        self._setup(key, base_url, timeout, max_retries, http_client)

    @classmethod
    def _without_key(cls, base_url: str | None, http_client: HttpClientT | None) -> Self:
        """An instance for the endpoints that need no key (``generate_key``)."""
        self = cls.__new__(cls)
        self._setup(None, base_url, DEFAULT_TIMEOUT, DEFAULT_MAX_RETRIES, http_client)
        return self

    def _setup(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        http_client: HttpClientT | None,
    ) -> None:
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise SessionMoodError(f"Invalid base URL {url!r}: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SessionMoodError(
                f"Invalid base URL {url!r}: expected http(s)://host[:port]; "
                f"check base_url= or {BASE_URL_ENV}."
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._api_key = api_key
        self.base_url = url.rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._owns_http = http_client is None
        self._http = self._make_http_client() if http_client is None else http_client

    def _make_http_client(self) -> HttpClientT:
        # Redirects stay off (the httpx default): httpx strips Authorization on
        # a cross-origin redirect but would forward X-Api-Key to any host.
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={_mask(self._api_key)})"

    @property
    def is_closed(self) -> bool:
        """Whether the underlying HTTP client has been closed."""
        return self._http.is_closed

    # -- hooks that tests patch ------------------------------------------------

    def _random(self) -> float:
        return random.random()

    def _now(self) -> float:
        return time.time()

    # -- the API, described ----------------------------------------------------

    def _send_events_spec(
        self, session_id: str, events: Sequence[EventInput], batch_id: str | None
    ) -> RequestSpec[PostEventsResponse]:
        if isinstance(events, Mapping) or not isinstance(events, Sequence):
            raise TypeError("events must be a list of events")
        if not events:
            raise ValueError("events must contain at least one event")
        # One key per call, fixed before the first try: every retry carries the
        # same key, so the server stores the batch at most once.
        key = batch_id if batch_id is not None else str(uuid.uuid4())
        return RequestSpec(
            "POST",
            f"/v1/sessions/{quote_session_id(session_id)}/events",
            PostEventsResponse,
            json={"events": [serialize_event(e) for e in events], "batch_id": key},
            headers={"Idempotency-Key": key},
        )

    def _get_mood_spec(self, session_id: str) -> RequestSpec[MoodResponse]:
        return RequestSpec("GET", f"/v1/sessions/{quote_session_id(session_id)}/mood", MoodResponse)

    def _send_feedback_spec(
        self, session_id: str, action_taken: str, was_helpful: bool | None, notes: str | None
    ) -> RequestSpec[FeedbackResponse]:
        body: dict[str, Any] = {"action_taken": action_taken}
        if was_helpful is not None:
            body["was_helpful"] = was_helpful
        if notes is not None:
            body["notes"] = notes
        return RequestSpec(
            "POST",
            f"/v1/sessions/{quote_session_id(session_id)}/feedback",
            FeedbackResponse,
            json=body,
        )

    def _record_conversion_spec(
        self, session_id: str, name: str | None, value: float | None
    ) -> RequestSpec[ConversionResponse]:
        body: dict[str, Any] = {}
        if name is not None:
            if not isinstance(name, str):
                raise TypeError("name must be a string")
            body["name"] = name
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError("value must be a number")
            body["value"] = value
        # Counted once per (session, name): a retry cannot count twice.
        return RequestSpec(
            "POST",
            f"/v1/sessions/{quote_session_id(session_id)}/conversions",
            ConversionResponse,
            json=body,
        )

    def _get_holdout_spec(self) -> RequestSpec[HoldoutResponse]:
        return RequestSpec("GET", "/v1/holdout", HoldoutResponse)

    def _set_holdout_spec(self, share: float) -> RequestSpec[HoldoutResponse]:
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError("share must be a number")
        if not 0 <= share <= 0.5:
            raise ValueError("share must be between 0 and 0.5")
        return RequestSpec("PUT", "/v1/holdout", HoldoutResponse, json={"share": share})

    def _get_uplift_spec(
        self,
        name: str | None,
        since: TimeInput | None,
        until: TimeInput | None,
        effect: float | None,
    ) -> RequestSpec[UpliftResponse]:
        params = _time_params(since, until)
        if name is not None:
            params["name"] = name
        if effect is not None:
            if isinstance(effect, bool) or not isinstance(effect, int | float) or effect <= 0:
                raise ValueError("effect must be a positive number (an absolute uplift)")
            params["effect"] = repr(float(effect))
        return RequestSpec("GET", "/v1/analytics/uplift", UpliftResponse, params=params)

    def _get_analytics_spec(self) -> RequestSpec[AnalyticsResponse]:
        return RequestSpec("GET", "/v1/analytics/moods", AnalyticsResponse)

    def _delete_session_spec(self, session_id: str) -> RequestSpec[DeleteSessionResponse]:
        return RequestSpec(
            "DELETE", f"/v1/sessions/{quote_session_id(session_id)}", DeleteSessionResponse
        )

    def _export_events_spec(
        self, session_id: str, cursor: str | None = None
    ) -> RequestSpec[ExportEventsResponse]:
        return RequestSpec(
            "GET",
            f"/v1/sessions/{quote_session_id(session_id)}/events",
            ExportEventsResponse,
            params={"cursor": cursor} if cursor else None,
        )

    @staticmethod
    def _whole_export(pages: list[ExportEventsResponse]) -> ExportEventsResponse:
        """The pages of one export as a single answer (the last page's count, the
        first page's conversions)."""
        events = [e for page in pages for e in page.events]
        update = {"events": events, "next_cursor": None, "conversions": pages[0].conversions}
        return pages[-1].model_copy(update=update)

    def _get_usage_spec(self) -> RequestSpec[UsageResponse]:
        return RequestSpec("GET", "/v1/usage", UsageResponse)

    def _health_spec(self) -> RequestSpec[HealthResponse]:
        return RequestSpec("GET", "/health", HealthResponse, authenticated=False)

    def _create_publishable_key_spec(
        self, allowed_origins: Sequence[str]
    ) -> RequestSpec[PublishableKeyResponse]:
        origins = _string_list(allowed_origins, "allowed_origins")
        if not origins:
            raise ValueError("allowed_origins must name at least one origin")
        return RequestSpec(
            "POST",
            "/v1/keys/publishable",
            PublishableKeyResponse,
            json={"allowed_origins": origins},
        )

    def _get_page_analytics_spec(
        self, since: TimeInput | None, until: TimeInput | None, limit: int | None = None
    ) -> RequestSpec[PageAnalyticsResponse]:
        params = _time_params(since, until)
        _positive(params, "limit", limit)
        return RequestSpec("GET", "/v1/analytics/pages", PageAnalyticsResponse, params=params)

    def _get_element_analytics_spec(
        self,
        since: TimeInput | None,
        until: TimeInput | None,
        page: str | None,
        limit: int | None,
    ) -> RequestSpec[ElementAnalyticsResponse]:
        params = _time_params(since, until)
        if page is not None:
            if not isinstance(page, str) or not page:
                raise ValueError("page must be a non-empty URL path")
            params["page"] = page
        _positive(params, "limit", limit)
        return RequestSpec("GET", "/v1/analytics/elements", ElementAnalyticsResponse, params=params)

    def _get_journeys_spec(
        self,
        since: TimeInput | None,
        until: TimeInput | None,
        steps: int | None,
        limit: int | None,
    ) -> RequestSpec[JourneyAnalyticsResponse]:
        params = _time_params(since, until)
        _positive(params, "steps", steps)
        _positive(params, "limit", limit)
        return RequestSpec("GET", "/v1/analytics/journeys", JourneyAnalyticsResponse, params=params)

    def _get_action_analytics_spec(
        self, since: TimeInput | None, until: TimeInput | None
    ) -> RequestSpec[ActionAnalyticsResponse]:
        return RequestSpec(
            "GET",
            "/v1/analytics/actions",
            ActionAnalyticsResponse,
            params=_time_params(since, until),
        )

    def _stream_moods_spec(self, last_event_id: str | None) -> RequestSpec[MoodChange]:
        """The request (re)opening the SSE stream; ``cast_to`` is the model of each event."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        # No read timeout: a quiet stream is normal (heartbeats come every 15 s
        # or so), but a dead host must still fail fast.
        timeout = httpx.Timeout(
            connect=self.timeout.connect,
            read=None,
            write=self.timeout.write,
            pool=self.timeout.pool,
        )
        return RequestSpec("GET", "/v1/stream/moods", MoodChange, headers=headers, timeout=timeout)

    def _create_webhook_spec(
        self, url: str, moods: Sequence[MoodLabel] | None
    ) -> RequestSpec[WebhookCreated]:
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty string")
        body: dict[str, Any] = {"url": url}
        if moods is not None:
            chosen = _string_list(moods, "moods")
            unknown = [m for m in chosen if m not in MOODS]
            if unknown:
                raise ValueError(f"unknown mood(s) {unknown}; valid: {list(MOODS)}")
            body["moods"] = chosen
        return RequestSpec("POST", "/v1/webhooks", WebhookCreated, json=body)

    def _list_webhooks_spec(self) -> RequestSpec[WebhookList]:
        return RequestSpec("GET", "/v1/webhooks", WebhookList)

    def _delete_webhook_spec(self, webhook_id: str) -> RequestSpec[WebhookDeleted]:
        segment = quote_path_segment(webhook_id, "webhook_id")
        return RequestSpec("DELETE", f"/v1/webhooks/{segment}", WebhookDeleted)

    def _list_webhook_deliveries_spec(self, webhook_id: str) -> RequestSpec[WebhookDeliveryList]:
        segment = quote_path_segment(webhook_id, "webhook_id")
        return RequestSpec("GET", f"/v1/webhooks/{segment}/deliveries", WebhookDeliveryList)

    @staticmethod
    def _generate_key_spec(
        customer_name: str, email: str | None, plan: Plan
    ) -> RequestSpec[KeyGenerateResponse]:
        body: dict[str, Any] = {"customer_name": customer_name, "plan": plan}
        if email is not None:
            body["email"] = email
        return RequestSpec(
            "POST", "/v1/keys/generate", KeyGenerateResponse, json=body, authenticated=False
        )

    # -- requests and responses ------------------------------------------------

    def _build_request(self, spec: RequestSpec[Any]) -> httpx.Request:
        headers = {"Accept": "application/json", "User-Agent": f"sessionmood-python/{__version__}"}
        if spec.authenticated:
            if self._api_key is None:  # only _without_key instances, which never get here
                raise SessionMoodError(f"This call needs an API key; set {API_KEY_ENV}.")
            headers["X-Api-Key"] = self._api_key
        headers.update(spec.headers)
        # build_request (not httpx.Request) so an injected client's own default
        # headers and cookies still apply. The body is bytes, so the same request
        # object can be sent again on retry, byte for byte.
        return self._http.build_request(
            spec.method,
            self.base_url + spec.path,
            json=spec.json,
            params=spec.params,
            headers=headers,
            timeout=spec.timeout or self.timeout,
        )

    def _process_response(self, spec: RequestSpec[ModelT], response: httpx.Response) -> ModelT:
        body = decode_body(response)
        if not response.is_success:
            raise self._make_status_error(response, body)
        try:
            return spec.cast_to.model_validate(body)
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"{spec.method} {spec.path} answered {response.status_code} with a body that is "
                f"not a {spec.cast_to.__name__}: {exc.error_count()} validation error(s)",
                response=response,
                body=body,
            ) from exc

    def _make_status_error(self, response: httpx.Response, body: object) -> APIStatusError:
        status = response.status_code
        cls = _STATUS_ERRORS.get(status) or (
            InternalServerError if status >= 500 else APIStatusError
        )
        message = f"HTTP {status}"
        if isinstance(body, dict):
            if isinstance(body.get("error"), str):
                message += f": {body['error']}"
            if isinstance(body.get("message"), str):
                message += f" ({body['message']})"
        elif isinstance(body, str) and body.strip():
            message += f": {body.strip()[:200]}"
        error = cls(message, response=response, body=body)
        if error.request_id:
            error.args = (f"{message} [request_id={error.request_id}]",)
        return error

    # -- retries ---------------------------------------------------------------

    def _retry_delay_after_error(
        self, error: APIConnectionError, retries_done: int, *, floor: float = 0.0
    ) -> float | None:
        """Seconds to wait before retrying after a transport error, or None to give up.

        ``floor`` is a minimum wait the server asked for (an SSE ``retry:``).
        """
        if retries_done >= self.max_retries:
            return None
        if not isinstance(error.__cause__, _RETRYABLE_TRANSPORT_ERRORS):
            return None
        delay = max(self._backoff(retries_done), floor)
        self._log_retry(error.request, delay, retries_done, type(error.__cause__).__name__)
        return delay

    def _retry_delay_after_end_of_stream(
        self, request: httpx.Request, retries_done: int, *, floor: float = 0.0
    ) -> float | None:
        """Seconds to wait before reopening a stream the server closed, or None to give up."""
        if retries_done >= self.max_retries:
            return None
        delay = max(self._backoff(retries_done), floor)
        self._log_retry(request, delay, retries_done, "end of stream")
        return delay

    def _retry_delay_after_response(
        self, response: httpx.Response, retries_done: int, *, floor: float = 0.0
    ) -> float | None:
        """Seconds to wait before retrying after this response, or None to keep it."""
        if retries_done >= self.max_retries:
            return None
        status = response.status_code
        retry_after = self._parse_retry_after(response)
        # A server can veto retries of an answer that will not change (the
        # Anthropic SDK's header), e.g. a 409 that is a permanent conflict.
        if response.headers.get("x-should-retry", "").lower() == "false":
            return None
        if status == 429:
            # Only a short-term throttle that says when to come back is retried;
            # the monthly quota answer is final until reset_at.
            if retry_after is None or _is_quota_exhausted(decode_body(response)):
                return None
        elif not (status in (408, 409) or status >= 500):
            return None
        delay = retry_after if retry_after is not None else self._backoff(retries_done)
        delay = max(delay, floor)
        self._log_retry(response.request, delay, retries_done, f"HTTP {status}")
        return delay

    def _backoff(self, retries_done: int) -> float:
        base = min(self.INITIAL_RETRY_DELAY * 2.0**retries_done, self.MAX_RETRY_DELAY)
        return base * (1 - self.JITTER * self._random())

    def _parse_retry_after(self, response: httpx.Response) -> float | None:
        """``Retry-After`` as seconds (delta-seconds or HTTP-date), capped; None if absent/bad."""
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            # HTTP-dates are GMT; "-0000" parses as naive, which would mean local time.
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - self._now()
        if seconds != seconds:  # NaN
            return None
        return min(max(seconds, 0.0), self.MAX_RETRY_AFTER)

    def _log_retry(self, request: httpx.Request, delay: float, retries_done: int, why: str) -> None:
        # Method and path only: headers carry the API key and must never be logged.
        log.info(
            "Retrying %s %s in %.2fs (retry %d of %d) after %s",
            request.method,
            request.url.path,
            delay,
            retries_done + 1,
            self.max_retries,
            why,
        )


class StreamLink(Generic[HttpClientT]):
    """All a mood stream sees of its client: the connection it sends on, the
    request that (re)opens the stream, and the client's retry decisions. The
    stream touches nothing else of the client, so either can change inside."""

    def __init__(self, client: BaseClient[HttpClientT]) -> None:
        self._client: BaseClient[HttpClientT] = client
        self.http: HttpClientT = client._http

    @property
    def max_retries(self) -> int:
        return self._client.max_retries

    @property
    def max_retry_after(self) -> float:
        return self._client.MAX_RETRY_AFTER

    def open_request(self, last_event_id: str | None) -> httpx.Request:
        """``GET /v1/stream/moods``, resuming after ``last_event_id``."""
        return self._client._build_request(self._client._stream_moods_spec(last_event_id))

    def delay_after_error(
        self, error: APIConnectionError, retries_done: int, floor: float
    ) -> float | None:
        """Seconds before reconnecting after a transport error, or None to give up."""
        return self._client._retry_delay_after_error(error, retries_done, floor=floor)

    def delay_after_end(
        self, request: httpx.Request, retries_done: int, floor: float
    ) -> float | None:
        """Seconds before reopening a stream the server ended, or None to give up."""
        return self._client._retry_delay_after_end_of_stream(request, retries_done, floor=floor)

    def delay_after_response(
        self, response: httpx.Response, retries_done: int, floor: float
    ) -> float | None:
        """Seconds before retrying after this (read) answer, or None to keep it."""
        return self._client._retry_delay_after_response(response, retries_done, floor=floor)

    def status_error(self, response: httpx.Response) -> APIStatusError:
        """The exception a (read) error answer raises."""
        return self._client._make_status_error(response, decode_body(response))
