"""Both clients against a real server on a free port (``live_server`` in conftest).

No mocks: this is where the client and the server prove they agree on the
wire format, the error bodies and idempotency.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionmood_client import (
    MOODS,
    AsyncSessionMoodClient,
    AuthenticationError,
    BadRequestError,
    ClickEvent,
    ErrorEvent,
    NotFoundError,
    PermissionDeniedError,
    RageClickEvent,
    SessionMoodClient,
    verify_webhook,
)
from tests.conftest import ADMIN_TOKEN, LiveServer, _start_live

ODD_IDS = ["a b/c?d#e%f&g=h", "..", "ünïcødé", "x" * 256]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _session() -> str:
    return f"it_{uuid.uuid4().hex}"


FRUSTRATING: list[Any] = [
    RageClickEvent(x=240, y=580, ts=1746352800),
    RageClickEvent(x=242, y=581, ts=1746352801),
    ErrorEvent(message="Payment failed", ts=1746352802),
    {"type": "back_nav", "ts": 1746352803},
    {"type": "error", "message": "Payment failed again", "ts": 1746352804},
]


# -- sync -----------------------------------------------------------------------


def test_sync_health_and_generate_key(live_server: Any) -> None:
    key = SessionMoodClient.generate_key("Integration", base_url=live_server.base_url)
    assert key.api_key.startswith("sm_")
    assert key.plan == "starter"
    with SessionMoodClient(key.api_key, base_url=live_server.base_url) as client:
        assert client.health().status == "ok"
        assert client.get_usage().plan == "starter"


def test_sync_paid_plan_key_needs_the_admin_token(live_server: Any) -> None:
    with pytest.raises(PermissionDeniedError):
        SessionMoodClient.generate_key("Paid", plan="growth", base_url=live_server.base_url)
    # An injected client's default headers ride along: that is how to send the token.
    with httpx.Client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        key = SessionMoodClient.generate_key(
            "Paid", plan="growth", base_url=live_server.base_url, http_client=admin
        )
    assert key.plan == "growth"


def test_sync_full_session_lifecycle(live_server: Any, api_key: str) -> None:
    session = _session()
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        posted = client.send_events(session, FRUSTRATING)
        assert (posted.events_stored, posted.total_events) == (5, 5)
        mood = client.get_mood(session)
        assert mood.session_id == session
        assert mood.mood in MOODS
        assert mood.event_count == 5
        feedback = client.send_feedback(session, mood.suggested_action, was_helpful=True)
        assert feedback.feedback_recorded
        analytics = client.get_analytics()
        assert analytics.total_sessions == 1
        assert analytics.feedback_count == 1
        assert client.get_usage().sessions_used == 1
        exported = client.export_events(session)
        assert [e.type for e in exported.events] == [
            "rage_click",
            "rage_click",
            "error",
            "back_nav",
            "error",
        ]
        assert client.delete_session(session).deleted
        with pytest.raises(NotFoundError) as caught:
            client.get_mood(session)
        assert caught.value.body == {"error": "Session not found", "session_id": session}


def test_sync_repeated_batch_is_stored_once(live_server: Any, api_key: str) -> None:
    session = _session()
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        first = client.send_events(session, [ClickEvent(ts=1)], batch_id="batch-1")
        again = client.send_events(session, [ClickEvent(ts=1)], batch_id="batch-1")
        assert again.total_events == first.total_events == 1
        assert client.export_events(session).event_count == 1


@pytest.mark.parametrize("session_id", ODD_IDS, ids=["specials", "dots", "unicode", "max-len"])
def test_sync_odd_session_ids_round_trip(live_server: Any, api_key: str, session_id: str) -> None:
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        client.send_events(session_id, [{"type": "page_view", "url": "/x", "ts": 1}])
        assert client.get_mood(session_id).session_id == session_id
        assert client.delete_session(session_id).session_id == session_id


def test_sync_errors_come_back_typed(live_server: Any, api_key: str) -> None:
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        with pytest.raises(BadRequestError) as caught:
            client.send_events(_session(), [{"type": "page_visit"}])
        assert isinstance(caught.value.body, dict)
        assert caught.value.body.get("invalid") == ["page_visit"]
        model = caught.value.error_model
        assert model is not None and model.invalid == ["page_visit"]
    with (
        SessionMoodClient("sm_" + "0" * 48, base_url=live_server.base_url) as stranger,
        pytest.raises(AuthenticationError),
    ):
        stranger.get_analytics()


def test_sync_tracker_batches_against_the_server(live_server: Any, api_key: str) -> None:
    session = _session()
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        with client.tracker(session, max_batch=3) as tracker:
            for i in range(7):
                tracker.track("click", x=i, y=i)
        assert client.export_events(session).event_count == 7
        assert tracker.last_response is not None
        assert tracker.last_response.total_events == 7


# -- async ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_health_and_generate_key(live_server: Any) -> None:
    key = await AsyncSessionMoodClient.generate_key("Integration", base_url=live_server.base_url)
    assert key.api_key.startswith("sm_")
    assert key.plan == "starter"
    async with AsyncSessionMoodClient(key.api_key, base_url=live_server.base_url) as client:
        assert (await client.health()).status == "ok"
        assert (await client.get_usage()).plan == "starter"


@pytest.mark.anyio
async def test_async_paid_plan_key_needs_the_admin_token(live_server: Any) -> None:
    with pytest.raises(PermissionDeniedError):
        await AsyncSessionMoodClient.generate_key(
            "Paid", plan="growth", base_url=live_server.base_url
        )
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        key = await AsyncSessionMoodClient.generate_key(
            "Paid", plan="growth", base_url=live_server.base_url, http_client=admin
        )
    assert key.plan == "growth"


@pytest.mark.anyio
async def test_async_full_session_lifecycle(live_server: Any, api_key: str) -> None:
    session = _session()
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        posted = await client.send_events(session, FRUSTRATING)
        assert (posted.events_stored, posted.total_events) == (5, 5)
        mood = await client.get_mood(session)
        assert mood.session_id == session
        assert mood.mood in MOODS
        assert mood.event_count == 5
        feedback = await client.send_feedback(session, mood.suggested_action, was_helpful=True)
        assert feedback.feedback_recorded
        analytics = await client.get_analytics()
        assert analytics.total_sessions == 1
        assert analytics.feedback_count == 1
        assert (await client.get_usage()).sessions_used == 1
        exported = await client.export_events(session)
        assert [e.type for e in exported.events] == [
            "rage_click",
            "rage_click",
            "error",
            "back_nav",
            "error",
        ]
        assert (await client.delete_session(session)).deleted
        with pytest.raises(NotFoundError) as caught:
            await client.get_mood(session)
        assert caught.value.body == {"error": "Session not found", "session_id": session}


@pytest.mark.anyio
async def test_async_repeated_batch_is_stored_once(live_server: Any, api_key: str) -> None:
    session = _session()
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        first = await client.send_events(session, [ClickEvent(ts=1)], batch_id="batch-1")
        again = await client.send_events(session, [ClickEvent(ts=1)], batch_id="batch-1")
        assert again.total_events == first.total_events == 1
        assert (await client.export_events(session)).event_count == 1


@pytest.mark.anyio
@pytest.mark.parametrize("session_id", ODD_IDS, ids=["specials", "dots", "unicode", "max-len"])
async def test_async_odd_session_ids_round_trip(
    live_server: Any, api_key: str, session_id: str
) -> None:
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        await client.send_events(session_id, [{"type": "page_view", "url": "/x", "ts": 1}])
        assert (await client.get_mood(session_id)).session_id == session_id
        assert (await client.delete_session(session_id)).session_id == session_id


@pytest.mark.anyio
async def test_async_errors_come_back_typed(live_server: Any, api_key: str) -> None:
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.send_events(_session(), [{"type": "page_visit"}])
        assert isinstance(caught.value.body, dict)
        assert caught.value.body.get("invalid") == ["page_visit"]
    async with AsyncSessionMoodClient("sm_" + "0" * 48, base_url=live_server.base_url) as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.get_analytics()


@pytest.mark.anyio
async def test_async_tracker_batches_against_the_server(live_server: Any, api_key: str) -> None:
    session = _session()
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        async with client.tracker(session, max_batch=3) as tracker:
            for i in range(7):
                await tracker.track("click", x=i, y=i)
        exported = await client.export_events(session)
        assert exported.event_count == 7
        assert tracker.last_response is not None
        assert tracker.last_response.total_events == 7


# -- newer endpoints: keys, analytics, the mood stream, webhooks -------------------------

NO_WEBHOOKS = "webhooks endpoint not on this server"


def _skip_without_webhooks(server: LiveServer, key: str) -> None:
    # Only a 404 means "not built here"; any other answer is for the test to judge.
    r = httpx.get(server.base_url + "/v1/webhooks", headers={"X-Api-Key": key})
    if r.status_code == 404:
        pytest.skip(NO_WEBHOOKS)


class Receiver:
    """A webhook endpoint on a free port that records (body, headers)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.deliveries.append((body, dict(self.headers)))
                outer.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sessionmood"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, timeout: float = 15.0) -> tuple[bytes, dict[str, str]]:
        assert self.arrived.wait(timeout), "no webhook delivery arrived"
        return self.deliveries[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that may deliver to 127.0.0.1 (the shared one refuses private addresses)."""
    tmp: Path = tmp_path_factory.mktemp("hooks")
    server = _start_live(tmp, "hooks", SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS="1")
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _wait_delivered(deliveries: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = deliveries()
        if result.deliveries and result.deliveries[0].status == "delivered":
            return result
        assert time.monotonic() < deadline, result
        time.sleep(0.05)


VISIT: list[Any] = [
    {"type": "page_view", "url": "/checkout", "ts": 1746352799},
    *FRUSTRATING,
]


def test_sync_publishable_key_and_analytics_over_time(live_server: Any, api_key: str) -> None:
    session = _session()
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        pk = client.create_publishable_key(["https://Shop.example/"])
        assert pk.publishable_key.startswith("pk_")
        assert pk.allowed_origins == ["https://shop.example"]
        mood = client.send_events(session, VISIT)
        client.send_feedback(session, "show_live_chat", was_helpful=True)
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        pages = client.get_page_analytics(since=hour_ago, until=time.time() + 60)
        assert [p.url for p in pages.pages] == ["/checkout"]
        assert pages.pages[0].sessions == 1
        assert pages.since is not None
        assert abs((pages.since - hour_ago).total_seconds()) < 0.01
        assert client.get_page_analytics(until=datetime(2000, 1, 1)).pages == []
        actions = client.get_action_analytics(since=hour_ago.replace(tzinfo=None))
        assert [(a.action, a.helpful) for a in actions.actions] == [("show_live_chat", 1)]
        assert actions.actions[0].mood == mood.current_mood


def test_sync_stream_moods_replays_then_follows(live_server: Any, api_key: str) -> None:
    first, second = _session(), _session()
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        client.send_events(first, FRUSTRATING)
        # A new key's tenant has no earlier changes: resuming after 0 replays them all.
        with client.stream_moods(last_event_id=0) as stream:
            change = next(stream)
            assert (change.session_id, change.previous_mood) == (first, "neutral")
            assert change.mood == client.get_mood(first).mood
            assert stream.last_event_id == str(change.id)
            # The stream is open now: a change made after this arrives live.
            client.send_events(second, FRUSTRATING)
            live = next(stream)
            assert live.session_id == second
            assert live.id > change.id


def test_sync_stream_moods_resumes_across_a_server_restart(fresh_server: LiveServer) -> None:
    key = fresh_server.new_key()
    with SessionMoodClient(key, base_url=fresh_server.base_url, max_retries=10) as client:
        client.send_events(_session(), FRUSTRATING)
        with client.stream_moods(last_event_id=0) as stream:
            before = next(stream)
            fresh_server.stop()
            fresh_server.start()
            after_restart = _session()
            client.send_events(after_restart, FRUSTRATING)
            # The old connection is gone: the stream reconnects with Last-Event-ID.
            change = next(stream)
            assert (change.session_id, change.id) == (after_restart, before.id + 1)


def test_sync_webhooks_deliver_signed_mood_changes(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    key = hooks_server.new_key("growth")
    _skip_without_webhooks(hooks_server, key)
    session = _session()
    with SessionMoodClient(key, base_url=hooks_server.base_url) as client:
        created = client.create_webhook(receiver.url, moods=["frustrated", "confused"])
        assert created.secret
        assert [w.id for w in client.list_webhooks().webhooks] == [created.id]
        posted = client.send_events(session, FRUSTRATING)
        body, header = receiver.wait()
        event = verify_webhook(body, header, created.secret)
        assert (event.data.session_id, event.data.mood) == (session, posted.current_mood)
        deliveries = _wait_delivered(lambda: client.list_webhook_deliveries(created.id))
        assert deliveries.deliveries[0].session_id == session
        assert client.delete_webhook(created.id).deleted
        assert client.list_webhooks().webhooks == []
        with pytest.raises(NotFoundError):
            client.delete_webhook(created.id)


def test_sync_webhooks_need_a_paid_plan(live_server: Any, api_key: str) -> None:
    _skip_without_webhooks(live_server, api_key)
    with (
        SessionMoodClient(api_key, base_url=live_server.base_url) as client,
        pytest.raises(PermissionDeniedError),
    ):
        client.list_webhooks()


@pytest.mark.anyio
async def test_async_publishable_key_and_analytics_over_time(
    live_server: Any, api_key: str
) -> None:
    session = _session()
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        pk = await client.create_publishable_key(["https://Shop.example/"])
        assert pk.allowed_origins == ["https://shop.example"]
        await client.send_events(session, VISIT)
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        pages = await client.get_page_analytics(since=hour_ago.timestamp())
        assert [p.url for p in pages.pages] == ["/checkout"]
        actions = await client.get_action_analytics(until=datetime(2000, 1, 1, tzinfo=UTC))
        assert actions.actions == []


@pytest.mark.anyio
async def test_async_stream_moods_replays_then_follows(live_server: Any, api_key: str) -> None:
    first, second = _session(), _session()
    async with AsyncSessionMoodClient(api_key, base_url=live_server.base_url) as client:
        await client.send_events(first, FRUSTRATING)
        async with client.stream_moods(last_event_id=0) as stream:
            change = await anext(stream)
            assert (change.session_id, change.previous_mood) == (first, "neutral")
            await client.send_events(second, FRUSTRATING)
            live = await anext(stream)
            assert live.session_id == second
            assert stream.last_event_id == str(live.id)


@pytest.mark.anyio
async def test_async_webhooks_deliver_signed_mood_changes(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    key = hooks_server.new_key("pro")
    _skip_without_webhooks(hooks_server, key)
    session = _session()
    async with AsyncSessionMoodClient(key, base_url=hooks_server.base_url) as client:
        created = await client.create_webhook(receiver.url)
        assert created.moods is None
        await client.send_events(session, FRUSTRATING)
        body, header = receiver.wait()
        assert verify_webhook(body, header, created.secret).data.session_id == session
        listed = await client.list_webhook_deliveries(created.id)
        assert [d.session_id for d in listed.deliveries] == [session]
        assert (await client.delete_webhook(created.id)).deleted
        assert (await client.list_webhooks()).webhooks == []


def test_sync_struggle_holdout_conversions_and_uplift(live_server: Any, api_key: str) -> None:
    """Issues 26 and 27 through the typed client against the real server."""
    with SessionMoodClient(api_key, base_url=live_server.base_url) as client:
        assert client.get_holdout().share == 0.0
        assert client.set_holdout(0.5).share == 0.5
        groups: dict[str, bool] = {}
        for _ in range(12):
            session = _session()
            events = [
                {"type": "page_view", "url": "/checkout", "ts": 1746352799},
                *[{**ev, "target": "Pay"} if isinstance(ev, dict) else ev for ev in FRUSTRATING],
                {"type": "click", "x": 1, "y": 1, "dead": True, "target": "Pay", "ts": 1746352805},
            ]
            answer = client.send_events(session, events)
            assert answer.current_mood == "frustrated"
            groups[session] = answer.holdout
            if answer.holdout:
                assert (answer.suggested_action, answer.held_out_action) == (
                    "no_action",
                    "show_live_chat",
                )
            first = client.record_conversion(session, "purchase", 12.5)
            assert first.counted and first.holdout == answer.holdout
            assert client.record_conversion(session, "purchase", 12.5).counted is False
            assert client.get_mood(session).holdout == answer.holdout
        assert len(set(groups.values())) == 2, groups  # (both groups, with 12 sessions)
        export = client.export_events(session)
        assert [c.name for c in export.conversions or []] == ["purchase"]
        uplift = client.get_uplift("purchase")
        [row] = uplift.uplift
        assert row.treated_sessions + row.control_sessions == 12
        assert row.treated_conversions + row.control_conversions == 12
        assert row.verdict == "unclear" and row.sessions_needed
        elements = client.get_element_analytics(page="/checkout")
        assert elements.elements[0].target == "Pay"
        assert elements.elements[0].dead_clicks == 12
        journeys = client.get_journeys(steps=2)
        assert journeys.journeys[0].path == ["/checkout"]
        assert journeys.journeys[0].sessions == 12
