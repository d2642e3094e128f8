"""Following ``GET /v1/stream/moods``: a Server-Sent Events parser and the
iterators that reconnect.

``client.stream_moods()`` returns a ``MoodStream`` (``AsyncMoodStream`` for the
async client), an iterator of ``MoodChange`` that opens the stream on first
use. When the connection drops or the server ends the stream, it reconnects
after a backoff (never shorter than the server's ``retry:``) and sends
``Last-Event-ID``, so no change is missed or repeated; ``max_retries`` bounds
the attempts per disconnect, and the count starts again once a connection is
back. There is no read timeout (a quiet stream is normal) but the connect
timeout applies::

    with client.stream_moods() as stream:
        for change in stream:
            print(change.session_id, change.previous_mood, "->", change.mood)
    # later: client.stream_moods(last_event_id=stream.last_event_id) resumes

``SSEDecoder`` holds all the parsing and the base class all the decisions, so
the two iterators differ only in ``await``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import ValidationError

from ._base import StreamLink, translate_httpx_errors
from ._exceptions import APIConnectionError, APIResponseValidationError
from .types import MoodChange

__all__ = ["AsyncMoodStream", "MoodStream", "SSEDecoder", "ServerSentEvent"]

# The three line endings of the SSE grammar, and only those: str.splitlines()
# (which httpx's iter_lines uses) also breaks on U+2028, U+0085 and friends,
# which JSON leaves unescaped inside strings.
_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched message; ``id`` is the stream's last event id at that point."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Incremental ``text/event-stream`` parser, as the WHATWG HTML standard specifies.

    ``feed`` takes bytes as they arrive, split anywhere (even inside a CRLF),
    and returns the messages completed by them. Comments are skipped, ``data``
    lines are joined with ``\\n``, a message without data is not dispatched,
    a message cut off by the end of the stream is dropped, ids included.
    ``last_event_id`` and ``retry_ms`` survive ``reset()``, which starts a new
    connection.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.reset()

    def reset(self) -> None:
        self._buffer = b""
        self._id = self.last_event_id
        self._pending_cr = False
        self._first_line = True
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two chunks
        self._pending_cr = False
        buffer = self._buffer + chunk
        events: list[ServerSentEvent] = []
        start = 0
        for match in _EOL.finditer(buffer):
            if match.end() == len(buffer) and match.group() == b"\r":
                self._pending_cr = True
            # CR and LF never occur inside a multi-byte UTF-8 sequence, so
            # decoding line by line is safe.
            event = self._line(buffer[start : match.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix(_BOM)
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. the server's heartbeat
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value or None
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        # Anything else (an unknown field, a bad id or retry) is ignored.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        # The id takes effect at the blank line, with or without data; an id
        # in a message cut off by a disconnect does not count.
        self.last_event_id = self._id
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self.last_event_id)


def _event_id(value: int | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("last_event_id must be an int, a str or None")
    if isinstance(value, int) and value < 0:
        raise ValueError("last_event_id must be >= 0")
    return str(value) or None


class _MoodStreamBase:
    """State and decisions shared by both iterators; no I/O."""

    EVENT_TYPE = "mood.changed"
    CONTENT_TYPE = "text/event-stream"

    def __init__(self, link: StreamLink[Any], last_event_id: int | str | None) -> None:
        self._link = link
        self._decoder = SSEDecoder(_event_id(last_event_id))
        self._last_event_id = self._decoder.last_event_id
        self._closed = False

    @property
    def last_event_id(self) -> str | None:
        """The id of the last message consumed: pass it to ``stream_moods`` to resume."""
        return self._last_event_id

    @property
    def closed(self) -> bool:
        return self._closed

    def _new_request(self) -> httpx.Request:
        self._decoder.reset()
        self._last_event_id = self._decoder.last_event_id
        return self._link.open_request(self._last_event_id)

    def _floor(self) -> float:
        retry_ms = self._decoder.retry_ms
        return 0.0 if retry_ms is None else min(retry_ms / 1000, self._link.max_retry_after)

    def _accepts(self, response: httpx.Response) -> bool:
        content_type = response.headers.get("content-type", "")
        return response.is_success and content_type.split(";")[0].strip() == self.CONTENT_TYPE

    def _delay_after_refusal(self, response: httpx.Response, retries_done: int) -> float:
        """Delay before retrying an answer that is not an event stream (its body read), or raise."""
        if response.is_success:
            raise APIResponseValidationError(
                f"GET /v1/stream/moods answered {response.status_code} with "
                f"{response.headers.get('content-type')!r}, not {self.CONTENT_TYPE}",
                response=response,
                body=None,
            )
        delay = self._link.delay_after_response(response, retries_done, self._floor())
        if delay is None:
            raise self._link.status_error(response)
        return delay

    def _delay_after_error(self, error: APIConnectionError, retries_done: int) -> float | None:
        return self._link.delay_after_error(error, retries_done, self._floor())

    def _delay_after_end(self, request: httpx.Request, retries_done: int) -> float:
        delay = self._link.delay_after_end(request, retries_done, self._floor())
        if delay is None:
            raise APIConnectionError(
                "The server ended the mood stream and no reconnect is left "
                f"(max_retries={self._link.max_retries}).",
                request=request,
            )
        return delay

    def _changes_in(
        self, chunk: bytes, response: httpx.Response
    ) -> Generator[MoodChange, None, None]:
        for event in self._decoder.feed(chunk):
            self._last_event_id = event.id
            if event.event != self.EVENT_TYPE:
                continue  # a type this client does not know yet
            try:
                yield MoodChange.model_validate_json(event.data)
            except ValidationError as exc:
                raise APIResponseValidationError(
                    f"A {self.EVENT_TYPE} event is not a MoodChange: "
                    f"{exc.error_count()} validation error(s)",
                    response=response,
                    body=event.data,
                ) from exc


class MoodStream(_MoodStreamBase):
    """Iterator of ``MoodChange`` over ``GET /v1/stream/moods`` that reconnects (sync).

    Opens the connection on the first ``next()``. Close it with ``close()`` or
    a ``with`` block; closing from another thread also ends a blocked ``next()``.
    """

    def __init__(
        self,
        link: StreamLink[httpx.Client],
        sleep: Callable[[float], None],
        last_event_id: int | str | None = None,
    ) -> None:
        super().__init__(link, last_event_id)
        self._http = link.http
        self._sleep = sleep
        self._response: httpx.Response | None = None
        self._changes = self._run()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> MoodChange:
        if self._closed:
            raise StopIteration
        return next(self._changes)

    def close(self) -> None:
        """Close the connection; iteration then stops. Safe to call twice."""
        self._closed = True
        self._close_response()
        # ValueError: it is running in another thread, which stops when its read fails.
        with contextlib.suppress(ValueError):
            self._changes.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def _run(self) -> Generator[MoodChange, None, None]:
        retries_done = 0
        while not self._closed:
            request = self._new_request()
            try:
                with translate_httpx_errors(request):
                    response = self._http.send(request, stream=True)
                self._response = response
                if self._accepts(response):
                    retries_done = 0  # connected: the next drop gets max_retries afresh
                    with translate_httpx_errors(request):
                        for chunk in response.iter_bytes():
                            yield from self._changes_in(chunk, response)
                    delay = self._delay_after_end(request, retries_done)
                else:
                    with translate_httpx_errors(request):
                        response.read()
                    delay = self._delay_after_refusal(response, retries_done)
            except APIConnectionError as error:
                if self._closed:
                    return
                maybe = self._delay_after_error(error, retries_done)
                if maybe is None:
                    raise
                delay = maybe
            finally:
                self._close_response()
            self._sleep(delay)
            retries_done += 1


class AsyncMoodStream(_MoodStreamBase):
    """Async iterator of ``MoodChange`` over ``GET /v1/stream/moods`` that reconnects.

    Same behaviour as ``MoodStream``; use ``async for`` and ``async with``
    (or ``aclose()``). To stop it from elsewhere, cancel the consuming task.
    """

    def __init__(
        self,
        link: StreamLink[httpx.AsyncClient],
        sleep: Callable[[float], Awaitable[None]],
        last_event_id: int | str | None = None,
    ) -> None:
        super().__init__(link, last_event_id)
        self._http = link.http
        self._sleep = sleep
        self._response: httpx.Response | None = None
        self._changes = self._run()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> MoodChange:
        if self._closed:
            raise StopAsyncIteration
        return await self._changes.__anext__()

    async def aclose(self) -> None:
        """Close the connection; iteration then stops. Safe to call twice."""
        self._closed = True
        await self._changes.aclose()
        await self._close_response()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()

    async def _run(self) -> AsyncGenerator[MoodChange, None]:
        retries_done = 0
        while not self._closed:
            request = self._new_request()
            try:
                with translate_httpx_errors(request):
                    response = await self._http.send(request, stream=True)
                self._response = response
                if self._accepts(response):
                    retries_done = 0  # connected: the next drop gets max_retries afresh
                    with translate_httpx_errors(request):
                        async for chunk in response.aiter_bytes():
                            for change in self._changes_in(chunk, response):
                                yield change
                    delay = self._delay_after_end(request, retries_done)
                else:
                    with translate_httpx_errors(request):
                        await response.aread()
                    delay = self._delay_after_refusal(response, retries_done)
            except APIConnectionError as error:
                if self._closed:
                    return
                maybe = self._delay_after_error(error, retries_done)
                if maybe is None:
                    raise
                delay = maybe
            finally:
                await self._close_response()
            await self._sleep(delay)
            retries_done += 1
