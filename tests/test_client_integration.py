"""Both clients against a real server on a free port (``live_server`` in conftest).

No mocks: this is where the client and the server prove they agree on the
wire format, the error bodies and idempotency.
"""

from __future__ import annotations

import uuid
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
)
from tests.conftest import ADMIN_TOKEN

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
