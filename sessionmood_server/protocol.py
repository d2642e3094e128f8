"""uvicorn's httptools protocol with deadlines on request heads and bodies.

uvicorn times out idle keep-alive connections, but not a client that connects
and then sends its request head slowly or not at all, nor one that trickles its
body a byte at a time (slowloris): each such connection holds a file descriptor
and, for a body, a request task forever. Here the head of every request must be
complete within ``HEADER_TIMEOUT_S`` of its first byte (or of the connection
opening), and the body within ``BODY_TIMEOUT_S`` of the head; otherwise the
client gets a 408 and the connection is closed.

Deadlines are plain numbers checked by one sweep per second over the open
connections, not a timer per request: arming and cancelling two event-loop
timers on every request cost more than the rest of a cached GET mood. A
deadline therefore fires up to ``SWEEP_S`` late.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sessionmood_server.http.validation import BODY_TIMEOUT_S, DEADLINES_SCOPE_KEY

HEADER_TIMEOUT_S = 10.0
SWEEP_S = 1.0


def _timeout_response(what: str) -> bytes:
    body = orjson.dumps(
        {"error": "Request timeout", "message": f"the request {what} did not arrive in time"}
    )
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


_HEAD_TIMEOUT = _timeout_response("headers")
_BODY_TIMEOUT = _timeout_response("body")

# Open connections per event loop; the loop's sweep runs while there are any.
_open: dict[asyncio.AbstractEventLoop, set[DeadlineProtocol]] = {}


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    conns = _open.get(loop)
    if not conns:
        _open.pop(loop, None)  # the next connection starts a new sweep
        return
    now = loop.time()
    for conn in [c for c in conns if 0.0 < c.deadline <= now]:
        conn.deadline_passed()
    loop.call_later(SWEEP_S, _sweep, loop)


class DeadlineProtocol(HttpToolsProtocol):
    # When the current request head or body must be complete (loop time); 0: no deadline.
    deadline = 0.0
    _in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        conns = _open.get(self.loop)
        if conns is None:
            conns = _open[self.loop] = set()
            self.loop.call_later(SWEEP_S, _sweep, self.loop)
        conns.add(self)
        self.deadline = self.loop.time() + HEADER_TIMEOUT_S

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_body = False
        self.deadline = self.loop.time() + HEADER_TIMEOUT_S

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The app reads bodies without a timer of its own when this is set.
        self.scope[DEADLINES_SCOPE_KEY] = True  # type: ignore[literal-required]
        self._in_body = True
        self.deadline = self.loop.time() + BODY_TIMEOUT_S

    def on_message_complete(self) -> None:
        self.deadline = 0.0
        self._in_body = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = 0.0
        conns = _open.get(self.loop)
        if conns is not None:
            conns.discard(self)
        super().connection_lost(exc)

    def deadline_passed(self) -> None:
        self.deadline = 0.0
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_body:
            # The app is waiting for the rest of the body; closing the
            # connection ends that wait (it sees a disconnect).
            if cycle is not None and not cycle.response_started:
                self.transport.write(_BODY_TIMEOUT)
        elif cycle is None or cycle.response_complete:
            # A request whose response is still being written keeps its
            # connection to finish it; otherwise nobody is waiting on this one.
            self.transport.write(_HEAD_TIMEOUT)
        self.transport.close()
