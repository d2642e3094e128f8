"""AsyncEventTracker, the batching helper, against a mocked transport.

The sync copy is generated from the async tests by scripts/unasync.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import respx
from pydantic import ValidationError

from sessionmood_client import (
    AsyncSessionMoodClient,
    ClickEvent,
    InternalServerError,
    PostEventsResponse,
)
from tests.client.support import (
    BASE,
    KEY,
    POSTED,
    _responses,
    _sent_json,
    patch_clock,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> AsyncIterator[AsyncSessionMoodClient]:
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        patch_clock(monkeypatch, c, sleeps)
        yield c


# -- batching helper ------------------------------------------------------------


async def test_tracker_flushes_when_full_and_on_exit(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    async with client.tracker("user_abc", max_batch=2) as tracker:
        assert await tracker.track("click", x=1, y=2, ts=10) is None
        flushed = await tracker.add(ClickEvent(ts=11))
        assert isinstance(flushed, PostEventsResponse)
        assert route.call_count == 1
        await tracker.track("idle", duration_ms=4500, ts=12)
        assert len(tracker) == 1
    assert route.call_count == 2
    assert [e["ts"] for e in _sent_json(route, 0)["events"]] == [10.0, 11.0]
    assert _sent_json(route, 1)["events"] == [{"type": "idle", "duration_ms": 4500.0, "ts": 12.0}]
    assert tracker.last_response is not None
    assert len(tracker) == 0


async def test_tracker_stamps_missing_ts(
    api: respx.MockRouter, client: AsyncSessionMoodClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    tracker = client.tracker("user_abc")
    monkeypatch.setattr(tracker, "_now", lambda: 123.0)
    await tracker.track("focus")
    await tracker.add({"type": "blur", "ts": 124})
    await tracker.flush()
    assert _sent_json(route)["events"] == [
        {"type": "focus", "ts": 123.0},
        {"type": "blur", "ts": 124.0},
    ]


async def test_tracker_rejects_invalid_events_when_tracked(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.route()
    tracker = client.tracker("user_abc")
    with pytest.raises(ValidationError):
        await tracker.track("page_visit")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await tracker.add({"type": "click", "x": "240"})
    assert len(tracker) == 0
    assert await tracker.flush() is None
    assert not route.called
    with pytest.raises(ValueError, match="max_batch"):
        client.tracker("user_abc", max_batch=0)


async def test_tracker_resends_a_failed_batch_under_the_same_id(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    route = api.post("/v1/sessions/user_abc/events").mock(
        side_effect=_responses(500, 200, 200, ok=POSTED)
    )
    tracker = client.tracker("user_abc")
    await tracker.track("error", message="Payment failed", ts=1)
    with pytest.raises(InternalServerError):
        await tracker.flush()
    await tracker.track("back_nav", ts=2)
    assert len(tracker) == 2
    await tracker.flush()
    failed, replay, fresh = (_sent_json(route, i) for i in range(3))
    # The replay is the failed batch, byte for byte; newer events go in a new batch.
    assert replay == failed
    assert [e["type"] for e in fresh["events"]] == ["back_nav"]
    assert fresh["batch_id"] != failed["batch_id"]
    assert len(tracker) == 0


async def test_tracker_exit_after_an_error_keeps_that_error(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    client.max_retries = 0
    route = api.post("/v1/sessions/user_abc/events").respond(500, json={"error": "down"})
    with pytest.raises(RuntimeError, match="handler failed"):
        async with client.tracker("user_abc") as t:
            await t.track("click", ts=1)
            raise RuntimeError("handler failed")
    assert route.call_count == 1  # the flush was still attempted
