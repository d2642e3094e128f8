"""AsyncMoodStream (``stream_moods``) against a mocked event stream.

The sync copy is generated from the async tests by scripts/unasync.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from sessionmood_client import (
    DEFAULT_TIMEOUT,
    APIConnectionError,
    APIResponseValidationError,
    AsyncSessionMoodClient,
    AuthenticationError,
    MoodChange,
    PermissionDeniedError,
)
from tests.client.support import (
    BASE,
    KEY,
    Chunks,
    _change,
    _message,
    _responses,
    _sse,
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


async def test_stream_moods_parses_the_event_stream(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    # Pretty-printed, so that each line can go in a data: field of its own.
    data = "".join(
        f"data: {line}\n" for line in json.dumps(_change(2, "confused"), indent=2).splitlines()
    )
    route = api.get("/v1/stream/moods").mock(
        side_effect=[
            _sse(
                b"\xef\xbb\xbfretry: 2000\n\n",
                b": heartbeat\n\n",
                _message(1, eol="\r\n"),
                # One message over several chunks, a CRLF split between two,
                # its data over several lines (joined with "\n").
                b"id: 2\r",
                f"\nevent: mood.changed\n{data}".encode(),
                b"\n: the end\n\n",
                b"id: 3\nevent: something.new\ndata: {}\n\n",
                b'id: 4\nevent: mood.changed\ndata: {"cut": ',  # dropped: never finished
            ),
            httpx.Response(401, json={"error": "Invalid API key"}),
        ]
    )
    async with client.stream_moods() as stream:
        first = await anext(stream)
        assert isinstance(first, MoodChange)
        assert (first.id, first.mood, first.url) == (1, "frustrated", "/checkout")
        assert stream.last_event_id == "1"
        second = await anext(stream)
        assert (second.id, second.mood) == (2, "confused")
        with pytest.raises(AuthenticationError):
            await anext(stream)
    request = route.calls[0].request
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["X-Api-Key"] == KEY
    assert "Last-Event-ID" not in request.headers
    # A connect timeout, but none for reading: a quiet stream is normal.
    timeout = request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (DEFAULT_TIMEOUT.connect, None)
    # The unknown event type's id counts, the unfinished message's does not.
    assert route.calls[1].request.headers["Last-Event-ID"] == "3"


async def test_stream_moods_resumes_after_a_drop(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(
        side_effect=[
            _sse(b"retry: 2000\n\n", _message(5), error=httpx.ReadError("reset")),
            _sse(_message(6)),
        ]
    )
    async with client.stream_moods(last_event_id=4) as stream:
        assert [(await anext(stream)).id, (await anext(stream)).id] == [5, 6]
    assert [c.request.headers["Last-Event-ID"] for c in route.calls] == ["4", "5"]
    assert sleeps == [2.0]  # the server's retry: beats the 0.5 s backoff


async def test_stream_moods_reconnects_when_the_server_ends_it(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(side_effect=[_sse(_message(1)), _sse(_message(2))])
    stream = client.stream_moods()
    assert [(await anext(stream)).id, (await anext(stream)).id] == [1, 2]
    await stream.aclose()
    assert route.calls[1].request.headers["Last-Event-ID"] == "1"
    assert sleeps == [0.5]


async def test_stream_moods_gives_up_after_max_retries_per_disconnect(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    route = api.get("/v1/stream/moods").mock(
        side_effect=_responses(
            _sse(_message(1), error=httpx.RemoteProtocolError("peer closed")),
            httpx.ConnectError,
            # Connected again: the next disconnect gets max_retries afresh.
            _sse(_message(2)),
            503,
            httpx.ConnectError,
        )
    )
    async with client.stream_moods() as stream:
        assert (await anext(stream)).id == 1
        assert (await anext(stream)).id == 2
        with pytest.raises(APIConnectionError) as caught:
            await anext(stream)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]
    assert route.call_count == 5


async def test_stream_moods_errors_are_not_retried(
    api: respx.MockRouter, client: AsyncSessionMoodClient, sleeps: list[float]
) -> None:
    api.get("/v1/stream/moods").mock(
        side_effect=[
            httpx.Response(403, json={"error": "publishable keys may not"}),
            httpx.Response(200, json={"not": "a stream"}),
            _sse(b'event: mood.changed\ndata: {"mood": "angry"}\n\n'),
        ]
    )
    async with client.stream_moods() as stream:
        with pytest.raises(PermissionDeniedError):
            await anext(stream)
    async with client.stream_moods() as stream:
        with pytest.raises(APIResponseValidationError, match="not text/event-stream"):
            await anext(stream)
    async with client.stream_moods() as stream:
        with pytest.raises(APIResponseValidationError, match="not a MoodChange") as caught:
            await anext(stream)
    assert caught.value.body == '{"mood": "angry"}'
    assert sleeps == []


async def test_stream_moods_closes_its_connection(
    api: respx.MockRouter, client: AsyncSessionMoodClient
) -> None:
    body = Chunks(_message(1), _message(2))
    api.get("/v1/stream/moods").mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=body)
    )
    async with client.stream_moods() as stream:
        async for change in stream:
            assert change.id == 1
            break
        assert not body.closed
    assert body.closed
    assert stream.closed
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    with pytest.raises(ValueError, match="last_event_id"):
        client.stream_moods(last_event_id=-1)
