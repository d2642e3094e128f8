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

A response can also be sent before its request's body has arrived: the 413
for a declared oversize body, a 401 or 415 decided from the head. The rest of
the body is still on its way, and closing a socket with unread bytes makes the
kernel answer with a reset, which a client still writing its body (urllib,
which asks for ``Connection: close`` and sends everything before it reads)
gets instead of the answer. So the rest is read and thrown away as it arrives,
never buffered, up to ``DRAIN_MAX_BYTES`` and within the body deadline: on a
keep-alive connection until the body ends (the connection then serves the next
request), on a closing one after shutting down writing, until the client
closes. Past either bound the connection is closed.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sessionmood_server.http.validation import BODY_TIMEOUT_S, DEADLINES_SCOPE_KEY

HEADER_TIMEOUT_S = 10.0
SWEEP_S = 1.0
# Request bytes read and discarded after an early response (a 413's 10 MB
# upload fits: the client reads its answer). More, and it gets a reset.
DRAIN_MAX_BYTES = 16 * 1024 * 1024


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


class _CycleTransport(asyncio.Transport):
    """The connection as a request cycle sees it. uvicorn closes the transport
    as soon as the response to a non-keep-alive request is sent; here, while
    that request's body is still arriving, closing lingers instead."""

    def __init__(self, protocol: DeadlineProtocol) -> None:
        super().__init__()
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._protocol.transport.write(data)

    def is_closing(self) -> bool:
        return self._protocol.transport.is_closing()

    def close(self) -> None:
        self._protocol.close_after_body()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._protocol.transport.get_extra_info(name, default)


class DeadlineProtocol(HttpToolsProtocol):
    # When the current request head or body must be complete (loop time); 0: no deadline.
    deadline = 0.0
    _in_body = False
    # Request bytes discarded since this request's response was sent.
    _drained = 0
    # Writing is shut down; reading (and discarding) until the client closes.
    _lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._cycle_transport = _CycleTransport(self)
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
        self._drained = 0
        self.deadline = self.loop.time() + BODY_TIMEOUT_S
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not for an upgrade
            cycle.transport = self._cycle_transport

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            # Nothing is parsed any more: the answer is out and no other
            # request will be served on this connection.
            self._unset_keepalive_if_required()
            self._discard(len(data))
            return
        super().data_received(data)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:  # answered: the rest goes nowhere
            self._discard(len(body))
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.deadline = 0.0
        self._in_body = False
        super().on_message_complete()

    def _discard(self, size: int) -> None:
        self._drained += size
        if self._drained > DRAIN_MAX_BYTES and not self.transport.is_closing():
            self.transport.close()

    def close_after_body(self) -> None:
        """Close now if no request body is on its way, else once the client
        has sent it and closed (at most ``DRAIN_MAX_BYTES``, within the body
        deadline): shut down writing, so that the client reads the answer and
        an end of stream, and keep reading."""
        transport = self.transport
        if not self._in_body or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        if self._lingering:
            return
        self._lingering = True
        # A request queued behind this one would write after the end of stream.
        self.pipeline.clear()
        transport.write_eof()
        self.flow.resume_reading()

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
