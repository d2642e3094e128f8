"""One exception type for every client-facing error, and the JSON it becomes.

Handlers raise ``HTTPProblem``; the app turns it into the reference's error
shape (``{"error": ..., ...}``, the wire model ``sessionmood_client.types.ApiError``).
Anything else that escapes becomes a 500 with a ``request_id`` that is also
logged, never a stack trace.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from sessionmood_server.http.cors import CORS_RESPONSE_HEADERS
from sessionmood_server.http.request_id import request_id as _request_id
from sessionmood_server.http.responses import NO_STORE, JSONResponse
from sessionmood_server.services.metrics import METRICS

log = logging.getLogger("sessionmood")


class HTTPProblem(Exception):
    """An error the caller can act on: a status, and a ``body`` sent as JSON.

    The body has the shape of the wire model ``sessionmood_client.types.ApiError``
    (``error``, then fields such as ``message``, ``field``, ``limit``), which is
    what the client parses it with (``APIStatusError.error_model``). The server's
    exception is named apart from that model on purpose: one is the thing a
    handler raises, the other the JSON a caller reads, and the client has its
    own ``APIStatusError`` for the same answer seen from the other end. (A
    "problem" as in "the caller's problem to fix"; the body is the reference's
    error shape, not RFC 9457's ``application/problem+json``.)
    """

    def __init__(
        self, status: int, error: str, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error, **{k: v for k, v in fields.items()}}
        self.headers = headers

    def response(self) -> JSONResponse:
        # Never cached: an error about a key or a session is as private as an answer.
        return JSONResponse(
            self.body, status_code=self.status, headers={**NO_STORE, **(self.headers or {})}
        )


def bad_request(error: str, **fields: Any) -> HTTPProblem:
    return HTTPProblem(400, error, **fields)


def unauthorized(message: str = "Missing or invalid API key") -> HTTPProblem:
    return HTTPProblem(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"}, message=message)


def forbidden(message: str) -> HTTPProblem:
    return HTTPProblem(403, "Forbidden", message=message)


def session_not_found(session_id: str) -> HTTPProblem:
    return HTTPProblem(404, "Session not found", session_id=session_id)


def too_many(
    message: str, retry_after: float, error: str = "Too many requests", **fields: Any
) -> HTTPProblem:
    """A 429 for a rate or count limit: JSON, with ``Retry-After`` in seconds."""
    return HTTPProblem(
        429,
        error,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        message=message,
        **fields,
    )


# -- exception handlers (``EXCEPTION_HANDLERS``, at the end) ---------------------


async def http_problem(request: Request, exc: Exception) -> Response:
    """``HTTPProblem`` as the reference's JSON error."""
    assert isinstance(exc, HTTPProblem)
    return exc.response()


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method...) as JSON errors."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and "\x00" in request.scope["path"]:
        # No file or route has NUL in its name: say what is wrong with the URL
        # (routes with parameters of their own name the parameter instead).
        return JSONResponse(
            {"error": "Invalid path", "message": "URL paths must not contain NUL (%00)"},
            status_code=400,
        )
    body: dict[str, Any] = {"error": HTTPStatus(exc.status_code).phrase}
    if exc.status_code == 404:
        body["message"] = f"no route for {request.url.path}"
    elif exc.status_code == 405:
        body["message"] = f"{request.method} is not allowed on {request.url.path}"
    elif exc.detail and exc.detail != body["error"]:
        body["message"] = exc.detail
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else: a logged 500 whose body names only a request id."""
    request_id = _request_id(request.scope) or ""
    METRICS.error(exc)
    # The traceback goes to the log with the id; the client gets only the id.
    log.error(
        "unhandled error %s on %s %s",
        request_id,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    headers = {"X-Request-Id": request_id}
    if "origin" in request.headers:
        # Starlette answers 500s outside the middleware stack, so the CORS
        # middleware never sees them: without this a browser reports a network
        # error instead of this body.
        headers.update(CORS_RESPONSE_HEADERS)
    return JSONResponse(
        {"error": "Internal Server Error", "request_id": request_id},
        status_code=500,
        headers=headers,
    )


# The app's handlers, most specific first: what each exception becomes.
EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    HTTPProblem: http_problem,
    HTTPException: http_error,
    Exception: unexpected_error,
}
