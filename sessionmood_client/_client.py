"""``SessionMoodClient`` and ``AsyncSessionMoodClient``.

Both are thin: each method hands a ``RequestSpec`` from ``BaseClient`` to
``_request``, whose retry loop is the only code that exists twice, once with
``await``. Keep the two classes in the same order, method for method.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import anyio
import httpx

from ._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    BaseClient,
    EventInput,
    ModelT,
    RequestSpec,
    StreamLink,
    TimeInput,
    translate_httpx_errors,
)
from ._exceptions import APIConnectionError
from ._stream import AsyncMoodStream, MoodStream
from ._tracker import AsyncEventTracker, EventTracker
from .types import (
    ActionAnalyticsResponse,
    AnalyticsResponse,
    ConversionResponse,
    DeleteSessionResponse,
    ElementAnalyticsResponse,
    ExportEventsResponse,
    FeedbackResponse,
    HealthResponse,
    HoldoutResponse,
    JourneyAnalyticsResponse,
    KeyGenerateResponse,
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

__all__ = ["AsyncSessionMoodClient", "SessionMoodClient"]


class SessionMoodClient(BaseClient[httpx.Client]):
    """Synchronous client for the SessionMood API.

    Args:
        api_key: the ``sm_...`` key; defaults to ``$SESSIONMOOD_API_KEY``.
        base_url: defaults to ``$SESSIONMOOD_BASE_URL``, then ``http://127.0.0.1:8000``.
        timeout: seconds or an ``httpx.Timeout``, applied to every request.
        max_retries: extra tries after a connection error, 408, 409, 5xx or a
            throttling 429 that sends ``Retry-After``.
        http_client: an ``httpx.Client`` to use; it is not closed by ``close()``.

    Use it as a context manager, or call ``close()``, to release connections::

        with SessionMoodClient() as client:
            mood = client.get_mood("user_abc")
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def _make_http_client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _request(self, spec: RequestSpec[ModelT]) -> ModelT:
        request = self._build_request(spec)
        retries_done = 0
        while True:
            try:
                with translate_httpx_errors(request):
                    response = self._http.send(request)
            except APIConnectionError as error:
                delay = self._retry_delay_after_error(error, retries_done)
                if delay is None:
                    raise
            else:
                delay = self._retry_delay_after_response(response, retries_done)
                if delay is None:
                    return self._process_response(spec, response)
            self._sleep(delay)
            retries_done += 1

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client if this object created it (an injected one is left open)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------

    @classmethod
    def generate_key(
        cls,
        customer_name: str,
        email: str | None = None,
        plan: Plan = "starter",
        base_url: str | None = None,
        *,
        http_client: httpx.Client | None = None,
    ) -> KeyGenerateResponse:
        """Create an API key (no key needed). ``api_key`` in the answer is shown only once."""
        with cls._without_key(base_url, http_client) as client:
            return client._request(client._generate_key_spec(customer_name, email, plan))

    def send_events(
        self,
        session_id: str,
        events: Sequence[EventInput],
        *,
        batch_id: str | None = None,
    ) -> PostEventsResponse:
        """Store a batch of events for a session and return the mood after it.

        ``events`` are event models (``ClickEvent(x=1, y=2)``) or dicts on the
        wire shape. ``batch_id`` is the idempotency key (a fresh uuid4 if not
        given); all retries of this call reuse it, so the batch is stored once.
        """
        return self._request(self._send_events_spec(session_id, events, batch_id))

    def get_mood(self, session_id: str) -> MoodResponse:
        """Current mood, confidence, signals and suggested action; ``NotFoundError`` if unknown."""
        return self._request(self._get_mood_spec(session_id))

    def send_feedback(
        self,
        session_id: str,
        action_taken: str,
        was_helpful: bool | None = None,
        notes: str | None = None,
    ) -> FeedbackResponse:
        """Record what you did about a mood and, if known, whether it helped."""
        return self._request(self._send_feedback_spec(session_id, action_taken, was_helpful, notes))

    def record_conversion(
        self, session_id: str, name: str | None = None, value: float | None = None
    ) -> ConversionResponse:
        """Count a conversion of the session (the server's default name is
        ``conversion``), once per (session, name): ``counted`` is False when it
        was counted before, so retrying is safe."""
        return self._request(self._record_conversion_spec(session_id, name, value))

    def get_holdout(self) -> HoldoutResponse:
        """The share of new sessions held out (no actions), to measure the uplift."""
        return self._request(self._get_holdout_spec())

    def set_holdout(self, share: float) -> HoldoutResponse:
        """Hold out ``share`` (0 to 0.5) of the sessions that start from now on."""
        return self._request(self._set_holdout_spec(share))

    def get_uplift(
        self,
        name: str | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        effect: float | None = None,
    ) -> UpliftResponse:
        """Per mood and action: treated against held-out sessions converting under
        ``name`` (default ``conversion``), the uplift with its 95 % interval and a
        verdict; ``effect`` sizes ``sessions_needed`` (default 0.02: two points)."""
        return self._request(self._get_uplift_spec(name, since, until, effect))

    def get_analytics(self) -> AnalyticsResponse:
        """Mood distribution and feedback count across this key's sessions."""
        return self._request(self._get_analytics_spec())

    def get_page_analytics(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        limit: int | None = None,
    ) -> PageAnalyticsResponse:
        """Per page: sessions, mood distribution, frustration rate; busiest pages first.

        ``since``/``until`` are datetimes (naive means UTC) or Unix seconds;
        ``limit`` pages at most (the server's default is 100).
        """
        return self._request(self._get_page_analytics_spec(since, until, limit))

    def get_element_analytics(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        page: str | None = None,
        limit: int | None = None,
    ) -> ElementAnalyticsResponse:
        """Where visitors struggle: per page and element (tracker.js's ``target``),
        its clicks, rage, dead and error clicks, hesitations, the sessions that
        turned frustrated or confused within 10 s after acting on it, and a
        suggested fix; most struggling sessions first.

        ``page`` keeps one page's elements (a URL path); ``limit`` elements at
        most (the server's default is 50, its cap 1,000).
        """
        return self._request(self._get_element_analytics_spec(since, until, page, limit))

    def get_journeys(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        steps: int | None = None,
        limit: int | None = None,
    ) -> JourneyAnalyticsResponse:
        """The commonest paths of a session's first ``steps`` page views (server
        default 4, at most 8; repeats collapsed), with the mood visitors left each
        step in and the step where frustration starts; ``limit`` paths (default 20).
        """
        return self._request(self._get_journeys_spec(since, until, steps, limit))

    def get_action_analytics(
        self, since: TimeInput | None = None, until: TimeInput | None = None
    ) -> ActionAnalyticsResponse:
        """Per mood and action: times taken, helpful, not helpful (from ``send_feedback``)."""
        return self._request(self._get_action_analytics_spec(since, until))

    def delete_session(self, session_id: str) -> DeleteSessionResponse:
        """Erase a session's events, mood state and feedback for good."""
        return self._request(self._delete_session_spec(session_id))

    def export_events(self, session_id: str) -> ExportEventsResponse:
        """Every stored event of a session, in order (all of the server's pages)."""
        pages = [self._request(self._export_events_spec(session_id))]
        while pages[-1].next_cursor:
            pages.append(self._request(self._export_events_spec(session_id, pages[-1].next_cursor)))
        return self._whole_export(pages)

    def get_usage(self) -> UsageResponse:
        """This month's session count against the plan's limit."""
        return self._request(self._get_usage_spec())

    def health(self) -> HealthResponse:
        """Server status and version (sent without the API key)."""
        return self._request(self._health_spec())

    def create_publishable_key(self, allowed_origins: Sequence[str]) -> PublishableKeyResponse:
        """A browser key (``pk_...``, shown once) for tracker.js, usable only from these origins.

        It may only send events and feedback (it reads nothing). Needs a secret key; not
        idempotent.
        """
        return self._request(self._create_publishable_key_spec(allowed_origins))

    def stream_moods(self, last_event_id: int | str | None = None) -> MoodStream:
        """Every mood change of this key's sessions, live, as an iterator of ``MoodChange``.

        Starts with the next change, or right after ``last_event_id``. Reconnects
        and resumes by itself (``max_retries`` attempts per disconnect); use it in
        a ``with`` block or ``close()`` it. See ``MoodStream``.
        """
        # The clock is looked up at each wait, so a patched one applies.
        return MoodStream(StreamLink(self), lambda s: self._sleep(s), last_event_id)

    def create_webhook(self, url: str, moods: Sequence[MoodLabel] | None = None) -> WebhookCreated:
        """Have mood changes POSTed to ``url`` (only to ``moods``, if given; growth/pro plans).

        Keep ``secret`` from the answer, it is shown once: ``verify_webhook`` needs it.
        """
        return self._request(self._create_webhook_spec(url, moods))

    def list_webhooks(self) -> WebhookList:
        """This key's webhooks (without their secrets)."""
        return self._request(self._list_webhooks_spec())

    def delete_webhook(self, webhook_id: str) -> WebhookDeleted:
        """Stop deliveries to a webhook; its pending deliveries are dropped."""
        return self._request(self._delete_webhook_spec(webhook_id))

    def list_webhook_deliveries(self, webhook_id: str) -> WebhookDeliveryList:
        """Recent deliveries of a webhook, newest first, with their status and attempts."""
        return self._request(self._list_webhook_deliveries_spec(webhook_id))

    def tracker(self, session_id: str, *, max_batch: int = 50) -> EventTracker:
        """A buffer sending this session's events ``max_batch`` at a time; see ``EventTracker``."""
        return EventTracker(self, session_id, max_batch=max_batch)


class AsyncSessionMoodClient(BaseClient[httpx.AsyncClient]):
    """Asynchronous client for the SessionMood API; same methods as ``SessionMoodClient``.

    Args:
        api_key: the ``sm_...`` key; defaults to ``$SESSIONMOOD_API_KEY``.
        base_url: defaults to ``$SESSIONMOOD_BASE_URL``, then ``http://127.0.0.1:8000``.
        timeout: seconds or an ``httpx.Timeout``, applied to every request.
        max_retries: extra tries after a connection error, 408, 409, 5xx or a
            throttling 429 that sends ``Retry-After``.
        http_client: an ``httpx.AsyncClient`` to use; it is not closed by ``aclose()``.

    ::

        async with AsyncSessionMoodClient() as client:
            mood = await client.get_mood("user_abc")
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def _make_http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout)

    async def _sleep(self, seconds: float) -> None:
        # anyio rather than asyncio so the client also works under trio.
        await anyio.sleep(seconds)

    async def _request(self, spec: RequestSpec[ModelT]) -> ModelT:
        request = self._build_request(spec)
        retries_done = 0
        while True:
            try:
                with translate_httpx_errors(request):
                    response = await self._http.send(request)
            except APIConnectionError as error:
                delay = self._retry_delay_after_error(error, retries_done)
                if delay is None:
                    raise
            else:
                delay = self._retry_delay_after_response(response, retries_done)
                if delay is None:
                    return self._process_response(spec, response)
            await self._sleep(delay)
            retries_done += 1

    # -- lifecycle --------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it (an injected one is left open)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the API ---------------------------------------------------------------

    @classmethod
    async def generate_key(
        cls,
        customer_name: str,
        email: str | None = None,
        plan: Plan = "starter",
        base_url: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> KeyGenerateResponse:
        """Create an API key (no key needed). ``api_key`` in the answer is shown only once."""
        async with cls._without_key(base_url, http_client) as client:
            return await client._request(client._generate_key_spec(customer_name, email, plan))

    async def send_events(
        self,
        session_id: str,
        events: Sequence[EventInput],
        *,
        batch_id: str | None = None,
    ) -> PostEventsResponse:
        """Store a batch of events for a session and return the mood after it.

        ``events`` are event models (``ClickEvent(x=1, y=2)``) or dicts on the
        wire shape. ``batch_id`` is the idempotency key (a fresh uuid4 if not
        given); all retries of this call reuse it, so the batch is stored once.
        """
        return await self._request(self._send_events_spec(session_id, events, batch_id))

    async def get_mood(self, session_id: str) -> MoodResponse:
        """Current mood, confidence, signals and suggested action; ``NotFoundError`` if unknown."""
        return await self._request(self._get_mood_spec(session_id))

    async def send_feedback(
        self,
        session_id: str,
        action_taken: str,
        was_helpful: bool | None = None,
        notes: str | None = None,
    ) -> FeedbackResponse:
        """Record what you did about a mood and, if known, whether it helped."""
        return await self._request(
            self._send_feedback_spec(session_id, action_taken, was_helpful, notes)
        )

    async def record_conversion(
        self, session_id: str, name: str | None = None, value: float | None = None
    ) -> ConversionResponse:
        """Count a conversion of the session (the server's default name is
        ``conversion``), once per (session, name): ``counted`` is False when it
        was counted before, so retrying is safe."""
        return await self._request(self._record_conversion_spec(session_id, name, value))

    async def get_holdout(self) -> HoldoutResponse:
        """The share of new sessions held out (no actions), to measure the uplift."""
        return await self._request(self._get_holdout_spec())

    async def set_holdout(self, share: float) -> HoldoutResponse:
        """Hold out ``share`` (0 to 0.5) of the sessions that start from now on."""
        return await self._request(self._set_holdout_spec(share))

    async def get_uplift(
        self,
        name: str | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        effect: float | None = None,
    ) -> UpliftResponse:
        """Per mood and action: treated against held-out sessions converting under
        ``name`` (default ``conversion``), the uplift with its 95 % interval and a
        verdict; ``effect`` sizes ``sessions_needed`` (default 0.02: two points)."""
        return await self._request(self._get_uplift_spec(name, since, until, effect))

    async def get_analytics(self) -> AnalyticsResponse:
        """Mood distribution and feedback count across this key's sessions."""
        return await self._request(self._get_analytics_spec())

    async def get_page_analytics(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        limit: int | None = None,
    ) -> PageAnalyticsResponse:
        """Per page: sessions, mood distribution, frustration rate; busiest pages first.

        ``since``/``until`` are datetimes (naive means UTC) or Unix seconds;
        ``limit`` pages at most (the server's default is 100).
        """
        return await self._request(self._get_page_analytics_spec(since, until, limit))

    async def get_element_analytics(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        page: str | None = None,
        limit: int | None = None,
    ) -> ElementAnalyticsResponse:
        """Where visitors struggle: per page and element (tracker.js's ``target``),
        its clicks, rage, dead and error clicks, hesitations, the sessions that
        turned frustrated or confused within 10 s after acting on it, and a
        suggested fix; most struggling sessions first.

        ``page`` keeps one page's elements (a URL path); ``limit`` elements at
        most (the server's default is 50, its cap 1,000).
        """
        return await self._request(self._get_element_analytics_spec(since, until, page, limit))

    async def get_journeys(
        self,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        steps: int | None = None,
        limit: int | None = None,
    ) -> JourneyAnalyticsResponse:
        """The commonest paths of a session's first ``steps`` page views (server
        default 4, at most 8; repeats collapsed), with the mood visitors left each
        step in and the step where frustration starts; ``limit`` paths (default 20).
        """
        return await self._request(self._get_journeys_spec(since, until, steps, limit))

    async def get_action_analytics(
        self, since: TimeInput | None = None, until: TimeInput | None = None
    ) -> ActionAnalyticsResponse:
        """Per mood and action: times taken, helpful, not helpful (from ``send_feedback``)."""
        return await self._request(self._get_action_analytics_spec(since, until))

    async def delete_session(self, session_id: str) -> DeleteSessionResponse:
        """Erase a session's events, mood state and feedback for good."""
        return await self._request(self._delete_session_spec(session_id))

    async def export_events(self, session_id: str) -> ExportEventsResponse:
        """Every stored event of a session, in order (all of the server's pages)."""
        pages = [await self._request(self._export_events_spec(session_id))]
        while pages[-1].next_cursor:
            cursor = pages[-1].next_cursor
            pages.append(await self._request(self._export_events_spec(session_id, cursor)))
        return self._whole_export(pages)

    async def get_usage(self) -> UsageResponse:
        """This month's session count against the plan's limit."""
        return await self._request(self._get_usage_spec())

    async def health(self) -> HealthResponse:
        """Server status and version (sent without the API key)."""
        return await self._request(self._health_spec())

    async def create_publishable_key(
        self, allowed_origins: Sequence[str]
    ) -> PublishableKeyResponse:
        """A browser key (``pk_...``, shown once) for tracker.js, usable only from these origins.

        It may only send events and feedback (it reads nothing). Needs a secret key; not
        idempotent.
        """
        return await self._request(self._create_publishable_key_spec(allowed_origins))

    def stream_moods(self, last_event_id: int | str | None = None) -> AsyncMoodStream:
        """Every mood change of this key's sessions, live, as an async iterator of ``MoodChange``.

        Not a coroutine: ``async for change in client.stream_moods(): ...``. Starts
        with the next change, or right after ``last_event_id``; reconnects and
        resumes by itself. Use ``async with`` or ``aclose()``. See ``AsyncMoodStream``.
        """
        return AsyncMoodStream(StreamLink(self), lambda s: self._sleep(s), last_event_id)

    async def create_webhook(
        self, url: str, moods: Sequence[MoodLabel] | None = None
    ) -> WebhookCreated:
        """Have mood changes POSTed to ``url`` (only to ``moods``, if given; growth/pro plans).

        Keep ``secret`` from the answer, it is shown once: ``verify_webhook`` needs it.
        """
        return await self._request(self._create_webhook_spec(url, moods))

    async def list_webhooks(self) -> WebhookList:
        """This key's webhooks (without their secrets)."""
        return await self._request(self._list_webhooks_spec())

    async def delete_webhook(self, webhook_id: str) -> WebhookDeleted:
        """Stop deliveries to a webhook; its pending deliveries are dropped."""
        return await self._request(self._delete_webhook_spec(webhook_id))

    async def list_webhook_deliveries(self, webhook_id: str) -> WebhookDeliveryList:
        """Recent deliveries of a webhook, newest first, with their status and attempts."""
        return await self._request(self._list_webhook_deliveries_spec(webhook_id))

    def tracker(self, session_id: str, *, max_batch: int = 50) -> AsyncEventTracker:
        """A buffer sending this session's events ``max_batch`` at a time (async)."""
        return AsyncEventTracker(self, session_id, max_batch=max_batch)
