"""AsyncSessionMoodClient's retries, from a table, against a mocked transport.

The sync copy is generated from the async tests by scripts/unasync.py.
The clock is patched: nothing here really sleeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from sessionmood_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncSessionMoodClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
)
from tests.client.support import (
    BASE,
    KEY,
    NO_RETRY,
    NOW,
    POSTED,
    QUOTA_429,
    _responses,
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


# -- retries --------------------------------------------------------------------

# (steps the server/transport goes through, sleeps expected, error expected or None).
# _random is patched to 0, so the jitter factor is 1 and delays are exact.
RETRY_TABLE: list[tuple[str, list[Any], list[float], type[Exception] | None]] = [
    ("503-then-ok", [503, 200], [0.5], None),
    ("500-502-then-ok", [500, 502, 200], [0.5, 1.0], None),
    ("408-then-ok", [408, 200], [0.5], None),
    ("409-then-ok", [409, 200], [0.5], None),
    ("connect-error-then-ok", [httpx.ConnectError, 200], [0.5], None),
    ("read-timeout-then-ok", [httpx.ReadTimeout, 200], [0.5], None),
    ("reset-then-500-then-ok", [httpx.ReadError, 500, 200], [0.5, 1.0], None),
    ("5xx-gives-up", [503, 503, 503], [0.5, 1.0], InternalServerError),
    ("timeouts-give-up", [httpx.ReadTimeout] * 3, [0.5, 1.0], APITimeoutError),
    ("bad-header-not-retried", [httpx.LocalProtocolError], [], APIConnectionError),
    ("400-not-retried", [400], [], BadRequestError),
    ("401-not-retried", [401], [], AuthenticationError),
    ("404-not-retried", [404], [], NotFoundError),
    ("413-not-retried", [413], [], PayloadTooLargeError),
    ("429-without-retry-after-not-retried", [429], [], RateLimitError),
    (
        "x-should-retry-false-not-retried",
        [httpx.Response(409, json={"error": "Idempotency key reused"}, headers=NO_RETRY)],
        [],
        ConflictError,
    ),
]


@pytest.mark.parametrize(
    ("steps", "delays", "error"), [row[1:] for row in RETRY_TABLE], ids=[r[0] for r in RETRY_TABLE]
)
async def test_retry_table(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    steps: list[Any],
    delays: list[float],
    error: type[Exception] | None,
) -> None:
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(*steps))
    if error is None:
        assert (await client.get_mood("user_abc")).mood == "frustrated"
    else:
        with pytest.raises(error):
            await client.get_mood("user_abc")
    assert sleeps == delays
    assert route.call_count == len(delays) + 1


async def test_max_retries_zero_does_not_retry(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    client.max_retries = 0
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(503, 200))
    with pytest.raises(InternalServerError):
        await client.get_mood("user_abc")
    assert (sleeps, route.call_count) == ([], 1)


async def test_backoff_is_capped_and_jittered(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.max_retries = 6
    monkeypatch.setattr(client, "_random", lambda: 1.0)  # the largest jitter: x0.75
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(*[500] * 6, 200))
    await client.get_mood("user_abc")
    assert sleeps == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "3", 3.0),
        (503, "1.5", 1.5),
        (503, "0", 0.0),
        (429, "3600", 60.0),  # capped
        (503, "soon", 0.5),  # unparseable: plain backoff
    ],
)
async def test_retry_after_seconds_is_honoured(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    status: int,
    retry_after: str,
    delay: float,
) -> None:
    throttled = httpx.Response(status, json={"error": "busy"}, headers={"Retry-After": retry_after})
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(throttled, 200))
    await client.get_mood("user_abc")
    assert sleeps == [delay]


@pytest.mark.parametrize(
    ("offset", "delay"),
    [(7.0, 7.0), (-30.0, 0.0), (86_400.0, 60.0)],
    ids=["future", "past", "capped"],
)
async def test_retry_after_http_date_is_honoured(
    api: respx.MockRouter,
    client: AsyncSessionMoodClient,
    sleeps: list[float],
    offset: float,
    delay: float,
) -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + offset, UTC), usegmt=True)
    throttled = httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": when})
    api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(throttled, 200))
    await client.get_mood("user_abc")
    assert sleeps == [delay]


async def test_quota_429_is_not_retried(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    quota = httpx.Response(429, json=QUOTA_429, headers={"Retry-After": "1"})
    route = api.get("/v1/sessions/user_abc/mood").mock(side_effect=_responses(quota, 200))
    with pytest.raises(RateLimitError) as caught:
        await client.get_mood("user_abc")
    assert caught.value.plan == "starter"
    assert (sleeps, route.call_count) == ([], 1)


async def test_idempotency_key_is_reused_across_retries(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.post("/v1/sessions/user_abc/events").mock(
        side_effect=_responses(503, httpx.ReadTimeout, 200, ok=POSTED)
    )
    await client.send_events("user_abc", [{"type": "rage_click", "x": 1, "y": 2}])
    assert route.call_count == 3
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    batch_ids = {json.loads(call.request.content)["batch_id"] for call in route.calls}
    assert len(keys) == 1
    assert keys == batch_ids
    assert len({call.request.content for call in route.calls}) == 1
    assert sleeps == [0.5, 1.0]


async def test_each_send_events_call_gets_a_fresh_key(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    route = api.post("/v1/sessions/user_abc/events").respond(200, json=POSTED)
    await client.send_events("user_abc", [{"type": "click"}])
    await client.send_events("user_abc", [{"type": "click"}])
    first, second = (call.request.headers["Idempotency-Key"] for call in route.calls)
    assert first != second


async def test_default_sleep_hook_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("sessionmood_client._client.anyio.sleep", sleep)
    async with AsyncSessionMoodClient(KEY, base_url=BASE) as c:
        await c._sleep(0.25)
    assert waited == [0.25]
